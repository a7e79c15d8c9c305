"""The lines of a read as one block: parsed in C (edge_lines.c; samples.py reads any line it leaves),
windowed and answered by the bundle's tree library in one call (edge_window_block_predict), its
samples given to the drift monitor in another (edge_drift_observe), and then taken in order, line by
line, for what stays in Python: stream silence, the drift records of the checks, the records.

A read of fewer than MIN_LINES lines (a paced sensor's) goes line by line (answer_one), each line read
by C straight into the window kernel's input buffers (read_one), windowed and predicted by one kernel
call, and its record written from its fields as a block's are (_record).

The records are those Pipeline.handle gives line by line (the reference, and the path for a bundle
without a kernel, a cascade, or a serial link): the same predictions, errors, drift and stream
records in the same order. Only the latency split differs: a line's parse and features times are its
share of the block's (the model runs inside the kernel's call, so inference is 0), and its wait is the
rest of the time before its own turn: the lines ahead of it, the block's work on the others.
"""

import ctypes
import time
from math import isfinite

import numpy as np

from edge_agent.pipeline import stale
from edge_agent.samples import ONE_STREAM, Sample, SampleError
from edge_agent.telemetry import encode_prediction, latency_text, prediction_text, shared_steps

_clock = time.perf_counter_ns
MAX_LINES = 256  # a block: what one read brought, up to this many lines
MIN_LINES = 8  # fewer go line by line (read_one): a block's set-up costs about what it saves on 8 lines


def can_block(pipeline):
    """Whether the pipeline's first stage answers alone from the kernel in its library (one stage, fused)."""
    lib = getattr(pipeline.windows, "lib", None)
    return bool(pipeline.fused and not pipeline.cascade  # no cascade: stage 1 loaded (or the bundle was refused)
                and hasattr(lib, "edge_parse_lines") and hasattr(lib, "edge_window_block_predict"))  # fmt: skip


class Blocks:
    """Collects a source's events (add) and answers them a block at a time (answers)."""

    def __init__(self, pipeline):
        self.pipeline = pipeline
        windows = pipeline.windows
        lib = windows.lib
        p, i32 = ctypes.c_void_p, ctypes.c_int
        self._parse = lib.edge_parse_lines
        self._parse.restype, self._parse.argtypes = i32, (p, ctypes.c_int64, i32, p, p, p, p, p, p)
        self._step = lib.edge_window_block_predict
        self._step.restype, self._step.argtypes = None, (p, p, p, p, p, i32, i32, i32, i32, p, p, p)
        parser = pipeline.parser
        self.n_cols, self.n_settings = windows.n_columns, len(parser.settings)
        self.n_outputs = pipeline.stages[0].n_outputs
        self.spec = pipeline.specs[0]  # the stage that answers every window, and whether its records are binary's
        self.binary = pipeline.task == "binary"
        n = MAX_LINES
        # Per line of the block (the reader's rows), then per sample (the kernel's rows, the samples compacted).
        self.ok = np.zeros(n, dtype=np.int8)
        self.values = np.zeros((n, self.n_cols))
        self.settings = np.zeros((n, max(1, self.n_settings)))
        self.times = np.zeros(n)
        self.stream = np.zeros((n, 2), dtype=np.int32)
        self.handles = np.zeros(n, dtype=np.uintp)
        self.sample_values, self.sample_settings = np.zeros_like(self.values), np.zeros_like(self.settings)
        self.sample_times = np.zeros(n)
        self.status = np.zeros(n, dtype=np.int8)
        self.x = np.zeros((n, self.n_cols))
        self.out = np.zeros((n, self.n_outputs))
        # Addresses read once: reading .ctypes.data costs more per call than a line's parsing in C.
        self._at = {name: (a.ctypes.data, a.strides[0]) for name, a in vars(self).items() if isinstance(a, np.ndarray)}
        self._step_args = [self._at[a][0] for a in ("handles", "sample_values", "sample_settings", "sample_times")]
        self._out_args = [self._at[a][0] for a in ("status", "x", "out")]
        # read_one's: row 0's ok, time and stream span, and the kernel's input buffers for the values and settings
        ok_at, time_at, stream_at = (self._at[a][0] for a in ("ok", "times", "stream"))
        self._one_args = (ok_at, *windows.input_at, time_at, stream_at)
        # and read back through memoryviews: numpy's scalar indexing cost about what C's read of the line did
        self._row0 = memoryview(self.ok), memoryview(self.times), memoryview(self.stream[0])
        self.pending = []  # (event, when its line was complete)
        if pipeline.drift:
            pipeline.drift.bind_block(self.x, self.status)
        self._layout = (None, None, None)  # the last columns (parser._columns), as the int32 array edge_parse_lines
        # reads, and its address

    def add(self, event, arrived_ns):
        """Queue one source event; True once the block is full."""
        self.pending.append((event, arrived_ns))
        return len(self.pending) >= MAX_LINES

    def answers(self):
        """(line number, prediction or None, SampleError or None, line complete) for each queued
        non-empty line in order, as Pipeline.answer gives them (a prediction: (stage, record text)); the
        pipeline's events hold each line's drift and stream records when it comes. Empties the queue."""
        lines = [(e, t) for e, t in self.pending if e[2] is not None or e[1]]
        self.pending = []
        if len(lines) < MIN_LINES:  # a paced sensor's line or two: a block's set-up would cost more
            for event, arrived in lines:
                yield self.answer_one(event, arrived)
            return
        pipeline = self.pipeline
        t0 = time.perf_counter_ns()
        parsed = self._read(lines)
        t1 = time.perf_counter_ns()
        rows = [k for k, got in enumerate(parsed) if type(got) is tuple]
        windows, streams_then = self._windows(rows, parsed)
        m = len(rows)
        if m:
            self.handles[:m] = [w.handle for w in windows]
            self.sample_times[:m] = [parsed[k][1] for k in rows]
            np.take(self.values, rows, axis=0, out=self.sample_values[:m])
            np.take(self.settings, rows, axis=0, out=self.sample_settings[:m])
            self._step(pipeline.windows.handle, *self._step_args, m, self.n_cols, self.n_settings, self.n_outputs,
                       *self._out_args)  # fmt: skip
        drift = pipeline.drift
        checks = drift.observe_block(m) if drift else {}  # row -> its check
        t2 = time.perf_counter_ns()
        status = self.status[:m].tolist()
        outs = self.out[:m, 0].tolist() if self.n_outputs == 1 else self.out[:m].tolist()
        row = dict(zip(rows, range(m)))
        # Each line's part of the block's parse and kernel time, in whole nanoseconds: its latencies then have
        # a few decimals in microseconds, whose text costs a fifth of a fraction's 17 digits.
        parse, features = (t1 - t0) // len(lines), (t2 - t1) // max(1, m)
        spec, binary = self.spec, self.binary
        stage = spec["name"]
        shared = shared_steps(parse / 1000, features / 1000, 0.0)  # the model ran inside the kernel's call
        clock, watch = time.perf_counter_ns, pipeline.watch
        try:
            for k, (event, arrived) in enumerate(lines):
                got = parsed[k]
                if type(got) is not tuple:  # an error, or a header line (None)
                    yield event[0], None, got, arrived
                    continue
                turn = clock()
                j = row[k]
                stream, t = got
                window = windows[j]
                pipeline.streams_then = streams_then[j]
                if drift:
                    drift.row_then = j
                if status[j] < 0:
                    yield event[0], None, stale(stream, t, window.time), arrived
                    continue
                window.time = t
                if watch:
                    watch.seen(stream)
                if j in checks:
                    pipeline.events += drift.checked(checks[j])
                prediction = None
                if status[j]:  # its shares of the block's parse and kernel time end at its turn; before them, its wait
                    start, out = turn - parse - features, outs[j]
                    # _record's binary text, inline with the block's shared steps: the call cost 2 % of a sample
                    if binary and type(t) is float and isfinite(t) and isfinite(out):
                        answer = pipeline.judge(spec, out)
                        latency = latency_text((start - arrived) / 1000, shared, (clock() - arrived) / 1000)
                        text = prediction_text(pipeline.seq, stream, t, answer["prediction"], out, stage, latency,
                                               pipeline.rss)  # fmt: skip
                    else:
                        text = self._record(stream, t, out, (arrived, start, start + parse, turn, turn))
                    prediction = stage, text
                yield event[0], prediction, None, arrived
        finally:
            pipeline.streams_then = None
            if drift:
                drift.row_then = None

    def answer_one(self, event, arrived):
        """Pipeline.answer of a line on its own: read by read_one, windowed and predicted by one kernel call
        (Pipeline.push), its record written from its fields as a block's are (_record)."""
        number, text, error = event[:3]
        if error is not None:
            return number, None, error, arrived
        pipeline, clock = self.pipeline, _clock
        t0 = clock()
        try:
            sample = self.read_one(text, _source(event))
            if sample is None:  # a header line
                return number, None, None, arrived
            t1 = clock()
            window = pipeline.push(sample)
        except SampleError as exc:
            return number, None, exc, arrived
        if window is None:
            return number, None, None, arrived
        t2 = clock()
        out = pipeline.stages[0].last_output()
        times = arrived, t0, t1, t2, clock()
        return number, (self.spec["name"], self._record(sample.stream, sample.time, out, times)), None, arrived

    def _record(self, stream, t, out, times):
        """The prediction record's text of the window stage 1 answered with `out`. times: (line complete, parse
        start, parse end, features end, inference end), perf_counter_ns. A binary task's record is written
        from its fields, no dict (a block writes its lines' so, inline); any other (or a time or score that is
        not finite) is Pipeline.answered's dict through encode_prediction."""
        pipeline, spec = self.pipeline, self.spec
        if not self.binary or type(t) is not float or not isfinite(t) or not isfinite(out):
            return encode_prediction(pipeline.answered(stream, t, spec, out, None, times))
        answer = pipeline.judge(spec, out)
        arrived, t0, t1, t2, t3 = times
        shared = shared_steps((t1 - t0) / 1000, (t2 - t1) / 1000, (t3 - t2) / 1000)
        latency = latency_text((t0 - arrived) / 1000, shared, (_clock() - arrived) / 1000)
        return prediction_text(pipeline.seq, stream, t, answer["prediction"], out, spec["name"], latency, pipeline.rss)

    def read_one(self, text, source=0):
        """parser.parse of a line on its own (answer_one's read): read by C (edge_parse_lines) straight
        into the window kernel's input buffers, the Sample's values and settings then None; a line C does
        not read, samples.py reads."""
        parser = self.pipeline.parser
        columns = parser.by_source.get(source, parser.default)
        if isinstance(columns, tuple) and "\n" not in text:  # C reads a line to its end: one line, or Python
            data = text.encode()
            ok, times, span = self._row0
            if self._parse(data, len(data), 1, self._layout_at(columns), *self._one_args) == 1 and ok[0]:
                stream = text[span[0] : span[1]] if columns[1] is not None else ONE_STREAM
                return Sample(stream, times[0] if columns[2] is not None else parser.arrival(), None, None)
        return parser.parse(text, source)

    def _windows(self, rows, parsed):
        """The window of each row's stream, in line order (as line by line: created, or evicted past
        max_streams, in that order), and (streams, evicted) just after each, for a stats record that
        falls at that line."""
        windows, then = [], []
        kept = self.pipeline.windows
        for k in rows:
            windows.append(kept.get(parsed[k][0]))
            then.append((len(kept.streams), kept.evicted))
        return windows, then

    def _read(self, lines):
        """Per line: (stream, time) with its values in that row of self.values and self.settings, a
        SampleError, or None (a header line). Runs of one source's lines go to C at once; a header
        line changes the columns of the lines after it, which are then read again."""
        parser = self.pipeline.parser
        parsed = [None] * len(lines)
        k = 0
        while k < len(lines):
            source = _source(lines[k][0])
            end = k
            while end < len(lines) and _source(lines[end][0]) == source:
                end += 1
            columns = parser.by_source.get(source, parser.default)
            ok = self._c_read(lines, k, end, columns) if isinstance(columns, tuple) else None
            k = self._take(lines, k, end, source, columns, ok, parsed)
        return parsed

    def _c_read(self, lines, start, end, columns):
        """edge_parse_lines on lines[start:end] into rows start..end-1; the ok flags."""
        text = "\n".join((e[1] or "") for e, _ in lines[start:end]).encode()
        self.ok[start:end] = 0  # a line C does not reach (an error event's empty text, last) is samples.py's
        rows = [base + start * stride for base, stride in (self._at[a] for a in _READ_INTO)]
        self._parse(text, len(text), end - start, self._layout_at(columns), *rows)
        return self.ok

    def _layout_at(self, columns):
        """The address of the columns (parser._columns) as the int32 array edge_parse_lines reads (the
        last one's, kept)."""
        if self._layout[0] is not columns:
            width, stream_i, time_i, features, settings = columns
            ints = [width, -1 if stream_i is None else stream_i, -1 if time_i is None else time_i, len(features),
                    *features, len(settings), *settings]  # fmt: skip
            layout = np.array(ints, dtype=np.int32)
            self._layout = columns, layout, layout.ctypes.data
        return self._layout[2]

    def _take(self, lines, start, end, source, columns, ok, parsed):
        """Fill parsed[start:end] (C's lines as they are, the others through samples.py); the index to
        go on from: `end`, or the line after a header line."""
        parser = self.pipeline.parser
        stream_i, time_i = (columns[1], columns[2]) if ok is not None else (None, None)
        times = self.times[start:end].tolist() if ok is not None and time_i is not None else None
        spans = self.stream[start:end].tolist() if ok is not None and stream_i is not None else None
        ok = ok[start:end].tolist() if ok is not None else [0] * (end - start)  # a list: numpy's [k] costs more
        for k in range(start, end):
            (number, text, error, *_), _ = lines[k]
            if error is not None:
                parsed[k] = error
            elif ok[k - start]:
                a, b = spans[k - start] if spans is not None else (0, 0)
                stream = text[a:b] if spans is not None else ONE_STREAM
                parsed[k] = (stream, times[k - start] if times is not None else parser.arrival())
            else:
                try:
                    sample = parser.parse(text, source)
                except SampleError as exc:
                    sample = parsed[k] = exc
                if sample is not None and not isinstance(sample, SampleError):
                    self.values[k] = sample.values
                    self.settings[k, : self.n_settings] = sample.settings
                    parsed[k] = (sample.stream, sample.time)
                if parser.by_source.get(source, parser.default) is not columns:  # a header line, good or not:
                    return k + 1  # the lines after it are read with what it says
        return end


_READ_INTO = ("ok", "values", "settings", "times", "stream")  # edge_parse_lines' outputs, in its order


def _source(event):
    return event[3] if len(event) > 3 else 0
