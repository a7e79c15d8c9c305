"""What the agent's Ed25519 verifier costs a board in install size: PyNaCl against cryptography.

For each arch, downloads the wheels a board would get (the same download as
`edgectl deploy --offline`, cached in ~/.cache/edgectl/wheels), installs each
library with its dependencies (cffi, pycparser) into an empty directory, and
reports the wheel bytes and the installed bytes (with .pyc), per package.
Needs the package index once; later runs use the cache.

    python benchmarks/verifier_size.py [--python 3.11] [--glibc 2.36] [--json]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from edgectl.console import table
from edgectl.runtime_env import download_wheels

LIBRARIES = ("pynacl", "cryptography")
ARCHS = ("x86_64", "aarch64")


def tree_bytes(path):
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def installed(wheels, library, board, dest):
    """Install library from the wheel directory into dest for the board's arch; {package: bytes}."""
    py = "".join(board["python"].split(".")[:2])
    platforms = [
        f"--platform=manylinux_2_{m}_{board['arch']}" for m in range(17, int(board["glibc"].split(".")[1]) + 1)
    ]
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--find-links", str(wheels), "--target", dest]
    cmd += ["--only-binary=:all:", f"--python-version={py}", "--implementation=cp", f"--abi=cp{py}", *platforms]
    subprocess.run([*cmd, f"--platform=manylinux2014_{board['arch']}", library], check=True, capture_output=True)
    sizes = {}
    for entry in Path(dest).iterdir():
        if entry.name == "bin":
            continue
        name = entry.name.split("-")[0].split(".")[0].lstrip("_").lower()
        name = {"nacl": "pynacl", "cffi_backend": "cffi"}.get(name, name)
        sizes[name] = sizes.get(name, 0) + (tree_bytes(entry) if entry.is_dir() else entry.stat().st_size)
    return sizes


def measure(arch, library, python, glibc):
    board = {"arch": arch, "python": python, "glibc": glibc}
    wheels = download_wheels(board, [library], lambda msg: print(msg, file=sys.stderr))
    wheel_bytes = sum(f.stat().st_size for f in wheels.glob("*.whl"))
    with tempfile.TemporaryDirectory() as dest:
        sizes = installed(wheels, library, board, dest)
    return {
        "arch": arch,
        "library": library,
        "wheels_kb": round(wheel_bytes / 1024),
        "installed_kb": round(sum(sizes.values()) / 1024),
        "by_package_kb": {k: round(v / 1024) for k, v in sorted(sizes.items())},
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default="3.11", help="the board's Python (3.11: Raspberry Pi OS bookworm)")
    parser.add_argument("--glibc", default="2.36", help="the board's glibc (2.36: bookworm)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    rows = [measure(arch, lib, args.python, args.glibc) for arch in ARCHS for lib in LIBRARIES]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    for row in rows:
        row["packages"] = ", ".join(f"{k} {v}" for k, v in row["by_package_kb"].items())
    columns = [("arch", "arch", ""), ("library", "library", ""), ("wheels_kb", "wheels KB", "d"),
               ("installed_kb", "installed KB", "d"), ("packages", "installed KB by package", "")]  # fmt: skip
    print(table(rows, columns))


if __name__ == "__main__":
    main()
