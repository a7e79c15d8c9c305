"""What board this is, and how hot and throttled it is: read from /proc, /sys and vcgencmd.

A source a board does not have is reported as absent (None), never guessed.

Testing hook: EDGE_AGENT_SYSFS_ROOT=DIR reads /sys, /proc/device-tree and
/proc/cpuinfo under DIR instead (a fake tree), and skips vcgencmd, so a test can
show the agent a throttled Raspberry Pi on any machine.
"""

import glob
import os
import platform
import shutil
import subprocess

SYSFS_ROOT_ENV = "EDGE_AGENT_SYSFS_ROOT"
MODEL_PATH = "/proc/device-tree/model"
CPUINFO_PATH = "/proc/cpuinfo"
THROTTLED_PATH = "/sys/devices/platform/soc/soc:firmware/get_throttled"
THERMAL_GLOB = "/sys/class/thermal/thermal_zone*"
CPUFREQ_PATH = "/sys/devices/system/cpu/cpu0/cpufreq"

# get_throttled bits (Raspberry Pi firmware): bit n is "now", bit n + 16 "since boot".
THROTTLE_FLAGS = ("under-voltage", "arm-frequency-capped", "throttled", "soft-temperature-limit")

# /proc/cpuinfo "CPU part" of ARM Ltd cores (implementer 0x41) on the boards edgectl targets.
ARM_PARTS = {
    "0xd03": "Cortex-A53",
    "0xd04": "Cortex-A35",
    "0xd05": "Cortex-A55",
    "0xd07": "Cortex-A57",
    "0xd08": "Cortex-A72",
    "0xd09": "Cortex-A73",
    "0xd0b": "Cortex-A76",
    "0xd42": "Cortex-A78AE",
}


def _path(path):
    return os.environ.get(SYSFS_ROOT_ENV, "") + path


def _read(path):
    """A board file's text, under the testing hook's root when set."""
    return _read_file(_path(path))


def _read_file(path):
    """A file's text (NULs stripped: device-tree strings end in one), or None when absent."""
    try:
        with open(path, "rb") as f:
            return f.read().replace(b"\0", b"").decode(errors="replace").strip()
    except OSError:
        return None


def _vcgencmd(*args):
    """vcgencmd's answer after the '=', or None without vcgencmd (or under the testing hook)."""
    if os.environ.get(SYSFS_ROOT_ENV) or not shutil.which("vcgencmd"):
        return None
    try:
        got = subprocess.run(["vcgencmd", *args], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    out = got.stdout.strip()
    return out.split("=", 1)[1] if got.returncode == 0 and "=" in out else None


def identity():
    """The board: model, CPU, cores, kernel, OS, Python and the runtime versions."""
    cpuinfo = _cpuinfo()
    model, model_source = _read(MODEL_PATH), MODEL_PATH
    if not model and cpuinfo.get("Model"):
        model, model_source = cpuinfo["Model"], CPUINFO_PATH  # a Pi without device tree in /proc
    return {
        "model": model or None,
        "model_source": model_source if model else None,
        "cpu": _cpu_name(cpuinfo),
        "cores": os.cpu_count(),
        "arch": platform.machine(),
        "kernel": platform.release(),
        "os": _os_name(),
        "python": platform.python_version(),
        "cpufreq_khz": _cpufreq(),
        "runtimes": runtime_versions(),
    }


def _cpuinfo():
    """The first value of each key in /proc/cpuinfo (empty when absent)."""
    info = {}
    for line in (_read(CPUINFO_PATH) or "").splitlines():
        key, sep, value = line.partition(":")
        if sep:
            info.setdefault(key.strip(), value.strip())
    return info


def _cpu_name(cpuinfo):
    if cpuinfo.get("model name"):
        return cpuinfo["model name"]
    part = cpuinfo.get("CPU part")
    if part:
        core = ARM_PARTS.get(part, f"ARM part {part}") if cpuinfo.get("CPU implementer") == "0x41" else f"part {part}"
        return f"{core} ({cpuinfo['Hardware']})" if cpuinfo.get("Hardware") else core
    return cpuinfo.get("Hardware") or None


def _os_name():
    try:
        with open("/etc/os-release") as f:
            fields = dict(line.rstrip("\n").split("=", 1) for line in f if "=" in line)
    except OSError:
        return None
    return fields.get("PRETTY_NAME", "").strip('"') or None


def _cpufreq():
    """{cur, max} of cpu0's clock in kHz, or None without cpufreq."""
    cur, top = _read(f"{CPUFREQ_PATH}/scaling_cur_freq"), _read(f"{CPUFREQ_PATH}/cpuinfo_max_freq")
    if not (cur and top and cur.isdigit() and top.isdigit()):
        return None
    return {"cur": int(cur), "max": int(top)}


def runtime_versions():
    """numpy's version and the installed TFLite runtime's (None when there is none); no runtime is imported."""
    from importlib import metadata

    import numpy

    tflite = None
    for dist in ("ai-edge-litert", "tflite-runtime", "tensorflow-cpu", "tensorflow"):
        try:
            tflite = {"package": dist, "version": metadata.version(dist)}
            break
        except metadata.PackageNotFoundError:
            continue
    return {"numpy": numpy.__version__, "tflite": tflite}


def thermal():
    """Temperature and throttling flags now: {"temp_c", "temp_source", "throttled", "throttled_source"}."""
    temp_c, temp_source = _temperature()
    raw, source = _vcgencmd("get_throttled"), "vcgencmd get_throttled"
    if raw is None:
        raw, source = _read(THROTTLED_PATH), THROTTLED_PATH
    throttled = decode_throttled(raw) if raw else None
    return {
        "temp_c": temp_c,
        "temp_source": temp_source,
        "throttled": throttled,
        "throttled_source": source if throttled else None,
    }


def temperature_c():
    """The SoC temperature in °C, or None: cheap enough to sample during a run (no vcgencmd)."""
    return _zone_temperature()[0]


def _temperature():
    got = _vcgencmd("measure_temp")  # "48.3'C"
    if got:
        try:
            return float(got.split("'")[0]), "vcgencmd measure_temp"
        except ValueError:
            pass
    return _zone_temperature()


def _zone_temperature():
    """(°C, path) of the CPU/SoC thermal zone (else the first zone), or (None, None)."""
    zones = sorted(glob.glob(_path(THERMAL_GLOB)))
    preferred = [z for z in zones if any(k in (_read_file(f"{z}/type") or "") for k in ("cpu", "soc"))]
    for zone in preferred + zones:
        milli = _read_file(f"{zone}/temp")
        if milli and milli.lstrip("-").isdigit():
            return int(milli) / 1000, f"{zone}/temp"
    return None, None


def decode_throttled(raw):
    """{"raw", "now": [flags], "since_boot": [flags]} from get_throttled's hex value ("0x50005" or "50005")."""
    try:
        value = int(raw, 16)
    except ValueError:
        return None
    return {
        "raw": f"0x{value:x}",
        "now": [name for bit, name in enumerate(THROTTLE_FLAGS) if value >> bit & 1],
        "since_boot": [name for bit, name in enumerate(THROTTLE_FLAGS) if value >> (bit + 16) & 1],
    }
