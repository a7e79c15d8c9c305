"""The record of each fleet run: what went where. One JSON file per run (fleet-<UTC time>.json) in
the runs folder, read back by `edgectl fleet history`."""

import json
import os
import time
from pathlib import Path

RUN_FORMAT = "edgectl-fleet-run"
RUN_VERSION = 1


def runs_dir():
    """$EDGECTL_FLEET_RUNS, else $XDG_STATE_HOME/edgectl/fleet (~/.local/state/edgectl/fleet)."""
    if os.environ.get("EDGECTL_FLEET_RUNS"):
        return Path(os.environ["EDGECTL_FLEET_RUNS"])
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return state / "edgectl" / "fleet"


def save(run, folder=None):
    """Write a run record (atomically) and return its path."""
    folder = Path(folder or runs_dir())
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(run["started"]))
    path = folder / f"fleet-{stamp}-{os.getpid()}.json"
    record = {"format": RUN_FORMAT, "version": RUN_VERSION, **run}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def history(folder=None, last=None):
    """The run records, oldest first (the last `last` of them); files that are not run records are passed over."""
    folder = Path(folder or runs_dir())
    records = []
    for path in sorted(folder.glob("fleet-*.json")) if folder.is_dir() else []:
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and record.get("format") == RUN_FORMAT:
            records.append({**record, "file": str(path)})
    return records[-last:] if last else records
