"""What a rollout costs per board: `edgectl fleet deploy` over K real OpenSSH boards on loopback
(each its own home, as tests/integration/test_fleet.py makes them), with 1 and with F forks, in one
run; per-board deploy time p50/p90/p99 and the wall time, and what 1,000 boards would take in
batches of --serial 1,10%,100% at that rate.

    sudo python benchmarks/fleet_rollout.py [--boards 8] [--forks 4] [--json]

Needs root (sshd logs in as root) and a built bundle: it builds the synthetic XGBoost one first.
Every board's venv is copied from one made by a real deploy: this measures the rollout, not pip.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from boards import sshd  # noqa: E402

from edgectl.console import emit, table  # noqa: E402

COLUMNS = [("forks", "forks", "d"), ("boards", "boards", "d"), ("wall_s", "wall s", ".1f"),
           ("board_p50", "per board p50 s", ".2f"), ("board_p90", "p90", ".2f"), ("board_p99", "p99", ".2f"),
           ("fleet_1000_min", "1,000 boards (1,10%,100%) min", ".1f")]  # fmt: skip


def edgectl(*args, env=None):
    got = subprocess.run([sys.executable, "-m", "edgectl.cli", *args], capture_output=True, text=True,
                         env={**os.environ, **(env or {})})  # fmt: skip
    if got.returncode != 0:
        raise SystemExit(f"edgectl {' '.join(args[:2])} failed:\n{got.stderr[-2000:]}")
    return got


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--boards", type=int, default=8)
    ap.add_argument("--forks", type=int, default=4)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        config = work / "ssh_config"
        env = {"EDGECTL_SSH_CONFIG": str(config), "EDGECTL_FLEET_RUNS": str(work / "runs")}
        edgectl("synth", str(work / "data"), "--train-units", "20", "--test-units", "4")
        edgectl("build", "--data", str(work / "data"), "--out", str(work / "bundle"), "-q")
        boards = [sshd.start(f"rb{i}") for i in range(args.boards)]
        try:
            config.write_text("".join(b.config.read_text() for b in boards))
            seed = work / "seed"
            edgectl("deploy", str(work / "bundle"), f"ssh://rb0{seed}", "--offline", "-q", env=env)
            lines = ["[bench]"]
            for b in boards:
                (work / b.alias).mkdir()
                subprocess.run(["cp", "-a", str(seed / "venv"), str(work / b.alias / "venv")], check=True)
                lines.append(f"{b.alias} edgectl_home={work / b.alias}")
            inventory = work / "fleet.ini"
            inventory.write_text("\n".join(lines) + "\n")
            rows = []
            for forks in (1, args.forks):
                for b in boards:  # a fresh board each time: nothing deployed, so every one deploys
                    subprocess.run(["rm", "-rf", str(work / b.alias / "releases"), str(work / b.alias / "current")])
                started = time.monotonic()
                got = edgectl("fleet", "deploy", str(work / "bundle"), "-i", str(inventory), "--forks", str(forks),
                              "--offline", "--json", "-q", env=env)  # fmt: skip
                wall = time.monotonic() - started
                per = sorted(r["seconds"] for r in json.loads(got.stdout)["boards"])
                rows.append({"forks": forks, "boards": len(per), "wall_s": wall,
                             **{f"board_p{q}": per[min(len(per) - 1, int(len(per) * q / 100))] for q in (50, 90, 99)},
                             "fleet_1000_min": projection(1000, per[len(per) // 2], forks) / 60})  # fmt: skip
        finally:
            for b in boards:
                b.stop()
    emit({"rows": rows}, args.json, lambda r: table(r["rows"], COLUMNS))


def projection(n, per_board_s, forks):
    """Wall seconds for n boards in batches of 1, 10 % and the rest (Ansible's serial), `forks` at a time."""
    batches = [1, max(1, n // 10)]
    batches += [n - sum(batches)]
    return sum(math.ceil(size / forks) * per_board_s for size in batches)


if __name__ == "__main__":
    main()
