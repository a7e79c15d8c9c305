"""Writing a bundle: stage files, golden vectors, manifest with checksums, and a .tar.gz of it all."""

import datetime
import hashlib
import json
import platform
import shutil
import tarfile
from pathlib import Path

from edge_agent.manifest import FORMAT, FORMAT_VERSION, MANIFEST_NAME, write_manifest

GOLDEN_NAME = "golden.json"


def write_bundle(out_dir, name, spec, stages, golden, built_with, cascade=None):
    """Write manifest.json, golden.json and a .tar.gz into out_dir (the stage files must be there).

    spec: "input", "window", "preprocessing", "features", "label" sections of the manifest.
    stages: the manifest's stage entries, each with the self-test's "tolerance" (per window) and
    optionally "mean_tolerance" (over the golden windows; default the same).
    golden: {"lines": [...], "windows": [{"stream", "t", "scores": {stage: score}}]}.
    cascade: {"low", "high"}: with two stages, stage 2 answers when stage 1's score is in [low, high).
    Returns the manifest as written.
    """
    out_dir = Path(out_dir)
    (out_dir / GOLDEN_NAME).write_text(json.dumps(golden) + "\n")
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "bundle_id": "",
        "name": name,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **spec,
        "stages": stages,
        "golden": {
            "file": GOLDEN_NAME,
            "tolerance": {s["name"]: s["tolerance"] for s in stages},
            "mean_tolerance": {s["name"]: s.get("mean_tolerance", s["tolerance"]) for s in stages},
        },
        "built_with": {"host_arch": platform.machine(), "python": platform.python_version(), **built_with},
        **({"cascade": cascade} if cascade else {}),
        "files": {},
    }
    manifest = write_manifest(out_dir, manifest)
    manifest["bundle_id"] = f"{name}-{_content_hash(manifest)[:12]}"
    manifest = write_manifest(out_dir, manifest)
    archive(out_dir)
    return manifest


def _content_hash(manifest):
    body = {k: v for k, v in manifest.items() if k not in ("bundle_id", "created")}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def archive(bundle_dir):
    """Pack the bundle directory into <dir>.tar.gz beside it, with the bundle id as the top folder."""
    bundle_dir = Path(bundle_dir)
    bundle_id = json.loads((bundle_dir / MANIFEST_NAME).read_text())["bundle_id"]
    target = bundle_dir.with_name(bundle_dir.name + ".tar.gz")
    with tarfile.open(target, "w:gz") as tar:
        tar.add(bundle_dir, arcname=bundle_id)
    return target


def copy_into(bundle_dir, src, rel):
    """Copy a file into the bundle at relative path rel; return rel (for the manifest)."""
    dest = Path(bundle_dir) / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dest)
    return rel
