"""Sensor stream faults on the real agent (a subprocess): stale or repeated timestamps are error
records that leave the window as it was; a stream that goes silent is flagged once, and when it resumes."""

import json
import subprocess
import sys
import time

from test_bundle_and_agent import records


def unit_lines(test, unit):
    lines = test.path.read_bytes().splitlines(keepends=True)
    return [line for line, u in zip(lines, test.units) if u == unit]


def test_stale_and_repeated_times_are_error_records_and_touch_no_window(xgb_build, synthetic_splits, agent):
    _, test = synthetic_splits
    one, two = unit_lines(test, 1), unit_lines(test, 2)
    changed = b" ".join(one[34].split()[:-1] + [b"999.5\n"])  # time 35 again, other values
    clean = one[:35] + [two[0]] + one[35:60]
    dirty = one[:35] + [one[34], one[9], changed, two[0]] + one[35:60]  # stream 2 at time 1 is in order
    runs = [agent("run", "--bundle", str(xgb_build.bundle_dir), stdin=b"".join(lines)) for lines in (clean, dirty)]
    assert all(run.returncode == 0 for run in runs), runs[1].stderr
    errors = [r for r in records(runs[1]) if r["type"] == "error"]
    assert [(e["line"], e["reason"]) for e in errors] == [(36, "stale-time"), (37, "stale-time"), (38, "stale-time")]
    assert "time 10 is not after its previous sample's (35)" in errors[1]["message"]

    def scores(run):
        return [(r["stream"], r["t"], r["score"]) for r in records(run) if r["type"] == "prediction"]

    assert len(scores(runs[0])) == 60 - 29 and scores(runs[1]) == scores(runs[0])  # the windows never saw them
    final = records(runs[1])[-1]
    assert final["errors_by_reason"] == {"stale-time": 3} and final["samples"] == len(dirty)


SILENT_AFTER = 1.5  # seconds; the agent's idle tick is half of it. Wide margins: a loaded CI machine stalls


def test_a_silent_stream_is_flagged_once_per_silence_while_others_go_on(xgb_build, synthetic_splits):
    _, test = synthetic_splits
    one, two = unit_lines(test, 1), unit_lines(test, 2)
    argv = [sys.executable, "-m", "edge_agent", "run", "--bundle", str(xgb_build.bundle_dir)]
    proc = subprocess.Popen([*argv, "--silent-after", str(SILENT_AFTER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert json.loads(proc.stdout.readline())["type"] == "start"  # serving: the clock runs from here

        def send(lines, every=0.0):
            for line in lines:
                proc.stdin.write(line)
                proc.stdin.flush()
                time.sleep(every)

        send(one[:30] + two[:30])
        send(two[30:56], every=0.1)  # 2.6 s of stream 2 alone: stream 1 falls silent meanwhile
        send(one[30:31])  # stream 1 resumes
        time.sleep(2 * SILENT_AFTER)  # nothing at all: only idle ticks
        proc.stdin.close()
        out = proc.stdout.read()
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
    recs = [json.loads(line) for line in out.splitlines()]
    stream_recs = [(r["event"], r["stream"]) for r in recs if r["type"] == "stream"]
    assert stream_recs == [("silent", "1"), ("resumed", "1"), ("silent", "2"), ("silent", "1")]
    first = next(i for i, r in enumerate(recs) if r["type"] == "stream")
    assert recs[first - 1]["stream"] == recs[first + 1]["stream"] == "2"  # flagged amid stream 2's windows
    assert recs[first + 1]["type"] == "prediction"
    silent, resumed, _ = (r for r in recs if r["type"] == "stream" and r["stream"] == "1")
    assert SILENT_AFTER <= silent["silent_s"] < resumed["silent_s"]
    assert recs[-1]["final"] is True and recs[-1]["streams_silent"] == 2
