"""The whole path on an emulated arm64 board (Debian bookworm under qemu-user, behind a real sshd):
`edgectl build --profile rpi4` on real FD001, `edgectl deploy --offline` over SSH, the agent on
aarch64 streaming the FD001 test set, predictions equal to the host's."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli import edgectl

from edge_agent.runtimes.litert import TFLiteStage
from edge_convert import signing, trees
from edgectl import deploy, evaluate, runner
from edgectl.data import cmapss
from edgectl.recipes import cmapss as recipe
from edgectl.targets import parse_target
from edgectl.windowing import make_windows

pytestmark = [pytest.mark.slow, pytest.mark.arm64, pytest.mark.realdata]


def edgectl_json(*args):
    proc = edgectl(*args, timeout=3600)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def target(arm64_board):
    t = parse_target("ssh://arm64board/opt/edgectl")
    yield t
    t.close()


@pytest.fixture(scope="module")
def fd001(fd001_dir):
    return cmapss.load(fd001_dir)


def agent_scores(records, windows):
    by_window = evaluate.scores_by_window(records)
    assert len(by_window) == len(windows)
    return np.array([by_window[(s, t)] for s, t in zip(windows.stream, windows.t)])


@pytest.fixture(scope="module")
def rpi4_build(fd001_dir, tmp_path_factory):
    """`edgectl build --profile rpi4` on FD001: (bundle directory, the build's --json)."""
    out = tmp_path_factory.mktemp("rpi4") / "xgboost"
    info = edgectl_json("build", "--data", str(fd001_dir), "--profile", "rpi4", "--out", str(out), "--json", "-q")
    return out, info


def test_tree_bundle_cross_built_for_rpi4_serves_fd001_on_aarch64(target, fd001, rpi4_build):
    out, info = rpi4_build
    parity = info["stages"][0]["parity"]
    assert parity["aarch64"]["status"] == "ok" and parity["aarch64"]["max_abs_diff"] <= 1e-6
    result = edgectl_json("deploy", str(out), str(target), "--offline", "--serial", "--json", "-q")
    assert result["board"]["arch"] == "aarch64" and result["health"]["healthy"]
    assert target.run([target.agent_python, "-c", "import numpy, serial, cobs"]).returncode == 0

    _, test = fd001
    records = runner.stream_file(target, test.path)
    assert records[0]["arch"] == "aarch64" and records[0]["windows"] == "kernel"
    manifest = json.loads((out / "manifest.json").read_text())
    windows = make_windows(test.rows, manifest, keep_raw=False)
    host = trees.library_scores(out / manifest["stages"][0]["libs"]["x86_64"], windows.features)
    assert np.max(np.abs(agent_scores(records, windows) - host)) <= 1e-6


WINDOW_FEATURES = """
import sys
import numpy as np
from edge_agent.manifest import load_bundle
from edge_agent.pipeline import Pipeline
bundle = sys.argv[1]
pipeline = Pipeline(bundle, load_bundle(bundle))
assert type(pipeline.windows).__name__ == "KernelWindows", type(pipeline.windows)
rows = []
for line in sys.stdin:
    sample = pipeline.parser.parse(line.strip())
    window = pipeline.windows.get(sample.stream)
    if pipeline.windows.step(window, sample.values, sample.settings, sample.time)[0] == 1:
        rows.append(window.features())
sys.stdout.buffer.write(np.array(rows).tobytes())
"""


def test_the_window_kernel_on_aarch64_gives_the_hosts_features_bit_for_bit(target, fd001, rpi4_build):
    """The kernel cross-compiled into the rpi4 bundle's aarch64 library, run under qemu on the board,
    against the host's build of the same source: every feature of every window, exactly."""
    out, _ = rpi4_build
    edgectl_json("deploy", str(out), str(target), "--offline", "--json", "-q")
    lines = "".join(Path(fd001[1].path).read_text().splitlines(keepends=True)[:3000]).encode()
    argv = ["env", f"PYTHONPATH={target.agent_link}", target.agent_python, "-c", WINDOW_FEATURES,
            f"{target.home}/current"]  # fmt: skip
    proc = target.popen(argv, subprocess.PIPE)
    board, err = proc.communicate(lines, timeout=1800)
    assert proc.returncode == 0, err.decode()
    host = subprocess.run([sys.executable, "-c", WINDOW_FEATURES, str(out)], input=lines, capture_output=True)
    assert host.returncode == 0, host.stderr.decode()
    assert len(board) == len(host.stdout) > 2000 * 8 and board == host.stdout


def test_int8_bundle_serves_fd001_on_aarch64_within_the_manifest_tolerance(target, fd001, tmp_path_factory):
    train, test = fd001
    result = recipe.build_bundle(train, "conv1d", tmp_path_factory.mktemp("int8") / "conv1d")
    deployed = deploy.deploy(result.bundle_dir, target, offline=True)
    assert deployed["health"]["healthy"]
    records = runner.stream_file(target, test.path)
    assert records[0]["arch"] == "aarch64"
    stage = result.manifest["stages"][0]
    windows = make_windows(test.rows, result.manifest)
    host_model = TFLiteStage(result.bundle_dir, stage)
    host = np.array([host_model.predict(x) for x in windows.raw])
    got = agent_scores(records, windows)
    diff = np.abs(got - host)
    flips = np.mean((got >= stage["threshold"]) != (host >= stage["threshold"]))
    print(
        f"INT8 aarch64 vs x86_64 on {len(diff)} FD001 windows: max {diff.max():.4f}, "
        f"p99.9 {np.percentile(diff, 99.9):.4f}, mean {diff.mean():.5f}, over 0.03: {np.mean(diff > 0.03):.3%}, "
        f"nonzero: {np.mean(diff > 0):.3%}, decisions flipped: {flips:.3%}"
    )
    assert diff.max() <= stage["tolerance"]
    assert diff.mean() <= stage["mean_tolerance"]
    assert flips <= 0.005


def test_the_signed_build_of_a_served_unsigned_release_serves_after_deploy_trust_key(
    target, rpi4_build, fd001, tmp_path
):
    """Issue 18's sequence over SSH: the unsigned release (same bundle id) is on the board; deploying the
    signed build with --trust-key must leave a board that serves it, not one that refuses to."""
    out, _ = rpi4_build
    edgectl_json("deploy", str(out), str(target), "--offline", "--json", "-q")
    key = edgectl_json("keygen", "--out", str(tmp_path / "release"), "--json")
    signed = tmp_path / "signed"
    shutil.copytree(out, signed)
    signing.sign_bundle(signed, signing.load_private_key(key["private_key"]))
    try:
        result = edgectl_json("deploy", str(signed), str(target), "--offline", "--trust-key", key["public_key"],
                              "--json", "-q")  # fmt: skip
        assert result["bundle_id"] == json.loads((out / "manifest.json").read_text())["bundle_id"]
        assert not result["reused"] and result["trusted_keys"] == [key["key_id"]] and result["health"]["healthy"]
        board = edgectl("status", str(target), "--json")
        assert board.returncode == 0 and json.loads(board.stdout)["health"] == "healthy", board.stdout
        head = tmp_path / "test_FD001.txt"  # the first units of the test split: enough to serve windows
        head.write_text("".join(Path(fd001[1].path).read_text().splitlines(keepends=True)[:400]))
        records = runner.stream_file(target, head)
        assert records[0]["signed_by"] == key["key_id"]
        assert any(r["type"] == "prediction" for r in records)
    finally:  # later tests on this board deploy unsigned bundles
        target.run(["rm", "-rf", target.trusted_keys_dir])


def test_the_agent_on_aarch64_reads_blocks_in_c_and_answers_as_the_host(target, fd001, rpi4_build):
    """The agent on the board, reading stdin (a read's lines as one block: the aarch64 library's C line reader,
    kernel and trees in one call), and the same agent on the host: the same records but for their timings."""
    out, _ = rpi4_build
    edgectl_json("deploy", str(out), str(target), "--offline", "--json", "-q")
    text = Path(fd001[1].path).read_text().splitlines(keepends=True)[:2000]
    lines = "".join(["1,2,3\n", *text[:5], "abc\n", *text[5:]]).encode()  # bad lines inside a block
    argv = ["env", f"PYTHONPATH={target.agent_link}", target.agent_python, "-m", "edge_agent", "run", "--bundle",
            f"{target.home}/current", "--input", "-"]  # fmt: skip
    proc = target.popen(argv, subprocess.PIPE)
    board, err = proc.communicate(lines, timeout=1800)
    assert proc.returncode == 0, err.decode()
    host = subprocess.run([sys.executable, "-m", "edge_agent", "run", "--bundle", str(out), "--input", "-"],
                          input=lines, capture_output=True)  # fmt: skip
    assert host.returncode == 0, host.stderr.decode()
    timing = {"latency_us", "rss_kb", "arch", "python", "self_test", "input", "latency_us_by_stage"}

    def answers(text):
        recs = [json.loads(line) for line in text.decode().splitlines()]
        return [{k: v for k, v in r.items() if k not in timing} for r in recs]

    board_records, host_records = answers(board), answers(host.stdout)
    assert board_records[0]["blocks"] and board_records[0]["windows"] == "kernel"
    assert sum(r["type"] == "prediction" for r in board_records) > 1400  # 2,000 lines: 1,490 windows
    assert [r["line"] for r in board_records if r["type"] == "error"] == [1, 7]
    scores = np.array([[r.pop("score"), r.pop("value", 0.0)] for r in (*board_records, *host_records)
                       if r["type"] == "prediction"])  # fmt: skip
    half = len(scores) // 2
    assert np.max(np.abs(scores[:half] - scores[half:])) <= 1e-6  # each arch's build of the trees (parity)
    assert board_records == host_records
