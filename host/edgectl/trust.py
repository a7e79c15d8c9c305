"""Trusted keys on a board: `edgectl deploy --trust-key NAME.pub`.

The agent serves only bundles signed by one of the public keys in the board's
trusted-keys directory once there is any (/etc/edge-agent/trusted_keys on a
remote board, HOME/trusted_keys on a local board directory).
"""

from pathlib import Path

from edge_agent.errors import BundleError
from edge_agent.manifest import read_manifest_bytes
from edge_agent.signature import check_signature, format_key, key_id
from edge_convert import ConversionError
from edgectl.errors import EdgectlError
from edgectl.targets import q


def signed_by(bundle_dir, public_key_path):
    """The raw key in public_key_path, after checking the bundle is signed by it (before anything is uploaded)."""
    from edge_convert.signing import load_public_key  # cryptography: only when a key is given

    try:
        public = load_public_key(public_key_path)
        check_signature(bundle_dir, read_manifest_bytes(bundle_dir), {key_id(public): public})
    except (BundleError, ConversionError) as exc:
        raise EdgectlError(f"refusing to deploy with --trust-key {public_key_path}: {exc}") from None
    return public


def board_keys(target):
    """The ids of the keys the board trusts now (the names of its *.pub files)."""
    got = target.run(["sh", "-c", f"cd {q(target.trusted_keys_dir)} 2>/dev/null && ls -1 -- *.pub 2>/dev/null || true"])
    return sorted(Path(name).stem for name in got.stdout.split())


def install_key(target, board, public):
    """Install a public key in the board's trusted-keys directory (readable by the agent's service user)."""
    directory, kid = target.trusted_keys_dir, key_id(public)
    path = f"{directory}/{kid}.pub"
    script = (  # set -e: the here-document ends the && chain, and a failed write must not be moved into place
        f"set -e; mkdir -p {q(directory)} && chmod 755 {q(directory)} && "
        f"cat > {q(path + '.new')} <<'EDGECTL_KEY'\n{format_key('public', public)}EDGECTL_KEY\n"
        f"chmod 644 {q(path + '.new')} && mv -f {q(path + '.new')} {q(path)}"
    )
    got = target.run(["sh", "-c", script])
    if got.returncode != 0:
        hint = ""
        if not board.get("root"):
            hint = (
                f"; it needs root: deploy as root, or on the board run "
                f"`sudo install -D -m 644 KEY.pub {path}` and deploy again without --trust-key"
            )
        raise EdgectlError(f"{target}: cannot install the trusted key in {directory}{hint}:\n{got.stderr.strip()}")
    return kid


def new_key_id(target, public):
    """The id of `public` when the board does not trust it yet, else None (nothing to take out on an undo)."""
    if public is None or key_id(public) in board_keys(target):
        return None
    return key_id(public)
