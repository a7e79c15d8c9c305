"""The agent's pipeline for one bundle: line -> sample -> window -> features -> stage -> record.

Built once from the manifest; `handle` is the per-sample hot path and does no
I/O beyond a cheap RSS read every few hundred windows.
"""

import time

from edge_agent import kernel, metrics, preprocess
from edge_agent.drift import DriftMonitor
from edge_agent.manifest import alarm_of, task_of
from edge_agent.runtimes import load_stage
from edge_agent.samples import SampleError, SampleParser
from edge_agent.telemetry import RECORD_VERSION, encode_prediction, rss_kb
from edge_agent.windows import FEATURE_KINDS, Plan, WindowSet

RSS_EVERY = 256  # windows between RSS reads


class Pipeline:
    """Everything the agent needs to turn sample lines into prediction records."""

    def __init__(self, bundle_dir, manifest, stages=None, max_streams=1024, kernel=True):
        """kernel: compute windows with the compiled kernel of the bundle's tree library where it has one
        for this arch (False: always the Python reference, windows.py)."""
        spec = manifest["input"]
        self.manifest = manifest
        self.stages = stages if stages is not None else [load_stage(bundle_dir, s) for s in manifest["stages"]]
        lib = kernel_library(self.stages) if kernel else None
        self.windows = window_set(manifest, max_streams, lib)
        self.prep = self.windows.prep
        imputable = manifest["preprocessing"].get("impute", {})
        self.parser = SampleParser(spec, imputable=imputable, settings=self.prep.setting_fields)
        self.specs = manifest["stages"]
        self.first = 1 if self.stages and self.stages[0] is None else 0  # sees every window (1: stage 1 failed)
        first = self.stages[self.first] if self.stages else None
        # The first stage takes its windows straight from the kernel in its own library: one call per window.
        self.fused = bool(lib and self.specs[self.first]["input"] == "features" and hasattr(first, "fuses")
                          and first.fuses(lib))  # fmt: skip
        if self.fused:
            self.windows.fuse(first.output_at)  # each step that completes a window predicts in the same call
        # Two stages: stage 1 answers unless its score falls in [low, high), then stage 2 does.
        self.cascade = manifest.get("cascade")
        self.task = task_of(manifest)
        self.classes = manifest.get("output", {}).get("classes")
        self.alarm = alarm_of(manifest)
        self.drift = DriftMonitor(manifest["drift"], lib) if "drift" in manifest else None
        self.events = []  # records other than predictions (drift), for the agent loop to write
        self.watch = None  # a StreamWatch (silent streams) while the agent serves
        # (streams, evicted) as of the line a block is answering, for its stats record: the block has taken
        # the windows of the lines after it already
        self.streams_then = None
        self.seq = 0
        self.rss = rss_kb()  # KiB, read every RSS_EVERY windows

    def answer(self, event, arrived_ns):
        """One source event (number, text, error[, source]) line by line: (number, prediction or None,
        SampleError or None, arrived_ns); a prediction as the agent writes it, (stage name, record text)."""
        number, text, error = event[:3]
        if error is not None:
            return number, None, error, arrived_ns
        try:
            rec = self.handle(text, event[3] if len(event) > 3 else 0, arrived_ns)
        except SampleError as exc:
            return number, None, exc, arrived_ns
        return number, (rec["stage"], encode_prediction(rec)) if rec is not None else None, None, arrived_ns

    def handle(self, text, source=0, arrived_ns=None):
        """Process one stripped line of a source (a TCP connection has its own header line); return a
        prediction record or None (window not full, or a header line).
        arrived_ns: when the line was complete in the input buffer (perf_counter_ns; default: now).

        Raises SampleError for a bad line, before any state changes.
        """
        t0 = time.perf_counter_ns()
        arrived = arrived_ns or t0
        sample = self.parser.parse(text, source)
        if sample is None:  # a CSV header line
            return None
        t1 = time.perf_counter_ns()
        window = self.push(sample)
        if window is None:
            return None
        x = None if self.fused else _stage_input(self.specs[self.first], window)  # fused: predicted in push
        t2 = time.perf_counter_ns()
        spec, out, degraded = self._answer(window, self.first, x)
        t3 = time.perf_counter_ns()
        return self.answered(sample.stream, sample.time, spec, out, degraded, (arrived, t0, t1, t2, t3))

    def answered(self, stream, t, spec, out, degraded, times):
        """The prediction record of a window stage `spec` answered with `out`; times: (line complete,
        parse start, parse end, features end, inference end) in perf_counter_ns."""
        answer = self.judge(spec, out)
        arrived, t0, t1, t2, t3 = times
        t4 = time.perf_counter_ns()
        rec = {  # record("prediction", ...) written out: one a window, the agent's hot path
            "type": "prediction",
            "v": RECORD_VERSION,
            "seq": self.seq,
            "stream": stream,
            "t": t,
            **answer,
            "stage": spec["name"],
            "latency_us": {
                "wait": (t0 - arrived) / 1000,
                "parse": (t1 - t0) / 1000,
                "features": (t2 - t1) / 1000,
                "inference": (t3 - t2) / 1000,
                "total": (t4 - arrived) / 1000,
            },
            "rss_kb": self.rss,
        }
        if degraded:
            rec["degraded"] = degraded
        return rec

    def judge(self, spec, out):
        """A prediction record's answer fields (outcome) of stage `spec`'s output, counted: the drift monitor
        sees its score, and the sequence number (self.seq) and the RSS figure (self.rss) move on to its record."""
        answer = outcome(self.task, out, spec.get("threshold"), self.classes, self.alarm)
        if self.drift:
            self.events += self.drift.score(answer["score"])
        self.seq += 1
        if self.seq % RSS_EVERY == 0:
            self.rss = rss_kb()
        return answer

    def _answer(self, window, first, x):
        """(spec of the answering stage, its score, why degraded or None); x is stage `first`'s input (None:
        the stage reads the window from the kernel itself)."""
        stage = self.stages[first]
        score = stage.predict(x) if x is not None else stage.last_output()
        spec = self.specs[first]
        if first == 1:  # stage 1 could not load: stage 2 answers every window
            return spec, score, f"stage {self.specs[0]['name']} unavailable"
        if self.cascade and self.cascade["low"] <= score < self.cascade["high"]:
            return self._escalate(window, spec, score)
        return spec, score, None

    def _escalate(self, window, first_spec, first_score):
        """Stage 2's (spec, score, None); stage 1's answer and the reason when stage 2 cannot give one."""
        spec, stage = self.specs[1], self.stages[1]
        if stage is None:
            return first_spec, first_score, f"stage {spec['name']} unavailable"
        try:
            return spec, stage.predict(_stage_input(spec, window)), None
        except (RuntimeError, ValueError, OSError) as exc:  # what the TFLite runtimes raise
            return first_spec, first_score, f"stage {spec['name']} failed: {exc}"

    def stage_scores(self, text):
        """(stream, t, {stage: score}) for the window this line completes, or None.

        Runs every stage regardless of routing: the self-test path.
        """
        sample = self.parser.parse(text)
        window = self.push(sample) if sample is not None else None
        if window is None:
            return None
        scores = {
            spec["name"]: stage.predict(_stage_input(spec, window))
            for spec, stage in zip(self.specs, self.stages)
            if stage is not None  # a cascade's stage 2 that could not load
        }
        return sample.stream, sample.time, scores

    def push(self, sample):
        """Add a sample to its stream's window; return the window if one is complete."""
        window = self.windows.get(sample.stream)
        status, x = self.windows.step(window, sample.values, sample.settings, sample.time)
        if status < 0:
            raise stale(sample.stream, sample.time, window.time)  # repeated or out of order: the window stays as it was
        if self.watch:
            self.watch.seen(sample.stream)
        if self.drift:
            self.events += self.drift.observe(x)
        return window if status else None


def outcome(task, out, threshold, classes=None, alarm="above"):
    """A prediction record's answer fields from a stage's output (a float, or a list per class).

    binary: prediction 0/1 (score >= threshold), score; multiclass: scores (per class),
    prediction (the class index), class (its name), score (its probability); regression:
    value, prediction = score = value, and alarm 0/1 when the bundle has a threshold (value at or
    above it, or at or below it when the bundle's alarm is "below").
    """
    if task == "multiclass":
        k = max(range(len(out)), key=out.__getitem__)
        named = {"class": classes[k]} if classes else {}
        return {"prediction": k, **named, "score": out[k], "scores": out}
    if task == "regression":
        said = {"alarm": int(metrics.alarms(out, threshold, alarm))} if threshold is not None else {}
        return {"prediction": out, "score": out, "value": out, **said}
    return {"prediction": int(out >= threshold), "score": out}


def window_set(manifest, max_streams, lib=None):
    """The per-stream windows a manifest asks for (host and board build them here): computed by the
    window kernel in lib (a ctypes.CDLL) when it has one, else by the Python reference."""
    prep = preprocess.Preprocessor(manifest["preprocessing"], manifest["input"]["features"])
    if lib is not None and kernel.has_kernel(lib):
        return kernel.KernelWindows(lib, plan_of(manifest), prep, max_streams)
    return WindowSet(plan_of(manifest), prep, max_streams)


def kernel_library(stages):
    """The loaded tree library of a stage, which carries the window kernel in bundles built since it came."""
    return next((lib for lib in _tree_libraries(stages) if kernel.has_kernel(lib)), None)


def _tree_libraries(stages):
    """The tree libraries of the stages that loaded (a TFLite stage has none)."""
    return [lib for lib in (getattr(stage, "lib", None) for stage in stages if stage is not None) if lib is not None]


def why_python(stages, with_kernel=True):
    """Why the Python reference computes the windows of a pipeline built on these stages (the start
    record's windows_why): a slower agent after an upgrade says what to do about it."""
    if not with_kernel:
        return "edge-agent run --no-kernel"
    libs = _tree_libraries(stages)
    if not libs:
        if any(stage is None for stage in stages):
            return "no stage that loaded has a tree library, which carries the window kernel (see degraded)"
        return "the bundle has no tree library, which carries the window kernel"
    return kernel.why_not(libs[0])


def plan_of(manifest):
    """What each stream computes: the window, the feature kinds per input column, the derived channels."""
    window, features = manifest["window"], manifest["features"]
    return Plan(
        window["length"],
        window["stride"],
        len(manifest["input"]["features"]),
        with_time=bool(features.get("time")),
        kinds=features.get("kinds", FEATURE_KINDS),
        channels=features.get("channels", ()),
    )


def stale(stream, t, previous):
    """The error of a sample whose time is not after its stream's last one: the window stays as it was."""
    return SampleError("stale-time", f"stream {stream}: time {t:g} is not after its previous sample's ({previous:g})")


def _stage_input(spec, window):
    return window.features() if spec["input"] == "features" else window.raw()
