"""The host's end of a serial link to an agent: feed samples, receive records exactly once.

Records arrive as R frames; the host delivers them in sequence order, drops
duplicates (resends) by sequence number, and acknowledges cumulatively (A frames).
What it has delivered is kept in a small state file, so a host that is closed and
reopened does not deliver a record twice. Samples go out as S frames in a session
(H frame), resent from the oldest unacknowledged one when the agent's
acknowledgements stall.
"""

import contextlib
import json
import os
import select
import signal
import threading
import time
import uuid
from pathlib import Path

from edge_agent.errors import AgentError
from edge_agent.framing import FrameReader, encode
from edge_agent.serial_link import read_port
from edge_agent.uart import Outbox, open_port
from edgectl.errors import EdgectlError

STATE_DIR = Path.home() / ".cache" / "edgectl" / "serial"
WINDOW = 256
RESEND_AFTER_S = 0.5


class HostLink:
    def __init__(self, device, baud=115200, state_path=None, resume=False):
        try:
            self.port = open_port(device, baud)
        except AgentError as exc:
            raise EdgectlError(str(exc)) from None
        self.fd = self.port.fileno()
        self.outbox = Outbox(self.fd)
        self.state_path = Path(state_path or STATE_DIR / (Path(device).name + ".json"))
        state = json.loads(self.state_path.read_text()) if self.state_path.exists() else {}
        # Highest record seq delivered. A host without state learns where to start from the
        # agent's first acknowledgement: everything the board still keeps.
        self.delivered = state.get("delivered")
        self.reader = FrameReader()
        self.duplicates = 0
        self.skipped = 0  # records the agent dropped (its journal was full)
        # resume: the same session, so the agent says how far it got and feeding goes on from there
        self.session = state.get("session") if resume and state.get("session") else uuid.uuid4().hex[:16]
        self.samples = []
        self.sample_acked = None  # unknown until the agent answers the hello
        self.sample_sent = 0
        self.agent_records = 0  # the last record seq the agent says it produced
        self.last_progress = time.monotonic()
        self._send("H", 0, self.session.encode())

    def feed(self, lines):
        """Queue sample lines (bytes or str) to send, numbered from 1 in this session."""
        self.samples.extend(line.encode() if isinstance(line, str) else line for line in lines)

    def poll(self, timeout=0.05):
        """Read what arrived within `timeout`; send samples; return the newly delivered records."""
        ready, can_write, _ = select.select([self.fd], [self.fd] if self.outbox.waiting() else [], [], timeout)
        if can_write:
            self.outbox.drain()
        records = []
        if ready:
            for frame in self.reader.feed(read_port(self.fd)):
                records.extend(self._on_frame(frame))
        if records:
            self._send("A", self.delivered)
            self._save()
        self._pump()
        return records

    def _on_frame(self, frame):
        if frame.kind == "R":
            if self.delivered is None:
                return []  # not yet synchronized: the agent will send it again
            if frame.seq <= self.delivered:
                self.duplicates += 1
                self._send("A", self.delivered)
            elif frame.seq == self.delivered + 1:
                self.delivered = frame.seq
                return [json.loads(frame.body)]
            return []  # out of order after a lost frame: the agent goes back and resends
        if frame.kind == "a":
            if self.sample_acked is None or frame.seq > self.sample_acked:
                self.sample_acked = frame.seq
                self.sample_sent = max(self.sample_sent, frame.seq)
                self.last_progress = time.monotonic()
            last_record, oldest_kept = (int(v) for v in frame.body.split())
            self.agent_records = max(self.agent_records, last_record)
            if self.delivered is None:
                self.delivered = oldest_kept - 1
        elif frame.kind == "D" and self.delivered is not None and frame.seq > self.delivered + 1:
            self.skipped += frame.seq - 1 - self.delivered
            self.delivered = frame.seq - 1
            self._send("A", self.delivered)
        return []

    def _pump(self):
        if self.sample_acked is None:
            if time.monotonic() - self.last_progress > RESEND_AFTER_S:  # the hello was lost
                self._send("H", 0, self.session.encode())
                self.last_progress = time.monotonic()
            return
        if self.sample_sent > self.sample_acked and time.monotonic() - self.last_progress > RESEND_AFTER_S:
            self.sample_sent = self.sample_acked  # go back
            self.last_progress = time.monotonic()
        while (
            self.sample_sent < len(self.samples)
            and self.sample_sent - self.sample_acked < WINDOW
            and not self.outbox.full()
        ):
            self.sample_sent += 1
            self._send("S", self.sample_sent, self.samples[self.sample_sent - 1])

    def done(self):
        """Every queued sample processed and every record it produced delivered."""
        return (
            self.sample_acked == len(self.samples)
            and self.delivered is not None
            and self.delivered >= self.agent_records
        )

    def stats(self):
        return {
            "delivered_upto": self.delivered,
            "duplicates_dropped": self.duplicates,
            "frames_bad": self.reader.bad,
            "skipped_by_agent": self.skipped,
            "samples_acked": self.sample_acked,
        }

    def _send(self, kind, seq, body=b""):
        self.outbox.send(encode(kind, seq or 0, body))

    def _save(self):
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"delivered": self.delivered, "session": self.session}))
        os.replace(tmp, self.state_path)

    def close(self):
        self.port.close()


def stream_file(device, input_path, baud=115200, out=None, on_record=None, resume=False, timeout=None):
    """Feed a sample file to the agent over a serial link; return its records, each once, in order."""
    with open(input_path, "rb") as f:
        lines = [line.rstrip(b"\r\n") for line in f if line.strip()]
    host = HostLink(device, baud, resume=resume)
    host.feed(lines)
    records = []
    deadline = time.monotonic() + timeout if timeout else None
    try:
        with ctrl_c_between_batches() as pressed:
            while not host.done():
                if pressed:
                    raise KeyboardInterrupt
                if deadline and time.monotonic() > deadline:
                    raise EdgectlError(f"{device}: the agent did not answer every sample in time ({host.stats()})")
                for rec in host.poll():
                    records.append(rec)
                    if out is not None:
                        out.write(json.dumps(rec) + "\n")
                    if on_record:
                        on_record(rec)
    except KeyboardInterrupt:
        host._save()  # the session, even before its first record: --resume goes on with it, not anew
        raise
    finally:
        host.close()
    return records


@contextlib.contextmanager
def ctrl_c_between_batches():
    """Ctrl-C (SIGINT) noted, for the loop to raise KeyboardInterrupt between batches of records: poll()
    acknowledges a batch, and the agent forgets it, before the caller has written it down; an interrupt in
    between would lose it for good. Yields a list that is non-empty once Ctrl-C was pressed. Only where
    Python's own handler is in place (the main thread, SIGINT not ignored)."""
    pressed = []
    if threading.current_thread() is not threading.main_thread() or (
        signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield pressed
        return
    previous = signal.signal(signal.SIGINT, lambda *_: pressed.append(True))
    try:
        yield pressed
    finally:
        signal.signal(signal.SIGINT, previous)


def monitor(device, on_record, baud=115200, duration=None):
    """Receive records until `duration` seconds pass (or forever); hand each to on_record."""
    host = HostLink(device, baud, resume=True)
    end = time.monotonic() + duration if duration else None
    try:
        with ctrl_c_between_batches() as pressed:
            while end is None or time.monotonic() < end:
                if pressed:
                    raise KeyboardInterrupt
                for rec in host.poll(timeout=0.2):
                    on_record(rec, host.stats())
    finally:
        host.close()
