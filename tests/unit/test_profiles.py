import pytest

from edge_convert import ConversionError, trees
from edgectl import profiles
from edgectl.errors import EdgectlError

BOARDS = {
    "rpi-zero2w": "aarch64",
    "rpi3": "aarch64",
    "rpi4": "aarch64",
    "rpi5": "aarch64",
    "rpi3-armhf": "armv7l",
    "rpi4-armhf": "armv7l",
    "jetson-nano": "aarch64",
    "jetson-orin-nano": "aarch64",
}


def test_every_board_has_a_profile_with_arch_toolchain_and_budgets():
    found = profiles.load_all()
    assert {name: p["arch"] for name, p in found.items()} == BOARDS
    for p in found.values():
        assert any(flag.startswith("-mcpu=") for flag in p["toolchain"]["cflags"])
        assert p["toolchain"]["debian_package"].startswith("gcc-")
        assert set(p["budgets"]) == {"latency_ms", "agent_memory_mb", "bundle_mb"}
    assert found["rpi3-armhf"]["runtime"] == {"package": "tflite-runtime", "numpy": "<2"}
    assert found["jetson-nano"]["runtime"]["package"] == ""


def test_unknown_profile_lists_the_names():
    with pytest.raises(EdgectlError, match="unknown profile 'pi9'; profiles: jetson-nano"):
        profiles.get("pi9")


def info(bundle_mb, stages):
    return {"bundle_bytes": bundle_mb * 2**20, "stages": stages}


def test_budgets_pass_fail_and_not_measured_with_reasons():
    rpi = profiles.get("rpi-zero2w")  # 5 MB bundle, 120 MB memory, 50 ms p99
    tree = {"name": "xgboost", "kind": "tree-lib", "archs": ["x86_64"]}
    checks = {c["budget"]: c for c in profiles.check_budgets(rpi, info(6, [tree]))}
    assert checks["bundle size"]["status"] == "fail" and "6.00 MB > 5 MB" in checks["bundle size"]["why"]
    assert checks["agent memory"]["status"] == "not measured"
    assert checks["xgboost library for aarch64"]["status"] == "fail"
    assert "rebuild with --profile rpi-zero2w" in checks["xgboost library for aarch64"]["why"]
    measured = {"rss_kb": 200 * 1024, "p99_us": 900.0}
    tree["archs"] = ["aarch64", "x86_64"]
    checks = {c["budget"]: c for c in profiles.check_budgets(rpi, info(1, [tree]), measured)}
    assert checks["agent memory"]["status"] == "fail" and checks["latency p99"]["status"] == "pass"
    assert checks["xgboost library for aarch64"]["status"] == "pass"


def test_a_neural_stage_fails_on_a_board_without_a_tflite_runtime():
    stage = {"name": "conv1d", "kind": "tflite", "archs": ["any"]}
    check = profiles.check_budgets(profiles.get("jetson-nano"), info(1, [stage]))[-1]
    assert check["status"] == "fail" and "no TFLite runtime" in check["why"]


def test_a_missing_cross_compiler_names_the_package_to_install():
    toolchain = {"triple": "riscv99-linux-gnu", "cflags": ["-O2"], "debian_package": "gcc-riscv99-linux-gnu"}
    with pytest.raises(ConversionError, match="apt-get install gcc-riscv99-linux-gnu"):
        trees.compiler(toolchain)


def test_every_cross_profile_names_the_c_library_package_of_its_arch():
    libc = {"aarch64": "libc6-dev-arm64-cross", "armv7l": "libc6-dev-armhf-cross"}
    for p in profiles.load_all().values():
        assert p["toolchain"]["libc_package"] == libc[p["arch"]]


def test_a_compiler_without_its_c_library_headers_names_the_package_to_install():
    # -nostdinc: the real gcc, run as it is on a machine where the C library's headers are absent.
    toolchain = dict(trees.HOST_TOOLCHAIN, cflags=["-O2", "-nostdinc"], libc_package="libc6-dev-test")
    with pytest.raises(
        ConversionError, match=r"gcc cannot build against its C library \(.*math\.h.*apt-get install libc6-dev-test"
    ):
        trees.compiler(toolchain)
    assert trees.compiler(trees.HOST_TOOLCHAIN) == "gcc"
