"""`edgectl status`: what a board runs and whether it is healthy."""

import json

from edgectl import board as boards
from edgectl import deploy, service
from edgectl.errors import EdgectlError
from edgectl.targets import q
from edgectl.targets.local import LocalTarget


def status(target):
    """Release, previous release, health (the agent's self-test of `current`), uptime and last stats
    (of the service, or of the last `edgectl run` on a board without one)."""
    if isinstance(target, LocalTarget) and not target.root.exists():  # most likely a typo: say so, make nothing
        raise EdgectlError(
            f"{target}: no board there (the directory does not exist); check the path, "
            f"or `edgectl deploy BUNDLE {target}` to make one"
        )
    board = boards.probe(target)
    current = deploy.current_release(target)
    releases = target.run(["sh", "-c", f"ls -1 {q(target.home)}/releases 2>/dev/null || true"]).stdout.split()
    result = {
        "target": str(target),
        "board": {k: board[k] for k in ("arch", "kernel", "python", "os", "model")},
        "release": current,
        "previous": deploy.release_link(target, "previous"),
        "releases": [r for r in releases if not r.startswith(".")],
        "health": "no release deployed",
        "detail": "",
        "uptime_s": None,
        "last_stats": None,
    }
    pending = target.run(["sh", "-c", f"cat {q(target.home)}/.pending 2>/dev/null || true"]).stdout.strip()
    if pending:  # a deploy died between its switch and its health check; the next deploy or rollback settles it
        try:
            result["pending_switch"] = json.loads(pending)
        except ValueError:
            result["pending_switch"] = {"damaged": True}
    if current is None:
        return result
    check = service.selftest_current(target)
    result["health"] = "healthy" if check.returncode == 0 else "degraded"
    result["detail"] = "self-test passed" if check.returncode == 0 else check.stderr.strip()
    result["last_stats"] = last_stats(target, board)
    result["uptime_s"] = (result["last_stats"] or {}).get("uptime_s")
    return result


def last_stats(target, board):
    """The agent's latest stats on the board (its state path's stats.json), or None."""
    stats_file = f"{service.state_dir(target, board)}/stats.json"
    text = target.run(["sh", "-c", f"cat {q(stats_file)} 2>/dev/null || true"]).stdout.strip()
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None  # written by an agent that died mid-write, before the rename: the next one is whole
