"""Writing a bundle: stage files, golden vectors, manifest with checksums, and a .tar.gz of it all."""

import datetime
import json
import platform
import shutil
from pathlib import Path

from edge_agent.manifest import FORMAT, FORMAT_VERSION, write_manifest
from edge_convert.archive import pack

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
    manifest = write_manifest(out_dir, manifest)  # the id comes from the content
    pack(out_dir)
    return manifest


def copy_into(bundle_dir, src, rel):
    """Copy a file into the bundle at relative path rel; return rel (for the manifest)."""
    dest = Path(bundle_dir) / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dest)
    return rel
