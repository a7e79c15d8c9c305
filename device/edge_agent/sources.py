"""Where samples come from: stdin, a file, or a TCP port on loopback; as lines, with idle ticks.

Every source is read through `lines()`, which never blocks longer than `tick`
seconds: it yields None after each read's lines, so the service loop answers them
and writes their records before it waits for more, and every `tick` while nothing
arrives, so it can ping the watchdog and write stats while the sensors are quiet.
"""

import os
import select
import socket
import time

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
    if os.path.isdir(spec):
        raise AgentError(f"input {spec} is a directory; give a sample file, - (stdin) or tcp:127.0.0.1:PORT")
    try:
        return FdSource(os.open(spec, os.O_RDONLY), spec)
    except OSError as exc:
        raise AgentError(f"cannot open input {spec}: {exc.strerror}") from None


BOM = b"\xef\xbb\xbf"  # Excel's "CSV UTF-8" starts a file with it


class LineSplitter:
    """Bytes in, (line number, text, error) out; over-long lines are skipped to their end and reported once.

    One splitter per byte stream (a file, stdin, one TCP connection): a UTF-8 byte order mark
    at its start is dropped, and no state passes from one stream to the next.
    """

    def __init__(self, max_bytes=MAX_LINE_BYTES):
        self.max_bytes = max_bytes
        self.buffer = b""
        self.number = 0
        self.skipping = False  # inside an over-long line
        self.started = False  # past a possible byte order mark

    def feed(self, data):
        if not self.started:
            self.buffer += data
            if len(self.buffer) < len(BOM) and BOM.startswith(self.buffer):
                return []  # could still be a byte order mark
            self.started = True
            data, self.buffer = self.buffer[len(BOM) :] if self.buffer.startswith(BOM) else self.buffer, b""
        buffer = self.buffer + data if self.buffer else data
        out, start = [], 0
        while True:  # each line sliced once; the rest of the chunk is never copied line by line
            end = buffer.find(b"\n", start)
            if end < 0:
                self.buffer = buffer[start:]
                if len(self.buffer) > self.max_bytes and not self.skipping:
                    self.skipping = True
                    self.number += 1
                    out.append((self.number, None, SampleError("too-long", f"line longer than {self.max_bytes} bytes")))
                if self.skipping:
                    self.buffer = b""
                return out
            line, start = buffer[start:end], end + 1
            if self.skipping:
                self.skipping = False
                continue
            self.number += 1
            out.append(self._decode(line))

    def finish(self, partial_ok=True):
        """The last line when the input ends without a newline.

        partial_ok=False (a connection that closed mid-line): it is an error record, never a sample,
        since a number cut short is still a number.
        """
        rest, self.buffer = self.buffer, b""
        if self.skipping or not rest:
            return []
        self.number += 1
        if not partial_ok:
            return [(self.number, None, SampleError("partial-line", "the sender closed the connection inside a line"))]
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
    that the producer was ahead of the agent (always, for a file) and, with the queue full, waiting.
    arrived_ns: when the last read returned (perf_counter_ns): the lines it completed were whole then."""

    def __init__(self):
        self.reads = 0
        self.backlogged = 0
        self.arrived_ns = 0

    def count(self, data):
        self.arrived_ns = time.perf_counter_ns()
        self.reads += 1
        self.backlogged += len(data) == CHUNK

    def stats(self):
        """The `input` field of the stats records."""
        return {"input": {"policy": BACKPRESSURE, "reads": self.reads, "backlogged": self.backlogged}}


def _ready(readers, timeout):
    return select.select(readers, [], [], timeout)[0]


def _lines(read, fileobj, splitter, tick, counters):
    """Lines from one stream until its end; None after each read's lines (the agent answers them and
    writes their records before it waits for more), and every `tick` seconds while nothing comes."""
    while True:
        while not _ready([fileobj], tick):
            yield None
        data = read()
        counters.count(data)
        if not data:
            yield from splitter.finish()
            return
        yield from splitter.feed(data)
        yield None


class FdSource:
    """stdin or a file: lines until end of input."""

    def __init__(self, fd, name):
        self.fd, self.name = fd, name
        self.counters = InputCounters()
        self.stats = self.counters.stats

    def arrived(self):
        """When the current line was complete in the input buffer (perf_counter_ns)."""
        return self.counters.arrived_ns

    def lines(self, tick=1.0):
        yield from _lines(lambda: os.read(self.fd, CHUNK), self.fd, LineSplitter(), tick, self.counters)


class TcpSource:
    """A TCP listener on loopback serving up to MAX_CLIENTS senders at once.

    Fairness: each turn reads at most one chunk from every sender with data, so an idle or slow
    sender never holds back the others. A sender that completes no line for CLIENT_TIMEOUT_S
    seconds is disconnected; a sender over MAX_CLIENTS is refused at once; a reset connection
    ends that sender only. A line cut off by a disconnect is an error record ("partial-line").
    Each connection has its own splitter; line numbers run across all senders.
    """

    def __init__(self, spec):
        host, port = _tcp_address(spec)
        try:
            self.server = _listen(host, port)
        except OSError as exc:
            raise AgentError(f"input {spec}: cannot listen: {exc.strerror}") from None
        self.name = spec
        self.counters = InputCounters()
        self.clients = {"accepted": 0, "refused": 0, "reset": 0, "timed_out": 0, "open": 0}
        self.number = 0

    def arrived(self):
        """When the current line was complete in the input buffer (perf_counter_ns)."""
        return self.counters.arrived_ns

    def stats(self):
        """The `input` field of the stats records, with the senders' counts."""
        got = self.counters.stats()
        got["input"]["clients"] = dict(self.clients)
        return got

    def lines(self, tick=1.0):
        conns = {}  # socket -> [splitter, time of its last complete line or of the connection]
        try:
            while True:
                while not (ready := _ready([self.server, *conns], tick)):
                    yield from self._expire(conns)
                    yield None
                for sock in ready:
                    if sock is self.server:
                        self._accept(conns)
                    else:
                        yield from self._renumber(self._read(sock, conns))
                yield from self._expire(conns)
                yield None  # this turn's lines are answered and written before the next wait
        finally:
            for sock in conns:
                sock.close()
            self.server.close()

    def _accept(self, conns):
        try:
            sock, _ = self.server.accept()
        except OSError:  # the client gave up, or no file descriptor is left (EMFILE): do not spin
            self.clients["refused"] += 1
            time.sleep(0.05)
            return
        if len(conns) >= MAX_CLIENTS:
            self.clients["refused"] += 1
            sock.close()
            return
        sock.setblocking(False)
        self.clients["accepted"] += 1
        conns[sock] = [LineSplitter(), time.monotonic(), self.clients["accepted"]]  # the last: its source id
        self.clients["open"] = len(conns)

    def _read(self, sock, conns):
        splitter, _, source = conns[sock]
        try:
            data = sock.recv(CHUNK)
        except BlockingIOError:
            return []
        except OSError:  # reset by the peer (SO_LINGER 0) or similar: that sender only
            self.clients["reset"] += 1
            return self._close(sock, conns)
        self.counters.count(data)
        if not data:
            return self._close(sock, conns)
        got = [(*line, source) for line in splitter.feed(data)]
        if got:
            conns[sock][1] = time.monotonic()
        return got

    def _expire(self, conns):
        now = time.monotonic()
        for sock in [s for s, (_, last, _) in conns.items() if now - last > CLIENT_TIMEOUT_S]:
            self.clients["timed_out"] += 1
            yield from self._renumber(self._close(sock, conns))

    def _close(self, sock, conns):
        splitter, _, source = conns.pop(sock)
        sock.close()
        self.clients["open"] = len(conns)
        return [(*line, source) for line in splitter.finish(partial_ok=False)]

    def _renumber(self, lines):
        """(number, text, error, source): line numbers across senders, and the connection each came from."""
        for _, text, error, source in lines:
            self.number += 1
            yield self.number, text, error, source


MAX_CLIENTS = 64  # senders at once; more are refused and counted
CLIENT_TIMEOUT_S = 300.0  # a sender that completes no line for this long is disconnected and counted


def _tcp_address(spec):
    """(host, port) of tcp:HOST:PORT; AgentError for anything else, or a host that is not loopback."""
    host, _, port = spec[len("tcp:") :].rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise AgentError(f"input {spec}: use tcp:127.0.0.1:PORT (PORT 1 to 65535)")
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise AgentError(f"input {spec}: the agent listens on loopback only (127.0.0.1, ::1)")
    return ("127.0.0.1" if host == "localhost" else host), int(port)


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
