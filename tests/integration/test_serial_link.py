"""Samples in and records out over a serial line between the real agent and the host, on pty pairs:
nothing lost, nothing duplicated, through noise, a killed agent and a host that goes away."""

import json
import os
import signal
import subprocess
import sys
import time
import tty

import pytest
from boards.uart import Cable

from edgectl.recipes import cmapss as recipe
from edgectl.serial_host import HostLink

pytestmark = pytest.mark.slow


def many_units(test_path, copies):
    """The synthetic test split repeated with fresh unit ids: as many samples as a test needs."""
    rows = [line.split() for line in test_path.read_text().splitlines() if line.strip()]
    top = max(int(r[0]) for r in rows)
    return [" ".join([str(int(r[0]) + k * top), *r[1:]]).encode() for k in range(copies) for r in rows]


def clean_run(bundle, lines):
    got = subprocess.run(
        [sys.executable, "-m", "edge_agent", "run", "--bundle", str(bundle), "--stats-every", "10000000"],
        input=b"\n".join(lines) + b"\n",
        capture_output=True,
        check=True,
    )
    return predictions([json.loads(line) for line in got.stdout.splitlines()])


def predictions(records):
    return [(r["stream"], r["t"], r["score"]) for r in records if r["type"] == "prediction"]


def start_agent(bundle, cable, journal):
    argv = [sys.executable, "-m", "edge_agent", "run", "--bundle", str(bundle), "--stats-every", "5000"]
    argv += ["--input", f"serial:{cable.agent_path}@115200", "--output", f"serial:{cable.agent_path}"]
    return subprocess.Popen([*argv, "--journal", str(journal)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def collect(host, until=None, timeout=300):
    records = []
    deadline = time.monotonic() + timeout
    while not host.done() and time.monotonic() < deadline:
        records += host.poll()
        if until and until(records):
            break
    return records


@pytest.fixture
def cable():
    c = Cable()
    yield c
    c.close()


@pytest.fixture
def agents():
    started = []
    yield started
    for proc in started:
        proc.kill()
        proc.wait()


def test_100k_records_end_to_end_none_lost_or_duplicated(xgb_build, synthetic_splits, cable, agents, tmp_path):
    lines = many_units(synthetic_splits[1].path, copies=90)
    agents.append(start_agent(xgb_build.bundle_dir, cable, tmp_path / "journal"))
    host = HostLink(cable.host_path, state_path=tmp_path / "host.json")
    host.feed(lines)
    records = collect(host)
    assert host.done(), host.stats()
    got = predictions(records)
    assert len(got) >= 100_000
    assert got == clean_run(xgb_build.bundle_dir, lines)  # same records, same order: none lost or repeated
    assert host.delivered == len(records)  # link sequence numbers 1..n, each delivered once
    print(f"\n{len(records)} records over the pty link; host stats {host.stats()}")


def test_flipped_and_dropped_bytes_are_detected_and_the_good_frames_delivered(
    xgb_build, synthetic_splits, agents, tmp_path
):
    cable = Cable(flip=0.03, drop=0.02, seed=5)
    try:
        lines = many_units(synthetic_splits[1].path, copies=6)
        agents.append(start_agent(xgb_build.bundle_dir, cable, tmp_path / "journal"))
        host = HostLink(cable.host_path, state_path=tmp_path / "host.json")
        host.feed(lines)
        records = collect(host)
        assert host.done(), host.stats()
        assert predictions(records) == clean_run(xgb_build.bundle_dir, lines)
        agent_bad = max(r.get("frames_bad", 0) for r in records if r["type"] == "stats")
        assert cable.flipped + cable.dropped > 20
        assert host.reader.bad > 0 and agent_bad > 0
        print(f"\nfaults injected: {cable.flipped} flips, {cable.dropped} drops; bad frames host {host.reader.bad}, "
              f"agent {agent_bad}; duplicates dropped {host.duplicates}")  # fmt: skip
    finally:
        cable.close()


@pytest.fixture(scope="module")
def window_build(synthetic_splits, tmp_path_factory):
    """A bundle of window features only: the journal brings every one back exactly after a restart
    (whole-history kinds restart from the journal's samples; README, "Feature kinds")."""
    return recipe.build_bundle(synthetic_splits[0], "xgboost", tmp_path_factory.mktemp("window") / "b", history=False)


def test_an_agent_killed_mid_stream_and_restarted_loses_and_repeats_nothing(
    window_build, synthetic_splits, cable, agents, tmp_path
):
    xgb_build = window_build
    lines = many_units(synthetic_splits[1].path, copies=8)
    journal = tmp_path / "journal"
    agents.append(start_agent(xgb_build.bundle_dir, cable, journal))
    host = HostLink(cable.host_path, state_path=tmp_path / "host.json")
    host.feed(lines)
    records = collect(host, until=lambda r: len(r) > 3000)
    agents[0].send_signal(signal.SIGKILL)
    agents[0].wait()
    records += collect(host, timeout=1)  # the host goes on alone for a moment
    agents.append(start_agent(xgb_build.bundle_dir, cable, journal))
    records += collect(host)
    assert host.done(), host.stats()
    assert [r["type"] for r in records].count("start") == 2
    assert predictions(records) == clean_run(xgb_build.bundle_dir, lines)


def test_a_host_closed_and_reopened_gets_everything_once(xgb_build, synthetic_splits, cable, agents, tmp_path):
    lines = many_units(synthetic_splits[1].path, copies=8)
    agents.append(start_agent(xgb_build.bundle_dir, cable, tmp_path / "journal"))
    state = tmp_path / "host.json"
    host = HostLink(cable.host_path, state_path=state)
    host.feed(lines)
    records = collect(host, until=lambda r: len(r) > 3000)
    host.close()
    time.sleep(1.5)  # the agent resends into a closed port meanwhile
    host = HostLink(cable.host_path, state_path=state, resume=True)
    host.feed(lines)
    records += collect(host)
    assert host.done(), host.stats()
    assert predictions(records) == clean_run(xgb_build.bundle_dir, lines)


def test_edgectl_run_over_serial_prints_the_summary_of_every_record(
    xgb_build, synthetic_splits, cable, agents, tmp_path
):
    agents.append(start_agent(xgb_build.bundle_dir, cable, tmp_path / "journal"))
    out = tmp_path / "records.jsonl"
    cli = [
        sys.executable,
        "-m",
        "edgectl.cli",
        "run",
        "--serial",
        cable.host_path,
        "--input",
        str(synthetic_splits[1].path),
    ]
    got = subprocess.run([*cli, "--out", str(out), "--json", "-q"], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "HOME": str(tmp_path)})  # fmt: skip
    assert got.returncode == 0, got.stderr
    summary = json.loads(got.stdout)
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert (
        summary["windows"]
        == len(predictions(written))
        == len(clean_run(xgb_build.bundle_dir, _lines(synthetic_splits)))
    )
    assert summary["errors"] == 0


def _lines(splits):
    return [line.encode() for line in splits[1].path.read_text().splitlines() if line.strip()]


def test_monitor_delivers_what_the_board_kept_while_nobody_listened(
    xgb_build, synthetic_splits, cable, agents, tmp_path
):
    from edge_agent.framing import encode

    lines = _lines(synthetic_splits)
    agents.append(start_agent(xgb_build.bundle_dir, cable, tmp_path / "journal"))
    journal = tmp_path / "journal" / "journal.jsonl"
    deadline = time.monotonic() + 60
    while not (journal.exists() and journal.stat().st_size) and time.monotonic() < deadline:
        time.sleep(0.05)  # the start record is journaled once the agent's port is open
    fd = os.open(cable.host_path, os.O_RDWR | os.O_NOCTTY)
    tty.setraw(fd)  # as pyserial would: no newline translation of the binary frames
    frames = [encode("H", 0, b"sensor-feed")] + [encode("S", n, line) for n, line in enumerate(lines, 1)]
    os.write(fd, b"".join(frames))  # a feeder that never listens: every record waits in the journal
    os.close(fd)
    time.sleep(3)
    cli = [sys.executable, "-m", "edgectl.cli", "monitor", "--serial", cable.host_path, "--duration", "8", "--json"]
    got = subprocess.run(cli, capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": str(tmp_path)})
    assert got.returncode == 0, got.stderr
    records = [json.loads(line) for line in got.stdout.splitlines()]
    assert predictions(records) == clean_run(xgb_build.bundle_dir, lines)
