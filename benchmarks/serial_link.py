"""Records per second over a serial link (a socat pty pair), and what the framing costs per record.

Runs the real agent on one end and the host's HostLink on the other, feeds the
synthetic test split (repeated), and reports throughput end to end plus the
bytes on the wire per record: JSON body, frame overhead (kind, seq, CRC-32, COBS,
delimiter), and what a 115200-baud 8N1 UART would carry of them.

    python benchmarks/serial_link.py [--copies 20] [--json]
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edge_agent.framing import encode
from edgectl.console import table
from edgectl.data import cmapss, synthetic
from edgectl.recipes import cmapss as recipe
from edgectl.serial_host import HostLink

UART_BYTES_PER_S = 115200 / 10  # 8N1: 10 bits a byte


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=20, help="repeat the test split this many times")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="edgectl-serial-bench-"))
    data = synthetic.write_subset(work / "data", n_train=30, n_test=12, seed=3)
    train, test = cmapss.load(data)
    print("building an XGBoost bundle ...", file=sys.stderr)
    bundle = recipe.build_bundle(train, "xgboost", work / "bundle").bundle_dir
    rows = [line.split() for line in test.path.read_text().splitlines() if line.strip()]
    top = max(int(r[0]) for r in rows)
    lines = [" ".join([str(int(r[0]) + k * top), *r[1:]]).encode() for k in range(args.copies) for r in rows]

    socat = subprocess.Popen(["socat", f"pty,raw,echo=0,link={work}/A", f"pty,raw,echo=0,link={work}/B"])
    time.sleep(0.5)
    argv = [sys.executable, "-m", "edge_agent", "run", "--bundle", str(bundle), "--stats-every", "100000"]
    argv += ["--input", f"serial:{work}/A@115200", "--output", f"serial:{work}/A", "--journal", str(work / "j")]
    agent = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        host = HostLink(str(work / "B"), state_path=work / "host.json")
        host.feed(lines)
        t0 = time.perf_counter()
        records = []
        while not host.done():
            records += host.poll()
        elapsed = time.perf_counter() - t0
    finally:
        agent.kill()
        socat.kill()
    preds = [r for r in records if r["type"] == "prediction"]
    bodies = [len(json.dumps(r, separators=(",", ":")).encode()) for r in preds]
    frames = [len(encode("R", 10**6 + i, b"x" * n)) for i, n in enumerate(bodies)]
    sample_frames = [len(encode("S", 10**6 + i, line)) for i, line in enumerate(lines)]
    body, frame = statistics.mean(bodies), statistics.mean(frames)
    result = {
        "samples": len(lines),
        "records": len(records),
        "seconds": round(elapsed, 2),
        "records_per_s": round(len(records) / elapsed),
        "samples_per_s": round(len(lines) / elapsed),
        "record_json_bytes": round(body, 1),
        "record_frame_bytes": round(frame, 1),
        "overhead_bytes": round(frame - body, 1),
        "overhead_pct": round(100 * (frame - body) / body, 1),
        "sample_frame_bytes": round(statistics.mean(sample_frames), 1),
        "uart_115200_records_per_s": round(UART_BYTES_PER_S / frame, 1),
        "uart_115200_samples_per_s": round(UART_BYTES_PER_S / statistics.mean(sample_frames), 1),
        "link": host.stats(),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    rows = [{"measure": k, "value": v} for k, v in result.items() if k != "link"]
    print(table(rows, [("measure", "measure", ""), ("value", "value", "")]))
    print("(a pty ignores the baud rate: the first rows are the software's limit, the uart rows the wire's)")


if __name__ == "__main__":
    main()
