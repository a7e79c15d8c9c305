"""A staged rollout over an inventory, as Ansible runs a play: batches (`serial`), up to `forks`
boards at a time within a batch, each through the one per-board deploy (probe, upload, verify,
switch, health gate, automatic rollback on that board), and a stop once the failed share of the
boards done so far exceeds `max_fail_percentage`.

A board already serving the bundle healthily is skipped, so a run after an abort goes on where
it stopped. Every board's outcome is a plain dict (a row of the run record, runs.py).
"""

import time
from concurrent.futures import ThreadPoolExecutor

from edge_agent.manifest import load_bundle
from edgectl import board as boards
from edgectl import deploy, service, status
from edgectl.console import counts_text
from edgectl.errors import EdgectlError
from edgectl.fleet import inventory as inventories


def batches(names, serial):
    """Split hosts into batches as Ansible's `serial` does: each entry a count or a percentage of all
    hosts (at least 1), the last entry repeated until every host is in a batch."""
    sizes, total = [], len(names)
    for entry in serial:
        text = str(entry).strip()
        try:
            size = int(total * float(text[:-1]) / 100) if text.endswith("%") else int(text)
        except ValueError:
            raise EdgectlError(f"--serial: {text!r} is neither a count nor a percentage (1, 10%, 100%)") from None
        if size < 0 or (text.endswith("%") and not 0 < float(text[:-1]) <= 100):
            raise EdgectlError(f"--serial: {text!r} is out of range (a count >= 1 or a percentage in (0, 100])")
        sizes.append(max(1, size))
    if not sizes:
        raise EdgectlError("--serial: give at least one batch size (1, 10%, 100%)")
    out, start = [], 0
    while start < total:
        size = sizes[min(len(out), len(sizes) - 1)]
        out.append(names[start : start + size])
        start += size
    return out


def too_many_failed(rows, max_fail_percentage):
    """Ansible's rule: stop when the failed share of the boards done so far exceeds (not reaches) the limit."""
    done = [r for r in rows if r["result"] != "not started"]
    failed = sum(r["result"] == "failed" for r in done)
    return bool(done) and 100.0 * failed / len(done) > max_fail_percentage


def roll_out(bundle_dir, inv, names, forks=10, serial=("100%",), max_fail_percentage=0, say=lambda msg: None,
             offline=False, trust_key=None, telemetry=None, gate=None):  # fmt: skip
    """Deploy a bundle to the named hosts batch by batch; return {"aborted", "batches", "boards": [rows]}.

    gate: {"windows", "p99_ms", "timeout_s"}: after its deploy, a board's service must answer that many
    windows with no error record (and a p99 within p99_ms) within timeout_s, or it is rolled back (served_health).
    """
    manifest = load_bundle(bundle_dir)
    bundle_id = manifest["bundle_id"]
    job = {"bundle_dir": bundle_dir, "manifest": manifest, "bundle_id": bundle_id, "offline": offline,
           "trust_key": trust_key, "telemetry": telemetry, "gate": gate}  # fmt: skip
    plan = batches(names, serial)
    rows, aborted = [], False
    for number, batch in enumerate(plan, start=1):
        say(f"batch {number}/{len(plan)}: {', '.join(batch)}")
        with ThreadPoolExecutor(max_workers=max(1, forks)) as pool:
            rows += pool.map(lambda name: _one_board(job, inv, name, say), batch)
        if too_many_failed(rows, max_fail_percentage) and number < len(plan):
            aborted = True
            rest = [name for later in plan[number:] for name in later]
            say(f"stopping: {sum(r['result'] == 'failed' for r in rows)} of {len(rows)} boards failed, more than "
                f"--max-fail-percentage {max_fail_percentage:g}; not started: {', '.join(rest)}")  # fmt: skip
            rows += [_row(inv, name, None, None, "not started", 0.0, "the rollout stopped before its batch")
                     for name in rest]  # fmt: skip
            break
    return {"bundle_id": bundle_id, "aborted": aborted, "batches": [len(b) for b in plan], "boards": rows}


def _one_board(job, inv, name, say):
    started = time.monotonic()
    host_vars = inv["hosts"][name]
    target = inventories.target(name, host_vars)
    bundle_id, before = job["bundle_id"], None

    def tell(message):
        say(message if message.startswith(f"{name}:") else f"{name}: {message}")

    try:
        before = deploy.current_release(target)
        telemetry = _for_board(job["telemetry"], name)
        if before == bundle_id and _serves_as_asked(target, job["manifest"], host_vars, telemetry):
            tell(f"already serving {bundle_id}, healthy, as asked: skipped")
            return _row(inv, name, before, before, "skipped", time.monotonic() - started, "already serving it, healthy")
        done = deploy.deploy(job["bundle_dir"], target, tell, offline=job["offline"], trust_key=job["trust_key"],
                             profile=host_vars.get("edgectl_profile"), telemetry=telemetry)  # fmt: skip
        why = served_health(target, bundle_id, job["gate"], tell) if job["gate"] else None
        if why:
            back = _roll_back(target, tell)
            return _row(inv, name, before, _current_or_none(target), "failed", time.monotonic() - started,
                        f"{why}; {back}")  # fmt: skip
        tell(f"deployed {bundle_id}")
        return _row(inv, name, before, done["bundle_id"], "deployed", time.monotonic() - started, "")
    except EdgectlError as exc:
        reason = str(exc).splitlines()[0]
        tell(f"FAILED: {reason}")
        return _row(inv, name, before, _current_or_none(target), "failed", time.monotonic() - started, reason)
    finally:
        target.close()


def _for_board(telemetry, name):
    if not telemetry or not telemetry["mqtt"]:
        return telemetry
    return {**telemetry, "mqtt": {**telemetry["mqtt"], "board": name}}


def _serves_as_asked(target, manifest, host_vars, telemetry):
    """Healthy, and its service (where it runs one) has the unit this deploy would write: a changed --mqtt,
    --metrics-* or profile is a reason to deploy again."""
    if status.status(target)["health"] != "healthy":
        return False
    board = boards.probe(target)
    if not service.runs_service(target, board):
        return not telemetry  # else deploy says why it cannot
    limits = deploy.memory_limits(host_vars.get("edgectl_profile"), board, manifest)
    return service.installed_unit(target) == service.planned_unit(target, board, limits["memory_high_mb"], telemetry)


def served_health(target, bundle_id, gate, say=lambda msg: None, every=1.0):
    """None once the board's service has answered gate["windows"] windows of bundle_id with no error record
    and, with gate["p99_ms"], a p99 within it; else, after gate["timeout_s"], why not."""
    board = boards.probe(target)
    if not service.runs_service(target, board):
        return "the health gate reads the service's stats: it needs systemd on the board and a deploy as root"
    say(f"health gate: waiting for {gate['windows']} windows with no error (at most {gate['timeout_s']:g} s)")
    since, seen = time.monotonic(), None
    while True:
        stats = status.last_stats(target, board) or {}
        fresh = stats.get("bundle_id") == bundle_id and stats.get("uptime_s", 1e9) <= time.monotonic() - since + 10
        if fresh:
            seen = stats
            if stats.get("errors"):
                reasons = counts_text(stats.get("errors_by_reason", {}))
                return f"health gate: {stats['errors']} error records ({reasons})"
            if stats.get("windows", 0) >= gate["windows"]:
                p99 = (stats.get("latency_us") or {}).get("p99")
                if gate.get("p99_ms") is not None and p99 is not None and p99 / 1000 > gate["p99_ms"]:
                    return f"health gate: p99 {p99 / 1000:.3f} ms > --health-p99-ms {gate['p99_ms']:g}"
                return None
        if time.monotonic() - since >= gate["timeout_s"]:
            got = seen.get("windows", 0) if seen else 0
            return f"health gate: {got} of {gate['windows']} windows answered in {gate['timeout_s']:g} s"
        time.sleep(every)


def _roll_back(target, tell):
    try:
        back = deploy.rollback(target, tell)
    except EdgectlError as exc:
        return f"rollback FAILED: {str(exc).splitlines()[0]}"
    return f"rolled back to {back['bundle_id']}"


def _current_or_none(target):
    try:
        return deploy.current_release(target)
    except EdgectlError:
        return None  # unreachable: what it serves is unknown


def _row(inv, name, before, after, result, seconds, reason):
    return {
        "board": name,
        "groups": inventories.groups_of(inv, name),
        "before": before,
        "after": after,
        "result": result,
        "seconds": round(seconds, 1),
        "reason": reason,
    }
