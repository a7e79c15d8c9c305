"""Signed bundles on the board: the key and signature formats, and the Ed25519 check of manifest.json.

The signature (manifest.sig, beside manifest.json) covers the manifest's exact
bytes; the manifest holds every other file's sha256, so one signature covers the
bundle. A board trusts the public keys in its trusted-keys directory. With none
there, bundles are served unsigned as before; with any, a bundle must be signed
by one of them. The Ed25519 library (PyNaCl, else cryptography) is imported only
when a key is installed, so boards that do not sign need neither.
"""

import base64
import binascii
import hashlib
import json
from pathlib import Path

from edge_agent.errors import AgentError, BundleError
from edge_agent.manifest import SIGNATURE_NAME, load_bundle, read_manifest_bytes

DEFAULT_TRUSTED_KEYS = "/etc/edge-agent/trusted_keys"
KEY_HEADER = "edgectl ed25519 {kind} key v1"  # kind: public or private; the next line is base64 of 32 bytes
KEY_BYTES = 32
SIGNATURE_FORMAT = "edgectl-signature"
SIGNATURE_VERSION = 1
ALGORITHM = "ed25519"
BACKENDS = ("nacl", "cryptography")  # PyNaCl first: the smaller install on a board


def key_id(public_key):
    """A key's short name: the first 16 hex digits of the sha256 of its 32 raw bytes."""
    return hashlib.sha256(public_key).hexdigest()[:16]


def format_key(kind, raw):
    """The text of a key file: the header line naming the key type, then base64 of the raw key."""
    return f"{KEY_HEADER.format(kind=kind)}\n{base64.b64encode(raw).decode()}\n"


def parse_key(text, kind, where):
    """The raw 32 bytes of a key file's text; AgentError naming `where` if it is not a `kind` key."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) != 2 or lines[0] != KEY_HEADER.format(kind=kind):
        raise AgentError(f"{where}: not an edgectl Ed25519 {kind} key (expected {KEY_HEADER.format(kind=kind)!r})")
    raw = _b64(lines[1])
    if raw is None or len(raw) != KEY_BYTES:
        raise AgentError(f"{where}: the {kind} key is not base64 of {KEY_BYTES} bytes")
    return raw


def trusted_keys(directory=DEFAULT_TRUSTED_KEYS):
    """{key id: raw public key} of every *.pub in the directory; {} when the directory does not exist.

    A directory that exists but cannot be read, or a malformed key, is an error: a
    board that meant to require signatures must never fall back to accepting anything.
    """
    directory = Path(directory)
    try:
        if not directory.exists():
            return {}
        paths = sorted(directory.glob("*.pub")) if directory.is_dir() else None
        if paths is None:
            raise AgentError(f"{directory}: the trusted keys path is not a directory")
        keys = {}
        for path in paths:
            raw = parse_key(path.read_text(), "public", path)
            keys[key_id(raw)] = raw
    except (OSError, UnicodeDecodeError) as exc:
        raise AgentError(f"{directory}: cannot read the trusted keys: {exc}") from None
    return keys


def public_key_from_b64(text, where):
    """{key id: raw key} of a public key given as base64 of its 32 bytes; AgentError naming `where` otherwise."""
    raw = _b64(text)
    if raw is None or len(raw) != KEY_BYTES:
        raise AgentError(f"{where}: not base64 of a {KEY_BYTES}-byte Ed25519 public key")
    return {key_id(raw): raw}


def signature_record(public_key, signature):
    """The contents of manifest.sig (written by the host's signer)."""
    return {
        "format": SIGNATURE_FORMAT,
        "version": SIGNATURE_VERSION,
        "algorithm": ALGORITHM,
        "key_id": key_id(public_key),
        "public_key": base64.b64encode(public_key).decode(),
        "signature": base64.b64encode(signature).decode(),
    }


def read_signature(bundle_dir):
    """manifest.sig as {"key_id", "public_key" (bytes), "signature" (bytes)}, or None when the bundle is unsigned."""
    path = Path(bundle_dir) / SIGNATURE_NAME
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{path}: cannot read the signature: {exc}") from None
    if not (
        isinstance(record, dict)
        and record.get("format") == SIGNATURE_FORMAT
        and record.get("version") == SIGNATURE_VERSION
        and record.get("algorithm") == ALGORITHM
    ):
        raise BundleError(f"{path}: not an {SIGNATURE_FORMAT} version {SIGNATURE_VERSION} ({ALGORITHM}) file")
    public_key, signature = _b64(record.get("public_key")), _b64(record.get("signature"))
    if public_key is None or len(public_key) != KEY_BYTES or signature is None or len(signature) != 64:
        raise BundleError(f"{path}: malformed public key or signature")
    return {"key_id": key_id(public_key), "public_key": public_key, "signature": signature}


def describe_signature(bundle_dir):
    """{"signed": False}, or the signer's key id and whether the signature matches the manifest
    under the public key it names (whether that key is trusted is the board's business)."""
    signed = read_signature(bundle_dir)
    if signed is None:
        return {"signed": False}
    valid = verify(signed["public_key"], read_manifest_bytes(bundle_dir), signed["signature"])
    return {"signed": True, "key_id": signed["key_id"], "valid": valid}


def check_signature(bundle_dir, raw_manifest, keys):
    """The id of the trusted key whose signature covers raw_manifest; BundleError when there is none."""
    bundle_dir = Path(bundle_dir)
    trusted = ", ".join(sorted(keys))
    signed = read_signature(bundle_dir)
    if signed is None:
        raise BundleError(
            f"bundle {bundle_dir} is not signed; this board requires bundles signed by one of: {trusted} "
            "(sign it with `edgectl build --sign KEY`)"
        )
    if signed["key_id"] not in keys:
        raise BundleError(
            f"bundle {bundle_dir} is signed by key {signed['key_id']}, which this board does not trust; "
            f"trusted keys: {trusted}"
        )
    if not verify(keys[signed["key_id"]], raw_manifest, signed["signature"]):
        raise BundleError(
            f"bundle {bundle_dir}: the signature by key {signed['key_id']} does not match {bundle_dir}/manifest.json; "
            "the manifest was changed after signing, rebuild and sign the bundle again"
        )
    return signed["key_id"]


def load_trusted_bundle(bundle_dir, keys_dir=DEFAULT_TRUSTED_KEYS, also_trust=None):
    """load_bundle, after checking the signature when the board has trusted keys: (manifest, signer key id or None).

    also_trust: {key id: raw key} trusted on top of the directory's (a deploy's --trust-key, checked
    before the key is installed). The manifest is read once: the bytes whose signature was checked are
    the bytes parsed.
    """
    keys = {**trusted_keys(keys_dir), **(also_trust or {})}
    if not keys:
        return load_bundle(bundle_dir), None
    raw = read_manifest_bytes(bundle_dir)
    signer = check_signature(bundle_dir, raw, keys)
    return load_bundle(bundle_dir, raw), signer


def verify(public_key, message, signature, backend=None):
    """True when `signature` is a valid Ed25519 signature of `message` by `public_key`."""
    for name in (backend,) if backend else BACKENDS:
        try:
            check = _BACKENDS[name]()
        except ImportError:
            continue
        return check(public_key, message, signature)
    if backend:
        raise AgentError(f"the Ed25519 library {backend} is not installed")
    raise AgentError(
        "this board has a trusted key but no Ed25519 library to check signatures with: "
        "install PyNaCl (pip install pynacl) where the agent runs"
    )


def _nacl():
    from nacl.exceptions import BadSignatureError
    from nacl.signing import VerifyKey

    def check(public_key, message, signature):
        try:
            VerifyKey(public_key).verify(message, signature)
        except (BadSignatureError, ValueError):
            return False
        return True

    return check


def _cryptography():
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    def check(public_key, message, signature):
        try:
            Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True

    return check


_BACKENDS = {"nacl": _nacl, "cryptography": _cryptography}


def _b64(text):
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, TypeError, ValueError):
        return None
