"""What a board is: probed over its target before anything is uploaded."""

import contextlib
import os
import socket
import subprocess
import time
from pathlib import Path

from edgectl.errors import EdgectlError
from edgectl.targets import q

# Free kB on the file system that holds a path, or would: the path may not exist yet (creates nothing).
_FREE_KB = r"""
free_kb() { d="$1"; while [ ! -d "$d" ]; do d=$(dirname "$d"); done; df -Pk "$d" 2>/dev/null | awk 'NR==2 {print $4}'; }
"""

# One round trip; every line is `key=value`. Works on any POSIX shell with python3.
_PROBE = (
    _FREE_KB
    + r"""
echo "arch=$(uname -m)"
echo "kernel=$(uname -r)"
echo "python=$(python3 -c 'import platform; print(platform.python_version())' 2>/dev/null)"
echo "glibc=$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{print $2}')"
echo "os=$(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")"
echo "disk_free_kb=$(free_kb "$1/releases")"
echo "mem_available_kb=$(awk '/MemAvailable/ {print $2}' /proc/meminfo 2>/dev/null)"
echo "model=$(tr -d '\0' < /proc/device-tree/model 2>/dev/null)"
echo "systemd=$( [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ] && echo yes || echo no)"
echo "systemd_version=$(systemctl --version 2>/dev/null | awk 'NR==1 {print $2}')"
echo "root=$( [ "$(id -u)" = 0 ] && echo yes || echo no)"
echo "machine_id=$(cat /etc/machine-id 2>/dev/null)"
"""
)

MIN_PYTHON = (3, 8)  # the agent code; Jetson Nano (JetPack 4) runs 3.8 at best


def probe(target):
    """A dict of the board's arch, kernel, Python, glibc, OS, free disk and memory, model, systemd."""
    got = target.run(["sh", "-c", _PROBE, "probe", target.home])
    if got.returncode != 0:
        raise EdgectlError(f"{target}: cannot probe the board: {got.stderr.strip()}")
    info = dict(line.split("=", 1) for line in got.stdout.splitlines() if "=" in line)
    for key in ("disk_free_kb", "mem_available_kb"):
        info[key] = int(info[key]) if info.get(key, "").isdigit() else None
    info["systemd"] = info.get("systemd") == "yes"
    info["root"] = info.get("root") == "yes"
    return info


def check_fits(board, manifest, target):
    """Refuse, before any upload, a bundle this board cannot run; say why."""
    where = f"{target} ({board['arch']}, Python {board['python'] or 'missing'})"
    if not board.get("python"):
        raise EdgectlError(f"{where}: no python3 on the board; install python3 and python3-venv")
    if tuple(int(p) for p in board["python"].split(".")[:2]) < MIN_PYTHON:
        raise EdgectlError(f"{where}: the agent needs Python {'.'.join(map(str, MIN_PYTHON))} or newer")
    for stage in manifest["stages"]:
        libs = stage.get("libs")
        if libs is not None and board["arch"] not in libs:
            raise EdgectlError(
                f"{where}: bundle {manifest['bundle_id']} has no {stage['name']} library for {board['arch']} "
                f"(it has {', '.join(sorted(libs))}); rebuild it with --profile for this board"
            )


def check_space(target, bundle_dir, bundle_id):
    """Refuse, before the upload, a bundle that does not fit where the board keeps its releases."""
    files = [p.stat().st_size for p in Path(bundle_dir).rglob("*") if p.is_file()]
    need = sum(-(-size // 4096) * 4096 for size in files) + 64 * 1024  # whole blocks, and the folders
    where = f"{target.home}/releases"
    got = target.run(["sh", "-c", _FREE_KB + 'free_kb "$1"', "free", where])
    free = int(got.stdout) * 1024 if got.stdout.strip().isdigit() else None
    if free is not None and free < need:
        raise EdgectlError(
            f"{target}: no room for bundle {bundle_id}: it needs {_mb(need)} MB and {where} has {_mb(free)} MB "
            "free. Nothing was changed; free space on the board (releases other than current and previous "
            "can go) and deploy again"
        )


def _mb(n):
    return f"{n / 2**20:.1f}"


# Holds an exclusive flock on HOME/.lock while its stdin is open; prints "locked" or "busy <holder>".
# The lock dies with the connection, so a killed deploy never leaves the board locked.
_LOCK_HOLDER = r"""
import fcntl, sys
f = open(sys.argv[1], "a+")
try:
    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
except OSError:
    f.seek(0)
    print("busy " + f.read().strip(), flush=True)
    sys.exit(0)
f.seek(0)
f.truncate()
f.write(sys.argv[2])
f.flush()
print("locked", flush=True)
sys.stdin.read()
"""


@contextlib.contextmanager
def locked(target):
    """Hold the board's deploy lock (HOME/.lock); EdgectlError naming the holder when another deploy has it."""
    holder = f"edgectl on {socket.gethostname()} (pid {os.getpid()}) since {time.strftime('%Y-%m-%d %H:%M:%S')}"
    home = q(target.home)
    script = f"mkdir -p {home} && exec python3 -c {q(_LOCK_HOLDER)} {home}/.lock {q(holder)}"
    proc = target.popen(["sh", "-c", script], stdin=subprocess.PIPE)
    answer = proc.stdout.readline().decode(errors="replace").strip()
    try:
        if answer.startswith("busy"):
            raise EdgectlError(
                f"{target}: another deploy holds the board's lock ({answer[5:] or 'unknown'}); "
                "wait for it to finish, then run this again"
            )
        if answer != "locked":
            err = proc.stderr.read().decode(errors="replace").strip()
            target.check_reachable(proc.wait(timeout=30), err)
            raise EdgectlError(f"{target}: cannot take the board's deploy lock in {target.home}: {err or answer}")
        yield
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        proc.stdout.close()
        proc.stderr.close()
