"""Firmware profiles: one TOML file per board in firmware_profiles/, and budget checks against them."""

import os
from pathlib import Path

from edgectl.errors import EdgectlError, did_you_mean

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib

# Package data (the wheel ships them); EDGECTL_PROFILES names a directory of your own.
PROFILE_DIR = Path(os.environ.get("EDGECTL_PROFILES", Path(__file__).resolve().parent / "firmware_profiles"))
_REQUIRED = {
    "name": str,
    "board": str,
    "arch": str,
    "toolchain": dict,
    "system": dict,
    "runtime": dict,
    "budgets": dict,
}


def load_all():
    """Every profile, keyed by name, sorted."""
    if not PROFILE_DIR.is_dir():
        raise EdgectlError(f"{PROFILE_DIR}: no firmware profiles directory (set EDGECTL_PROFILES)")
    profiles = {}
    for path in sorted(PROFILE_DIR.glob("*.toml")):
        profile = _read(path)
        profiles[profile["name"]] = profile
    return profiles


def get(name):
    """One profile by name; the error lists the names there are."""
    profiles = load_all()
    if name not in profiles:
        raise EdgectlError(f"unknown profile {name!r}{did_you_mean(name, profiles)}; profiles: {', '.join(profiles)}")
    return profiles[name]


def choose(names):
    """The profiles named by --profile (each once), refused up front, before any work, when two of one arch
    differ in their compiler flags."""
    chosen = [get(name) for name in dict.fromkeys(names)]
    check_one_per_arch(chosen)
    return chosen


def check_one_per_arch(chosen):
    """A bundle holds one compiled library per arch: two profiles of one arch must build it alike."""
    first = {}
    for profile in chosen:
        other = first.setdefault(profile["arch"], profile)
        if other["toolchain"] != profile["toolchain"]:
            keys = sorted(set(other["toolchain"]) | set(profile["toolchain"]))
            key = next(k for k in keys if other["toolchain"].get(k) != profile["toolchain"].get(k))
            values = [_words(p["toolchain"].get(key)) for p in (other, profile)]
            raise EdgectlError(
                f"--profile {other['name']} and --profile {profile['name']} are both {profile['arch']} boards "
                f"built with a different toolchain {key} ({values[0]} and {values[1]}), and a bundle holds one "
                "library per arch: build one bundle per profile"
            )


def _words(value):
    return " ".join(map(str, value)) if isinstance(value, list) else str(value)


def _read(path):
    try:
        profile = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise EdgectlError(f"{path}: not valid TOML: {exc}") from None
    for key, kind in _REQUIRED.items():
        if not isinstance(profile.get(key), kind):
            raise EdgectlError(f"{path}: missing or wrong field {key!r}")
    if profile["name"] != path.stem:
        raise EdgectlError(f"{path}: name {profile['name']!r} must match the file name")
    return profile


def check_budgets(profile, info, measured=None):
    """Does a bundle (its inspect summary) fit a profile? One row per budget.

    Size and the board's arch and runtime are always checked; memory and latency
    when measured ({"rss_kb": peak, "p99_us": ...}, e.g. from `edgectl run --out`).
    Each row: {"budget", "limit", "value", "status": pass|fail|not measured, "why"}.
    """
    budgets = profile["budgets"]
    measured = measured or {}
    checks = [
        _check("bundle size", budgets["bundle_mb"], info["bundle_bytes"] / 2**20, "MB"),
        _check("agent memory", budgets["agent_memory_mb"], _scaled(measured.get("rss_kb"), 1 / 1024), "MB"),
        _check("latency p99", budgets["latency_ms"], _scaled(measured.get("p99_us"), 1 / 1000), "ms"),
    ]
    for stage in info["stages"]:
        if stage["kind"] == "tree-lib":
            ok = profile["arch"] in stage["archs"]
            why = f"has {', '.join(stage['archs'])}" + ("" if ok else f"; rebuild with --profile {profile['name']}")
            checks.append(_row(f"{stage['name']} library for {profile['arch']}", profile["arch"], ok, why))
        elif stage["kind"] == "tflite":
            runtime = profile["runtime"]["package"]
            why = f"runs on {runtime}" if runtime else "this board has no TFLite runtime (tree stages only)"
            checks.append(_row(f"{stage['name']} runtime", runtime or "none", bool(runtime), why))
    return checks


def budget_status(checks):
    """The budgets' verdict: "fail" when any fails, else "pass" (a budget not measured fails nothing)."""
    return "fail" if any(c["status"] == "fail" for c in checks) else "pass"


def _row(name, limit, ok, why, value=None):
    return {"budget": name, "limit": limit, "value": value, "status": "pass" if ok else "fail", "why": why}


def _scaled(value, factor):
    return None if value is None else value * factor


def _check(name, limit, value, unit):
    if value is None:
        return {"budget": name, "limit": limit, "value": None, "status": "not measured", "why": "no measurement given"}
    ok = value <= limit
    return _row(name, limit, ok, f"{value:.2f} {unit} {'<=' if ok else '>'} {limit} {unit}", round(value, 3))


def for_board(name, board, built_for=()):
    """(profile or None, how it was chosen): the named one, else the one profile matching the board's
    model and arch, else the one profile of the board's arch among those the bundle was built for."""
    if name:
        return get(name), "--profile"
    every = load_all().values()
    same_arch = [p for p in every if p["arch"] == board["arch"]]
    model = board.get("model") or ""
    by_model = [p for p in same_arch if model and matches_model(model, p["board"])]
    if len(by_model) == 1:
        return by_model[0], f"inferred from the board model {model!r}"
    built_here = [p for p in same_arch if p["name"] in built_for]
    if len(built_here) == 1:
        return built_here[0], f"inferred: the bundle was built for it ({board['arch']})"
    return None, f"none given and none inferred (board model {model or 'absent'}, arch {board['arch']})"


def matches_model(model, board_name):
    """ "Raspberry Pi 4 Model B Rev 1.4" matches "Raspberry Pi 4 Model B (64-bit ...)"; not Pi 400 for Pi 4."""
    name = board_name.split(" (")[0].split("/")[0].strip()
    return model == name or model.startswith(name + " ")
