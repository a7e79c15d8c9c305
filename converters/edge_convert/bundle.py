"""Writing a bundle: stage files, golden vectors, manifest with checksums, and a .tar.gz of it all;
and `staged`, the one way every writer (convert, train, build, cascades) puts its output at --out."""

import contextlib
import datetime
import json
import os
import platform
import shutil
import tempfile
from pathlib import Path

from edge_agent.manifest import FORMAT, FORMAT_VERSION, MANIFEST_NAME, write_manifest
from edge_convert import ConversionError
from edge_convert.archive import pack

GOLDEN_NAME = "golden.json"
STAGING_SUFFIX = ".partial"  # of the directory a bundle is written in before it is moved to --out


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


def check_out(out):
    """Refuse an --out that exists and is neither a bundle nor an empty directory: it would be replaced."""
    out = Path(out)
    if out.is_file() or (out.is_dir() and any(out.iterdir()) and not _is_bundle(out)):
        raise ConversionError(f"{out}: exists and is not a bundle; choose another --out, or move it away")


def _is_bundle(folder):
    """A manifest.json of our format (a web app's or a browser extension's manifest.json is not)."""
    try:
        return json.loads((folder / MANIFEST_NAME).read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


@contextlib.contextmanager
def staged(out):
    """Yields where to write the bundle `out`, in a temporary directory beside it; its siblings (OUT.tar.gz,
    OUT.model.json, OUT-data/) are written there beside it too. When the block ends, each is moved into place
    (a bundle already at out is replaced only then, the bundle last); when it raises, nothing of it is left:
    a failed build never leaves a half-written --out that blocks the retry. Nests (train inside build)."""
    out = Path(out)
    check_out(out)
    created = _make_parents(out.parent)
    try:
        with tempfile.TemporaryDirectory(prefix=f".{out.name}.", suffix=STAGING_SUFFIX, dir=out.parent) as tmp:
            yield Path(tmp) / out.name
            _move_into_place(Path(tmp), out)
    except BaseException:
        for folder in created:  # deepest first; only the ones this call made, and only while empty
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def final_path(path):
    """Where a path written inside staging directories lands once they are moved into place: what progress
    lines name (a staging directory is `.NAME.XXXX.partial`, beside the NAME it becomes)."""
    parts = Path(path).parts
    return Path(*[part for part in parts if not (part.startswith(".") and part.endswith(STAGING_SUFFIX))])


def _make_parents(folder):
    """Create folder and its missing parents; return the ones created, deepest first."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    return missing


def _move_into_place(tmp, out):
    check_out(out)  # again: the build took a while
    entries = sorted(tmp.iterdir(), key=lambda entry: entry.name == out.name)
    try:
        for entry in entries:
            dest = out.parent / entry.name
            if entry.name == out.name and dest.exists():
                dest.rename(tmp / ".replaced")  # removed with tmp
                try:
                    entry.rename(dest)
                except OSError:
                    (tmp / ".replaced").rename(dest)  # the old bundle stays where it was
                    raise
            elif entry.is_dir() and dest.is_dir():
                _merge(entry, dest)  # OUT-data/ may hold the user's own files: keep them
            else:
                os.replace(entry, dest)
    except OSError as exc:
        raise ConversionError(f"cannot move {entry.name} into place in {out.parent}: {exc.strerror or exc}") from None


def _merge(src, dest):
    """Move every file of src into dest, replacing files of the same name."""
    for entry in src.iterdir():
        target = dest / entry.name
        if entry.is_dir() and target.is_dir():
            _merge(entry, target)
        else:
            os.replace(entry, target)
