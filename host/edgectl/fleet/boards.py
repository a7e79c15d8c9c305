"""Status and rollback of many boards at once: the one per-board function on each, `forks` at a time."""

from concurrent.futures import ThreadPoolExecutor

from edgectl import deploy, status
from edgectl.errors import EdgectlError
from edgectl.fleet import inventory as inventories


def each(inv, names, forks, work):
    """[work(name, target)] over the hosts, up to `forks` at once, in the hosts' order."""

    def one(name):
        target = inventories.target(name, inv["hosts"][name])
        try:
            return work(name, target)
        finally:
            target.close()

    with ThreadPoolExecutor(max_workers=max(1, forks)) as pool:
        return list(pool.map(one, names))


def fleet_status(inv, names, forks=10):
    """One row per board: release, health, uptime, p99, errors, drift alarms (an unreachable board says why)."""

    def one(name, target):
        row = {
            "board": name,
            "groups": inventories.groups_of(inv, name),
            "release": None,
            "health": "unreachable",
            "uptime_s": None,
            "p99_us": None,
            "errors": None,
            "drift_alarms": None,
            "detail": "",
        }
        try:
            shown = status.status(target)
        except EdgectlError as exc:
            return {**row, "detail": str(exc).splitlines()[0]}
        stats = shown["last_stats"] or {}
        drift = stats.get("drift") or {}
        return {
            **row,
            "release": shown["release"],
            "health": shown["health"],
            "uptime_s": shown["uptime_s"],
            "p99_us": (stats.get("latency_us") or {}).get("p99"),
            "errors": stats.get("errors"),
            "drift_alarms": drift.get("alarms"),
            "detail": shown["detail"] if shown["health"] != "healthy" else "",
        }

    return each(inv, names, forks, one)


def fleet_rollback(inv, names, forks=10, say=lambda msg: None):
    """Roll each board back to its previous release; one row per board (rolled back or failed, and why)."""

    def one(name, target):
        row = {"board": name, "groups": inventories.groups_of(inv, name)}
        try:
            done = deploy.rollback(target, lambda message: say(f"{name}: {message}"))
        except EdgectlError as exc:
            say(f"{name}: FAILED: {str(exc).splitlines()[0]}")
            return {**row, "result": "failed", "release": None, "reason": str(exc).splitlines()[0]}
        return {**row, "result": "rolled back", "release": done["bundle_id"], "reason": f"was {done['previous']}"}

    return each(inv, names, forks, one)
