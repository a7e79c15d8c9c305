"""Backpressure on the real agent: a producer faster than the agent fills a bounded queue and then
waits; nothing is dropped. The agent is stopped (SIGSTOP) while the producer writes, so the test
does not depend on who is faster on this machine."""

import errno
import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from test_agent_service import RecordReader, free_port

from edge_agent.sources import BACKPRESSURE, TCP_RECEIVE_BUFFER

SEND_BUFFER = 32 * 1024  # the producer's own socket buffer (the kernel doubles it)


def cycled(test, copies, length):
    """The test split `copies` times over, with fresh stream ids each time: (bytes, windows expected at stride 1)."""
    rows = [line.split(None, 1) for line in test.path.read_bytes().splitlines()]
    top = int(test.units.max())
    data = b"".join(b"%d %s\n" % (int(u) + k * top, rest) for k in range(copies) for u, rest in rows)
    per_unit = [(test.units == u).sum() for u in set(test.units)]
    return data, copies * sum(max(0, n - length + 1) for n in per_unit)


def pause(proc):
    """SIGSTOP, and wait until the kernel has stopped it (state T), so it reads nothing more."""
    proc.send_signal(signal.SIGSTOP)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "T":
        assert time.monotonic() < deadline, "the agent did not stop"
        time.sleep(0.01)


def start_agent(bundle, source):
    argv = [sys.executable, "-m", "edge_agent", "run", "--bundle", str(bundle), "--input", source]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = RecordReader(proc.stdout)
    assert out.next(timeout=120)["type"] == "start", proc.stderr.read1().decode()
    return proc, out


def write_until_blocked(write, data):
    """Non-blocking writes until the queue is full; returns the bytes it took."""
    sent = 0
    while sent < len(data):
        try:
            sent += write(data[sent : sent + 65536])
        except BlockingIOError:
            return sent
        except OSError as exc:
            assert exc.errno == errno.EAGAIN
            return sent
    return sent


def drain(out, windows):
    """Read records until `windows` predictions; no error and no final stats on the way."""
    got = 0
    while got < windows:
        rec = out.next()
        assert rec["type"] != "error" and not rec.get("final"), rec
        got += rec["type"] == "prediction"


def final_stats(proc, out):
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    rec = out.next()
    assert rec["type"] == "stats" and rec["final"] is True
    return rec


def test_a_fast_tcp_producer_waits_on_a_bounded_queue_and_nothing_is_lost(xgb_build, synthetic_splits):
    data, windows = cycled(synthetic_splits[1], 8, xgb_build.manifest["window"]["length"])  # ~3 MB
    port = free_port()
    proc, out = start_agent(xgb_build.bundle_dir, f"tcp:127.0.0.1:{port}")
    try:
        conn = socket.create_connection(("127.0.0.1", port))
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        conn.setblocking(False)
        pause(proc)  # the agent serves nothing: only the kernel's queue takes data
        queued = write_until_blocked(conn.send, data)
        # The producer was stopped by a queue the agent sized (the kernel's default starts at about
        # half of it and grows with reads), not by the size of its input.
        assert TCP_RECEIVE_BUFFER // 2 < queued <= 2 * (TCP_RECEIVE_BUFFER + SEND_BUFFER) < len(data)
        proc.send_signal(signal.SIGCONT)
        conn.setblocking(True)
        conn.sendall(data[queued:])  # blocks whenever the agent is behind; returns when all is queued
        conn.close()
        drain(out, windows)
        stats = final_stats(proc, out)
    finally:
        proc.kill()
    assert stats["samples"] == len(data.splitlines()) and stats["windows"] == windows and stats["errors"] == 0
    assert stats["input"]["policy"] == BACKPRESSURE == "block" and stats["input"]["backlogged"] > 0


def test_a_fast_producer_on_stdin_waits_on_the_pipe_and_nothing_is_lost(xgb_build, synthetic_splits):
    data, windows = cycled(synthetic_splits[1], 2, xgb_build.manifest["window"]["length"])
    proc, out = start_agent(xgb_build.bundle_dir, "-")
    try:
        fd = proc.stdin.fileno()
        capacity = fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ)
        os.set_blocking(fd, False)
        pause(proc)
        queued = write_until_blocked(lambda chunk: os.write(fd, chunk), data)
        assert queued == capacity < len(data)  # a full pipe, and the producer is told to wait
        proc.send_signal(signal.SIGCONT)
        os.set_blocking(fd, True)
        proc.stdin.write(data[queued:])
        proc.stdin.close()  # end of input: the agent writes its final stats and exits
        drain(out, windows)
        assert proc.wait(timeout=60) == 0
        stats = out.next()
    finally:
        proc.kill()
    assert stats["final"] is True and stats["samples"] == len(data.splitlines()) and stats["windows"] == windows
    assert stats["errors"] == 0 and stats["input"]["backlogged"] > 0
