import random

import pytest
from fuzzing import TIERS, mutated
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.framing import KINDS, MAX_FRAME, Frame, FrameReader, decode, encode

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


# Fuzzing: any bytes on the line give good frames or counted bad ones, never an exception or a wrong value.

encoded = frames.map(lambda item: encode(*item))
blocks = st.one_of(
    encoded,  # a good frame
    mutated(encoded),  # a damaged one (a flipped 0 splits it in two blocks, both bad)
    st.binary(max_size=64),  # noise
    st.binary(max_size=64).map(lambda b: b + b"\0"),
    st.tuples(st.sampled_from(sorted(KINDS)), st.integers(0, 2**64 - 1), st.binary(max_size=40)).map(
        lambda t: encode(chr(t[0]), t[1], t[2])[:-1] + b"\0"  # a good frame's parts, noise aside
    ),
)


def check_stream(args):
    parts, chunk = args
    data = b"".join(parts)
    reader = FrameReader()
    got = []
    for i in range(0, len(data), chunk):
        got += reader.feed(data[i : i + chunk])
    delimited = data.split(b"\0")[:-1]  # what follows the last delimiter is still buffered
    assert reader.good + reader.bad == sum(1 for block in delimited if block)
    assert reader.good == len(got) and all(isinstance(f, Frame) and ord(f.kind) in KINDS for f in got)
    assert [encode(f.kind, f.seq, f.body) for f in got] == [block + b"\0" for block in delimited if decode(block)]


def check_decode(raw):
    frame = decode(raw)
    assert frame is None or decode(encode(frame.kind, frame.seq, frame.body)[:-1]) == frame


@pytest.mark.parametrize("tier", TIERS)
def test_fuzz_any_byte_stream_gives_good_frames_and_counts_the_rest(fuzz, tier):
    fuzz.run(
        tier, "frame decoder", st.tuples(st.lists(blocks, max_size=12), st.integers(1, 80)), check_stream, share=0.5
    )


@pytest.mark.parametrize("tier", TIERS)
def test_fuzz_decode_returns_a_frame_or_none(fuzz, tier):
    fuzz.run(
        tier,
        "frame decoder",
        st.one_of(st.binary(max_size=300), mutated(encoded.map(lambda f: f[:-1]))),
        check_decode,
        share=0.5,
    )


def test_a_run_of_noise_longer_than_a_frame_is_dropped_and_counted_once():
    reader = FrameReader()
    assert reader.feed(b"\x01" * (MAX_FRAME + 1)) == [] and reader.bad == 1
    assert [f.seq for f in reader.feed(b"junk\0" + encode("R", 5, b"x"))] == [5]
