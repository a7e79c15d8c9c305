"""`edgectl deploy` and `edgectl rollback`: releases on a board, switched atomically, health-checked.

On the board: HOME/releases/<bundle-id>/ per release and, where deploy ships the
agent, HOME/agents/<agent-id>/ per agent version; HOME/current and HOME/previous,
HOME/agent and HOME/previous-agent as relative symlinks, switched together so a
release always runs on the agent it was deployed with. They are managed by the
board's `edge-agent release` (edge_agent/releases.py), under the board's deploy
lock. A release is uploaded under a temporary name and verified there (signature
included) before it replaces anything, so an interrupted or refused upload never
becomes `current`. After the switch the agent must come up healthy (checksums,
self-test, READY); if it does not, `current` and `agent` go back to what they
were, and deploy says so and whether that release is healthy.
"""

import base64
import json
import secrets
from pathlib import Path

from edge_agent.errors import BundleError
from edge_agent.manifest import BUNDLE_ID, load_bundle
from edgectl import board as boards
from edgectl import profiles, runtime_env, service, trust
from edgectl.errors import EdgectlError
from edgectl.targets import q, sh


def deploy(bundle_dir, target, say=lambda msg: None, offline=False, serial=False, trust_key=None, profile=None,
           telemetry=None):  # fmt: skip
    """Deploy a bundle directory to a target; return what was done as a dict.

    telemetry: what the service also reports, {"mqtt": {"url", "fleet", "board", "ca", "auth"} or None,
    "metrics_port": PORT or None, "node_exporter_dir": DIR or None}: records published to a broker
    (mqtt_out.py; ca and auth are files on this host), Prometheus metrics on a loopback port and as a
    textfile linked into node_exporter's folder (prom_out.py). Only a service reports: see service.py.

    profile: the board's profile name (else inferred from the board, see profiles.for_board); a service
    gets MemoryHigh at its agent_memory_mb budget and MemoryMax at twice that.

    trust_key: a public key file to install on the board; the bundle must be signed by it, and from
    then on the board serves only bundles signed by a key it trusts. The upload is verified (and a
    release of the same id reused) against the keys the board will trust after the deploy, and the
    health check runs with the key in place; a failed check takes a key the board did not have
    out again, so the release rolled back to serves as it did.
    The board's deploy lock is held throughout: a second deploy to the same board is refused.
    """
    new_key = trust.signed_by(bundle_dir, trust_key) if trust_key else None
    if profile:
        profiles.get(profile)  # an unknown name is refused before any work
    manifest = _load(bundle_dir)
    with boards.locked(target):
        staged = stage_release(bundle_dir, target, say, offline, serial, also_trust=new_key, manifest=manifest,
                               recover_first=True, telemetry=telemetry)  # fmt: skip
        board, bundle_id, release, reused = staged["board"], staged["bundle_id"], staged["release"], staged["reused"]
        recovered = staged["recovered"]
        limits = memory_limits(profile, board, manifest)
        service.install(target, board, limits["memory_high_mb"], telemetry)
        was_current = current_release(target)
        new_kid = trust.new_key_id(target, new_key)
        release_op(target, "switch", "--to", bundle_id, *(["--keep-previous"] if was_current != bundle_id else []),
                   *(["--installs-key", new_kid] if new_kid else []),
                   *(["--agent", target.agent_id] if target.agent_id else []))  # fmt: skip
        # The key goes in after the switch, whose marker names it: an undo (a failed check, or the next
        # deploy after a cut) takes it out again, so the release switched back to serves as it did.
        try:
            kid = trust.install_key(target, board, new_key) if new_key is not None else None
        except BaseException:
            _undo(target, board, was_current)
            raise
        say(f"{target}: current -> {bundle_id}{f', trusting key {kid}' if kid else ''}; waiting for the agent")
        health = service.restart_and_check(target, board)
        if not health["healthy"]:
            outcome = _undo(target, board, was_current) + (f"; key {new_kid} taken out again" if new_kid else "")
            raise EdgectlError(f"{target}: bundle {bundle_id} did not come up healthy: {outcome}.\n{health['detail']}")
        release_op(target, "settle")
    return {
        "target": str(target),
        "bundle_id": bundle_id,
        "release": release,
        "previous": release_link(target, "previous"),
        "reused": reused,
        "agent": target.agent_id,
        "board": {k: board[k] for k in ("arch", "python", "glibc", "os")},
        "trusted_keys": trust.board_keys(target),
        "health": health,
        "memory_limits": limits if service.runs_service(target, board) else None,
        "telemetry": telemetry if service.runs_service(target, board) else None,
        **({"recovered": recovered} if recovered else {}),
    }


def memory_limits(profile_name, board, manifest):
    """The service's cgroup memory limits from the board's profile: {"memory_high_mb", "memory_max_mb",
    "profile", "how"} (the limits None when no profile is named or inferred)."""
    built_for = manifest.get("built_with", {}).get("profiles", [])
    profile, how = profiles.for_board(profile_name, board, built_for)
    if profile and profile["arch"] != board["arch"]:
        raise EdgectlError(f"--profile {profile['name']} is for {profile['arch']} boards; this one is {board['arch']}")
    high = profile["budgets"]["agent_memory_mb"] if profile else None
    return {
        "memory_high_mb": high,
        "memory_max_mb": high and 2 * high,
        "profile": profile and profile["name"],
        "how": how,
    }


def stage_release(
    bundle_dir,
    target,
    say=lambda msg: None,
    offline=False,
    serial=False,
    also_trust=None,
    manifest=None,
    recover_first=False,
    telemetry=None,
):
    """Everything before the switch: check the board can run the bundle, set up its runtime, upload the
    release (or reuse one with the same content) and verify it there. `current` is not touched.
    also_trust: a raw public key the board is about to trust; the upload is verified with it too.
    recover_first: settle or undo a switch a dead deploy left (see `recover`) before the upload is
    verified, so it is verified against the keys of the release the board really serves.
    Call with the board's lock held.

    Returns {"board", "bundle_id", "release", "reused", "recovered"}.
    """
    manifest = manifest or _load(bundle_dir)
    bundle_id = manifest["bundle_id"]
    board = boards.probe(target)
    boards.check_fits(board, manifest, target)
    if telemetry and not service.runs_service(target, board):
        raise EdgectlError(
            f"{target}: --mqtt and --metrics-* set up the board's service, and this board runs none (it needs "
            "systemd on the board and a deploy as root). Deploy without them and start the agent with "
            "`edge-agent run --mqtt URL --metrics-textfile PATH` yourself"
        )
    if target.managed_env:
        needs_tflite = any(s["kind"] == "tflite" for s in manifest["stages"])
        signed = also_trust is not None or bool(trust.board_keys(target))
        reports = telemetry or {}
        mqtt, metrics = bool(reports.get("mqtt")), bool(reports.get("metrics_port") or reports.get("node_exporter_dir"))
        runtime_env.ensure(target, board, needs_tflite, offline, say, serial, signed, mqtt, metrics)
    recovered = recover(target) if recover_first else None  # needs the agent: on the board by now
    boards.check_space(target, bundle_dir, bundle_id)  # after the venv: what it took is gone already
    incoming = f".incoming-{secrets.token_hex(8)}"
    sh(target, f"mkdir -p {q(target.home)}/releases")
    say(f"uploading {bundle_id} to {target}")
    target.put_dir(Path(bundle_dir), f"{target.home}/releases/{incoming}")
    # The board verifies the upload (signature included) before anything in releases/ is replaced.
    extra = ["--also-trust", base64.b64encode(also_trust).decode()] if also_trust is not None else []
    committed = release_op(
        target, "commit", "--incoming", incoming, *extra, what="the uploaded bundle does not verify on the board"
    )
    release = f"{target.home}/releases/{bundle_id}"
    return {
        "board": board,
        "bundle_id": bundle_id,
        "release": release,
        "reused": committed["reused"],
        "recovered": recovered,
    }


def rollback(target, say=lambda msg: None):
    """Switch `current` back to `previous` (the two swap) and check health; a previous release that
    does not come up healthy is switched away from again, and the rollback fails."""
    with boards.locked(target):
        if current_release(target) is None:
            raise EdgectlError(f"{target}: no release deployed, nothing to roll back")
        recover(target)
        board = boards.probe(target)
        current, previous = current_release(target), release_link(target, "previous")
        if not previous:
            raise EdgectlError(f"{target}: no previous release to roll back to")
        check = _agent(target, "verify", f"{target.home}/releases/{previous}")
        if check.returncode != 0:  # e.g. an unsigned release on a board that has trusted a key since
            raise EdgectlError(f"{target}: previous release {previous} would not serve here:\n{check.stderr.strip()}")
        previous_agent = release_op(target, "show")["previous-agent"]  # the agent it ran on, when versioned
        release_op(target, "switch", "--to", previous, "--keep-previous",
                   *(["--agent", previous_agent] if previous_agent else []))  # fmt: skip
        say(f"{target}: current -> {previous} (was {current})")
        health = service.restart_and_check(target, board)
        if not health["healthy"]:
            outcome = _undo(target, board, current)
            raise EdgectlError(
                f"{target}: previous release {previous} did not come up healthy: {outcome}.\n{health['detail']}"
            )
        release_op(target, "settle")
    return {"target": str(target), "bundle_id": previous, "previous": current, "health": health}


def recover(target):
    """Finish or undo a switch whose deploy died before its health check (HOME/.pending); None if there was none."""
    shown = release_op(target, "show")
    marker = shown["pending"]
    if marker is None:
        return None
    board = boards.probe(target)
    # A switch cut between its renames has only some links where the marker says: undo it, never keep a
    # release on an agent it was not deployed with.
    whole = shown["current"] == marker["to"] and shown["agent"] == marker.get("agent", shown["agent"])
    health = service.restart_and_check(target, board) if whole or marker.get("damaged") else {"healthy": False}
    if health["healthy"]:
        release_op(target, "settle")
        return {"release": marker["to"], "action": "kept: healthy"}
    if marker.get("damaged"):
        release_op(target, "undo")  # only drops the marker: it no longer says what to switch back to
        return {"release": marker["to"], "action": "the switch marker was damaged; current left as it is, NOT healthy"}
    outcome = _undo(target, board, marker["from"])
    return {"release": marker["to"], "action": outcome}


def _undo(target, board, previous):
    """Undo the pending switch and bring the previous release back up; say how that went."""
    release_op(target, "undo")
    if not previous:
        return "no previous release to roll back to"
    back = service.restart_and_check(target, board)
    if back["healthy"]:
        return f"rolled back to {previous}"
    return f"rolled back to {previous}, which is NOT healthy either: {back['detail'][-500:]}"


def release_op(target, action, *args, what=None):
    """`edge-agent release ACTION` on the board: the one place board paths are built and checked."""
    got = target.run([*target.agent_argv(), "release", action, "--home", target.home, *args])
    if got.returncode != 0:
        raise EdgectlError(f"{target}: {what or 'release ' + action + ' failed'}:\n{got.stderr.strip()}")
    return json.loads(got.stdout)


def current_release(target):
    """The bundle id `current` points at on the target, or None."""
    return release_link(target, "current")


def release_link(target, name):
    """The bundle id a link in HOME (current, previous) points at, or None. Works before any agent is there."""
    got = target.run(["sh", "-c", f"readlink {q(target.home)}/{name} || true"])
    link = got.stdout.strip()
    if not link:
        return None
    bundle_id = link.rsplit("/", 1)[-1]
    if not link.startswith("releases/") or not BUNDLE_ID.fullmatch(bundle_id):
        raise EdgectlError(f"{target}: {target.home}/{name} points at {link!r}, not at a release")
    return bundle_id


def _load(bundle_dir):
    try:
        return load_bundle(bundle_dir)
    except BundleError as exc:
        raise EdgectlError(f"refusing to deploy: {exc}") from None


def _agent(target, command, bundle):
    return target.run([*target.agent_argv(), command, "--bundle", bundle])
