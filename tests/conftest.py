"""Shared fixtures: synthetic data, a small real bundle, and the real FD001 files.

A component a test needs and cannot find is a skip on a developer's machine and
a failure in CI (CI=true), never a silent pass.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from boards import arm64, sshd, systemd_board
from fuzzing import Fuzzer
from your_data import vibration_data

from edgectl import service
from edgectl.data import cmapss, synthetic
from edgectl.recipes import cmapss as recipe

ROOT = Path(__file__).resolve().parents[1]
FD001 = ROOT.parent / "shared" / "datasets" / "cmapss"


@pytest.fixture(scope="session", autouse=True)
def no_service_on_this_host():
    """No test installs the agent's unit on this machine: deploy refuses a board with this host's
    machine-id (service.NOT_THIS_HOST), and a unit that appears anyway is removed and fails the run."""
    os.environ[service.NOT_THIS_HOST] = "1"
    unit = Path(service.UNIT_PATH)
    existed = unit.exists()
    yield
    if unit.exists() and not existed:
        subprocess.run(["systemctl", "disable", "--now", service.UNIT_NAME], capture_output=True)
        unit.unlink()
        pytest.fail(f"a test installed {unit} on this machine; removed it")


def wait_until(check, timeout=30.0, every=0.05):
    """Poll check() until it is true or the timeout passes; its last value (a test asserts on it)."""
    deadline = time.monotonic() + timeout
    while not (value := check()) and time.monotonic() < deadline:
        time.sleep(every)
    return value


def missing(what):
    """Skip, or fail under CI, when a test's component is absent."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI: required component missing: {what}")
    pytest.skip(f"missing: {what}")


@pytest.fixture(scope="session")
def fd001_dir():
    if not (FD001 / "train_FD001.txt").is_file():
        missing(f"NASA C-MAPSS FD001 files at {FD001}")
    return FD001


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory):
    return synthetic.write_subset(tmp_path_factory.mktemp("synthetic"), n_train=30, n_test=12, seed=3)


@pytest.fixture(scope="session")
def synthetic_splits(synthetic_dir):
    return cmapss.load(synthetic_dir)


@pytest.fixture(scope="session")
def xgb_build(synthetic_splits, tmp_path_factory):
    """A real XGBoost bundle (TL2cgen C compiled by gcc) built from the synthetic fleet."""
    train_split, _ = synthetic_splits
    # Window features only: the agent serves them at about twice the rate of the history features, and the
    # many tests that stream through this bundle are about the agent, not the features (those have their own).
    return recipe.build_bundle(train_split, "xgboost", tmp_path_factory.mktemp("bundles") / "xgboost", history=False)


@pytest.fixture(scope="session")
def conv1d_build(synthetic_splits, tmp_path_factory):
    """A real Conv1D bundle (TFLite full INT8) built from the synthetic fleet."""
    train_split, _ = synthetic_splits
    return recipe.build_bundle(train_split, "conv1d", tmp_path_factory.mktemp("bundles") / "conv1d", history=False)


@pytest.fixture(scope="session")
def ssh_config(tmp_path_factory):
    """One ssh client config for every test board (edgectl reads EDGECTL_SSH_CONFIG)."""
    path = tmp_path_factory.mktemp("ssh") / "config"
    path.write_text("")
    os.environ["EDGECTL_SSH_CONFIG"] = str(path)
    return path


def add_board(config, board):
    with open(config, "a") as f:
        f.write(board.config.read_text())


@pytest.fixture(scope="session")
def ssh_board(ssh_config):
    """A real OpenSSH server on loopback; the x86_64 board the ssh tests deploy to."""
    if not Path(sshd.SSHD).exists() or os.geteuid() != 0:
        missing("openssh-server, run as root (apt-get install openssh-server)")
    board = sshd.start()
    add_board(ssh_config, board)
    yield board
    board.stop()


@pytest.fixture(scope="session")
def arm64_board(ssh_config):
    """The emulated arm64 board (Debian bookworm under qemu-user) behind a real sshd."""
    if os.geteuid() != 0:
        missing("root, to mount and chroot the emulated arm64 board")
    tool = arm64.tools_missing()
    if tool:
        missing(f"{tool} for the emulated arm64 board (make system-deps)")
    board = arm64.Arm64Board()
    add_board(ssh_config, board.ssh)
    yield board
    board.stop()


@pytest.fixture(scope="session")
def booted_board(ssh_config):
    """A Debian board with systemd as PID 1 (systemd-nspawn --boot) behind its own sshd: `sysboard`."""
    if os.geteuid() != 0:
        missing("root, to boot the systemd board with systemd-nspawn")
    tool = systemd_board.tools_missing()
    if tool:
        missing(f"{tool} for the booted systemd board (make system-deps)")
    board = systemd_board.SystemdBoard("sysboard")
    add_board(ssh_config, board)
    yield board
    board.stop()


@pytest.fixture
def agent():
    """Run the real edge-agent command: agent(*args, stdin=bytes) -> CompletedProcess (bytes)."""

    def run(*args, stdin=None, timeout=120):
        return subprocess.run(
            [sys.executable, "-m", "edge_agent", *args], input=stdin, capture_output=True, timeout=timeout
        )

    return run


_FUZZ = pytest.StashKey[dict]()


@pytest.fixture(scope="session")
def fuzz(tmp_path_factory, pytestconfig):
    """The session's Fuzzer (tests/fuzzing.py); its counts go to fuzz-summary.json and the summary line."""
    fuzzer = Fuzzer()
    yield fuzzer
    path = tmp_path_factory.getbasetemp() / "fuzz-summary.json"
    pytestconfig.stash[_FUZZ] = dict(fuzzer.write(path), path=str(path))


def pytest_terminal_summary(terminalreporter, config):
    got = config.stash.get(_FUZZ, None)
    if got and got["inputs"]:
        targets = ", ".join(f"{name} {n}" for name, n in got["by_target"].items())
        terminalreporter.write_line(
            f"fuzzed {got['inputs']} inputs ({targets}), {got['crashes']} crashes; {got['path']}"
        )


@pytest.fixture(scope="module")
def vibration(tmp_path_factory):
    """(folder, vibration.csv): a user's sensor CSV and the spec `edgectl init` wrote for it (tests/your_data.py)."""
    return vibration_data(tmp_path_factory)
