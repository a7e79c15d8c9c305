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


def _lines(read, fileobj, splitter, tick):
    """Lines from one stream until its end; None whenever `tick` seconds pass with nothing to read."""
    while True:
        ready, _, _ = select.select([fileobj], [], [], tick)
        if not ready:
            yield None
            continue
        data = read()
        if not data:
            yield from splitter.finish()
            return
        yield from splitter.feed(data)


class FdSource:
    """stdin or a file: lines until end of input."""

    def __init__(self, fd, name):
        self.fd, self.name = fd, name

    def lines(self, tick=1.0):
        yield from _lines(lambda: os.read(self.fd, CHUNK), self.fd, LineSplitter(), tick)


class TcpSource:
    """A TCP listener on loopback: one sender at a time, served until the agent stops."""

    def __init__(self, spec):
        _, host, port = spec.split(":", 2)
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise AgentError(f"input {spec}: the agent listens on loopback only (127.0.0.1, ::1)")
        self.server = socket.create_server((host, int(port)), reuse_port=False)
        self.name = spec

    def lines(self, tick=1.0):
        splitter = LineSplitter()  # one numbering across senders
        while True:
            ready, _, _ = select.select([self.server], [], [], tick)
            if not ready:
                yield None
                continue
            conn, _ = self.server.accept()
            with conn:
                yield from _lines(lambda c=conn: c.recv(CHUNK), conn, splitter, tick)
