"""Signing bundles on the host: Ed25519 key pairs (`edgectl keygen`) and manifest.sig (`edgectl build --sign`).

Uses `cryptography`. The key and signature formats belong to the agent
(edge_agent.signature), which checks them on the board.
"""

import json
import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge_agent.errors import AgentError
from edge_agent.manifest import SIGNATURE_NAME, load_bundle, read_manifest_bytes
from edge_agent.signature import KEY_HEADER, format_key, key_id, parse_key, signature_record
from edge_convert import ConversionError
from edge_convert.archive import pack


def generate_key(out):
    """Write out.key (the private key, mode 0600) and out.pub; return {"key_id", "private_key", "public_key"}.

    Existing files are never overwritten: a lost private key cannot sign for the boards that trust it.
    """
    private_path, public_path = Path(f"{out}.key"), Path(f"{out}.pub")
    for path in (private_path, public_path):
        if path.exists():
            raise ConversionError(f"{path} exists; choose another --out or move it away (keys are never overwritten)")
    key = Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes_raw()
    # O_EXCL with mode 0600: the private key is never readable by others, not even for a moment.
    try:
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(format_key("private", key.private_bytes_raw()))
        public_path.write_text(format_key("public", public))
    except OSError as exc:
        raise ConversionError(f"cannot write the key pair {out}.key/.pub: {exc.strerror}") from None
    return {"key_id": key_id(public), "private_key": str(private_path), "public_key": str(public_path)}


def load_private_key(path):
    """The Ed25519 private key in a file written by generate_key; refuses one that others can read."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
        text = path.read_text()
    except OSError as exc:
        raise ConversionError(f"cannot read the signing key {path}: {exc.strerror}") from None
    if text.lstrip().startswith(KEY_HEADER.format(kind="public")):  # before the mode: a .pub is readable by design
        private = path.with_suffix(".key") if path.suffix == ".pub" else "NAME.key"
        raise ConversionError(
            f"{path} is a public key; --sign takes the private key of the pair: pass {private} "
            "(edgectl keygen writes NAME.key and NAME.pub)"
        )
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConversionError(
            f"{path}: the signing key is readable by others (mode {mode & 0o777:o}); chmod 600 {path}"
        )
    try:
        return Ed25519PrivateKey.from_private_bytes(parse_key(text, "private", path))
    except AgentError as exc:
        raise ConversionError(str(exc)) from None


def load_public_key(path):
    """The raw 32 bytes of a public key file (NAME.pub)."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConversionError(f"cannot read the public key {path}: {exc.strerror}") from None
    if text.lstrip().startswith(KEY_HEADER.format(kind="private")):  # the secret must never leave this machine
        public = Path(path).with_suffix(".pub") if Path(path).suffix == ".key" else "NAME.pub"
        raise ConversionError(
            f"{path} is a private key; --trust-key takes the public key of the pair: pass {public} "
            "(the private key stays on the machine that signs)"
        )
    try:
        return parse_key(text, "public", path)
    except AgentError as exc:
        raise ConversionError(str(exc)) from None


def sign_bundle(bundle_dir, private_key):
    """Sign the bundle's manifest.json (after checking its files), write manifest.sig and re-archive the bundle.

    Returns the signer's key id.
    """
    bundle_dir = Path(bundle_dir)
    load_bundle(bundle_dir)  # never sign a bundle whose files do not match its manifest
    raw = read_manifest_bytes(bundle_dir)
    public = private_key.public_key().public_bytes_raw()
    record = signature_record(public, private_key.sign(raw))
    (bundle_dir / SIGNATURE_NAME).write_text(json.dumps(record, indent=2) + "\n")
    pack(bundle_dir)
    return record["key_id"]
