"""`edgectl run`: stream a sample file through the agent deployed on a target, collect its records."""

import json
import threading
from pathlib import Path

from edgectl.deploy import current_release
from edgectl.errors import EdgectlError


def stream_file(target, input_path, out=None, on_record=None):
    """Feed input_path to the target's current release; return the agent's records (dicts).

    Every record is also written to `out` (a text file) as it arrives, so nothing
    is lost if the host stops early. `on_record(rec)` sees each one (progress).
    """
    if current_release(target) is None:
        raise EdgectlError(f"{target}: no release deployed; run `edgectl deploy BUNDLE {target}` first")
    argv = [*target.agent_argv(), "run", "--bundle", f"{target.home}/current", "--input", "-"]
    argv += ["--state-dir", f"{target.home}/state"]  # the last stats, for `edgectl status`
    if not Path(input_path).is_file():
        raise EdgectlError(f"cannot read input {input_path}: no such file")
    records = []
    with open(input_path, "rb") as source:
        proc = target.popen(argv, stdin=source)
        errors = []
        # Drain stderr beside stdout so a chatty agent cannot block on a full pipe.
        drain = threading.Thread(target=lambda: errors.append(proc.stderr.read()), daemon=True)
        drain.start()
        try:
            _collect(proc.stdout, records, out, on_record)
        except KeyboardInterrupt:
            # The agent reads the file on its own: without this it would go on serving, unseen, after we stop.
            proc.terminate()
            _stopped(proc, out)
            raise
        proc.wait()
        drain.join()
    if proc.returncode != 0:
        message = errors[0].decode(errors="replace").strip() if errors else ""
        raise EdgectlError(f"{target}: the agent stopped with exit code {proc.returncode}: {message}")
    return records


STOP_S = 10.0  # after Ctrl-C, how long the agent has to answer what it read and write its final stats


def _collect(lines, records, out=None, on_record=None):
    """The agent's records from its output lines: kept in `records`, written to `out`, shown to on_record."""
    for line in lines:
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a runtime printing to stdout; records are whole JSON lines
        records.append(rec)
        if out is not None:
            out.write(line.decode())
        if on_record:
            on_record(rec)


def _stopped(proc, out):
    """Wait for a terminated agent, keeping what it writes as it stops (the lines it had read, its final
    stats): unread, a full pipe would hold it, and us waiting for it, for ever. Killed after STOP_S."""
    killer = threading.Timer(STOP_S, proc.kill)
    killer.start()
    try:
        _collect(proc.stdout, [], out)
        proc.wait()
    finally:
        killer.cancel()
