"""`edgectl deploy` and `edgectl rollback`: releases on a board, switched atomically, health-checked.

On the board: HOME/releases/<bundle-id>/ per release, HOME/current and
HOME/previous as relative symlinks. A release is uploaded under a temporary name
and renamed when complete, so an interrupted upload never becomes `current`. After
the switch the agent must come up healthy (checksums, self-test, READY); if it
does not, `current` goes back to the release it replaced, and deploy says so.
"""

from pathlib import Path

from edge_agent.errors import BundleError
from edge_agent.manifest import load_bundle
from edgectl import board as boards
from edgectl import runtime_env, service, trust
from edgectl.errors import EdgectlError
from edgectl.targets import q, sh


def deploy(bundle_dir, target, say=lambda msg: None, offline=False, serial=False, trust_key=None):
    """Deploy a bundle directory to a target; return what was done as a dict.

    trust_key: a public key file to install on the board first; the bundle must be signed by it,
    and from then on the board serves only bundles signed by a key it trusts.
    """
    new_key = trust.signed_by(bundle_dir, trust_key) if trust_key else None
    staged = stage_release(bundle_dir, target, say, offline, serial, signed=new_key is not None)
    board, bundle_id, release, reused = staged["board"], staged["bundle_id"], staged["release"], staged["reused"]
    service.install(target, board)
    previous, before = current_release(target), release_link(target, "previous")
    switch(target, bundle_id, keep_previous=previous != bundle_id)
    say(f"{target}: current -> {bundle_id}; waiting for the agent to come up healthy")
    health = service.restart_and_check(target, board)
    if not health["healthy"]:
        if previous and previous != bundle_id:
            switch(target, previous, keep_previous=False)
            _set_link(target, "previous", before)
            service.restart_and_check(target, board)
            outcome = f"rolled back to {previous}"
        else:
            outcome = "no previous release to roll back to"
        raise EdgectlError(f"{target}: bundle {bundle_id} did not come up healthy: {outcome}.\n{health['detail']}")
    # Only now: a key trusted before the health check would leave a rollback to an unsigned release unservable.
    if new_key is not None:
        say(f"{target}: trusting key {trust.install_key(target, board, new_key)}")
    return {
        "target": str(target),
        "bundle_id": bundle_id,
        "release": release,
        "previous": previous,
        "reused": reused,
        "board": {k: board[k] for k in ("arch", "python", "glibc", "os")},
        "trusted_keys": trust.board_keys(target),
        "health": health,
    }


def stage_release(bundle_dir, target, say=lambda msg: None, offline=False, serial=False, signed=False):
    """Everything before the switch: check the board can run the bundle, set up its runtime, upload the
    release (or reuse one that verifies) and verify it there. `current` is not touched.

    Returns {"board", "bundle_id", "release", "reused"}.
    """
    try:
        manifest = load_bundle(bundle_dir)
    except BundleError as exc:
        raise EdgectlError(f"refusing to deploy: {exc}") from None
    bundle_id = manifest["bundle_id"]
    board = boards.probe(target)
    boards.check_fits(board, manifest, target)
    if target.managed_env:
        needs_tflite = any(s["kind"] == "tflite" for s in manifest["stages"])
        signed = signed or bool(trust.board_keys(target))
        runtime_env.ensure(target, board, needs_tflite, offline, say, serial, signed)
    release = f"{target.home}/releases/{bundle_id}"
    reused = _agent(target, "verify", release).returncode == 0
    if not reused:
        partial = f"{target.home}/releases/.partial-{bundle_id}"
        sh(target, f"mkdir -p {q(target.home)}/releases && rm -rf {q(partial)} {q(release)}")
        say(f"uploading {bundle_id} to {target}")
        target.put_dir(Path(bundle_dir), partial)
        sh(target, f"mv -T {q(partial)} {q(release)}")
        check = _agent(target, "verify", release)
        if check.returncode != 0:
            raise EdgectlError(f"{target}: the uploaded bundle does not verify on the board:\n{check.stderr.strip()}")
    return {"board": board, "bundle_id": bundle_id, "release": release, "reused": reused}


def rollback(target, say=lambda msg: None):
    """Switch `current` back to `previous` (the two swap) and check health."""
    board = boards.probe(target)
    current, previous = current_release(target), release_link(target, "previous")
    if not previous:
        raise EdgectlError(f"{target}: no previous release to roll back to")
    check = _agent(target, "verify", f"{target.home}/releases/{previous}")
    if check.returncode != 0:  # e.g. an unsigned release on a board that has trusted a key since
        raise EdgectlError(f"{target}: previous release {previous} would not serve here:\n{check.stderr.strip()}")
    switch(target, previous, keep_previous=True)
    say(f"{target}: current -> {previous} (was {current})")
    health = service.restart_and_check(target, board)
    return {"target": str(target), "bundle_id": previous, "previous": current, "health": health}


def switch(target, bundle_id, keep_previous):
    """Point `current` at a release with one rename; optionally remember the old one as `previous`."""
    home = q(target.home)
    keep = 'old=$(readlink current) && [ -n "$old" ] && ln -sfn "$old" previous; ' if keep_previous else ""
    sh(target, f"cd {home} && {keep}ln -sfn releases/{q(bundle_id)} current.new && mv -Tf current.new current")


def current_release(target):
    """The bundle id `current` points at on the target, or None."""
    return release_link(target, "current")


def release_link(target, name):
    """The bundle id a link in HOME (current, previous) points at, or None."""
    got = target.run(["sh", "-c", f"readlink {q(target.home)}/{name} || true"])
    link = got.stdout.strip()
    return link.rsplit("/", 1)[-1] if link else None


def _set_link(target, name, bundle_id):
    path = f"{q(target.home)}/{name}"
    sh(target, f"ln -sfn releases/{q(bundle_id)} {path}" if bundle_id else f"rm -f {path}")


def _agent(target, command, bundle):
    return target.run([*target.agent_argv(), command, "--bundle", bundle])
