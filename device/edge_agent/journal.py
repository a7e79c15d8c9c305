"""The agent's on-board journal for a serial link: records kept until the host acknowledges them,
and the last samples of each stream, so a restarted agent resends what was unacknowledged and
rebuilds its windows exactly where it stopped.

One append-only JSON-lines file, written once per processed sample (the sample and any records
it produced in a single write, so a kill cannot split them), plus state.json for the host's
acknowledgement. Bounded: past `capacity` unacknowledged records the oldest are dropped and
counted (the explicit policy), and the host is told to skip them; past `max_streams` stream tails
the least recently seen stream's is forgotten, as the windows forget that stream.

state.json is rewritten at most once every SAVE_EVERY_S (and before a compaction and on close),
not on every acknowledgement: an SD card wears with every write. A kill loses at most that much
of the acknowledged position; the restarted agent then resends records the host already has,
which the host drops by sequence number. The record journal itself is never behind.
"""

import itertools
import json
import os
import time
from collections import OrderedDict, deque
from pathlib import Path

from edge_agent.lru import touch

SAVE_EVERY_S = 2.0


class Journal:
    def __init__(self, directory, capacity, window_length, max_streams=1024):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.capacity = capacity
        self.tail_length = max(1, window_length - 1)
        self.max_streams = max_streams
        self.unacked = OrderedDict()  # record seq -> record JSON text
        self.tails = OrderedDict()  # stream -> deque of its last sample lines; least recently seen first
        self.tails_evicted = 0
        self._saved_at = time.monotonic()
        self.next_seq = 1
        self.acked = 0
        self.dropped = 0
        self.session = ""
        self.last_sample = 0  # in the current host session
        self.replay = []  # sample lines to rebuild windows with, oldest first
        self._lines = 0  # lines in the file, for compaction
        self._order = itertools.count()  # keeps the replay in arrival order across streams
        self._recover()
        self.file = open(self.dir / "journal.jsonl", "a", encoding="utf-8")  # noqa: SIM115 (held open)

    def _recover(self):
        state_path = self.dir / "state.json"
        if state_path.exists():
            state = json.loads(state_path.read_text())
            self.acked, self.dropped = state["acked"], state["dropped"]
        path = self.dir / "journal.jsonl"
        if path.exists():
            with open(path, encoding="utf-8") as f:
                for line in f:
                    try:
                        entry = json.loads(line)
                    except json.JSONDecodeError:
                        continue  # a torn last line
                    self._apply(entry)
                    self._lines += 1
        self.next_seq = max([self.acked, *self.unacked]) + 1
        order = []
        for lines in self.tails.values():
            order.extend(lines)
        self.replay = [line for _, line in sorted(order)]

    def _apply(self, entry):
        kind = entry["k"]
        if kind == "H":
            self.session, self.last_sample = entry["session"], 0
        elif kind == "S":
            self.last_sample = entry["n"]
            self._tail(entry["s"]).append((next(self._order), entry["l"]))
        elif kind == "R" and entry["n"] > self.acked:
            self.unacked[entry["n"]] = entry["r"]
            self._bound()

    def start_session(self, session):
        """A host (re)connected with a new session id: its sample numbering starts again."""
        if session != self.session:
            self._write([{"k": "H", "session": session}])
            self.session, self.last_sample = session, 0

    def commit(self, sample, records):
        """Journal one processed sample ((seq, stream, line) or None) and the records it produced.

        Returns the [(seq, text)] of the new records.
        """
        entries, new = [], []
        if sample is not None:
            seq, stream, line = sample
            entries.append({"k": "S", "n": seq, "s": stream, "l": line})
            self.last_sample = seq
            self._tail(stream).append((next(self._order), line))
        for text in records:
            entries.append({"k": "R", "n": self.next_seq, "r": text})
            self.unacked[self.next_seq] = text
            new.append((self.next_seq, text))
            self.next_seq += 1
        self._bound()
        if entries:
            self._write(entries)
        return new

    def ack(self, seq):
        """The host has every record up to seq."""
        if seq <= self.acked:
            return
        self.acked = seq
        while self.unacked and next(iter(self.unacked)) <= seq:
            self.unacked.popitem(last=False)
        if self._lines > 4 * (self.capacity + 100):
            self._compact()
        elif time.monotonic() - self._saved_at >= SAVE_EVERY_S:
            self._save_state()

    def first_kept(self):
        """The oldest record still in the journal (the host skips to it after drops)."""
        return next(iter(self.unacked), self.next_seq)

    def _tail(self, stream):
        """The stream's tail, now the most recently seen; the least recently seen goes past max_streams."""
        tail, gone = touch(self.tails, stream, lambda: deque(maxlen=self.tail_length), self.max_streams)
        self.tails_evicted += gone
        return tail

    def _bound(self):
        while len(self.unacked) > self.capacity:
            self.unacked.popitem(last=False)
            self.dropped += 1

    def _write(self, entries):
        self.file.write("".join(json.dumps(e, separators=(",", ":")) + "\n" for e in entries))
        self.file.flush()  # in the kernel: survives the agent being killed (not power loss)
        self._lines += len(entries)

    def _save_state(self):
        tmp = self.dir / "state.tmp"
        tmp.write_text(json.dumps({"acked": self.acked, "dropped": self.dropped}))
        os.replace(tmp, self.dir / "state.json")
        self._saved_at = time.monotonic()

    def _compact(self):
        """Rewrite the journal with only what a restart needs."""
        self._save_state()  # first: the acknowledged records it leaves out must never count as unacknowledged
        entries = [{"k": "H", "session": self.session}]
        tails = sorted((n, stream, line) for stream, lines in self.tails.items() for n, line in lines)
        entries += [{"k": "S", "n": self.last_sample, "s": stream, "l": line} for _, stream, line in tails]
        entries += [{"k": "R", "n": n, "r": text} for n, text in self.unacked.items()]
        tmp = self.dir / "journal.tmp"
        tmp.write_text("".join(json.dumps(e, separators=(",", ":")) + "\n" for e in entries))
        self.file.close()
        os.replace(tmp, self.dir / "journal.jsonl")
        self.file = open(self.dir / "journal.jsonl", "a", encoding="utf-8")  # noqa: SIM115
        self._lines = len(entries)

    def close(self):
        self._save_state()
        self.file.close()
