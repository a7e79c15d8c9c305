"""The board's releases: HOME/releases/<id>/, the `current` and `previous` links, and the pending switch.

Every board path the deploy touches is built here by `board_path`, from checked names, inside
HOME; nothing else on the board deletes, renames or links release directories. The host holds
the board's deploy lock (HOME/.lock, see `edgectl.board.locked`) around these calls.

On a board where deploy ships the agent, the agent code is versioned with the release: each
version in HOME/agents/<agent id>/ (content-addressed, never changed once there), and the
`agent` and `previous-agent` links switched with `current` and `previous`, so a rollback runs the
old release on the agent it ran on, and a bench or a staged upload never touches the running one.

A switch first writes HOME/.pending (the release and agent it replaces, the old `previous`, and the
trusted key the deploy installs, if new); the deploy removes it once the new release is healthy. A
deploy killed between the two leaves the marker, and the next deploy or rollback finishes the
switch (healthy) or undoes it, taking that key out again.
"""

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
from pathlib import Path

from edge_agent.errors import BundleError
from edge_agent.manifest import BUNDLE_ID, check_bundle_id, content_hash
from edge_agent.signature import load_trusted_bundle, read_signature

INCOMING = re.compile(r"\.incoming-[0-9a-f]{16}")  # an upload in progress, named by the host
KEY_ID = re.compile(r"[0-9a-f]{16}")  # signature.key_id
AGENT_ID = re.compile(r"[0-9a-f]{16}")  # agent_id(): the agent code's content
LINKS = ("current", "previous")
AGENT_LINKS = ("agent", "previous-agent")
LINK_DIRS = {"current": "releases", "previous": "releases", "agent": "agents", "previous-agent": "agents"}
PENDING = ".pending"
OPLOCK = ".oplock"


def board_path(home, *names):
    """HOME/names...: each name a bundle id, an upload name or a link name; never anything that leaves HOME."""
    home = Path(home)
    for name in names:
        if name not in ("releases", "agents", *LINK_DIRS, PENDING, OPLOCK) and not INCOMING.fullmatch(name):
            check_bundle_id(name, str(home))
    path = home.joinpath(*names)
    if os.path.commonpath([os.path.abspath(home), os.path.abspath(path)]) != os.path.abspath(home):
        raise BundleError(f"{home}: {'/'.join(names)} leaves the board's home")  # unreachable with checked names
    return path


def commit(home, incoming, trusted_keys, also_trust=None):
    """Make an uploaded directory HOME/releases/<its id>; return {"bundle_id", "reused"}.

    The upload is verified first (schema, id, checksums, and the signature where the board trusts
    keys) against the keys the board will trust after the deploy (its own and `also_trust`):
    nothing in releases/ is deleted or replaced for a bundle the board would refuse. A release of
    the same id that verifies and carries the same signature is kept (the id names the content, so
    it holds the same files) and the upload dropped.
    """
    if not INCOMING.fullmatch(incoming):
        raise BundleError(f"{home}: {incoming[:80]!r} is not an upload name (.incoming-<16 hex digits>)")
    upload = board_path(home, "releases", incoming)
    _remove_stale_uploads(home, keep=incoming)
    try:
        manifest, _ = load_trusted_bundle(upload, trusted_keys, also_trust)
    except BundleError:
        shutil.rmtree(upload, ignore_errors=True)
        raise
    bundle_id = manifest["bundle_id"]
    release = board_path(home, "releases", bundle_id)
    if release.is_dir() and _same_release(release, upload, trusted_keys, also_trust):
        shutil.rmtree(upload)
        return {"bundle_id": bundle_id, "reused": True}
    if release.exists() or release.is_symlink():
        # Aside first, then in: `current` may point here, and is without a target only between two renames.
        aside = board_path(home, "releases", f".incoming-{os.urandom(8).hex()}")
        os.rename(release, aside)
        os.rename(upload, release)
        _remove(aside)
    else:
        os.rename(upload, release)
    _fsync_dir(release.parent)
    return {"bundle_id": bundle_id, "reused": False}


def link(home, name):
    """The id a link points at (a bundle id for current and previous, an agent id for agent and
    previous-agent), or None; a link to anything else is an error."""
    path = board_path(home, name)
    try:
        target = os.readlink(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if name == "agent" and path.is_dir():
            return None  # shipped before agents were versioned; the next switch adopts it
        raise BundleError(f"{path}: not a release link: {exc.strerror}") from None
    parts = Path(target).parts
    folder = LINK_DIRS[name]
    if len(parts) != 2 or parts[0] != folder:
        raise BundleError(f"{path} points at {target!r}, not at {folder}/<id>")
    if folder == "agents":
        if not AGENT_ID.fullmatch(parts[1]):
            raise BundleError(f"{path} points at {target!r}, not at an agent (agents/<16 hex digits>)")
        return parts[1]
    return check_bundle_id(parts[1], str(path))


def set_link(home, name, to):
    """Point a link at releases/<bundle id> (or agents/<agent id>) with one rename (None removes it)."""
    path = board_path(home, name)
    if to is None:
        if path.is_symlink():
            path.unlink()
        return
    folder = LINK_DIRS[name]
    if not board_path(home, folder, to).is_dir():
        raise BundleError(f"{home}: no {folder}/{to} to point {name} at")
    tmp = path.with_name(f".{name}.{os.getpid()}")  # per process: two writers never share a temporary name
    if tmp.is_symlink():
        tmp.unlink()
    os.symlink(f"{folder}/{to}", tmp)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def agent_id(package_dir):
    """The id of the agent code in package_dir (the edge_agent folder): the first 16 hex digits of a
    sha256 over its files' paths and contents. The host and the board compute it the same way."""
    digest = hashlib.sha256()
    root = Path(package_dir)
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _adopt_unversioned_agent(home):
    """An agent shipped before agents were versioned is a directory at HOME/agent: move it to
    agents/<its id> and link it, so a switch can record it and an undo put it back."""
    path = board_path(home, "agent")
    if path.is_symlink() or not path.is_dir():
        return
    adopted = agent_id(path / "edge_agent")
    kept = board_path(home, "agents", adopted)
    kept.parent.mkdir(exist_ok=True)
    if kept.exists():
        _remove(path)
    else:
        os.rename(path, kept)
    set_link(home, "agent", adopted)


def switch(home, bundle_id, keep_previous=True, installs_key=None, agent=None):
    """Make `current` point at bundle_id (and `agent` at agents/<agent>, when given), recording what to
    undo in HOME/.pending first.

    keep_previous: the release that was current becomes `previous` (and its agent `previous-agent`).
    installs_key: the id of a trusted key the deploy installs next (new to the board); an undo removes
    it. Returns the marker.
    """
    if not board_path(home, "releases", bundle_id).is_dir():
        raise BundleError(f"{home}: no release {bundle_id} to switch to")
    if installs_key is not None and not KEY_ID.fullmatch(installs_key):
        raise BundleError(f"{installs_key[:40]!r} is not a key id (16 hex digits)")
    if agent is not None and not (AGENT_ID.fullmatch(agent) and board_path(home, "agents", agent).is_dir()):
        raise BundleError(f"{home}: no agent {agent[:40]!r} in agents/ to switch to")
    _adopt_unversioned_agent(home)
    old, previous = link(home, "current"), link(home, "previous")
    old_agent, previous_agent = link(home, "agent"), link(home, "previous-agent")
    marker = {"to": bundle_id, "from": old, "previous": previous, "key": installs_key,
              "agent": agent or old_agent, "agent_from": old_agent, "previous_agent": previous_agent}  # fmt: skip
    path = board_path(home, PENDING)
    tmp = path.with_name(f"{PENDING}.{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(json.dumps(marker))
        f.flush()
        os.fsync(f.fileno())  # durable before the switch it describes
    os.replace(tmp, path)
    _fsync_dir(path.parent)
    if keep_previous and old and old != bundle_id:
        set_link(home, "previous", old)
        if agent is not None:
            set_link(home, "previous-agent", old_agent)
    if agent is not None:
        set_link(home, "agent", agent)
    set_link(home, "current", bundle_id)
    _remove_unlinked_agents(home, keep={old_agent, previous_agent})
    return marker


def pending(home):
    """The marker of a switch not yet settled, or None. A marker that cannot be read (a power cut while it
    was written) is {"damaged": true, "to": current, "from": None}: the release it would undo is unknown."""
    try:
        marker = json.loads(board_path(home, PENDING).read_text())
        ok = (
            isinstance(marker, dict)
            and all(
                marker.get(k) is None or (isinstance(marker[k], str) and BUNDLE_ID.fullmatch(marker[k]))
                for k in ("to", "from", "previous")
            )
            and (marker.get("key") is None or (isinstance(marker["key"], str) and KEY_ID.fullmatch(marker["key"])))
            and all(
                marker.get(k) is None or (isinstance(marker[k], str) and AGENT_ID.fullmatch(marker[k]))
                for k in ("agent", "agent_from", "previous_agent")
            )
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        ok = False
    if not ok:
        return {"to": link(home, "current"), "from": None, "previous": None, "damaged": True}
    return marker


def settle(home):
    """The switch was healthy: forget how to undo it."""
    board_path(home, PENDING).unlink(missing_ok=True)


def undo(home, trusted_keys_dir):
    """Put `current` and `previous` back as they were before the pending switch, and take out the key
    it installed; return the marker. A damaged marker says nothing to undo to: the links stay, the
    marker goes."""
    marker = pending(home)
    if marker is None:
        return None
    if marker.get("damaged"):
        settle(home)
        return marker
    set_link(home, "current", marker["from"])
    set_link(home, "previous", marker.get("previous"))
    if "agent_from" in marker:  # markers from before agents were versioned have no agent to restore
        set_link(home, "agent", marker["agent_from"])
        set_link(home, "previous-agent", marker["previous_agent"])
    if marker.get("key"):  # checked by pending(): a bare key id, never a path
        try:
            (Path(trusted_keys_dir) / f"{marker['key']}.pub").unlink(missing_ok=True)
        except OSError as exc:
            raise BundleError(f"{trusted_keys_dir}: cannot take out key {marker['key']}: {exc.strerror}") from None
    settle(home)
    return marker


def _same_release(release, upload, trusted_keys, also_trust):
    """The release holds the upload's content (the id names it; `created` may differ) signed by the same key."""
    try:
        kept, kept_signer = load_trusted_bundle(release, trusted_keys, also_trust)
        new, _ = load_trusted_bundle(upload, trusted_keys, also_trust)
    except BundleError:
        return False
    return (
        content_hash(kept) == content_hash(new) and kept_signer == _signer(upload) and _signer(release) == kept_signer
    )


def _signer(bundle):
    """The key id a bundle's signature names, or None when it is unsigned (whether the board trusts it or not)."""
    signed = read_signature(bundle)
    return signed["key_id"] if signed else None


def _remove_stale_uploads(home, keep):
    """Uploads of deploys that died: with the lock held, no other deploy is uploading."""
    releases = board_path(home, "releases")
    for path in releases.iterdir() if releases.is_dir() else ():
        if INCOMING.fullmatch(path.name) and path.name != keep:
            _remove(path)


def _remove_unlinked_agents(home, keep):
    """Agents no link names (and not in `keep`: what an undo may restore): staged by a bench, or by
    deploys whose releases have left current and previous."""
    agents = board_path(home, "agents")
    keep = {*keep, *(link(home, name) for name in AGENT_LINKS)}
    for path in agents.iterdir() if agents.is_dir() else ():
        if path.name not in keep:
            _remove(path)


def _remove(path):
    if path.is_symlink() or path.is_file():
        path.unlink()
    else:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def operation_lock(home):
    """One release operation at a time on this board, whatever the host's lock says: an operation
    whose host connection died goes on to its end before the next one starts."""
    Path(home).mkdir(parents=True, exist_ok=True)
    with open(board_path(home, OPLOCK), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _fsync_dir(path):
    """A rename is durable once its directory is synced (power loss on an SD card)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
