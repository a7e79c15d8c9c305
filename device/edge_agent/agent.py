"""The agent's main loop: load and check a bundle, then serve lines from a source to a sink."""

import platform
import sys

from edge_agent import __version__
from edge_agent.manifest import load_bundle
from edge_agent.pipeline import Pipeline
from edge_agent.runtimes import load_stage
from edge_agent.samples import SampleError, read_lines
from edge_agent.selftest import run_selftest
from edge_agent.telemetry import Stats, record, write_record


def start(bundle_dir):
    """Verify the bundle, load its stages and pass the self-test; return (pipeline, start record)."""
    manifest = load_bundle(bundle_dir)
    stages = [load_stage(bundle_dir, s) for s in manifest["stages"]]
    selftest = run_selftest(bundle_dir, manifest, stages)
    pipeline = Pipeline(bundle_dir, manifest, stages=stages)
    info = record(
        "start",
        bundle_id=manifest["bundle_id"],
        agent_version=__version__,
        arch=platform.machine(),
        python=platform.python_version(),
        stages=[s["name"] for s in manifest["stages"]],
        self_test=selftest,
    )
    return pipeline, info


def serve(pipeline, source, out, stats_every=1000):
    """Serve every line of a binary stream; write records to `out`. Returns the Stats.

    A bad line becomes an error record with its line number; nothing stops the loop
    except the end of the input.
    """
    stats = Stats()
    for number, text, error in read_lines(source):
        if error is None and not text:
            continue
        stats.samples += 1
        if error is None:
            try:
                rec = pipeline.handle(text)
            except SampleError as exc:
                error = exc
            else:
                if rec is not None:
                    stats.add_prediction(rec)
                    write_record(out, rec)
                    if stats.windows % stats_every == 0:
                        write_record(out, stats.snapshot(streams=len(pipeline.windows.streams)))
                continue
        stats.add_error(error.reason)
        write_record(out, record("error", line=number, reason=error.reason, message=str(error)))
    write_record(out, stats.snapshot(streams=len(pipeline.windows.streams), final=True))
    return stats


def run(bundle_dir, source=None, out=None, stats_every=1000):
    """Start on a bundle and serve `source` (default stdin) to `out` (default stdout)."""
    out = out or sys.stdout
    pipeline, info = start(bundle_dir)
    write_record(out, info)
    return serve(pipeline, source or sys.stdin.buffer, out, stats_every)
