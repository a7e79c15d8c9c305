"""`edgectl monitor`'s live terminal view: the latest predictions and the agent's stats, redrawn each second."""

import sys
import time
from collections import deque

from edge_agent.telemetry import percentiles
from edgectl.console import table, words

CLEAR = "\x1b[H\x1b[2J"


class LiveView:
    def __init__(self, out=sys.stdout, every=1.0):
        self.out = out
        self.every = every
        self.last_draw = 0.0
        self.recent = deque(maxlen=10)
        self.latencies = deque(maxlen=5000)
        self.by_stage = {}
        self.errors = 0
        self.stats = {}
        self.link = {}
        self.count = 0
        self.start = time.monotonic()

    def add(self, rec, link_stats):
        self.count += 1
        self.link = link_stats
        if rec["type"] == "prediction":
            self.recent.append(rec)
            self.latencies.append(rec["latency_us"]["total"])
            self.by_stage[rec["stage"]] = self.by_stage.get(rec["stage"], 0) + 1
        elif rec["type"] == "error":
            self.errors += 1
        elif rec["type"] == "stats":
            self.stats = rec
        if time.monotonic() - self.last_draw >= self.every:
            self.draw()

    def draw(self):
        self.last_draw = time.monotonic()
        windows = sum(self.by_stage.values())
        first = next(iter(self.by_stage), None)
        escalated = (windows - self.by_stage.get(first, 0)) / windows if windows else 0.0
        lat = percentiles(self.latencies)
        rate = self.count / max(1e-9, time.monotonic() - self.start)
        rss = self.stats.get("rss_kb")
        link = {key: words(self.link.get(key)) for key in ("frames_bad", "duplicates_dropped", "skipped_by_agent")}
        lines = [
            f"edgectl monitor  records {self.count} ({rate:.0f}/s)  windows {windows}  errors {self.errors}  "
            f"escalated {escalated:.1%}",
            # "-" until there is something to measure: no latency before the first window, no RSS before stats
            f"latency us  p50 {words(lat['p50'])}  p90 {words(lat['p90'])}  p99 {words(lat['p99'])}   "
            f"RSS {'-' if rss is None else f'{rss / 1024:.1f}'} MB",
            f"link  bad frames {link['frames_bad']}  duplicates dropped {link['duplicates_dropped']}"
            f"  skipped by agent {link['skipped_by_agent']}",
            "",
            table([dict(r, answer=answer_text(r)) for r in self.recent], RECENT_COLUMNS),
        ]
        prefix = CLEAR if self.out.isatty() else ""
        self.out.write(prefix + "\n".join(lines) + "\n")
        self.out.flush()


# t to 12 digits: a Unix time keeps its fraction of a second (and never reads 1.7e+09)
RECENT_COLUMNS = [("stream", "stream", ""), ("t", "t", ".12g"), ("stage", "stage", ""), ("score", "score", ".4f"),
                  ("answer", "prediction", "")]  # fmt: skip


def answer_text(rec):
    """A prediction record's answer in words: the class name of a multiclass one, a value to 4 digits."""
    if "class" in rec:
        return f"{rec['prediction']} ({rec['class']})"
    return words(rec["prediction"])
