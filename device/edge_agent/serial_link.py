"""The agent's end of a serial link: samples in, records out, over one UART (pyserial).

Samples arrive as S frames and are acknowledged (a frames) once processed and
journaled. Records go out as R frames, at most `window` unacknowledged at a time,
and are sent again from the oldest unacknowledged one when the host's
acknowledgement (A frames) stalls: go-back-N, so the host delivers them in order
and drops duplicates by sequence number. The link is both the agent's source (it
yields sample lines) and its output (a file-like object the records are written to).
"""

import os
import select
import time

from edge_agent.errors import AgentError
from edge_agent.framing import FrameReader, encode
from edge_agent.journal import Journal
from edge_agent.uart import Outbox, open_port

WINDOW = 256  # records in flight
RESEND_AFTER_S = 0.5
ACK_EVERY = 32  # samples between acknowledgements (and on every idle tick)


def read_port(fd):
    """What the port has; EIO (the other end of a pty closed) reads as nothing."""
    try:
        return os.read(fd, 65536)
    except (BlockingIOError, OSError):
        return b""


def parse_port(spec):
    """("/dev/ttyAMA0", 115200) from "serial:/dev/ttyAMA0@115200" (baud defaults to 115200)."""
    device = spec[len("serial:") :]
    device, _, baud = device.partition("@")
    try:
        return device, int(baud or 115200)
    except ValueError:
        raise AgentError(f"{spec}: the baud rate must be a number, as in serial:/dev/ttyAMA0@115200") from None


class SerialLink:
    def __init__(self, spec, journal_dir, window_length, stream_of, capacity=100_000, max_streams=1024):
        self.port = open_port(*parse_port(spec))
        self.fd = self.port.fileno()
        self.outbox = Outbox(self.fd)
        self.name = spec
        self.stream_of = stream_of
        self.journal = Journal(journal_dir, capacity, window_length, max_streams)
        self.reader = FrameReader()
        self.pending = []  # records written while the current sample is processed
        self.current = None  # (seq, stream, line) of the sample being processed
        self.sent_upto = self.journal.acked  # highest record seq sent at least once
        self.last_progress = time.monotonic()
        self.arrived_ns = 0
        self.dropped_told = None
        self._since_ack = 0

    # --- the output side: serve() writes records here -------------------------------
    def write(self, text):
        self.pending.append(text.rstrip("\n"))

    def flush(self):
        pass  # records are committed with their sample, when the sample is done

    # --- the source side ---------------------------------------------------------------
    def arrived(self):
        """When the current sample's frame was complete in the input buffer (perf_counter_ns)."""
        return self.arrived_ns

    def lines(self, tick=1.0):
        """Sample lines in session order, None on idle ticks; each resume commits the last sample."""
        while True:
            self._commit()
            self._pump()
            writable = [self.fd] if self.outbox.waiting() else []
            ready, can_write, _ = select.select([self.fd], writable, [], tick)
            if can_write:
                self.outbox.drain()
            if not ready:
                if not can_write:
                    self._ack_samples(force=True)
                    yield None
                continue
            data = read_port(self.fd)
            self.arrived_ns = time.perf_counter_ns()
            if not data:  # readable but nothing: the far end of a pty is closed
                time.sleep(0.05)
                continue
            for frame in self.reader.feed(data):
                line = self._on_frame(frame)
                if line is not None:
                    yield line
                    self._commit()

    def _on_frame(self, frame):
        j = self.journal
        if frame.kind == "A":
            if frame.seq > j.acked:
                j.ack(min(frame.seq, j.next_seq - 1))
                self.last_progress = time.monotonic()
        elif frame.kind == "H":
            j.start_session(frame.body.decode(errors="replace"))
            self._ack()
        elif frame.kind == "S":
            if frame.seq <= j.last_sample:  # a resend of what we have: say so again
                self._ack()
            elif frame.seq == j.last_sample + 1:
                text = frame.body.decode("utf-8", errors="replace").strip()
                self.current = (frame.seq, self.stream_of(text), text)
                return (frame.seq, text, None)
            # a gap: a frame was lost; the host sends it again
        return None

    def _commit(self):
        """The current sample is processed: journal it with its records, acknowledge, send."""
        if self.current is None and not self.pending:
            return
        self.journal.commit(self.current, self.pending)
        self.current, self.pending = None, []
        self._since_ack += 1
        self._ack_samples()

    def _ack_samples(self, force=False):
        if force or self._since_ack >= ACK_EVERY:
            self._ack()
            self._since_ack = 0

    def _ack(self):
        """Samples processed so far; body: the last record seq produced and the oldest still kept."""
        j = self.journal
        self._send("a", j.last_sample, f"{j.next_seq - 1} {j.first_kept()}".encode())

    def _pump(self):
        """Send new records within the window; resend from the oldest unacknowledged if acks stalled."""
        j = self.journal
        now = time.monotonic()
        if j.dropped and self.dropped_told != j.first_kept():
            self.dropped_told = j.first_kept()
            self._send("D", self.dropped_told)
        if j.unacked and now - self.last_progress > RESEND_AFTER_S:
            self.sent_upto = j.acked  # go back
            self.last_progress = now
        for seq, text in j.unacked.items():
            if seq <= self.sent_upto:
                continue
            if seq - j.acked > WINDOW or self.outbox.full():
                break
            self._send("R", seq, text.encode())
            self.sent_upto = seq

    def _send(self, kind, seq, body=b""):
        self.outbox.send(encode(kind, seq, body))

    def stats(self):
        """Link counters for the agent's stats records."""
        j = self.journal
        return {
            "frames_bad": self.reader.bad,
            "journal_unacked": len(j.unacked),
            "journal_dropped": j.dropped,
            "host_gone": self.outbox.closed,
        }

    def replay_lines(self):
        """Sample lines to rebuild the windows with after a restart (not served again)."""
        return list(self.journal.replay)

    def close(self):
        self._commit()
        self._pump()
        self.journal.close()
        self.port.close()
