"""`edgectl monitor`'s live terminal view: the latest predictions and the agent's stats, redrawn each second."""

import sys
import time
from collections import deque

from edge_agent.telemetry import percentiles

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
        lines = [
            f"edgectl monitor  records {self.count} ({rate:.0f}/s)  windows {windows}  errors {self.errors}  "
            f"escalated {escalated:.1%}",
            f"latency us  p50 {lat['p50']}  p90 {lat['p90']}  p99 {lat['p99']}   "
            f"RSS {self.stats.get('rss_kb', 0) / 1024:.1f} MB",
            f"link  bad frames {self.link.get('frames_bad')}  duplicates dropped {self.link.get('duplicates_dropped')}"
            f"  skipped by agent {self.link.get('skipped_by_agent')}",
            "",
            "stream        t  stage          score  prediction",
        ]
        lines += [
            f"{r['stream']:>6} {r['t']:>8g}  {r['stage']:<10} {r['score']:9.4f}  {r['prediction']}" for r in self.recent
        ]
        prefix = CLEAR if self.out.isatty() else ""
        self.out.write(prefix + "\n".join(lines) + "\n")
        self.out.flush()
