"""Every argument is checked before any work: a bad one is refused in one line that names the option or
file, the value and what to do, with exit code 2 (a click usage error) or 1 (edgectl's own), and nothing is
written. Each refusal runs the real `edgectl` in an empty folder and lists that folder afterwards."""

import json
import platform
import re
import shutil
from collections import Counter

import pytest
from cli import edgectl
from conftest import missing

from edge_convert import ConversionError, signing, trees
from edgectl import profiles
from edgectl.data import synthetic
from edgectl.recipes import cmapss as recipe


@pytest.fixture
def run(tmp_path):
    """The empty folder a refused command runs in: it must stay empty."""
    folder = tmp_path / "run"
    folder.mkdir()
    return folder


@pytest.fixture
def inputs(tmp_path):
    """A folder for what a command reads (specs, keys, profiles), apart from where it would write."""
    folder = tmp_path / "inputs"
    folder.mkdir()
    return folder


@pytest.fixture(scope="module")
def spec_and_data(synthetic_splits, tmp_path_factory):
    """(edgectl.toml, train_FD001.csv) of the synthetic fleet, as `edgectl build` writes them."""
    spec, csv = recipe.prepare(synthetic_splits[0], tmp_path_factory.mktemp("spec"), history=False)
    return str(spec), str(csv)


def refuse(run, code, args, *phrases, env=None):
    """Run `edgectl ARGS` in run; assert it failed with code, one error line holding every phrase, no
    traceback, and nothing written. Returns the error line."""
    proc = edgectl(*args, cwd=str(run), env=env, timeout=120)
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and proc.stderr.rstrip().endswith(errors[0]), proc.stderr
    for phrase in phrases:
        assert phrase in errors[0]
    assert sorted(p.name for p in run.iterdir()) == []
    return errors[0]


@pytest.mark.parametrize(
    "args, phrases",
    [
        (["build", "--out", "b", "--window", "0"], ["'--window'", "0 is not in the range 1<=x<=65536"]),
        (["build", "--out", "b", "--stride", "0"], ["'--stride'", "0 is not in the range 1<=x<=65536"]),
        (["build", "--out", "b", "--horizon", "-5"], ["'--horizon'", "-5 is not in the range x>=1"]),
        (["build", "--out", "b", "--cascade-tolerance", "2"], ["'--cascade-tolerance'", "0<=x<=1"]),
        (["build", "--out", "b", "--drift-window", "0"], ["'--drift-window'", "x>=1"]),
        (["synth", "d", "--train-units", "0"], ["'--train-units'", "0 is not in the range x>=1"]),
        (["synth", "d", "--test-units", "0"], ["'--test-units'", "x>=1"]),
        (["synth", "d", "--conditions", "0"], ["'--conditions'", "x>=1"]),
        (["synth", "d", "--seed", "-1"], ["'--seed'", "-1 is not in the range x>=0"]),
        (["synth", "d", "--dataset", "vibration", "--machines", "0"], ["'--machines'", "1<=x<=1000"]),
        (["demo", "--seeds", "0", "--workdir", "w"], ["'--seeds'", "1<=x<=20"]),
        (["logs", "local:board", "-n", "-1"], ["'--lines' / '-n'", "x>=0"]),
        (["monitor", "--serial", "/dev/null", "--duration", "0"], ["'--duration'", "x>0"]),
    ],
)
def test_a_number_out_of_range_is_a_usage_error_naming_the_option_and_the_range(args, phrases, run):
    refuse(run, 2, args, *phrases)


def test_resume_without_a_serial_line_is_a_usage_error(run, inputs):
    (inputs / "samples.csv").write_text("unit,cycle,s1\n1,1,0.5\n")
    refuse(run, 2, ["run", "local:board", "--input", str(inputs / "samples.csv"), "--out", "r.jsonl", "--resume"],
           "--resume goes on with a serial session: it needs --serial DEV")  # fmt: skip


def test_fleet_arguments_are_refused_before_any_board_is_touched(run, inputs, xgb_build):
    inventory = inputs / "lab.ini"
    inventory.write_text("[lab]\npi01 ansible_port=1\n")  # nothing listens: a board touched would fail otherwise
    deploy = ["fleet", "deploy", str(xgb_build.bundle_dir), "-i", str(inventory)]
    refuse(run, 2, [*deploy, "--health-p99-ms", "5"], "--health-p99-ms needs --health-windows")
    refuse(run, 1, [*deploy, "--serial", "0%"], "--serial: '0%' is out of range")
    refuse(run, 1, [*deploy, "--limit", "nope"], "--limit 'nope' matches no host in the inventory")
    refuse(run, 2, [*deploy, "--mqtt", "http://broker"], "use mqtt://HOST")
    refuse(run, 2, [*deploy, "--forks", "0"], "'--forks' / '-f'", "x>=1")


def test_telemetry_arguments_are_refused_before_any_board_is_touched(run, inputs, xgb_build):
    deploy = ["deploy", str(xgb_build.bundle_dir), "ssh://nobody@127.0.0.1:1"]  # a board touched would fail
    (inputs / "ca.pem").write_text("not checked here\n")
    (inputs / "auth").write_text("no colon here\n")
    refuse(run, 2, [*deploy, "--mqtt-ca", str(inputs / "ca.pem")], "--mqtt-ca: needs --mqtt URL")
    refuse(run, 2, [*deploy, "--mqtt", "mqtt://b", "--mqtt-ca", str(inputs / "ca.pem")], "a CA is for mqtts://")
    refuse(run, 2, [*deploy, "--mqtt", "mqtt://b", "--mqtt-auth", str(inputs / "auth")], "username:password")
    refuse(run, 2, [*deploy, "--metrics-port", "0"], "'--metrics-port'", "1<=x<=65535")


def test_telemetry_for_a_board_without_a_service_is_refused_before_the_upload(run, inputs, xgb_build):
    board = inputs / "board"
    refuse(run, 1, ["deploy", str(xgb_build.bundle_dir), f"local:{board}", "--metrics-port", "9100"],
           "this board runs none (it needs systemd on the board and a deploy as root)")  # fmt: skip
    assert not (board / "releases").exists() and not (board / "current").exists()


def test_bench_counts_out_of_range_are_refused_before_the_board_is_touched(run, inputs):
    (inputs / "samples.txt").write_text("1 1\n")
    for option, value, allowed in [("--warmup", "-1", "x>=0"), ("--min-queries", "0", "x>=1"),
                                   ("--min-duration", "-1", "x>=0")]:  # fmt: skip
        args = ["bench", str(inputs), "local:board", "--data", str(inputs / "samples.txt"), option, value]
        refuse(run, 2, args, f"'{option}'", allowed)


@pytest.mark.parametrize(
    "args, code, phrases",
    [
        (["build", "--out", "b", "--model", "xgbost"], 1,
         ["unknown model 'xgbost' (did you mean 'xgboost'?)", "xgboost, xgboost-tiny, lightgbm"]),
        (["build", "--out", "b", "--model", "cascade", "--stage2", "lightgbn"], 2,
         ["'--stage2'", "(did you mean 'lightgbm'?)"]),
        (["build", "--out", "b", "--model", "cascade", "--stage1", "conv1d"], 2, ["'--stage1'", "'xgboost-tiny'"]),
        (["example", "secom", "--model", "xgbost", "--workdir", "w"], 2,
         ["'--model'", "'hist-gradient-boosting'", "(did you mean 'xgboost'?)"]),
        (["example", "cmapss", "--model", "lightgbm-rull", "--workdir", "w"], 2,
         ["--model", "(did you mean 'lightgbm-rul'?)", "the recipe's models: xgboost-tiny"]),
    ],
)  # fmt: skip
def test_a_mistyped_model_is_refused_before_any_file_with_the_closest_name(args, code, phrases, run):
    refuse(run, code, args, *phrases)


def test_train_refuses_a_mistyped_model_before_reading_the_data(run, spec_and_data):
    spec, csv = spec_and_data
    refuse(run, 2, ["train", spec, "--data", csv, "--model", "xgbost", "--out", "b"],
           "'--model'", "'xgbost' is not one of 'xgboost'", "(did you mean 'xgboost'?)")  # fmt: skip


def test_a_mistyped_profile_names_the_closest_one(run):
    refuse(run, 1, ["build", "--out", "b", "--profile", "rpi44"], "unknown profile 'rpi44' (did you mean 'rpi4'?)")


def test_two_profiles_of_one_arch_are_refused_up_front_by_build_train_and_convert(run, inputs, spec_and_data):
    spec, csv = spec_and_data
    (inputs / "model.json").write_text("{}")  # never read: the profiles are refused first
    two = ["--profile", "rpi4", "--profile", "rpi3"]
    phrases = ["--profile rpi4 and --profile rpi3 are both aarch64 boards",
               "a different toolchain cflags (-O2 -mcpu=cortex-a72 and -O2 -mcpu=cortex-a53)",
               "build one bundle per profile"]  # fmt: skip
    refuse(run, 1, ["build", "--out", "b", *two], *phrases)
    refuse(run, 1, ["train", spec, "--data", csv, "--out", "b", *two], *phrases)
    refuse(run, 1, ["convert", str(inputs / "model.json"), "--spec", spec, "--data", csv, "--out", "b", *two],
           *phrases)  # fmt: skip


def test_signing_with_the_public_key_says_to_pass_the_private_one(run, inputs, spec_and_data):
    spec, csv = spec_and_data
    signing.generate_key(inputs / "release")
    (inputs / "model.json").write_text("{}")
    pub = str(inputs / "release.pub")
    phrases = [f"{pub} is a public key", f"pass {inputs / 'release.key'}"]
    assert "chmod" not in refuse(run, 1, ["build", "--out", "b", "--sign", pub], *phrases)
    refuse(run, 1, ["convert", str(inputs / "model.json"), "--spec", spec, "--data", csv, "--out", "b", "--sign", pub],
           *phrases)  # fmt: skip


def test_a_window_too_short_for_conv1d_is_refused_before_the_data_is_read(run, inputs, synthetic_splits):
    phrases = ["conv1d needs windows of at least 9 samples", "use a longer window, attention or a tree model"]
    refuse(run, 1, ["build", "--out", "b", "--model", "conv1d", "--window", "5"], "--window is 5", *phrases)
    refuse(run, 1, ["build", "--out", "b", "--model", "cascade", "--stage2", "conv1d", "--window", "5"], *phrases)
    spec, csv = recipe.prepare(synthetic_splits[0], inputs, window=5, history=False)
    refuse(run, 1, ["train", str(spec), "--data", str(csv), "--model", "conv1d", "--out", "b"],
           f"{spec}: [window] length is 5", *phrases)  # fmt: skip


def shortest_unit(split):
    unit, rows = min(Counter(split.units.tolist()).items(), key=lambda item: item[1])
    return str(unit), rows


def test_a_window_longer_than_the_shortest_unit_is_refused_before_training(run, synthetic_dir, synthetic_splits):
    unit, rows = shortest_unit(synthetic_splits[0])
    refuse(run, 1, ["build", "--data", str(synthetic_dir), "--out", "b", "--window", str(rows + 1)],
           f"--window {rows + 1} is longer than the shortest stream of {synthetic_dir / 'train_FD001.txt'}",
           f"'{unit}' has {rows} samples", f"choose a window of {rows} samples or fewer")  # fmt: skip


def test_without_data_the_synthetic_fleet_is_checked_too_and_not_left_behind(run):
    line = refuse(run, 1, ["build", "--out", "b", "--window", "400"])
    assert re.search(r"--window 400 is longer than the shortest stream of b-data/train_FD001.txt: '\d+' has \d+ "
                     r"samples; choose a window of \d+ samples or fewer", line), line  # fmt: skip


def test_train_refuses_a_spec_whose_window_is_longer_than_a_stream(run, inputs, synthetic_splits):
    spec, csv = recipe.prepare(synthetic_splits[0], inputs, window=400, history=False)
    unit, rows = shortest_unit(synthetic_splits[0])
    refuse(
        run,
        1,
        ["train", str(spec), "--data", str(csv), "--out", "b"],
        f"{spec}: [window] length = 400 is longer than the shortest stream of {csv}",
        f"'{unit}' has {rows}",
    )


# Cross-compiling: the toolchain is probed (compiler, then its C library) before any data is written or model
# trained, by every command that takes --profile, and gcc's failure is mapped to the Debian package to install.


def board_profile(folder, **fields):
    """EDGECTL_PROFILES for a folder holding rpi4's profile with these fields (top-level or [toolchain])."""
    text = (profiles.PROFILE_DIR / "rpi4.toml").read_text()
    for key, value in fields.items():
        text, n = re.subn(rf"^{key} = .*$", f"{key} = {json.dumps(value)}", text, count=1, flags=re.M)
        assert n == 1, key
    (folder / "profiles").mkdir()
    (folder / "profiles" / f"{fields.get('name', 'rpi4')}.toml").write_text(text)
    return {"EDGECTL_PROFILES": str(folder / "profiles")}


def profile_commands(inputs, spec_and_data, profile="rpi4"):
    """build, train and convert for one profile (convert's model file is never read: the probe comes first)."""
    spec, csv = spec_and_data
    (inputs / "model.json").write_text("{}")
    return [
        ["build", "--out", "b", "--profile", profile],
        ["train", spec, "--data", csv, "--out", "b", "--profile", profile],
        ["convert", str(inputs / "model.json"), "--spec", spec, "--data", csv, "--out", "b", "--profile", profile],
    ]


def test_a_missing_cross_compiler_is_named_with_its_package_before_any_work(run, inputs, spec_and_data):
    env = board_profile(inputs, triple="nonexistent-linux-gnu", debian_package="gcc-nonexistent-linux-gnu")
    for args in profile_commands(inputs, spec_and_data):
        refuse(run, 1, args, "--profile rpi4: C compiler nonexistent-linux-gnu-gcc not found",
               "apt-get install gcc-nonexistent-linux-gnu", env=env)  # fmt: skip


def test_a_cross_compiler_without_its_headers_names_the_package_for_train_and_convert(run, inputs, spec_and_data):
    chain = profiles.get("rpi4")["toolchain"]
    try:
        cross = trees.compiler(chain)  # this test is about its headers, not its presence
    except ConversionError as exc:
        missing(f"the aarch64 cross toolchain (tests/boards/system_deps.sh installs it): {exc}")
    env = board_profile(inputs, cflags=[*chain["cflags"], "-nostdinc"])
    for args in profile_commands(inputs, spec_and_data):
        refuse(run, 1, args, f"--profile rpi4: {cross} cannot build against its C library",
               "apt-get install libc6-dev-arm64-cross", env=env)  # fmt: skip


def test_an_out_that_is_not_a_bundle_is_refused_before_any_work(run, inputs, spec_and_data):
    spec, csv = spec_and_data
    (inputs / "taken").write_text("keep me")
    refuse(run, 2, ["train", spec, "--data", csv, "--out", str(inputs / "taken")], "'--out'", "is a file")
    (inputs / "notes").mkdir()
    (inputs / "notes" / "todo.txt").write_text("keep me")
    refuse(run, 1, ["train", spec, "--data", csv, "--out", str(inputs / "notes")],
           f"{inputs / 'notes'}: exists and is not a bundle; choose another --out")  # fmt: skip
    assert (inputs / "taken").read_text() == (inputs / "notes" / "todo.txt").read_text() == "keep me"


# --out is written in a folder beside it and moved into place at the end: a build that fails late leaves
# nothing (no half-written OUT that "exists and is not a bundle" on the retry), and a bundle already at OUT
# is replaced only by a build that succeeds.


@pytest.mark.slow
def test_a_build_that_fails_after_training_leaves_nothing_and_the_old_bundle_stays(run, inputs):
    if platform.machine() != "x86_64" or shutil.which("x86_64-linux-gnu-gcc") is None:
        missing("an x86_64 host with x86_64-linux-gnu-gcc (Debian's gcc): the failing board's compiler")
    # A board whose emulator fails: the build trains, compiles both libraries, then fails the emulated parity.
    env = board_profile(inputs, name="broken", arch="riscv64", triple="x86_64-linux-gnu", cflags=["-O2"],
                        qemu="false")  # fmt: skip
    data = synthetic.write_subset(inputs / "fleet", n_train=10, n_test=2, seed=3)  # small: three builds
    build = ["build", "--data", str(data), "--out", "b", "--model", "xgboost-tiny", "-q"]
    failed = edgectl(*build, "--profile", "broken", cwd=str(run), env=env)
    assert failed.returncode == 1 and "under false" in failed.stderr and "Traceback" not in failed.stderr
    assert sorted(p.name for p in run.iterdir()) == []  # no b, b-data, b.tar.gz, b.model.json, staging folder

    retry = edgectl(*build, "--json", cwd=str(run), env=env)
    assert retry.returncode == 0, retry.stderr
    built = json.loads(retry.stdout)["bundle_id"]
    written = sorted(p.name for p in run.iterdir())
    assert written == ["b", "b-data", "b.model.json", "b.tar.gz"]

    again = edgectl(*build, "--profile", "broken", cwd=str(run), env=env)
    assert again.returncode == 1
    assert sorted(p.name for p in run.iterdir()) == written
    assert json.loads((run / "b" / "manifest.json").read_text())["bundle_id"] == built
    assert edgectl("inspect", "b", cwd=str(run)).returncode == 0
