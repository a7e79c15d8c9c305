import random

from hypothesis import given
from hypothesis import strategies as st

from edge_agent.framing import FrameReader, decode, encode

frames = st.tuples(st.sampled_from("HSaRAD"), st.integers(0, 2**64 - 1), st.binary(max_size=300))


@given(st.lists(frames, max_size=20), st.integers(1, 64))
def test_frames_round_trip_whatever_the_chunking(items, chunk):
    data = b"".join(encode(k, s, b) for k, s, b in items)
    reader = FrameReader()
    got = []
    for i in range(0, len(data), chunk):
        got += reader.feed(data[i : i + chunk])
    assert [(f.kind, f.seq, f.body) for f in got] == items
    assert reader.bad == 0


@given(frames, st.data())
def test_a_corrupted_frame_is_detected_never_decoded_into_another_value(item, data):
    raw = bytearray(encode(*item)[:-1])
    i = data.draw(st.integers(0, len(raw) - 1))
    raw[i] ^= data.draw(st.integers(1, 255))
    reader = FrameReader()
    got = reader.feed(bytes(raw) + b"\0")
    assert got == [] and reader.bad >= 1


@given(frames, st.data())
def test_a_truncated_frame_is_detected(item, data):
    raw = encode(*item)[:-1]
    cut = data.draw(st.integers(1, len(raw) - 1))
    assert decode(raw[:cut]) is None


def test_good_frames_around_noise_are_delivered():
    rng = random.Random(1)
    good = [encode("R", n, b'{"n": %d}' % n) for n in range(1, 200)]
    stream = b""
    for frame in good:
        stream += frame
        if rng.random() < 0.3:
            stream += bytes(rng.randrange(1, 256) for _ in range(rng.randrange(1, 40))) + b"\0"
    reader = FrameReader()
    got = reader.feed(stream)
    assert [f.seq for f in got] == list(range(1, 200))
    assert reader.bad > 10


def test_the_agent_starts_without_pyserial_and_cobs():
    """Only boards with a UART link install them: nothing else may import them."""
    import subprocess
    import sys

    code = "import sys; sys.modules['cobs'] = sys.modules['serial'] = None; import edge_agent.cli, edge_agent.agent"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0
