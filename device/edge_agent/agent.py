"""The agent's main loop: load and check a bundle, then serve lines from a source to a sink."""

import json
import os
import platform
import sys
import time
from pathlib import Path

from edge_agent import __version__
from edge_agent.blocks import Blocks, can_block
from edge_agent.errors import AgentError, BundleError
from edge_agent.kernel import KernelWindows
from edge_agent.manifest import task_of
from edge_agent.mqtt_out import Tee
from edge_agent.notify import Notifier
from edge_agent.pipeline import Pipeline, plan_of, why_python
from edge_agent.runtimes import load_stage
from edge_agent.samples import SampleError
from edge_agent.selftest import run_selftest
from edge_agent.signature import DEFAULT_TRUSTED_KEYS, load_trusted_bundle
from edge_agent.sources import open_source
from edge_agent.streams import DEFAULT_SILENT_AFTER_S, StreamWatch
from edge_agent.telemetry import Stats, encode, record, write_record


def start(bundle_dir, trusted_keys=DEFAULT_TRUSTED_KEYS, kernel=True):
    """Verify the bundle, load its stages and pass the self-test; return (pipeline, start record).

    trusted_keys: the board's directory of trusted public keys; with any there, the bundle must be signed.
    kernel: windows by the bundle's compiled kernel where it has one (False: the Python reference).
    """
    manifest, signer = load_trusted_bundle(bundle_dir, trusted_keys)
    stages, unavailable = load_stages(bundle_dir, manifest)
    selftest = run_selftest(bundle_dir, manifest, stages)
    pipeline = Pipeline(bundle_dir, manifest, stages=stages, kernel=kernel)
    info = record(
        "start",
        bundle_id=manifest["bundle_id"],
        agent_version=__version__,
        arch=platform.machine(),
        python=platform.python_version(),
        stages=[s["name"] for s in manifest["stages"]],
        windows="kernel" if isinstance(pipeline.windows, KernelWindows) else "python",
        self_test=selftest,
    )
    if info["windows"] == "python":
        info["windows_why"] = why_python(stages, kernel)
    if signer:
        info["signed_by"] = signer
    if unavailable:
        info["degraded"] = unavailable
    return pipeline, info


def load_stages(bundle_dir, manifest):
    """Every stage's runtime. In a cascade, a stage that cannot load leaves the other to answer every
    window alone (its records flagged degraded); a bundle with no stage that loads is refused."""
    stages, unavailable = [], {}
    for spec in manifest["stages"]:
        try:
            stages.append(load_stage(bundle_dir, spec))
        except AgentError as exc:
            if not manifest.get("cascade"):
                raise
            stages.append(None)
            unavailable[spec["name"]] = str(exc)
    for spec, stage in zip(manifest["stages"], stages):
        if stage is not None:
            _check_input_count(manifest, spec, stage)
    if not any(stages):
        raise AgentError(
            "no stage of the cascade can run on this board: "
            + "; ".join(f"{name}: {why}" for name, why in unavailable.items())
        )
    return stages, unavailable


def _check_input_count(manifest, spec, stage):
    """A stage's model must take exactly what the manifest's windows give it."""
    n = len(manifest["input"]["features"])
    if spec["input"] == "window":
        want, what = manifest["window"]["length"] * n, f"a window of {manifest['window']['length']} x {n}"
    else:
        want = plan_of(manifest).n_features
        what = f"{want} window features"
    if stage.n_inputs != want:
        raise BundleError(f"stage {spec['name']!r}: the model takes {stage.n_inputs} inputs, the manifest gives {what}")
    task = task_of(manifest)
    outputs = len(manifest["output"]["classes"]) if task == "multiclass" else 1
    if stage.n_outputs != outputs:
        raise BundleError(
            f"stage {spec['name']!r}: the model gives {stage.n_outputs} outputs, a {task} bundle {outputs}"
        )


HOLD_S = 0.005  # a record waits at most this long for the rest of its batch before the batch is written
HOLD_NS = int(HOLD_S * 1e9)


def serve(
    pipeline, lines, out, stats_every=1000, heartbeat=None, extra_stats=dict, arrived=None, batch=True, blocks=None
):
    """Serve lines ((number, text, error), or None after each read's lines and while nothing comes); write records
    to `out`.

    A bad line becomes an error record with its line number; nothing stops the loop
    but the end of the input (or SIGTERM). `heartbeat(stats)` runs every iteration (with blocks, every block).
    arrived(): when the current line was complete in the source's buffer (perf_counter_ns; the
    source's read); a record's latency runs from there. batch: records go out in one write when the
    source's read is done, or once the oldest has waited HOLD_S (False: each record at once, as a
    serial link commits them with their sample). blocks: a blocks.Blocks that answers the lines a
    block at a time (up to what one read brought; None: line by line, the reference).
    Returns the Stats; the final stats record is written however the loop ends.
    """
    stats = Stats()
    sink = _Batch(out, stats, batch)
    clock = time.perf_counter_ns

    def account(number, prediction, error, start):
        """One line's outcome: its error record, or its drift and stream records and its prediction
        ((stage, record text) or None)."""
        if error is not None:
            stats.add_error(error.reason)
            sink.write(record("error", line=number, reason=error.reason, message=str(error)))
            return
        if pipeline.events:
            _write_events(pipeline, sink)
        if prediction is not None:
            sink.prediction(*prediction, start)
            if stats.windows % stats_every == 0:
                sink.flush()  # its latencies counted first
                sink.write(stats.snapshot(**_streams(pipeline), **extra_stats()))

    def answer_block():
        for number, prediction, error, start in blocks.answers():
            stats.samples += 1
            account(number, prediction, error, start)

    try:
        for event in lines:
            if blocks is not None and event is not None:  # the heartbeat waits for the block: a few ms at most
                if blocks.add(event, arrived() if arrived else clock()):
                    answer_block()
                    if heartbeat:
                        heartbeat(stats)
                continue
            if heartbeat:
                heartbeat(stats)
            if event is None:  # the read's lines are all here (or nothing came): answer them, out with what waits
                if blocks is not None:
                    answer_block()
                if pipeline.watch:  # a quiet moment: have any streams fallen silent?
                    pipeline.watch.check()
                    _write_events(pipeline, sink)
                sink.flush()
                continue
            if event[2] is None and not event[1]:  # an empty line
                continue
            stats.samples += 1
            account(*pipeline.answer(event, arrived() if arrived else clock()))
    finally:
        if blocks is not None:
            answer_block()  # the input ended (or SIGTERM): what came is answered before the final stats
        sink.flush()
        write_record(out, stats.snapshot(**_streams(pipeline), final=True, **extra_stats()))
        out.flush()
    return stats


class _Batch:
    """Records on their way out: encoded as they come, written together (one write) when the source's read is
    done or the oldest has waited HOLD_S; a prediction's latency is counted once it is written."""

    def __init__(self, out, stats, batch=True):
        self.out, self.stats, self.batch = out, stats, batch
        self.lines, self.written = [], []  # encoded records; (stage, line arrival) of the predictions among them
        self.oldest = 0

    def write(self, rec):
        self._add(encode(rec))

    def prediction(self, stage, text, arrived_ns):
        """A prediction record's text, of a window stage `stage` answered, its line complete at arrived_ns."""
        self.stats.add_prediction(stage)
        self.written.append((stage, arrived_ns))
        self._add(text)

    def _add(self, line):
        now = time.perf_counter_ns()
        if not self.lines:
            self.oldest = now
        self.lines.append(line)
        if not self.batch or now - self.oldest >= HOLD_NS:
            self.flush()

    def flush(self):
        if not self.lines:
            return
        text = "\n".join(self.lines) + "\n"
        self.lines.clear()  # before the write: a SIGTERM inside it must not write these twice
        self.out.write(text)
        self.out.flush()
        done = time.perf_counter_ns()
        for stage, arrived_ns in self.written:  # line complete -> its record written
            self.stats.add_latency(stage, (done - arrived_ns) / 1000)
        self.written.clear()


def _streams(pipeline):
    """Streams with a window now (in a block: as of the line answered), how many were evicted to keep that
    number bounded, and drift."""
    streams, evicted = pipeline.streams_then or (len(pipeline.windows.streams), pipeline.windows.evicted)
    state = {"streams": streams, "streams_evicted": evicted}
    if pipeline.drift:
        state["drift"] = pipeline.drift.summary()
    return state


def _write_events(pipeline, sink):
    """Drift records the pipeline raised on this sample, before its prediction."""
    if pipeline.events:
        for rec in pipeline.events:
            sink.write(rec)
        pipeline.events.clear()


def run(
    bundle_dir,
    source="-",
    output="-",
    stats_every=1000,
    state_dir=None,
    journal_dir=None,
    trusted_keys=DEFAULT_TRUSTED_KEYS,
    silent_after=DEFAULT_SILENT_AFTER_S,
    publisher=None,
    metrics=None,
    kernel=True,
    line_by_line=False,
):
    """Start on a bundle, tell systemd READY, and serve a source ("-", a file, tcp:HOST:PORT,
    serial:DEV@BAUD) to an output ("-" for stdout, or the input's serial link).

    With state_dir, the latest stats are kept in state_dir/stats.json for `edgectl status`.
    A stream with no sample for silent_after seconds is flagged by a "stream" record (0: never).
    publisher, metrics: an mqtt_out.Publisher and a prom_out.Metrics that also get every record (closed when
    serving ends). line_by_line: each line parsed and windowed alone (the reference), never in blocks.
    """
    notifier = Notifier()
    pipeline, info = start(bundle_dir, trusted_keys, kernel)
    if silent_after:
        pipeline.watch = StreamWatch(silent_after, pipeline.windows.max_streams, pipeline.events)
    link = None
    if source.startswith("serial:"):
        from edge_agent.serial_link import SerialLink  # pyserial and cobs: only boards with a UART link

        # The journal keeps each stream's last samples for the longest span the features read (rolling
        # kinds come back exactly; whole-history kinds restart from those samples).
        link = SerialLink(source, journal_dir or Path(state_dir or ".") / "journal", pipeline.windows.plan.ring,
                          stream_of=_stream_key(pipeline), max_streams=pipeline.windows.max_streams)  # fmt: skip
        _rebuild_windows(pipeline, link.replay_lines())
        pipeline.events.clear()  # drift and silence seen in the replay were reported before the restart
        src = link
    else:
        src = open_source(source)
    out = _output(output, source, link)
    # A serial link commits each record with its sample, so it goes line by line.
    blocks = Blocks(pipeline) if not line_by_line and link is None and can_block(pipeline) else None
    info["blocks"] = blocks is not None
    sinks = [sink for sink in (publisher, metrics) if sink is not None]
    if sinks:
        out = Tee(out, *sinks)
    # An idle source must still wake the loop in time for the next watchdog ping and silence check.
    lines = src.lines(tick=min(1.0, notifier.interval or 1.0, silent_after / 2 if silent_after else 1.0))
    write_record(out, info)
    out.flush()
    notifier.ready(f"serving {info['bundle_id']}")
    started = time.monotonic()
    last_state, state_error = [0.0], [None]

    def keep_state(stats, now):
        last_state[0] = now
        try:
            save_state(state_dir, stats, pipeline, info, now - started)
            state_error[0] = None
        except OSError as exc:  # missing, read-only or full: serving goes on, the failure is reported
            if state_error[0] is None:
                print(f"edge-agent: cannot write the state file in {state_dir}: {exc}", file=sys.stderr)
            state_error[0] = f"{state_dir}: {exc.strerror or exc}"

    def heartbeat(stats):
        notifier.watchdog()
        now = time.monotonic()
        if state_dir and now - last_state[0] >= STATE_EVERY_S:
            keep_state(stats, now)

    def extra_stats():
        counts = src.stats()
        if state_error[0]:
            counts["state_error"] = state_error[0]
        if pipeline.watch:
            counts["streams_silent"] = len(pipeline.watch.silent)
        if publisher is not None:
            counts.update(publisher.stats())
        return counts

    try:
        stats = serve(pipeline, lines, out, stats_every, heartbeat, extra_stats, src.arrived, link is None, blocks)
        if state_dir:  # the figures at the end of the input, for `edgectl status` after a run
            keep_state(stats, time.monotonic())
        return stats
    finally:
        notifier.send("STOPPING=1")
        if link:
            link.close()
        for sink in sinks:
            sink.close()


def _output(output, source, link):
    if output == "-":
        return sys.stdout
    if output.startswith("serial:") and link is not None and output.split("@")[0] == source.split("@")[0]:
        return link
    raise AgentError(f"output {output}: use - (stdout) or the input's serial link ({source})")


def _stream_key(pipeline):
    """The stream id of a sample line, for the journal; "" for a line that does not parse."""

    def key(text):
        try:
            sample = pipeline.parser.parse(text)
        except SampleError:
            return ""
        return sample.stream if sample is not None else ""

    return key


def _rebuild_windows(pipeline, lines):
    """After a restart, push the journal's last samples of every stream back into the windows.

    Their records were journaled before the restart; they are not produced again.
    """
    for text in lines:
        try:
            pipeline.handle(text)
        except SampleError:
            continue


STATE_EVERY_S = 5.0


def save_state(state_dir, stats, pipeline, info, uptime):
    """Write the latest stats to state_dir/stats.json atomically."""
    snapshot = stats.snapshot(**_streams(pipeline), bundle_id=info["bundle_id"], uptime_s=round(uptime))
    path = Path(state_dir) / "stats.json"
    path.parent.mkdir(exist_ok=True)  # HOME/state, the first time `edgectl run` keeps it
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(snapshot))
    os.replace(tmp, path)
