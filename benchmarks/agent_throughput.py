"""The agent end to end (input file -> records file) beside a plain C program doing the same work on the
same file with the same bundle library (the limit), in one run.

    python benchmarks/agent_throughput.py [--data ../shared/datasets/cmapss] [--no-int8] [--json]

Bundles, trained on C-MAPSS FD001 (synthetic data where it is missing): XGBoost at stride 1 and at
stride 10, and a Conv1D INT8 (TFLite) at stride 1 (--no-int8 leaves it out: its training takes minutes).
Each tree bundle runs three ways: blocks (a read's lines parsed in C, windowed and predicted in one call:
the default), lines (--line-by-line: the compiled window kernel, a line at a time) and python (--no-kernel:
the Python reference), each with its drift monitor and without (a copy of the bundle without the
manifest's drift section).

  samples/s    samples over the agent's serving time (from its start record, written once its imports,
               checksums and self-test are done, to its final stats record, both read as they come), the
               median of --repeat runs (default 5)
  per CPU-s    the same over its CPU time in that span (user + system, in clock ticks of 10 ms: about
               5 % of a run), what a busy machine disturbs least
  service p*   per window, the line's parse start -> its record ready (latency_us.total - wait); in a block,
               its share of the block's parse and kernel time and its own record's time
  vs C         the C program's samples/s over the agent's
Paced runs then send the file over TCP at --rate samples/s (below capacity, as a sensor would) and
report the agent's own end-to-end figure: each line complete in the input buffer -> its record
written (the stats record's latency_us), p50/p90/p99; and the C program's on the same sender (its read
returned -> the record written), the limit on this machine. The agent and the C program take turns,
--repeat rounds: each percentile's median over the rounds, and every round's p99 (a p99 wanders most).

--instructions adds what a noisy machine does not move: the instructions one more sample costs the agent
(blocks, drift on) and the C program, counted by valgrind (cachegrind) on the file and on the file
--times over (its streams renamed), the difference over the extra samples, so start-up cancels out; and
the same for a paced line (1,000 and then 3,000 lines sent at 100 lines/s, each read one line).
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from harness import AGENT_RUN, DEFAULT_DATA, HERE, load_data
from paced_runs import c_on_tcp, final_stats, free_port, median_run, paced, paced_c, send_paced

from edge_agent.kernel import plan_arrays
from edge_agent.manifest import load_bundle, write_manifest
from edge_agent.pipeline import plan_of
from edge_agent.preprocess import Preprocessor
from edge_agent.runtimes.trees import board_arch
from edge_agent.telemetry import percentiles
from edgectl.console import emit, table
from edgectl.recipes import cmapss as recipe

COLUMNS = [("bundle", "bundle", ""), ("windows", "windows", "d"), ("drift", "drift", ""),
           ("samples_per_s", "samples/s", ",d"), ("samples_per_cpu_s", "per CPU-s", ",d"),
           ("p50", "service p50 µs", ".1f"), ("p90", "p90", ".1f"),
           ("p99", "p99", ".1f"), ("x_c", "C / agent", ".1f")]  # fmt: skip
INSTRUCTION_COLUMNS = [("bundle", "bundle", ""), ("agent", "agent (drift on) instr./sample", ",d"),
                       ("c_program", "C program instr./sample", ",d"), ("ratio", "agent / C", ".2f")]  # fmt: skip
PACED_COLUMNS = [("bundle", "bundle", ""), ("rate", "sent/s", ",.0f"), ("samples", "samples", "d"),
                 ("p50", "line->written p50 µs", ".1f"), ("p90", "p90", ".1f"), ("p99", "p99", ".1f"),
                 ("p99_range", "p99 of each run", "")]  # fmt: skip
PACED_LINES_S, PACED_SHORT = 100.0, 1000  # --instructions' paced run: slow enough for valgrind to take each alone
# (label, the start record's windows and blocks, the agent's flags) of the ways a tree bundle is served
MODES = [("blocks", "kernel", True, ()), ("lines", "kernel", False, ("--line-by-line",)),
         ("python", "python", False, ("--no-kernel",))]  # fmt: skip


def without_drift(bundle_dir, out):
    """A copy of the bundle whose manifest has no drift section (a new bundle id, as the manifest says)."""
    shutil.copytree(bundle_dir, out)
    manifest = json.loads((Path(out) / "manifest.json").read_text())
    manifest.pop("drift", None)
    write_manifest(out, manifest)
    return out


def _timed(argv, sink):
    """(serving wall seconds, serving CPU seconds) of one agent run, its records copied into sink (a binary
    file) as they come. Serving runs from the start record (imports, checksums and the self-test done) to
    the final stats record: a start-up of 0.2 s subtracted from a run about as long made the figures swing
    by 2x. CPU: the process's user + system time between the two (clock ticks)."""
    with subprocess.Popen(argv, stdout=subprocess.PIPE) as proc:
        start = end = None
        for line in proc.stdout:
            if start is None:
                start = time.perf_counter(), _cpu_s(proc.pid)
            if b'"final":true' in line:
                end = time.perf_counter(), _cpu_s(proc.pid)
            sink.write(line)
        if proc.wait() != 0 or end is None:
            raise SystemExit(f"the agent failed: {' '.join(argv)}")
    return end[0] - start[0], end[1] - start[1]


def _cpu_s(pid):
    """A live process's user + system CPU seconds, from /proc (fields 14 and 15 of its stat line)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def agent_file_runs(configs, data, work, repeat=5, limit=None):
    """Each config {"bundle", "extra"} from the file to a records file, `repeat` rounds with the configs taken in
    turn, the C program first in each round (this machine's speed wanders: side by side, each round, is what
    compares): per config (median serving wall seconds, median serving CPU seconds, its records), and the C
    program's median samples/s (None without one)."""
    argvs = [[*AGENT_RUN, *c["extra"], "--bundle", str(c["bundle"]), "--input", str(data)] for c in configs]
    outs = [Path(work) / f"records-{i}.jsonl" for i in range(len(configs))]
    runs, rates = [[] for _ in configs], []
    for _ in range(repeat):
        if limit:
            rates.append(limit())
        for i, argv in enumerate(argvs):
            with open(outs[i], "wb") as sink:
                runs[i].append(_timed(argv, sink))
    got = []
    for i in range(len(configs)):
        wall, cpu = np.median([w for w, _ in runs[i]]), np.median([c for _, c in runs[i]])
        records = [json.loads(line) for line in outs[i].read_text().splitlines()]
        got.append((max(wall, 1e-9), max(cpu, 1e-9), records))
    return got, float(np.median(rates)) if rates else None


def c_program(bundle_dir, data, work):
    """The C program on the same file as a function of no arguments that runs it once and returns its
    samples/s (its per-window latencies in microseconds, float64, in c-records.jsonl.lat), or None for a
    bundle without a tree library."""
    manifest = load_bundle(bundle_dir)
    libs = manifest["stages"][0].get("libs")
    if not libs:
        return None
    exe = Path(work) / "agent_limit"
    if not exe.exists():
        subprocess.run(["gcc", "-O2", "-o", str(exe), str(HERE / "c" / "agent_limit.c"), "-ldl"], check=True)
    ints, reals = plan_arrays(plan_of(manifest), Preprocessor(manifest["preprocessing"], manifest["input"]["features"]))
    ints.tofile(Path(work) / "plan.i64")
    reals.tofile(Path(work) / "plan.f64")
    fields = manifest["input"]["fields"]
    settings = (manifest["preprocessing"].get("conditions") or {}).get("fields", [])
    argv = [str(exe), str(Path(bundle_dir) / libs[board_arch()]), str(Path(work) / "plan.i64"),
            str(Path(work) / "plan.f64"), str(data), str(Path(work) / "c-records.jsonl"),
            str(fields.index(manifest["input"]["stream_field"])), str(fields.index(manifest["input"]["time_field"])),
            str(len(fields)), *[str(fields.index(f)) for f in manifest["input"]["features"]], "--",
            *[str(fields.index(f)) for f in settings]]  # fmt: skip

    def run():
        got = json.loads(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)
        run.windows = got["windows"]
        return got["samples"] / got["seconds"]

    run.argv = argv
    return run


def instructions(argv, paced=None):
    """Instructions a command runs (valgrind cachegrind; its output thrown away). paced: (port, file, served):
    the command listens on 127.0.0.1:port once it writes to stdout; the file's lines go there at PACED_LINES_S
    lines/s, one a read, and then the command is stopped (SIGTERM) if it has not ended; served(its stdout)
    gives (samples it served, reads it made or None), which must show nearly every line served alone."""
    if not shutil.which("valgrind"):
        raise SystemExit("--instructions needs valgrind (apt install valgrind)")
    # One BLAS thread: numpy's idle worker spins under valgrind (it does not while the agent serves: 0 CPU
    # ticks in a paced run), and its count would wander with the run's length.
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    argv = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null", *argv]
    with tempfile.TemporaryFile() as out, subprocess.Popen(argv, stdout=out, stderr=subprocess.PIPE, env=env) as proc:
        if paced:
            while out.tell() == 0 and proc.poll() is None:  # ready: the start record, or "listening"
                time.sleep(0.05)
            sent = send_paced(paced[0], paced[1], PACED_LINES_S)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.terminate()
        got = proc.communicate()[1].decode()
        out.seek(0)
        written = out.read().decode()
    if proc.returncode != 0:
        raise SystemExit(f"under valgrind, {' '.join(argv[4:])} failed:\n{got[-2000:]}")
    if paced:
        samples, reads = paced[2](written)
        # reads: one more than those with data (the end's); a valgrind hiccup may put two lines in one read (1 %
        # of them in a run on a busy machine: they save a serve loop's pass, well within the count's 1 % spread)
        if samples != sent or (reads is not None and reads - 1 < 0.98 * sent):
            raise SystemExit(f"under valgrind, {' '.join(argv[4:])} served {samples} of {sent} lines in {reads} "
                             f"reads, not a line a read: lower PACED_LINES_S")  # fmt: skip
    found = re.search(r"I\s+refs:\s+([\d,]+)", got)  # "I   refs:" before valgrind 3.21, "I refs:" since
    if not found:
        raise SystemExit(f"valgrind printed no instruction count for {' '.join(argv)}:\n{got[-2000:]}")
    return int(found.group(1).replace(",", ""))


def repeated(data, times, stream_index, out):
    """The file `times` over, the k-th copy's streams renamed (numbers: C-MAPSS units, as the C program keys
    them) so no line of a copy is stale; returns (path, samples added)."""
    lines = [ln.split() for ln in Path(data).read_text().splitlines() if ln.strip()]
    copies = [[*f[:stream_index], str(int(f[stream_index]) + 100_000 * k), *f[stream_index + 1 :]] for k in range(times)
              for f in lines]  # fmt: skip
    Path(out).write_text("\n".join(" ".join(f) for f in copies) + "\n")
    return out, len(lines) * (times - 1)


def instructions_rows(name, bundle_dir, data, work, times):
    """Instructions a sample, the agent's blocks (drift on) beside the C program, and their ratio."""
    spec = load_bundle(bundle_dir)["input"]
    stream_index = spec["fields"].index(spec["stream_field"])
    big, extra = repeated(data, times, stream_index, Path(work) / f"{name.replace(' ', '-')}-x{times}.txt")
    # No silence check: valgrind's slower clock would flag the first copy's streams in the long run alone.
    agent = [*AGENT_RUN, "--silent-after", "0", "--bundle", str(bundle_dir), "--input"]
    per_agent = (instructions([*agent, str(big)]) - instructions([*agent, str(data)])) / extra
    c_small, c_big = c_program(bundle_dir, data, work), c_program(bundle_dir, big, work)
    per_c = (instructions(c_big.argv) - instructions(c_small.argv)) / extra
    return {"bundle": f"{name} (blocks)", "agent": round(per_agent), "c_program": round(per_c),
            "ratio": round(per_agent / per_c, 2)}  # fmt: skip


def paced_instructions_row(name, bundle_dir, data, work):
    """Instructions a paced line (each read one line) costs the agent and the C program: the file's first
    PACED_SHORT lines, then three times as many (at most the whole file), the difference over the extra lines."""
    lines = [line for line in Path(data).read_text().splitlines(keepends=True) if line.strip()]
    short = min(PACED_SHORT, len(lines) // 3)
    files = []
    for n in (short, 3 * short):
        files.append(Path(work) / f"paced-{n}.txt")
        files[-1].write_text("".join(lines[:n]))
    limit = c_program(bundle_dir, data, work)

    def per_line(argv_at, served):
        counts = []
        for path in files:
            port = free_port()
            counts.append(instructions(argv_at(port), paced=(port, path, served)))
        return (counts[1] - counts[0]) / (2 * short)

    def agent_served(text):
        final = final_stats(text)
        return final["samples"], final["input"]["reads"]

    agent = per_line(lambda port: [*AGENT_RUN, "--silent-after", "0", "--bundle", str(bundle_dir), "--input",
                                   f"tcp:127.0.0.1:{port}"], agent_served)  # fmt: skip
    c = per_line(lambda port: c_on_tcp(limit, port), lambda text: (json.loads(text.splitlines()[-1])["samples"], None))
    return {
        "bundle": f"{name} (paced: a line a read)",
        "agent": round(agent),
        "c_program": round(c),
        "ratio": round(agent / c, 2),
    }


def row(name, drift, seconds, cpu, records, n_samples):
    preds = [r for r in records if r["type"] == "prediction"]
    service = np.array([r["latency_us"]["total"] - r["latency_us"].get("wait", 0.0) for r in preds])
    return {"bundle": name, "windows": len(preds), "drift": drift, "samples_per_s": round(n_samples / seconds),
            "samples_per_cpu_s": round(n_samples / cpu), **percentiles(service)}  # fmt: skip


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--no-int8", action="store_true", help="leave out the Conv1D INT8 bundle")
    parser.add_argument("--rate", type=float, default=2000.0, help="samples/s of the paced TCP run")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each configuration (the median is shown)")
    parser.add_argument("--instructions", action="store_true", help="also count instructions a sample (valgrind)")
    parser.add_argument("--times", type=int, default=3, help="copies of the file in the --instructions run")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not 2 <= args.times <= 10:  # past 10 copies the renamed units pass what the C program keys (2^20 streams)
        parser.error("--times: from 2 to 10")
    say = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    work = Path(tempfile.mkdtemp(prefix="agent-throughput-"))
    try:
        _, train, test = load_data(args.data, work)
        data, n_samples = test.path, len([ln for ln in test.path.read_text().splitlines() if ln.strip()])
        bundles = {}
        for stride in (1, 10):
            say(f"building XGBoost, stride {stride} ...")
            bundles[f"xgboost s{stride}"] = recipe.build_bundle(train, "xgboost", work / f"xgb-s{stride}",
                                                                stride=stride).bundle_dir  # fmt: skip
        if not args.no_int8:
            say("building Conv1D INT8, stride 1 (minutes) ...")
            bundles["conv1d-int8 s1"] = recipe.build_bundle(train, "conv1d", work / "conv1d").bundle_dir
        rows, with_c = [], []  # with_c: the bundles with a tree library, which the C program runs
        for name, bundle in bundles.items():
            plain = without_drift(bundle, work / f"{Path(bundle).name}-nodrift")
            limit = c_program(bundle, data, work)
            with_c += [name] if limit else []
            modes = MODES if limit else [("python", "python", False, ())]  # no tree library: Python only
            configs = [{"label": label, "windows": windows, "blocks": blocks, "extra": extra, "drift": drift,
                        "bundle": b} for label, windows, blocks, extra in modes
                       for drift, b in (("on", bundle), ("off", plain))]  # fmt: skip
            and_c = " and the C program" if limit else ""
            say(f"{name}: {len(configs)} configurations{and_c}, {args.repeat} rounds ...")
            results, c_rate = agent_file_runs(configs, data, work, args.repeat, limit)
            for config, (seconds, cpu, records) in zip(configs, results):
                if (records[0].get("windows"), records[0].get("blocks")) != (config["windows"], config["blocks"]):
                    raise SystemExit(f"{name}: the agent ran with windows {records[0].get('windows')}, "
                                     f"blocks {records[0].get('blocks')}, not as {config['label']}")  # fmt: skip
                got = row(f"{name} ({config['label']})", config["drift"], seconds, cpu, records, n_samples)
                got["x_c"] = round(c_rate / got["samples_per_s"], 1) if limit else None
                rows.append(got)
            if limit:
                lat = np.fromfile(work / "c-records.jsonl.lat", dtype=np.float64) / 1000
                rows.append({"bundle": f"{name} (C program)", "windows": limit.windows, "drift": "off",
                             "samples_per_s": round(c_rate), "samples_per_cpu_s": None, **percentiles(lat),
                             "x_c": 1.0})  # fmt: skip
        say(f"paced TCP runs at {args.rate:g} samples/s, {args.repeat} rounds ...")
        limit = c_program(bundles["xgboost s1"], data, work)
        rounds = [(paced(bundles["xgboost s1"], data, args.rate, work), paced_c(limit, data, args.rate, work))
                  for _ in range(args.repeat)]  # fmt: skip
        paced_rows = [median_run(runs) for runs in zip(*rounds)]
        note = "one core of this machine; in each round the C program, then each configuration of the agent"
        result = {"samples": n_samples, "data": str(data), "rows": rows, "paced": paced_rows, "note": note}
        tables = [("rows", COLUMNS), ("paced", PACED_COLUMNS)]
        if args.instructions:
            say(f"instructions a sample under valgrind, the file and the file {args.times} times over (minutes) ...")
            result["instructions"] = [instructions_rows(name, bundles[name], data, work, args.times) for name in with_c]
            result["instructions"].append(paced_instructions_row("xgboost s1", bundles["xgboost s1"], data, work))
            tables.append(("instructions", INSTRUCTION_COLUMNS))
        emit(result, args.json, lambda r: "\n\n".join(table(r[key], columns) for key, columns in tables))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
