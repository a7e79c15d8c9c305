"""Where samples come from: stdin, a file, or a TCP port on loopback; as lines, with idle ticks.

Every source is read through `lines()`, which never blocks longer than `tick`
seconds: it yields None when nothing arrived, so the service loop can ping the
watchdog and write stats while the sensors are quiet.
"""

import os
import select
import socket

from edge_agent.errors import AgentError
from edge_agent.samples import MAX_LINE_BYTES, SampleError

CHUNK = 1 << 16

# Backpressure: a source is read only as fast as the agent serves it, and nothing is dropped.
# A faster producer fills the bounded queue between it and the agent (a pipe's buffer, 64 KiB
# on Linux; a TCP connection's receive buffer, TCP_RECEIVE_BUFFER) and then waits in its
# write() or send() until the agent catches up. Dropping instead would leave silent gaps in a
# stream's window, whose features would then no longer be the ones the model was trained on.
# The agent's loop never waits on a producer longer than one idle tick, so the watchdog holds.
BACKPRESSURE = "block"
TCP_RECEIVE_BUFFER = 256 * 1024  # bytes; also bounds how long a sample can wait in the queue


def open_source(spec):
    """A source from its spec: "-" (stdin), a file path, or "tcp:HOST:PORT" (loopback only)."""
    if spec == "-":
        return FdSource(0, "stdin")
    if spec.startswith("tcp:"):
        return TcpSource(spec)
    try:
        return FdSource(os.open(spec, os.O_RDONLY), spec)
    except OSError as exc:
        raise AgentError(f"cannot open input {spec}: {exc.strerror}") from None


class LineSplitter:
    """Bytes in, (line number, text, error) out; over-long lines are skipped to their end and reported once."""

    def __init__(self, max_bytes=MAX_LINE_BYTES):
        self.max_bytes = max_bytes
        self.buffer = b""
        self.number = 0
        self.skipping = False  # inside an over-long line

    def feed(self, data):
        self.buffer += data
        out = []
        while True:
            end = self.buffer.find(b"\n")
            if end < 0:
                if len(self.buffer) > self.max_bytes and not self.skipping:
                    self.skipping = True
                    self.number += 1
                    out.append((self.number, None, SampleError("too-long", f"line longer than {self.max_bytes} bytes")))
                if self.skipping:
                    self.buffer = b""
                return out
            line, self.buffer = self.buffer[:end], self.buffer[end + 1 :]
            if self.skipping:
                self.skipping = False
                continue
            self.number += 1
            out.append(self._decode(line))

    def finish(self):
        """The last line when the input ends without a newline."""
        rest, self.buffer = self.buffer, b""
        if self.skipping or not rest:
            return []
        self.number += 1
        return [self._decode(rest)]

    def _decode(self, raw):
        if len(raw) > self.max_bytes:
            return self.number, None, SampleError("too-long", f"line longer than {self.max_bytes} bytes")
        try:
            return self.number, raw.decode("utf-8").strip(), None
        except UnicodeDecodeError as exc:
            return self.number, None, SampleError("bad-utf8", f"not valid UTF-8 at byte {exc.start}")


class InputCounters:
    """Reads of a source, and how many found at least a full read (CHUNK) already queued: a sign
    that the producer was ahead of the agent (always, for a file) and, with the queue full, waiting."""

    def __init__(self):
        self.reads = 0
        self.backlogged = 0

    def stats(self):
        """The `input` field of the stats records."""
        return {"input": {"policy": BACKPRESSURE, "reads": self.reads, "backlogged": self.backlogged}}


def _lines(read, fileobj, splitter, tick, counters):
    """Lines from one stream until its end; None whenever `tick` seconds pass with nothing to read."""
    while True:
        ready, _, _ = select.select([fileobj], [], [], tick)
        if not ready:
            yield None
            continue
        data = read()
        counters.reads += 1
        counters.backlogged += len(data) == CHUNK
        if not data:
            yield from splitter.finish()
            return
        yield from splitter.feed(data)


class FdSource:
    """stdin or a file: lines until end of input."""

    def __init__(self, fd, name):
        self.fd, self.name = fd, name
        self.counters = InputCounters()
        self.stats = self.counters.stats

    def lines(self, tick=1.0):
        yield from _lines(lambda: os.read(self.fd, CHUNK), self.fd, LineSplitter(), tick, self.counters)


class TcpSource:
    """A TCP listener on loopback: one sender at a time, served until the agent stops.

    A second sender waits in the listen backlog until the first disconnects (backpressure: block).
    """

    def __init__(self, spec):
        _, host, port = spec.split(":", 2)
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise AgentError(f"input {spec}: the agent listens on loopback only (127.0.0.1, ::1)")
        try:
            self.server = _listen(host, int(port))
        except OSError as exc:
            raise AgentError(f"input {spec}: cannot listen: {exc.strerror}") from None
        self.name = spec
        self.counters = InputCounters()
        self.stats = self.counters.stats

    def lines(self, tick=1.0):
        splitter = LineSplitter()  # one numbering across senders
        while True:
            ready, _, _ = select.select([self.server], [], [], tick)
            if not ready:
                yield None
                continue
            conn, _ = self.server.accept()
            with conn:
                yield from _lines(lambda c=conn: c.recv(CHUNK), conn, splitter, tick, self.counters)


def _listen(host, port):
    """A listening socket whose connections get a receive buffer of TCP_RECEIVE_BUFFER bytes.

    Set before listen(), as tcp(7) asks, so it also bounds the window the sender is offered.
    """
    server = socket.socket(socket.AF_INET6 if host == "::1" else socket.AF_INET, socket.SOCK_STREAM)
    try:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, TCP_RECEIVE_BUFFER)
        server.bind((host, port))
        server.listen()
    except OSError:
        server.close()
        raise
    return server
