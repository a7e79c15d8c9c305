"""A sensor's pace over TCP: a sender at a fixed rate, and the agent and the C program (agent_limit.c) each
serving it, with their own end-to-end figure, line complete -> its record written. For
agent_throughput.py's paced runs and its --instructions' paced count."""

import json
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
from harness import AGENT_RUN

from edge_agent.telemetry import percentiles


def paced(bundle_dir, data, rate, work):
    """Send the file's lines over TCP at `rate` samples/s; the agent's final stats latency_us (line complete
    in its input buffer -> record written)."""
    port, records = free_port(), Path(work) / "paced.jsonl"
    with open(records, "w") as sink:  # a file: a pipe nobody reads while sending would stop the agent
        proc = subprocess.Popen([*AGENT_RUN, "--bundle", str(bundle_dir), "--input", f"tcp:127.0.0.1:{port}"],
                                stdout=sink, stderr=subprocess.DEVNULL)  # fmt: skip
    while records.stat().st_size == 0:  # the start record: listening
        time.sleep(0.01)
    sent = send_paced(port, data, rate)
    time.sleep(0.5)
    proc.terminate()
    proc.wait(timeout=60)
    final = final_stats(records.read_text())
    if final["samples"] != sent:
        raise SystemExit(f"paced run: the agent served {final['samples']} of {sent} samples")
    return {"bundle": f"{Path(bundle_dir).name} (agent)", "rate": rate, "samples": sent, **final["latency_us"]}


def paced_c(limit, data, rate, work):
    """The C program (limit: agent_throughput.c_program's) on the same paced TCP sender: per window, read returned
    -> record written."""
    port = free_port()
    argv = c_on_tcp(limit, port)
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as proc:
        if proc.stdout.readline().strip() != "listening":
            raise SystemExit(f"paced run: the C program did not listen: {' '.join(argv)}")
        sent = send_paced(port, data, rate)
        out = proc.stdout.read()
    if proc.returncode != 0:
        raise SystemExit(f"paced run: the C program failed ({proc.returncode}): {' '.join(argv)}")
    got = json.loads(out)
    if got["samples"] != sent:
        raise SystemExit(f"paced run: the C program served {got['samples']} of {sent} samples")
    lat = np.fromfile(Path(argv[5] + ".lat"), dtype=np.float64) / 1000
    return {"bundle": f"{Path(limit.argv[1]).parent.parent.name} (C program)", "rate": rate,
            "samples": got["samples"], **percentiles(lat)}  # fmt: skip


def median_run(runs):
    """One paced row of several runs: each percentile's median over them, and every run's p99."""
    row = dict(runs[0])
    for q in ("p50", "p90", "p99"):
        row[q] = round(float(np.median([r[q] for r in runs])), 1)
    row["p99_range"] = " ".join(f"{r['p99']:.1f}" for r in runs)
    return row


def final_stats(text):
    """The agent's final stats record among its records (text)."""
    return [json.loads(line) for line in text.splitlines() if '"final":true' in line][-1]


def c_on_tcp(limit, port):
    """c_program's command, serving a TCP sender on 127.0.0.1:port instead of its file."""
    return [*limit.argv[:4], f"tcp:{port}", *limit.argv[5:]]


def send_paced(port, data, rate):
    """Send the file's lines to 127.0.0.1:port at `rate` lines/s, as a sensor does; the samples sent."""
    lines = Path(data).read_bytes().splitlines(keepends=True)
    with socket.create_connection(("127.0.0.1", port)) as conn:
        t0 = time.perf_counter()
        for i, line in enumerate(lines):
            while time.perf_counter() < t0 + i / rate:
                pass  # busy-wait: sleep() is too coarse at these rates
            conn.sendall(line)
    return sum(1 for line in lines if line.strip())


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
