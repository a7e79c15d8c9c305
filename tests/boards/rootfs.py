"""Root file systems of the test boards: built once per machine by a recipe script, cached by its hash."""

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

CACHE = Path.home() / ".cache" / "edgectl" / "boards"


def cached_tarball(recipe, name):
    """CACHE/NAME-<hash of the recipe>.tar, built first by `bash RECIPE OUT` if this recipe has none yet."""
    key = hashlib.sha256(Path(recipe).read_bytes()).hexdigest()[:12]
    tarball = CACHE / f"{name}-{key}.tar"
    if not tarball.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        print(f"building the {name} board root file system (once per machine): {tarball}", file=sys.stderr)
        subprocess.run(["bash", str(recipe), str(tarball)], check=True)
    return tarball


def first_missing(tools):
    """The first of these commands or paths this machine lacks, or None."""
    for tool in tools:
        if shutil.which(tool) is None and not Path(tool).exists():
            return tool
    return None
