"""What a fleet's telemetry costs the broker and `edgectl fleet watch`: N simulated agents publish real
stats records (QoS 1, the agent's topics) to a local mosquitto at a fixed interval each, while
`edgectl fleet watch --json` shows the fleet; side by side for several N in one run.

    python benchmarks/fleet_telemetry.py [--boards 10,100,1000] [--interval 5] [--duration 30] [--json]

Per N: messages/s published and shown, the broker's and the watcher's CPU (% of one core over the
run), and the delay from publish to the watcher's line for that message (p50/p90/p99 ms). The
agents are paho clients in a few processes (threads), one connection each, as boards would be.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from multiprocessing import Barrier, Process
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from boards.mosquitto import Broker  # noqa: E402 (the broker the tests start, the same way)

from edgectl.console import emit, table  # noqa: E402

PROCESSES = 4
COLUMNS = [
    ("boards", "boards", "d"), ("published", "published", "d"), ("shown", "shown", "d"),
    ("msgs_per_s", "msgs/s", ".1f"), ("broker_cpu", "broker CPU %", ".1f"), ("watch_cpu", "watch CPU %", ".1f"),
    ("delay_p50", "delay p50 ms", ".1f"), ("delay_p90", "p90", ".1f"), ("delay_p99", "p99", ".1f"),
]  # fmt: skip
STATS = {"type": "stats", "v": 1, "samples": 0, "windows": 0, "errors": 0, "errors_by_reason": {},
         "windows_by_stage": {"xgboost": 0}, "latency_us": {"p50": 72.3, "p90": 94.8, "p99": 222.4},
         "rss_kb": 41492, "streams": 30, "drift": {"drifting": [], "alarms": 0}}  # fmt: skip


def agents(port, names, interval, duration, out_path, ready, finished):
    """One process's share of the fleet: a paho client per board, each publishing a stats record every
    `interval` seconds (first at a random offset) once every process is connected (`ready`, a barrier);
    (board, windows, publish time) written to out_path."""
    import random

    import paho.mqtt.client as mqtt

    clients = {}
    for name in names:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"sim-{name}")
        client.connect("127.0.0.1", port, keepalive=60)
        client.loop_start()
        clients[name] = client
    ready.wait()
    due = {name: time.monotonic() + random.uniform(0, interval) for name in names}
    end, sent = time.monotonic() + duration, []
    count = dict.fromkeys(names, 0)
    while time.monotonic() < end:
        now = time.monotonic()
        for name in names:
            if now >= due[name]:
                count[name] += 1
                body = dict(STATS, windows=count[name] * 1000, samples=count[name] * 1000)
                sent.append((name, body["windows"], time.time()))
                clients[name].publish(f"edgectl/v1/bench/{name}/stats", json.dumps(body), qos=1)
                due[name] += interval
        time.sleep(0.005)
    finished.wait()  # every process done publishing: disconnecting is not measured
    for client in clients.values():
        client.loop_stop()
        client.disconnect()
    Path(out_path).write_text(json.dumps(sent))


def cpu_ticks(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def run(n, interval, duration, work):
    broker = Broker()
    tick = os.sysconf("SC_CLK_TCK")
    watch = subprocess.Popen([sys.executable, "-m", "edgectl.cli", "fleet", "watch", "--mqtt", broker.url,
                              "--mqtt-fleet", "bench", "--duration", str(duration + 10 + n / 10), "--json"],
                             stdout=subprocess.PIPE, text=True)  # fmt: skip
    shown = {}

    def read():
        for line in watch.stdout:
            row = json.loads(line)
            if row.get("windows") is not None:
                shown.setdefault((row["board"], row["windows"]), time.time())

    reader = threading.Thread(target=read, daemon=True)
    time.sleep(2)  # the watcher subscribed
    reader.start()
    names = [f"b{i:04d}" for i in range(n)]
    shares = [names[i::PROCESSES] for i in range(PROCESSES)]
    outs = [Path(work) / f"sent-{n}-{i}.json" for i in range(PROCESSES)]
    ready, finished = Barrier(PROCESSES + 1), Barrier(PROCESSES + 1)
    procs = [Process(target=agents, args=(broker.port, share, interval, duration, out, ready, finished))
             for share, out in zip(shares, outs)]  # fmt: skip
    for p in procs:
        p.start()
    ready.wait()  # every board connected: from here on, only publishing is measured
    broker_before, watch_before, started = cpu_ticks(broker.process.pid), cpu_ticks(watch.pid), time.monotonic()
    finished.wait()
    time.sleep(1)  # the last messages through the broker and the watcher
    elapsed = time.monotonic() - started
    watch_cpu = (cpu_ticks(watch.pid) - watch_before) / tick / elapsed * 100
    broker_cpu = (cpu_ticks(broker.process.pid) - broker_before) / tick / elapsed * 100
    for p in procs:
        p.join()
    watch.wait()
    reader.join(timeout=5)
    broker.remove()
    sent = [tuple(x) for out in outs for x in json.loads(out.read_text())]
    delays = sorted((shown[(b, w)] - t) * 1000 for b, w, t in sent if (b, w) in shown)
    return {
        "boards": n, "published": len(sent), "shown": len(delays), "msgs_per_s": len(sent) / elapsed,
        "broker_cpu": broker_cpu, "watch_cpu": watch_cpu,
        **{f"delay_p{q}": _pct(delays, q) for q in (50, 90, 99)},
    }  # fmt: skip


def _pct(values, q):
    return values[min(len(values) - 1, int(len(values) * q / 100))] if values else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--boards", default="10,100,1000", help="fleet sizes, comma-separated")
    ap.add_argument("--interval", type=float, default=5.0, help="seconds between one board's stats records")
    ap.add_argument("--duration", type=float, default=30.0, help="seconds each fleet size publishes")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as work:
        rows = [run(int(n), args.interval, args.duration, work) for n in args.boards.split(",")]
    emit({"interval_s": args.interval, "duration_s": args.duration, "rows": rows}, args.json,
         lambda r: table(r["rows"], COLUMNS))  # fmt: skip


if __name__ == "__main__":
    main()
