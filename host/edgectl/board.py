"""What a board is: probed over its target before anything is uploaded."""

from edgectl.errors import EdgectlError

# One round trip; every line is `key=value`. Works on any POSIX shell with python3.
_PROBE = r"""
echo "arch=$(uname -m)"
echo "kernel=$(uname -r)"
echo "python=$(python3 -c 'import platform; print(platform.python_version())' 2>/dev/null)"
echo "glibc=$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{print $2}')"
echo "os=$(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")"
mkdir -p "$1" 2>/dev/null
echo "disk_free_kb=$(df -Pk "$1" 2>/dev/null | awk 'NR==2 {print $4}')"
echo "mem_available_kb=$(awk '/MemAvailable/ {print $2}' /proc/meminfo 2>/dev/null)"
echo "model=$(tr -d '\0' < /proc/device-tree/model 2>/dev/null)"
echo "systemd=$( [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ] && echo yes || echo no)"
echo "root=$( [ "$(id -u)" = 0 ] && echo yes || echo no)"
"""

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
