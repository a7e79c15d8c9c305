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
            for line in proc.stdout:
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a runtime printing to stdout; records are whole JSON lines
                records.append(rec)
                if out is not None:
                    out.write(line.decode())
                if on_record:
                    on_record(rec)
        except KeyboardInterrupt:
            # The agent reads the file on its own: without this it would go on serving, unseen, after we stop.
            proc.terminate()
            proc.wait()
            raise
        proc.wait()
        drain.join()
    if proc.returncode != 0:
        message = errors[0].decode(errors="replace").strip() if errors else ""
        raise EdgectlError(f"{target}: the agent stopped with exit code {proc.returncode}: {message}")
    return records
