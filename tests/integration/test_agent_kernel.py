"""The agent's answers do not depend on how it computes them: a read's lines in blocks through the
bundle's library (parsed in C, windowed and predicted in one call), line by line with its compiled
window kernel, or line by line with the Python reference; records written in large batches (a file)
or small ones (a paced pipe): every record but its timings is the same, bad lines, header lines and
drift records included."""

import io
import json
import shutil
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from edge_agent.agent import serve, start
from edge_agent.blocks import Blocks
from edge_agent.manifest import write_manifest
from edge_agent.runtimes.trees import board_arch
from edge_agent.sources import LineSplitter
from edgectl.data import synthetic

pytestmark = pytest.mark.slow


def agent(bundle, *extra, input_path=None, chunks=None):
    argv = [sys.executable, "-m", "edge_agent", "run", "--bundle", str(bundle), "--stats-every", "500", *extra]
    if input_path is not None:
        out = subprocess.run([*argv, "--input", str(input_path)], capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr
        return [json.loads(line) for line in out.stdout.splitlines()]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    out = []
    reader = threading.Thread(target=lambda: out.extend(proc.stdout), daemon=True)  # a full pipe would block it
    reader.start()
    for chunk in chunks:  # a paced sender: the agent writes what it has whenever the pipe runs dry
        proc.stdin.write(chunk)
        proc.stdin.flush()
        time.sleep(0.01)
    proc.stdin.close()
    assert proc.wait(timeout=600) == 0
    reader.join(timeout=60)
    return [json.loads(line) for line in out]


def answers(records):
    """Every record without what varies run to run: timings, RSS, input counters, the stats' latencies, and
    the start record's way of serving (windows, blocks, windows_why)."""
    skip = {"latency_us", "rss_kb", "input", "latency_us_by_stage", "self_test"}
    serving = {"windows", "blocks", "windows_why"}
    return [
        {k: v for k, v in r.items() if k not in skip | (serving if r["type"] == "start" else set())} for r in records
    ]


@pytest.fixture(scope="module")
def stream_with_bad_lines(xgb_build, tmp_path_factory):
    """A synthetic fleet's interleaved stream (fields in the bundle's order) with bad lines every 37th."""
    fields = xgb_build.manifest["input"]["fields"]
    rows = synthetic.fleet_stream(100, seed=11, concurrent=40)
    n = len(fields)
    bad = ["", "1,2,3", "x" * 50, "nan," * (n - 1) + "nan", "1e999," * n, ",".join(["1_0"] * n), ";".join(["1 0"] * n),
           ",".join(["é"] * n)]  # fmt: skip
    order = list(fields)
    lines = [",".join(order)]
    for i, row in enumerate(rows[:8000]):
        text = dict(zip(fields, (repr(float(v)) if j > 1 else str(int(v)) for j, v in enumerate(row))))
        if i == 4000:  # a header line mid-stream: the columns reversed from here on
            order = order[::-1]
            lines.append(" , ".join(order))
        if i % 53 == 7:  # one the C reader leaves to samples.py, which reads it
            lines.append(json.dumps({k: float(v) for k, v in text.items()}))
        elif i % 41 == 3:  # spaces around the fields, and tabs between them
            lines.append("\t ".join(text[k] for k in order))
        else:
            lines.append(",".join(f" {text[k]} " if i % 29 == 1 else text[k] for k in order))
        if i % 61 == 9:  # the same sample again: not after its stream's last time
            lines.append(lines[-1])
        if i % 37 == 5:
            lines.append(bad[i % len(bad)])
    path = tmp_path_factory.mktemp("stream") / "stream.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_blocks_the_kernel_and_python_windows_give_the_same_records(xgb_build, stream_with_bad_lines):
    blocks = agent(xgb_build.bundle_dir, input_path=stream_with_bad_lines)
    kernel = agent(xgb_build.bundle_dir, "--line-by-line", input_path=stream_with_bad_lines)
    python = agent(xgb_build.bundle_dir, "--no-kernel", input_path=stream_with_bad_lines)
    assert [(r[0]["windows"], r[0]["blocks"]) for r in (blocks, kernel, python)] == [
        ("kernel", True), ("kernel", False), ("python", False)]  # fmt: skip
    kinds = {r["type"] for r in blocks}
    assert {"prediction", "error", "stats", "drift"} <= kinds
    assert sum(r["type"] == "prediction" for r in blocks) > 3000
    reasons = {r["reason"] for r in blocks if r["type"] == "error"}
    assert {"field-count", "not-a-number", "not-finite", "stale-time"} <= reasons, reasons
    assert answers(kernel) == answers(python)
    assert answers(blocks) == answers(kernel)
    # A block's latency split: its line's wait, then its shares of the block's parse and kernel time (the model
    # inside the kernel's call), all within its total.
    steps = [r["latency_us"] for r in blocks if r["type"] == "prediction"]
    assert all(s["inference"] == 0.0 and s["wait"] >= 0 for s in steps)
    assert all(s["wait"] + s["parse"] + s["features"] <= s["total"] + 1e-9 for s in steps)
    assert "windows_why" not in blocks[0] and "windows_why" not in kernel[0]
    assert python[0]["windows_why"] == "edge-agent run --no-kernel"


def test_a_bundle_whose_kernel_is_of_another_abi_is_served_by_the_reference_which_says_why(
    xgb_build, stream_with_bad_lines, tmp_path
):
    """A bundle built before this agent's kernel ABI: the Python reference serves it (the same records), and
    the start record says why and what to do about it, not only that the windows are "python"."""
    old = tmp_path / "old-bundle"
    shutil.copytree(xgb_build.bundle_dir, old)
    manifest = json.loads((old / "manifest.json").read_text())
    lib = old / manifest["stages"][0]["libs"][board_arch()]
    # A library whose edge_window_abi says 2 in front of the real one, where the linker finds every other symbol.
    src = tmp_path / "abi2.c"
    src.write_text("int edge_window_abi(void) { return 2; }\n")
    front = lib.with_name("abi2-" + lib.name)
    link = ["-Wl,--no-as-needed", f"-L{lib.parent}", f"-l:{lib.name}", "-Wl,-rpath,$ORIGIN"]  # needed though unused
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(front), str(src), *link], check=True)
    manifest["stages"][0]["libs"][board_arch()] = front.relative_to(old).as_posix()
    write_manifest(old, manifest)
    served = agent(old, input_path=stream_with_bad_lines)
    assert (served[0]["windows"], served[0]["blocks"]) == ("python", False)
    assert served[0]["windows_why"] == (
        "the bundle's window kernel is ABI 2, this agent reads ABI 3: rebuild the bundle with this edgectl"
    )
    python = agent(xgb_build.bundle_dir, "--no-kernel", input_path=stream_with_bad_lines)
    del served[0]["bundle_id"], python[0]["bundle_id"]  # a new manifest: a new id
    assert answers(served) == answers(python)


def test_small_batches_from_a_paced_pipe_give_the_same_records_as_a_file(xgb_build, stream_with_bad_lines):
    text = stream_with_bad_lines.read_text()
    lines = text.splitlines(keepends=True)
    chunks = ["".join(lines[i : i + 20]) for i in range(0, len(lines), 20)]  # 2,000 lines/s: well below capacity
    paced = agent(xgb_build.bundle_dir, chunks=chunks)
    whole = agent(xgb_build.bundle_dir, input_path=stream_with_bad_lines)
    assert answers(paced) == answers(whole)
    final = paced[-1]
    assert final["final"] and final["latency_us"]["p50"] is not None
    # a paced sender's lines wait for little but their own service: far less than a 64 KiB read of a file
    assert final["latency_us"]["p50"] < whole[-1]["latency_us"]["p50"]


def test_a_paced_sensors_lines_read_one_at_a_time_give_the_same_records(xgb_build, stream_with_bad_lines):
    """Reads of one line each (a paced sensor's): C reads each line straight into the window kernel's input
    buffers, and samples.py only the lines C leaves to it; the records are those of the reference, line by
    line with samples.py reading every line."""

    def served(with_blocks):
        pipeline, _ = start(xgb_build.bundle_dir)
        by_python, parse = [], pipeline.parser.parse
        pipeline.parser.parse = lambda text, source=0: by_python.append(text) or parse(text, source)
        splitter, out = LineSplitter(), io.StringIO()
        reads = (event for line in stream_with_bad_lines.read_bytes().splitlines(keepends=True)
                 for event in (*splitter.feed(line), None))  # fmt: skip
        serve(pipeline, reads, out, stats_every=500, blocks=Blocks(pipeline) if with_blocks else None)
        return [json.loads(line) for line in out.getvalue().splitlines()], by_python

    (paced, paced_by_python), (reference, reference_by_python) = served(True), served(False)
    assert answers(paced) == answers(reference)
    assert sum(r["type"] == "prediction" for r in paced) > 3000
    lines = [line.strip() for line in stream_with_bad_lines.read_text().splitlines() if line.strip()]
    assert len(reference_by_python) == len(lines)
    # C read nine lines in ten; samples.py the rest, the JSON lines among them
    assert {line for line in lines if line.startswith("{")} <= set(paced_by_python)
    assert len(paced_by_python) < len(lines) / 10


def test_latency_total_runs_from_the_read_and_covers_the_steps(xgb_build, stream_with_bad_lines):
    records = agent(xgb_build.bundle_dir, input_path=stream_with_bad_lines)
    steps = np.array([[r["latency_us"][k] for k in ("wait", "parse", "features", "inference", "total")]
                      for r in records if r["type"] == "prediction"])  # fmt: skip
    assert (steps >= 0).all()
    assert (steps[:, 4] >= steps[:, :4].sum(axis=1) - 1e-6).all()  # total: the steps and what lies between
    assert steps[:, 0].max() > 1000  # a file: lines wait behind the rest of their 64 KiB read
