"""StreamWatch on a clock the test sets: a silent stream is flagged once per silence, and when it resumes."""

from edge_agent.streams import StreamWatch


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def events(watch):
    got = [(e["event"], e["stream"], e["silent_s"]) for e in watch.events]
    watch.events.clear()
    return got


def test_a_stream_silent_while_another_goes_on_is_flagged_once_then_resumed():
    clock = Clock()
    watch = StreamWatch(2.0, clock=clock)
    watch.seen("a")
    watch.seen("b")
    for _ in range(10):  # b keeps sending every 0.5 s; a is quiet
        clock.now += 0.5
        watch.seen("b")
    assert events(watch) == [("silent", "a", 2.0)]  # flagged on b's sample, once, though 3 more s passed
    clock.now += 1.5
    watch.check()  # an idle tick
    assert events(watch) == []
    watch.seen("a")
    assert events(watch) == [("resumed", "a", 6.5)]
    assert watch.events == [] and not watch.silent


def test_idle_ticks_flag_every_quiet_stream_least_recent_first():
    clock = Clock()
    watch = StreamWatch(1.0, clock=clock)
    for stream in ("x", "y", "z"):
        watch.seen(stream)
        clock.now += 0.25
    watch.check()
    assert events(watch) == []
    clock.now += 0.5  # x is 1.25 s quiet, y 1.0, z 0.75
    watch.check()
    assert events(watch) == [("silent", "x", 1.25), ("silent", "y", 1.0)]
    clock.now += 10
    watch.check()
    watch.check()
    assert events(watch) == [("silent", "z", 10.75)]
    assert list(watch.silent) == ["x", "y", "z"]


def test_a_flood_of_stream_ids_keeps_the_watch_bounded():
    clock = Clock()
    watch = StreamWatch(1.0, max_streams=50, clock=clock)
    for i in range(1000):
        watch.seen(f"id{i}")
        if i % 100 == 99:
            clock.now += 2.0
    assert len(watch.last) == 50 and len(watch.silent) == 50
    # Each quiet batch of 100 is flagged when the next begins: only the 49 still watched (the
    # newcomer has taken one place); the others were forgotten unflagged.
    assert len(watch.events) == 9 * 49
