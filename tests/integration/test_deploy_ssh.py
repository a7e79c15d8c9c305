"""Deploy over a real OpenSSH server on loopback (an x86_64 board): offline runtime, refusal,
interrupted uploads, rollback and status."""

import glob
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from cli import edgectl
from test_hostile_bundles import failing_selftest, renamed, snapshot

import edge_agent
from edge_agent.manifest import write_manifest
from edge_agent.releases import agent_id
from edgectl import board as boards
from edgectl import deploy, runner, service, status
from edgectl.errors import EdgectlError
from edgectl.targets import parse_target

pytestmark = [pytest.mark.ssh, pytest.mark.slow]


@pytest.fixture
def target(ssh_board, tmp_path):
    home = tmp_path / "home"
    t = parse_target(f"ssh://{ssh_board.alias}{home}")
    yield t
    t.close()


def test_deploy_offline_then_stream_matches_the_local_agent(xgb_build, synthetic_splits, target, agent):
    result = deploy.deploy(xgb_build.bundle_dir, target, offline=True)
    assert result["board"]["arch"] == os.uname().machine
    assert result["health"]["healthy"] and result["health"]["self_test"]["windows"] > 0
    _, test = synthetic_splits
    remote = runner.stream_file(target, test.path)
    local = agent("run", "--bundle", str(xgb_build.bundle_dir), "--input", str(test.path))
    local_records = [json.loads(line) for line in local.stdout.decode().splitlines()]

    def scores(records):
        return [(r["stream"], r["t"], r["score"]) for r in records if r["type"] == "prediction"]

    assert scores(remote) == scores(local_records) and len(scores(remote)) > 100
    again = deploy.deploy(xgb_build.bundle_dir, target, offline=True)
    assert again["reused"]


def test_what_deploy_ships_is_readable_by_the_services_dynamic_user_and_writable_only_by_root(
    xgb_build, target, tmp_path
):
    """The service runs as a systemd DynamicUser: the agent code and the release must be readable by
    others, even from a bundle written under umask 077 (tar keeps the source's modes)."""
    private = tmp_path / "private"
    shutil.copytree(xgb_build.bundle_dir, private)
    for path in [private, *private.rglob("*")]:
        os.chmod(path, 0o700 if path.is_dir() else 0o600)
    result = deploy.deploy(private, target, offline=True)
    shipped = [Path(target.agent_path), Path(result["release"])]
    for path in [p for top in shipped for p in (top, *top.rglob("*"))]:
        mode = path.stat().st_mode
        wanted = 0o005 if path.is_dir() else 0o004
        assert mode & wanted == wanted and not mode & 0o022, f"{path}: mode {mode & 0o777:o}"


def test_a_bundle_for_another_arch_is_refused_before_upload(xgb_build, target, tmp_path):
    other = tmp_path / "other-arch"
    shutil.copytree(xgb_build.bundle_dir, other)
    manifest = json.loads((other / "manifest.json").read_text())
    libs = manifest["stages"][0]["libs"]
    manifest["stages"][0]["libs"] = {"aarch64": next(iter(libs.values()))}
    manifest["name"] = "xgboost-arm-only"
    write_manifest(other, manifest)
    with pytest.raises(EdgectlError, match=r"has no xgboost library for x86_64 \(it has aarch64\)"):
        deploy.deploy(other, target, offline=True)
    assert not os.path.exists(f"{target.home}/releases")


def big_bundle(xgb_build, tmp_path):
    """The same bundle with 300 MB of padding, so an upload takes long enough to cut."""
    copy = tmp_path / "big"
    shutil.copytree(xgb_build.bundle_dir, copy)
    with open(copy / "padding.bin", "wb") as f:
        f.write(os.urandom(1 << 20) * 300)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["name"] = "xgboost-big"
    write_manifest(copy, manifest)
    return copy


def test_an_upload_cut_by_a_dropped_connection_never_becomes_current_and_a_rerun_completes(
    xgb_build, ssh_board, target, tmp_path
):
    deploy.deploy(xgb_build.bundle_dir, target, offline=True)
    first = xgb_build.manifest["bundle_id"]
    big = big_bundle(xgb_build, tmp_path)
    big_id = json.loads((big / "manifest.json").read_text())["bundle_id"]

    def cut_when_uploading():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            uploads = glob.glob(f"{target.home}/releases/.incoming-*/padding.bin")
            if uploads and os.path.getsize(uploads[0]) > 20 << 20:  # well into the upload
                break
            time.sleep(0.005)
        subprocess.run(["pkill", "-KILL", "-P", str(ssh_board.process.pid)])  # drop every session

    cutter = threading.Thread(target=cut_when_uploading)
    cutter.start()
    cli = [sys.executable, "-m", "edgectl.cli", "deploy", str(big), str(target), "--offline", "-q"]
    proc = subprocess.run(cli, capture_output=True, text=True, env=dict(os.environ))
    cutter.join()
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert deploy.current_release(target) == first
    assert not os.path.exists(f"{target.home}/releases/{big_id}")
    result = deploy.deploy(big, target, offline=True)  # the re-run
    assert result["bundle_id"] == big_id and not result["reused"]
    assert deploy.current_release(target) == big_id
    assert not glob.glob(f"{target.home}/releases/.incoming-*")  # the cut upload was cleared


def test_rollback_and_status_on_a_healthy_and_a_degraded_board(xgb_build, target, tmp_path):
    assert status.status(target)["health"] == "no release deployed"
    deploy.deploy(xgb_build.bundle_dir, target, offline=True)
    second = tmp_path / "second"
    shutil.copytree(xgb_build.bundle_dir, second)
    manifest = json.loads((second / "manifest.json").read_text())
    manifest["name"] = "xgboost-second"
    second_id = write_manifest(second, manifest)["bundle_id"]
    deploy.deploy(second, target, offline=True)
    healthy = status.status(target)
    assert healthy["health"] == "healthy" and healthy["release"] == second_id
    assert healthy["previous"] == xgb_build.manifest["bundle_id"]

    back = deploy.rollback(target)
    assert back["bundle_id"] == xgb_build.manifest["bundle_id"] and back["health"]["healthy"]
    assert status.status(target)["previous"] == second_id

    golden = f"{target.home}/current/golden.json"
    with open(golden, "a") as f:
        f.write(" ")  # a damaged file on the board
    degraded = status.status(target)
    assert degraded["health"] == "degraded" and "checksum mismatch" in degraded["detail"]
    cli = subprocess.run([sys.executable, "-m", "edgectl.cli", "status", str(target)], capture_output=True, text=True)
    assert cli.returncode == 3 and "degraded" in cli.stdout


def test_an_unreachable_board_is_a_clear_error(xgb_build):
    target = parse_target("ssh://root@127.0.0.1:1/opt/edgectl")
    with pytest.raises(EdgectlError, match="cannot reach the board over ssh"):
        deploy.deploy(xgb_build.bundle_dir, target)


def test_each_way_ssh_fails_says_what_to_do(ssh_board, tmp_path):
    """The real ssh client against the real sshd: unknown and changed host keys, a refused login,
    no listener, no such name. One line each from the CLI, with the fix, never a Python list."""
    d, port = ssh_board.dir, ssh_board.port
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "stranger")], check=True)
    wrong_key = (tmp_path / "stranger.pub").read_text().split()[:2]
    (tmp_path / "changed_hosts").write_text(f"[localhost]:{port} {' '.join(wrong_key)}\n")
    (tmp_path / "no_hosts").write_text("")

    def host(alias, name, user, identity, known):  # HostName and User differ per case: no shared ControlMaster
        return (f"Host {alias}\n  HostName {name}\n  Port {port}\n  User {user}\n  IdentityFile {identity}\n"
                f"  IdentitiesOnly yes\n  UserKnownHostsFile {known}\n  StrictHostKeyChecking yes\n")  # fmt: skip

    config = tmp_path / "config"
    config.write_text(
        host("unknownkey", "localhost", "root", d / "client", tmp_path / "no_hosts")
        + host("changedkey", "localhost", "root", d / "client", tmp_path / "changed_hosts")
        + host("notmykey", "127.0.0.1", "nobody", tmp_path / "stranger", d / "known_hosts")
    )
    cases = {
        "unknownkey": "not in your known_hosts: `ssh unknownkey` once",
        "changedkey": "host key changed (reinstalled, or not the board you meant): if you expected that, "
        "`ssh-keygen -R 'changedkey'` (for a ~/.ssh/config alias, its HostName)",
        "notmykey": "install your key with `ssh-copy-id notmykey`",
        "ssh://root@127.0.0.1:1": "Nothing listens for ssh there",
        "ssh://root@no-such-board.invalid": "No such host name",
    }
    for board, hint in cases.items():
        got = edgectl("status", board, env={"EDGECTL_SSH_CONFIG": str(config)}, timeout=60)
        assert got.returncode == 1 and hint in got.stderr, (board, got.stderr)
        assert "cannot reach the board over ssh" in got.stderr and "['" not in got.stderr
        assert "Traceback" not in got.stderr and len(got.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("bundle_id", ["../../victim", "../trusted_keys", ""])
def test_an_id_that_is_a_path_is_refused_over_ssh_and_nothing_is_touched(xgb_build, target, tmp_path, bundle_id):
    deploy.deploy(xgb_build.bundle_dir, target, offline=True)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    home = tmp_path / "home"
    before = sorted(str(p) for p in home.rglob("*")), deploy.current_release(target)
    hostile = tmp_path / "hostile"
    shutil.copytree(xgb_build.bundle_dir, hostile)
    manifest = json.loads((hostile / "manifest.json").read_text())
    manifest["bundle_id"] = bundle_id
    (hostile / "manifest.json").write_text(json.dumps(manifest))
    proc = subprocess.run([sys.executable, "-m", "edgectl.cli", "deploy", str(hostile), str(target), "--offline"],
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 1 and f"bundle id {bundle_id!r} is not a valid id" in proc.stderr
    assert (victim / "precious.txt").read_text() == "keep me"
    assert (sorted(str(p) for p in home.rglob("*")), deploy.current_release(target)) == before


def agent_variant(tmp_path, name):
    """This host's agent code with one more file: another agent version (another id) for PYTHONPATH."""
    root = tmp_path / name
    shutil.copytree(Path(edge_agent.__file__).parent, root / "edge_agent", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "edge_agent" / "variant.txt").write_text(name)
    return {"PYTHONPATH": str(root)}, agent_id(root / "edge_agent")


def test_the_agent_is_versioned_with_the_release_through_failure_bench_rollback_and_an_old_board(
    xgb_build, synthetic_splits, target, tmp_path
):
    """A release runs on the agent it was deployed with: a failed deploy with a new agent puts the old
    agent back with the old release, bench never changes the agent the board serves, rollback swaps
    both, and an agent shipped before versioning (a plain HOME/agent folder) is adopted."""
    home = Path(target.home)
    board = str(target)

    def links():
        return {name: os.readlink(home / name) if (home / name).is_symlink() else None for name in
                ("current", "agent", "previous", "previous-agent")}  # fmt: skip

    first = edgectl("deploy", str(xgb_build.bundle_dir), board, "--offline", "--json", "-q")
    assert first.returncode == 0, first.stderr
    v1 = json.loads(first.stdout)["agent"]
    old_layout = home / "agent"  # as deploys before versioning left it: a folder, no agents/
    os.unlink(old_layout)
    shutil.copytree(home / "agents" / v1, old_layout)
    shutil.rmtree(home / "agents")

    v2_env, v2 = agent_variant(tmp_path, "v2")
    broken, _ = failing_selftest(xgb_build.bundle_dir, tmp_path / "broken")
    failed = edgectl("deploy", str(broken), board, "--offline", env=v2_env)
    assert failed.returncode == 1 and "rolled back to" in failed.stderr, failed.stderr
    assert links()["agent"] == f"agents/{v1}" and links()["current"] == f"releases/{xgb_build.manifest['bundle_id']}"

    second, second_id = renamed(xgb_build.bundle_dir, tmp_path / "second", "xgboost-second")
    assert edgectl("deploy", str(second), board, "--offline", env=v2_env).returncode == 0
    first_id = xgb_build.manifest["bundle_id"]
    assert links() == {"current": f"releases/{second_id}", "agent": f"agents/{v2}",
                       "previous": f"releases/{first_id}", "previous-agent": f"agents/{v1}"}  # fmt: skip
    serving = snapshot(home / "agents" / v2)

    v3_env, v3 = agent_variant(tmp_path, "v3")
    _, test = synthetic_splits
    quick = ["--min-queries", "50", "--min-duration", "0", "--warmup", "5", "--out", str(tmp_path / "bench"), "-q"]
    bench = edgectl("bench", str(second), board, "--data", str(test.path), *quick, env=v3_env)
    assert bench.returncode == 0, bench.stderr
    assert links()["agent"] == f"agents/{v2}" and snapshot(home / "agents" / v2) == serving

    back = edgectl("rollback", board, "--json")
    assert back.returncode == 0, back.stderr
    assert links() == {"current": f"releases/{first_id}", "agent": f"agents/{v1}",
                       "previous": f"releases/{second_id}", "previous-agent": f"agents/{v2}"}  # fmt: skip
    assert sorted(os.listdir(home / "agents")) == sorted([v1, v2])  # v3 (bench only) went at the switch
    assert v3 not in os.listdir(home / "agents")


def test_a_service_is_never_installed_on_the_machine_running_the_tests(target):
    """The loopback board is this machine: under the suite (service.NOT_THIS_HOST) deploy refuses to put
    the unit here, whatever the board's systemd and user would allow."""
    board = boards.probe(target)
    here = Path("/etc/machine-id").read_text().strip()
    assert here and board["machine_id"] == here
    as_root_with_systemd = {**board, "systemd": True, "root": True}
    with pytest.raises(EdgectlError, match="the board is this machine"):
        service.install(target, as_root_with_systemd)
    assert not Path(service.UNIT_PATH).exists()
