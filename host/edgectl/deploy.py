"""`edgectl deploy`: put a bundle on a target as a new release and switch to it atomically.

On the board: HOME/releases/<bundle-id>/ per release, HOME/current and
HOME/previous as relative symlinks. A release becomes `current` only after its
upload completed (uploaded under a temporary name, then renamed) and the agent's
self-test passed on the board; otherwise the board keeps what it had.
"""

import shlex
from pathlib import Path

from edge_agent.errors import BundleError
from edge_agent.manifest import load_bundle
from edgectl.errors import EdgectlError


def deploy(bundle_dir, target, say=lambda msg: None):
    """Deploy a bundle directory to a target; return what was done as a dict."""
    try:
        manifest = load_bundle(bundle_dir)
    except BundleError as exc:
        raise EdgectlError(f"refusing to deploy: {exc}") from None
    bundle_id = manifest["bundle_id"]
    release = f"{target.home}/releases/{bundle_id}"
    # A release already on the board that passes its checks is reused: re-running
    # deploy after a broken connection costs one self-test.
    check = _selftest(target, release)
    reused = check.returncode == 0
    if not reused:
        partial = f"{target.home}/releases/.partial-{bundle_id}"
        _sh(target, f"mkdir -p {q(target.home)}/releases && rm -rf {q(partial)} {q(release)}")
        say(f"uploading {bundle_id} to {target}")
        target.put_dir(Path(bundle_dir), partial)
        _sh(target, f"mv -T {q(partial)} {q(release)}")
        say("self-test on the board")
        check = _selftest(target, release)
    if check.returncode != 0:
        raise EdgectlError(
            f"{target}: bundle {bundle_id} failed its self-test on the board; the board keeps its "
            f"current release.\n{check.stderr.strip()}"
        )
    previous = current_release(target)
    keep = f"ln -sfn releases/{q(previous)} previous && " if previous and previous != bundle_id else ""
    _sh(
        target,
        f"cd {q(target.home)} && {keep}ln -sfn releases/{q(bundle_id)} current.new && mv -Tf current.new current",
    )
    say(f"{target}: current -> {bundle_id}")
    return {"target": str(target), "bundle_id": bundle_id, "release": release, "previous": previous, "reused": reused}


def current_release(target):
    """The bundle id `current` points at on the target, or None."""
    got = target.run(["sh", "-c", f"readlink {q(target.home)}/current || true"])
    link = got.stdout.strip()
    return link.rsplit("/", 1)[-1] if link else None


def _selftest(target, release):
    return target.run([*target.agent_argv(), "selftest", "--bundle", release])


def _sh(target, script):
    got = target.run(["sh", "-c", script])
    if got.returncode != 0:
        raise EdgectlError(f"{target}: command failed: {script}\n{got.stderr.strip()}")
    return got


def q(text):
    return shlex.quote(str(text))
