"""The agent's inputs against hostile and careless clients: TCP resets, idle and slow senders,
over-long and cut-off lines. A real agent on a loopback port; real sockets."""

import json
import signal
import socket
import struct
import subprocess
import sys
import time

import pytest
from test_agent_service import free_port
from test_backpressure import cycled, final_stats, start_agent

SERVED_WITHIN_S = 20  # every prediction of a normal sender, beside the hostile ones, arrives within this


@pytest.fixture
def tcp_agent(xgb_build):
    """An agent serving the XGBoost bundle on a free loopback port; killed at teardown whatever happened."""
    port = free_port()
    proc, out = start_agent(xgb_build.bundle_dir, f"tcp:127.0.0.1:{port}")
    yield proc, out, port
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)


def connect(port):
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def reset(port):
    """Connect and close with SO_LINGER 0: the agent sees a reset, no data."""
    sock = connect(port)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def predictions(out, n, within_s):
    """Read records until n predictions; fail if they take longer than within_s. Returns the other records."""
    deadline, got, other = time.monotonic() + within_s, 0, []
    while got < n:
        left = deadline - time.monotonic()
        assert left > 0, f"{got} of {n} predictions within {within_s} s"
        rec = out.next(timeout=left)
        if rec["type"] == "prediction":
            got += 1
        else:
            other.append(rec)
    return other


def test_a_storm_of_100_resets_leaves_the_agent_serving(xgb_build, synthetic_splits, tcp_agent):
    proc, out, port = tcp_agent
    for _ in range(100):
        reset(port)
    data, windows = cycled(synthetic_splits[1], 1, xgb_build.manifest["window"]["length"])
    with connect(port) as sender:
        sender.sendall(data)
        predictions(out, windows, SERVED_WITHIN_S)
    assert proc.poll() is None  # still serving
    stats = final_stats(proc, out)
    assert stats["input"]["clients"]["accepted"] == 101 and stats["input"]["clients"]["reset"] >= 1
    assert stats["windows"] == windows


def test_an_idle_and_a_slow_client_do_not_hold_back_a_normal_sender(xgb_build, synthetic_splits, tcp_agent):
    proc, out, port = tcp_agent
    idle = connect(port)  # connects first and sends nothing
    slow = connect(port)
    slow.sendall(b"1 1 ")  # the start of a line, then a byte now and then
    data, windows = cycled(synthetic_splits[1], 1, xgb_build.manifest["window"]["length"])
    with connect(port) as sender:
        sender.sendall(data)
        for _ in range(5):
            slow.sendall(b"0")
            time.sleep(0.1)
        predictions(out, windows, SERVED_WITHIN_S)
    idle.close()
    slow.close()
    stats = final_stats(proc, out)
    assert stats["windows"] == windows and stats["input"]["clients"]["accepted"] == 3


def test_a_line_cut_by_a_disconnect_is_an_error_and_leaks_nothing_into_the_next_sender(
    xgb_build, synthetic_splits, tcp_agent
):
    proc, out, port = tcp_agent
    lines = synthetic_splits[1].path.read_bytes().splitlines(keepends=True)
    with connect(port) as first:
        first.sendall(b"x" * (70 * 1024))  # over 64 KiB, then gone inside it
    rec = out.next(timeout=20)
    assert rec["type"] == "error" and rec["reason"] == "too-long"
    with connect(port) as second:
        second.sendall(lines[0][: len(lines[0]) // 2])  # cut off mid-number
        time.sleep(0.3)
    rec = out.next(timeout=20)
    assert rec["type"] == "error" and rec["reason"] == "partial-line", rec
    length = xgb_build.manifest["window"]["length"]
    unit = [line for line in lines if line.split()[0] == lines[0].split()[0]]
    with connect(port) as third:  # its first line counts: the window fills exactly at `length` lines
        third.sendall(b"".join(unit[:length]))
        predictions(out, 1, SERVED_WITHIN_S)
    stats = final_stats(proc, out)
    assert stats["windows"] == 1 and stats["errors"] == 2
    assert stats["errors_by_reason"] == {"too-long": 1, "partial-line": 1}


def test_bad_tcp_inputs_and_a_directory_input_are_one_line_errors(xgb_build, tmp_path, agent):
    for source, message in [
        ("tcp:127.0.0.1:notaport", "use tcp:127.0.0.1:PORT"),
        ("tcp::99999", "use tcp:127.0.0.1:PORT"),
        ("tcp:localhost", "use tcp:127.0.0.1:PORT"),
        ("tcp:10.0.0.1:7878", "loopback only"),
        (str(tmp_path), "is a directory"),
    ]:
        got = agent("run", "--bundle", str(xgb_build.bundle_dir), "--input", source)
        err = got.stderr.decode()
        assert got.returncode == 2 and message in err and "Traceback" not in err, (source, err)
        assert len(err.strip().splitlines()) == 1


def test_stats_every_zero_is_refused_and_a_closed_stdout_ends_quietly(xgb_build, synthetic_splits, agent):
    got = agent("run", "--bundle", str(xgb_build.bundle_dir), "--stats-every", "0")
    assert got.returncode == 2 and b"--stats-every" in got.stderr and b"Traceback" not in got.stderr
    argv = [sys.executable, "-m", "edge_agent", "run", "--bundle", str(xgb_build.bundle_dir)]
    argv += ["--input", str(synthetic_splits[1].path)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.readline()
    proc.stdout.close()  # `edge-agent run ... | head -1`
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) in (0, -signal.SIGPIPE, 141) and "Traceback" not in err, err


def test_a_state_dir_that_cannot_be_written_is_reported_and_serving_goes_on(xgb_build, synthetic_splits, agent):
    test = synthetic_splits[1]
    got = agent("run", "--bundle", str(xgb_build.bundle_dir), "--input", str(test.path),
                "--state-dir", "/nonexistent/edge-agent-state")  # fmt: skip
    err = got.stderr.decode()
    assert got.returncode == 0 and "Traceback" not in err
    assert err.count("cannot write the state file in /nonexistent/edge-agent-state") == 1
    records = [json.loads(line) for line in got.stdout.splitlines()]
    final = records[-1]
    assert final["final"] and final["windows"] > 0 and "/nonexistent/edge-agent-state" in final["state_error"]


def test_a_byte_order_mark_and_non_ascii_digits_are_handled(xgb_build, synthetic_splits, agent):
    lines = synthetic_splits[1].path.read_bytes().splitlines(keepends=True)
    plain = agent("run", "--bundle", str(xgb_build.bundle_dir), stdin=b"".join(lines))
    with_bom = agent("run", "--bundle", str(xgb_build.bundle_dir), stdin=b"\xef\xbb\xbf" + b"".join(lines))

    def preds(proc):
        return [(r["stream"], r["t"], r["score"]) for r in map(json.loads, proc.stdout.splitlines())
                if r["type"] == "prediction"]  # fmt: skip

    assert preds(with_bom) == preds(plain) and preds(plain)
    first = lines[0].decode().split()
    i = xgb_build.manifest["input"]["fields"].index(xgb_build.manifest["input"]["features"][0])
    for token in ("1_000", "\u0661\u0662", "\uff11\uff12", "12\u00a0"):
        bad = " ".join([*first[:i], token, *first[i + 1 :]]).encode() + b"\n"
        got = [
            json.loads(r) for r in agent("run", "--bundle", str(xgb_build.bundle_dir), stdin=bad).stdout.splitlines()
        ]
        errors = [r for r in got if r["type"] == "error"]
        assert len(errors) == 1 and errors[0]["reason"] in ("not-a-number", "field-count"), (token, errors)


def test_a_csv_with_a_header_in_its_own_column_order_gives_the_same_predictions(xgb_build, synthetic_splits, agent):
    fields = xgb_build.manifest["input"]["fields"]
    rows = [line.split() for line in synthetic_splits[1].path.read_text().splitlines()]
    order = list(reversed(range(len(fields))))
    header = ";".join(["operator", *(fields[i] for i in order)])
    csv = "\n".join([header, *(";".join(["ann", *(row[i] for i in order)]) for row in rows)]) + "\n"
    plain = agent("run", "--bundle", str(xgb_build.bundle_dir), "--input", str(synthetic_splits[1].path))
    mapped = agent("run", "--bundle", str(xgb_build.bundle_dir), stdin=csv.encode())

    def preds(proc):
        return [(r["stream"], r["t"], r["score"]) for r in map(json.loads, proc.stdout.splitlines())
                if r["type"] == "prediction"]  # fmt: skip

    assert preds(mapped) == preds(plain) and len(preds(plain)) > 100
    assert b'"error"' not in mapped.stdout  # the header is not a bad line
    lacking = agent("run", "--bundle", str(xgb_build.bundle_dir), stdin=b"unit,cycle\n1,1\n")
    errors = [json.loads(r) for r in lacking.stdout.splitlines() if b'"error"' in r]
    assert [e["reason"] for e in errors] == ["missing-column", "missing-column"]
    assert xgb_build.manifest["input"]["features"][0] in errors[0]["message"]


def test_each_tcp_connection_has_its_own_header(xgb_build, synthetic_splits, tcp_agent):
    proc, out, port = tcp_agent
    fields = xgb_build.manifest["input"]["fields"]
    length = xgb_build.manifest["window"]["length"]
    rows = [line.split() for line in synthetic_splits[1].path.read_text().splitlines()]
    first_unit = [r for r in rows if r[0] == rows[0][0]][:length]
    order = list(reversed(range(len(fields))))
    reordered = (
        ",".join(fields[i] for i in order) + "\n" + "".join(",".join(r[i] for i in order) + "\n" for r in first_unit)
    )
    plain = "".join(" ".join(["9999", *r[1:]]) + "\n" for r in first_unit)  # manifest order, another stream
    with connect(port) as a, connect(port) as b:
        a.sendall(reordered.encode())
        time.sleep(0.3)
        b.sendall(plain.encode())
        other = predictions(out, 2, SERVED_WITHIN_S)
    assert not [r for r in other if r["type"] == "error"]
    stats = final_stats(proc, out)
    assert stats["windows"] == 2 and stats["errors"] == 0
