"""Exit codes a script can gate on, and summaries that warn, through the real `edgectl` command: inspect's
status (exit 3 on a failed budget or a signature that does not match), records that are not the bundle's,
a run that scored nothing, Ctrl-C (exit 130), a zero or meaningless F1, and drift alarms in the summaries."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from boards.uart import Cable
from cli import edgectl
from conftest import missing
from your_data import lightgbm_binary

from edge_agent.manifest import content_hash
from edgectl import profiles
from edgectl.data import cmapss, synthetic

QUICK = ["--warmup", "20", "--min-queries", "300", "--min-duration", "0.3"]


@pytest.fixture(scope="module")
def board(xgb_build, tmp_path_factory):
    """A local board serving the session's XGBoost bundle."""
    target = f"local:{tmp_path_factory.mktemp('board') / 'board'}"
    deployed = edgectl("deploy", str(xgb_build.bundle_dir), target, "-q")
    assert deployed.returncode == 0, deployed.stderr
    return target


@pytest.fixture(scope="module")
def x86_profiles(tmp_path_factory):
    """EDGECTL_PROFILES for two x86_64 boards (this machine's arch, so its records count): a roomy one and
    one whose latency budget (1 µs p99) no agent meets."""
    folder = tmp_path_factory.mktemp("profiles")
    text = (profiles.PROFILE_DIR / "rpi4.toml").read_text().replace('arch = "aarch64"', 'arch = "x86_64"')
    for name, latency_ms in (("x86-roomy", 1000), ("x86-tight", 0.001)):
        made = text.replace('name = "rpi4"', f'name = "{name}"')
        made = made.replace("latency_ms = 50", f"latency_ms = {latency_ms}")
        assert f'name = "{name}"' in made and f"latency_ms = {latency_ms}" in made
        (folder / f"{name}.toml").write_text(made)
    return {"EDGECTL_PROFILES": str(folder)}


@pytest.fixture(scope="module")
def records(board, synthetic_splits, tmp_path_factory):
    """The agent's records of the session bundle serving the synthetic test split on this machine."""
    out = tmp_path_factory.mktemp("records") / "records.jsonl"
    got = edgectl("run", board, "--input", str(synthetic_splits[1].path), "--out", str(out), "-q")
    assert got.returncode == 0, got.stderr
    return out


def clean(proc):
    """No traceback and no Python None in what a user reads."""
    assert "Traceback" not in proc.stderr and "None" not in proc.stdout + proc.stderr, proc.stderr
    return proc


def test_inspect_exits_3_with_status_fail_when_a_budget_fails(xgb_build, records, x86_profiles):
    bundle = str(xgb_build.bundle_dir)
    roomy = clean(edgectl("inspect", bundle, "--profile", "x86-roomy", "--records", str(records), "--json",
                          env=x86_profiles))  # fmt: skip
    assert roomy.returncode == 0, roomy.stderr
    info = json.loads(roomy.stdout)
    assert (info["status"], info["problems"], info["budgets"]["status"]) == ("ok", [], "pass")
    assert {c["budget"]: c["status"] for c in info["budgets"]["checks"]}["latency p99"] == "pass"  # measured

    tight = clean(edgectl("inspect", bundle, "--profile", "x86-tight", "--records", str(records), "--json",
                          env=x86_profiles))  # fmt: skip
    assert tight.returncode == 3
    info = json.loads(tight.stdout)
    assert (info["status"], info["problems"], info["budgets"]["status"]) == ("fail", ["over-budget"], "fail")
    assert [c["budget"] for c in info["budgets"]["checks"] if c["status"] == "fail"] == ["latency p99"]
    text = clean(edgectl("inspect", bundle, "--profile", "x86-tight", "--records", str(records), env=x86_profiles))
    assert text.returncode == 3 and text.stdout.rstrip().endswith("status     FAIL: over-budget")


def test_inspect_exits_3_when_the_signature_does_not_match(xgb_build, tmp_path):
    from edge_convert import signing  # cryptography: signing only

    bundle = tmp_path / "bundle"
    shutil.copytree(xgb_build.bundle_dir, bundle)
    made = signing.generate_key(tmp_path / "release")
    signing.sign_bundle(bundle, signing.load_private_key(made["private_key"]))
    signed = clean(edgectl("inspect", str(bundle), "--json"))
    assert signed.returncode == 0 and json.loads(signed.stdout)["status"] == "ok"

    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["stages"][0]["threshold"] = 0.01  # every file still matches its sha256 and the id its content:
    manifest["bundle_id"] = f"{manifest['name']}-{content_hash(manifest)[:12]}"  # only the signature can tell
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    tampered = clean(edgectl("inspect", str(bundle), "--json"))
    assert tampered.returncode == 3
    info = json.loads(tampered.stdout)
    assert info["signature"]["valid"] is False
    assert (info["status"], info["problems"]) == ("fail", ["signature-mismatch"])
    text = clean(edgectl("inspect", str(bundle)))
    assert text.returncode == 3 and "DOES NOT MATCH" in text.stdout and "FAIL: signature-mismatch" in text.stdout


def test_records_of_another_bundle_or_arch_or_without_a_profile_are_refused(xgb_build, records, x86_profiles,
                                                                          tmp_path):  # fmt: skip
    bundle, bundle_id = str(xgb_build.bundle_dir), xgb_build.manifest["bundle_id"]
    lines = records.read_text().splitlines()
    start = json.loads(lines[0])
    assert start["type"] == "start" and start["arch"] == "x86_64"
    other = tmp_path / "other.jsonl"
    other.write_text("\n".join([json.dumps({**start, "bundle_id": "lightgbm-0123456789ab"}), *lines[1:]]) + "\n")
    got = clean(edgectl("inspect", bundle, "--profile", "x86-roomy", "--records", str(other), env=x86_profiles))
    assert got.returncode == 1 and not got.stdout
    assert f"records of bundle lightgbm-0123456789ab, not of {bundle_id}" in got.stderr

    got = clean(edgectl("inspect", bundle, "--profile", "rpi4", "--records", str(records)))  # rpi4: aarch64
    assert got.returncode == 1 and not got.stdout
    assert "measured on a board of arch x86_64, but profile rpi4 is for arch aarch64" in got.stderr

    no_start = tmp_path / "no-start.jsonl"
    no_start.write_text("\n".join(lines[1:]) + "\n")
    got = clean(edgectl("inspect", bundle, "--profile", "x86-roomy", "--records", str(no_start), env=x86_profiles))
    assert got.returncode == 1 and "no start record" in got.stderr

    got = clean(edgectl("inspect", bundle, "--records", str(records)))
    assert got.returncode == 2 and not got.stdout
    assert "Error: --records needs --profile P" in got.stderr


def test_a_run_that_scored_nothing_exits_1_and_counts_the_bad_lines_by_reason(board, synthetic_splits, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("a b c\n1 2 x\nfoo\n")  # three lines of the wrong shape
    out = tmp_path / "records.jsonl"
    got = clean(edgectl("run", board, "--input", str(bad), "--out", str(out), "--json", "-q"))
    assert got.returncode == 1 and not got.stdout
    assert "nothing scored" in got.stderr and "3 bad lines (3 field-count; the first, line 1:" in got.stderr
    assert sum('"error"' in line for line in out.read_text().splitlines()) == 3  # the records are still kept

    rows = [line.split() for line in synthetic_splits[1].path.read_text().splitlines()[:40]]
    stale = tmp_path / "stale.txt"  # one engine whose clock never moves: every sample after the first is stale
    stale.write_text("".join(" ".join([r[0], "1", *r[2:]]) + "\n" for r in rows if r[0] == rows[0][0]))
    got = clean(edgectl("run", board, "--input", str(stale)))
    n = len(stale.read_text().splitlines())
    assert got.returncode == 1 and not got.stdout
    assert f"{n - 1} bad lines ({n - 1} stale-time;" in got.stderr and "1 good sample, too few" in got.stderr


def test_ctrl_c_stops_a_run_with_exit_130_one_line_and_the_agent_stopped_too(board, synthetic_splits, tmp_path):
    long_input = tmp_path / "long.txt"
    long_input.write_text("".join(many_units(synthetic_splits[1].path, copies=60)))
    out = tmp_path / "records.jsonl"
    cmd = [sys.executable, "-m", "edgectl.cli", "run", board, "--input", str(long_input), "--out", str(out), "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=ctrl_c_on)
    wait_for_records(out, proc)
    agents = children(proc.pid)
    assert agents, "the local board's agent runs as a child of edgectl"
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert stderr.strip().splitlines() == [f"edgectl run: interrupted (Ctrl-C); the records so far are in {out}"]
    assert not stdout and "Traceback" not in stderr
    assert not [pid for pid in agents if os.path.exists(f"/proc/{pid}")], "the agent went on serving"
    windows = sum('"prediction"' in line for line in out.read_text().splitlines())
    assert 0 < windows < len(long_input.read_text().splitlines())  # stopped part way, what came is kept


@pytest.mark.slow
def test_ctrl_c_on_a_serial_run_says_how_to_resume_and_resume_finishes_it(xgb_build, synthetic_splits, agent,
                                                                        tmp_path):  # fmt: skip
    lines = many_units(synthetic_splits[1].path, copies=8)
    long_input = tmp_path / "long.txt"
    long_input.write_text("".join(lines))
    cable = Cable()
    argv = [sys.executable, "-m", "edge_agent", "run", "--bundle", str(xgb_build.bundle_dir), "--input",
            f"serial:{cable.agent_path}@115200", "--output", f"serial:{cable.agent_path}",
            "--journal", str(tmp_path / "journal")]  # fmt: skip
    board = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        out = tmp_path / "records.jsonl"
        env = {**os.environ, "HOME": str(tmp_path)}  # the host's link state lives under HOME
        cmd = [sys.executable, "-m", "edgectl.cli", "run", "--serial", cable.host_path, "--input", str(long_input),
               "--out", str(out), "-q"]  # fmt: skip
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                preexec_fn=ctrl_c_on)  # fmt: skip
        wait_for_records(out, proc, at_least=1000)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 130 and "Traceback" not in stderr, stderr
        again = f"edgectl run --serial {cable.host_path} --input {long_input} --baud 115200 --out {out} --resume"
        assert stderr.strip().splitlines() == [
            f"edgectl run: interrupted (Ctrl-C); the records so far are in {out}; to go on where the agent "
            f"stopped: {again}"
        ]
        resumed = subprocess.run([sys.executable, "-m", "edgectl.cli", *again.split()[1:], "-q"], capture_output=True,
                                 text=True, env=env, timeout=300)  # fmt: skip
        assert resumed.returncode == 0, resumed.stderr
    finally:
        board.kill()
        board.wait()
        cable.close()
    got = [json.loads(line) for line in out.read_text().splitlines()]
    windows = [(r["stream"], r["t"]) for r in got if r["type"] == "prediction"]
    served = agent("run", "--bundle", str(xgb_build.bundle_dir), stdin="".join(lines).encode(), timeout=300)
    expected = [(r["stream"], r["t"]) for r in map(json.loads, served.stdout.splitlines()) if r["type"] == "prediction"]
    assert windows == expected  # the two sessions' records in --out: every window once, in order


def test_convert_warns_when_f1_is_0_or_no_window_is_positive(vibration, tmp_path):
    booster, spec, data, y, X = lightgbm_binary(vibration, tmp_path)
    assert y.sum() > 0 and booster.predict(X).max() < 1.0

    never = tmp_path / "threshold-1.toml"  # a threshold no probability reaches: not one alarm
    never.write_text(spec.read_text().replace("threshold = 0.5", "threshold = 1.0"))
    got = convert(tmp_path / "model.txt", never, data, tmp_path / "never")
    assert f"warning: stage model, scored on --data: F1 is 0, not one of the {int(y.sum())} positive" in got.stderr

    healthy = tmp_path / "healthy.csv"  # data with no failure in it: nothing to find
    text = data.read_text().splitlines()
    healthy.write_text("\n".join([text[0], *(line.rsplit(",", 1)[0] + ",0" for line in text[1:])]) + "\n")
    got = convert(tmp_path / "model.txt", spec, healthy, tmp_path / "healthy")
    assert "warning: stage model, scored on --data: no window is labelled positive (of" in got.stderr

    fine = convert(tmp_path / "model.txt", spec, data, tmp_path / "fine")
    assert "warning" not in fine.stderr


def convert(model, spec, data, out):
    got = edgectl("convert", str(model), "--spec", str(spec), "--data", str(data), "--out", str(out), "-q", "--json")
    assert got.returncode == 0, got.stderr
    json.loads(got.stdout)  # warnings go to stderr: stdout stays the JSON
    return got


@pytest.fixture(scope="module")
def drifted_replay(xgb_build, tmp_path_factory):
    """A labelled C-MAPSS replay (test_FD001.txt, RUL_FD001.txt) of the bundle's engine type, its s2 sensor
    3 sd off from training (drift), every engine 1000 cycles or more from failure (no positive window)."""
    folder = synthetic.write_subset(tmp_path_factory.mktemp("drifted"), n_train=2, n_test=30, seed=3)
    manifest = xgb_build.manifest
    scale = manifest["preprocessing"]["scale"][manifest["input"]["features"].index("s2")]
    column = cmapss.COLUMNS.index("s2")
    rows = [line.split() for line in (folder / "test_FD001.txt").read_text().splitlines()]
    for row in rows:
        row[column] = f"{float(row[column]) + 3 * scale:.4f}"
    (folder / "test_FD001.txt").write_text("".join(" ".join(row) + "\n" for row in rows))
    rul = [int(v) + 1000 for v in (folder / "RUL_FD001.txt").read_text().split()]
    (folder / "RUL_FD001.txt").write_text("".join(f"{v}\n" for v in rul))
    return folder / "test_FD001.txt"


def test_drift_alarms_appear_in_a_runs_summary(board, drifted_replay):
    got = clean(edgectl("run", board, "--input", str(drifted_replay), "--json", "-q"))
    assert got.returncode == 0, got.stderr
    drift = json.loads(got.stdout)["drift"]
    assert drift["alarms"] >= 1 and "s2" in drift["psi_features"]
    text = clean(edgectl("run", board, "--input", str(drifted_replay), "-q"))
    line = next(line for line in text.stdout.splitlines() if line.startswith("drift: "))
    assert f"{drift['alarms']} alarm" in line and "s2" in line


def test_bench_warns_of_a_replay_without_positives_and_reports_its_drift(xgb_build, board, drifted_replay, tmp_path):
    got = clean(edgectl("bench", str(xgb_build.bundle_dir), board, "--data", str(drifted_replay), *QUICK,
                        "--out", str(tmp_path / "bench"), "--json", "-q"))  # fmt: skip
    assert got.returncode == 0, got.stderr
    bundle_id = xgb_build.manifest["bundle_id"]
    assert f"warning: {bundle_id} on the replay: no window is labelled positive" in got.stderr
    result = json.loads(got.stdout)["results"][0]
    assert result["accuracy"]["all_windows"]["positives"] == 0
    assert result["drift"]["alarms"] >= 1 and "s2" in result["drift"]["psi_features"]
    validate(json.loads(got.stdout))
    summary = (tmp_path / "bench" / "bench.md").read_text()
    assert f"ACCURACY: {bundle_id} on the replay: no window is labelled positive" in summary
    assert f"DRIFT: {bundle_id}: {result['drift']['alarms']} alarm" in summary
    assert 'class="alert drift"' in (tmp_path / "bench" / "bench.html").read_text()


def validate(record):
    try:
        import jsonschema
    except ImportError:
        missing("jsonschema (pip install -e '.[test]') to check the run record against its schema")
    from edgectl import bench

    jsonschema.validate(record, json.loads(bench.SCHEMA_PATH.read_text()), cls=jsonschema.Draft202012Validator)


def many_units(test_path, copies):
    """The test split's lines repeated with fresh unit ids: as long an input as a test needs."""
    rows = [line.split() for line in test_path.read_text().splitlines() if line.strip()]
    top = max(int(r[0]) for r in rows)
    return [" ".join([str(int(r[0]) + k * top), *r[1:]]) + "\n" for k in range(copies) for r in rows]


def ctrl_c_on():
    """In the child before exec: SIGINT as a terminal delivers it. A suite started in the background by a
    shell without job control inherits SIGINT ignored, and so would every edgectl it starts."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_for_records(out, proc, at_least=1, timeout=120):
    """Until `edgectl run` has written at least this many records to --out (it is serving)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if out.exists() and sum(1 for _ in out.open()) >= at_least:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError(f"no records in {out} after {timeout} s")


def children(pid):
    return [int(c) for c in open(f"/proc/{pid}/task/{pid}/children").read().split()]
