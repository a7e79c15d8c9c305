"""The bundle manifest: its schema, loading, and checksum verification.

The manifest is the contract between host and board. The host writes it through
`write_manifest`; the agent reads it through `load_bundle`. Both use this module.
"""

import hashlib
import json
from pathlib import Path

from edge_agent.errors import BundleError
from edge_agent.windows import FEATURE_KINDS

FORMAT = "edgectl-bundle"
# Version 2 added operating conditions in "preprocessing", selectable feature kinds
# and windows of one sample (tabular data such as SECOM). A version 1 bundle is a
# valid version 2 bundle, so the agent reads both.
FORMAT_VERSION = 2
READS_VERSIONS = (1, 2)
MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "manifest.sig"  # detached Ed25519 signature of manifest.json's bytes (edge_agent.signature)

# Top-level keys and the type each must have. Kept small on purpose: the agent
# checks what it relies on, and every later addition bumps FORMAT_VERSION.
_REQUIRED = {
    "format": str,
    "format_version": int,
    "bundle_id": str,
    "input": dict,
    "window": dict,
    "preprocessing": dict,
    "features": dict,
    "stages": list,
    "golden": dict,
    "files": dict,
}
_STAGE_REQUIRED = {"name": str, "kind": str, "input": str, "threshold": (int, float)}
STAGE_KINDS = ("tree-lib", "tflite")


def sha256_file(path):
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_manifest(bundle_dir, manifest):
    """Fill in the sha256 of every file in `bundle_dir` and write manifest.json.

    The signature cannot be listed in the manifest it signs; a new manifest voids the old signature.
    """
    bundle_dir = Path(bundle_dir)
    files = {}
    for path in sorted(bundle_dir.rglob("*")):
        if path.is_file() and path.name not in (MANIFEST_NAME, SIGNATURE_NAME):
            files[path.relative_to(bundle_dir).as_posix()] = sha256_file(path)
    manifest = dict(manifest, files=files)
    check_schema(manifest, bundle_dir / MANIFEST_NAME)
    (bundle_dir / SIGNATURE_NAME).unlink(missing_ok=True)
    (bundle_dir / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def check_schema(manifest, where):
    """Raise BundleError naming the first field that does not fit the schema."""
    if not isinstance(manifest, dict):
        raise BundleError(f"{where}: the manifest is not a JSON object")
    if manifest.get("format") != FORMAT:
        raise BundleError(f"{where}: not an edgectl bundle manifest (format={manifest.get('format')!r})")
    version = manifest.get("format_version")
    if version not in READS_VERSIONS:
        raise BundleError(
            f"{where}: bundle format version {version!r}, this agent reads versions "
            f"{', '.join(map(str, READS_VERSIONS))}; "
            "rebuild the bundle with a matching edgectl or upgrade the agent"
        )
    _check_keys(manifest, _REQUIRED, where)
    if not manifest["stages"]:
        raise BundleError(f"{where}: the bundle has no stages")
    for i, stage in enumerate(manifest["stages"]):
        _check_keys(stage, _STAGE_REQUIRED, f"{where}: stages[{i}]")
        if stage["kind"] not in STAGE_KINDS:
            raise BundleError(f"{where}: stages[{i}] has unknown kind {stage['kind']!r}")
    cascade = manifest.get("cascade")
    if cascade is not None and not (
        len(manifest["stages"]) == 2
        and isinstance(cascade, dict)
        and all(isinstance(cascade.get(k), (int, float)) for k in ("low", "high"))
        and cascade["low"] <= cascade["high"]
    ):
        raise BundleError(f"{where}: cascade needs two stages and a band with low <= high")
    window = manifest["window"]
    if not (isinstance(window.get("length"), int) and window["length"] >= 1):
        raise BundleError(f"{where}: window.length must be an integer >= 1")
    kinds = manifest["features"].get("kinds", FEATURE_KINDS)
    if not (isinstance(kinds, (list, tuple)) and kinds and all(kind in FEATURE_KINDS for kind in kinds)):
        raise BundleError(f"{where}: features.kinds must be a non-empty list of {', '.join(FEATURE_KINDS)}")
    if not (isinstance(window.get("stride"), int) and window["stride"] >= 1):
        raise BundleError(f"{where}: window.stride must be an integer >= 1")
    if not all(isinstance(digest, str) for digest in manifest["files"].values()):
        raise BundleError(f"{where}: files must map each file name to its sha256 (a hex string)")


def _check_keys(obj, required, where):
    if not isinstance(obj, dict):
        raise BundleError(f"{where}: must be a JSON object")
    for key, kind in required.items():
        if key not in obj:
            raise BundleError(f"{where}: missing field {key!r}")
        if not isinstance(obj[key], kind):
            raise BundleError(f"{where}: field {key!r} has the wrong type")


def read_manifest_bytes(bundle_dir):
    """The exact bytes of a bundle's manifest.json (what its signature covers)."""
    path = Path(bundle_dir) / MANIFEST_NAME
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise BundleError(f"{bundle_dir}: no {MANIFEST_NAME}; is this a bundle directory?") from None
    except OSError as exc:
        raise BundleError(f"{path}: cannot read the manifest: {exc}") from None


def load_bundle(bundle_dir, raw=None):
    """Read and check a bundle's manifest and the sha256 of every file it lists.

    raw: the manifest's bytes when the caller has read them already (to check their signature).
    Returns the manifest dict. Raises BundleError with the file and the mismatch.
    """
    bundle_dir = Path(bundle_dir)
    path = bundle_dir / MANIFEST_NAME
    try:
        manifest = json.loads((read_manifest_bytes(bundle_dir) if raw is None else raw).decode())
    except (ValueError, RecursionError) as exc:  # bad UTF-8 or JSON, an integer of over 4300 digits, deep nesting
        raise BundleError(f"{path}: cannot read the manifest: {str(exc)[:200]}") from None
    check_schema(manifest, path)
    for rel, expected in manifest["files"].items():
        file = bundle_dir / rel
        if Path(rel).is_absolute() or ".." in Path(rel).parts:
            raise BundleError(f"{path}: file entry {rel!r} points outside the bundle")
        try:
            actual = sha256_file(file) if file.is_file() else None
        except OSError as exc:  # a name too long for the file system, an unreadable file
            raise BundleError(f"{file}: listed in the manifest but cannot be read: {exc.strerror or exc}") from None
        if actual is None:
            raise BundleError(f"{file}: listed in the manifest but missing from the bundle")
        if actual != expected:
            raise BundleError(
                f"{file}: checksum mismatch (manifest sha256 {expected[:16]}..., file {actual[:16]}...); "
                "the bundle was modified or damaged in transit, rebuild or re-deploy it"
            )
    return manifest
