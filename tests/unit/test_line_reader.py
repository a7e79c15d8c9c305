"""The C line reader (edge_lines.c, the agent's block path) against samples.py (the reference): any line
it reads, samples.py reads to the same stream, time and values, bit for bit; any other line it leaves
to samples.py. Lines of random fields, numbers in every form float() takes or refuses."""

import ctypes

import numpy as np
import pytest

from edge_agent.samples import SampleError, SampleParser
from edge_convert.kernel import host_kernel

SPEC = {"fields": ["id", "t", "a", "b", "c"], "stream_field": "id", "time_field": "t", "features": ["a", "b", "c"]}
TOKENS = ["1", "-2.5", "+.5", "5.", "1e5", "1E-3", " 7 ", "\t8", "", "nan", "inf", "-inf", "1_0", "0x1", "1e", "e5",
          ".", "-", "\u0661", "1.5e400", "1e-400", "00012", "3.14159265358979323846264338327950288", "0.1", "-0",
          "2026-01-01T00:00:00Z", "abc", "1 2", "4.9e-324", "1" * 70, "engine-7", "a"]  # fmt: skip
SEPARATORS = [",", ";", " ", "\t", ", ", " ,", "  "]


def _number(rng, v):
    """A double's repr, a sensor's few decimals, or digits at the edges of the C reader's exact path
    (integers near 2^53, exponents near +-22), in the forms float() takes."""
    kind = rng.integers(4)
    if kind == 0:
        return repr(v)
    if kind == 1:
        return f"{v:.{rng.integers(0, 8)}f}"
    if kind == 2:
        return f"{v:.{rng.integers(0, 16)}e}".replace("e+", str(rng.choice(["e", "E+", "e+0"])))
    edges = [2**53 - 1, 2**53, 2**53 + 1, 9007199254740999, 900719925474099, 10 ** rng.integers(0, 19)]
    digits = str(rng.choice(edges))
    sign = str(rng.choice(["", "-", "+"]))
    if rng.random() < 0.5:
        return f"{sign}{digits}e{rng.integers(-24, 25)}"
    point = int(rng.integers(0, len(digits) + 1))
    return f"{sign}{digits[:point]}.{digits[point:]}0{'0' * int(rng.integers(0, 20))}"


def c_read(lib, texts):
    """edge_parse_lines on the lines: (ok, values, times, stream spans)."""
    n = len(texts)
    layout = np.array([5, 0, 1, 3, 2, 3, 4, 0], dtype=np.int32)  # width, stream, time, 3 features, no settings
    ok, values, times = np.zeros(n, dtype=np.int8), np.zeros((n, 3)), np.zeros(n)
    spans, settings = np.zeros((n, 2), dtype=np.int32), np.zeros(1)
    text = "\n".join(texts).encode()
    got = lib.edge_parse_lines(text, len(text), n, layout.ctypes.data, ok.ctypes.data, values.ctypes.data,
                               settings.ctypes.data, times.ctypes.data, spans.ctypes.data)  # fmt: skip
    assert got == n
    return ok, values, times, spans


@pytest.fixture(scope="module")
def lib():
    lib = host_kernel()
    assert lib is not None, "gcc is part of the host's toolchain (make system-deps)"
    p = ctypes.c_void_p
    lib.edge_parse_lines.restype = ctypes.c_int
    lib.edge_parse_lines.argtypes = (p, ctypes.c_int64, ctypes.c_int, p, p, p, p, p, p)
    return lib


def test_every_line_the_c_reader_reads_samples_py_reads_alike(lib):
    rng = np.random.default_rng(3)
    texts = ["id,t,a,b,c", "id;t;a;b;c"]
    for _ in range(20000):
        width = int(rng.choice([4, 5, 5, 5, 5, 6]))
        plain = rng.random() < 0.4  # most lines of real data are plain numbers
        fields = [str(rng.integers(1, 9)) if plain else str(rng.choice(TOKENS)) for _ in range(width)]
        if plain:  # a double's repr, or a sensor's few decimals (Clinger's fast path and its edges: 2^53, 1e22)
            fields[2:] = [_number(rng, float(v)) for v in rng.normal(size=width - 2) * 10.0 ** rng.integers(-5, 5)]
        texts.append(str(rng.choice(SEPARATORS)).join(fields).strip())
    ok, values, times, spans = c_read(lib, texts)
    read = 0
    for i, text in enumerate(texts):
        parser = SampleParser(SPEC, imputable={"a", "b", "c"})  # a fresh parser: no header carried over
        try:
            sample = parser.parse(text)
        except SampleError:
            sample = None
        if not ok[i]:
            continue
        read += 1
        assert sample is not None, f"C read a line samples.py refuses or takes for a header: {text!r}"
        a, b = spans[i]
        assert (text[a:b], times[i]) == (sample.stream, sample.time), text
        assert values[i].tobytes() == sample.values.tobytes(), text
    assert read > 0.25 * len(texts)  # the plain lines of five fields (0.4 x 4/6), and odd ones that are plain too
