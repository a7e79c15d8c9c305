"""Sensor streams that go silent: no accepted sample for `after` seconds while the agent keeps running.

The pipeline tells the watch of every accepted sample (`seen`, O(1)); the agent's
loop calls `check` on its idle ticks. A stream silent for `after` seconds is flagged
once by a "stream" record (event "silent"), and again (event "resumed") when its
next sample arrives. Streams are kept in order of their last sample, so a check
looks only at the streams that have just fallen silent. State is bounded: at most
`max_streams` watched and as many flagged; beyond that the least recent is
forgotten unflagged, as the windows evict theirs.
"""

import math
import time
from collections import OrderedDict

from edge_agent.telemetry import record

DEFAULT_SILENT_AFTER_S = 60.0


class StreamWatch:
    def __init__(self, after, max_streams=1024, events=None, clock=time.monotonic):
        """events: the list the records are appended to (the pipeline's, which the agent loop writes)."""
        self.after = after
        self.max_streams = max_streams
        self.clock = clock
        self.last = OrderedDict()  # stream -> time of its last sample, least recent first
        self.silent = OrderedDict()  # flagged stream -> time of its last sample
        self.events = [] if events is None else events
        self._due = -math.inf  # no stream can fall silent before this time

    def seen(self, stream):
        """A sample of `stream` was accepted now."""
        now = self.clock()
        if stream in self.silent:
            since = self.silent.pop(stream)
            self.events.append(record("stream", event="resumed", stream=stream, silent_s=round(now - since, 3)))
        last = self.last
        try:
            last.move_to_end(stream)
        except KeyError:  # a stream not watched yet
            if len(last) >= self.max_streams:
                last.popitem(last=False)
        last[stream] = now
        if now >= self._due:
            self.check(now)

    def check(self, now=None):
        """Flag every stream whose last sample is `after` seconds old or older."""
        now = self.clock() if now is None else now
        if now < self._due:
            return
        last = self.last
        while last:
            stream, t = next(iter(last.items()))
            if now - t < self.after:
                break
            del last[stream]
            self.silent[stream] = t
            if len(self.silent) > self.max_streams:
                self.silent.popitem(last=False)
            self.events.append(record("stream", event="silent", stream=stream, silent_s=round(now - t, 3)))
        # The least recent stream falls silent first; a stream seen later cannot fall silent sooner.
        self._due = (next(iter(last.values())) if last else now) + self.after
