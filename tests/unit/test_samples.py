import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.samples import SampleError, SampleParser, format_line
from edge_agent.sources import LineSplitter

SPEC = {
    "fields": ["unit", "cycle", "a", "b", "c"],
    "stream_field": "unit",
    "time_field": "cycle",
    "features": ["a", "c"],
}


def parser(imputable=()):
    return SampleParser(SPEC, imputable={name: 0.0 for name in imputable})


def test_csv_whitespace_and_json_give_the_same_sample():
    for line in ("3,7,1.5,9,-2", "3 7 1.5 9 -2  ", '{"unit": 3, "cycle": 7, "a": 1.5, "b": 9, "c": -2}'):
        sample = parser().parse(line.strip())
        assert sample.stream == "3"
        assert sample.time == 7.0
        assert sample.values.tolist() == [1.5, -2.0]


@pytest.mark.parametrize(
    "line, reason",
    [
        ("3,7,1.5,9", "field-count"),
        ("3,7,1.5,9,-2,4", "field-count"),
        ("3,7,abc,9,-2", "not-a-number"),
        ("3,7,nan,9,-2", "missing-value"),
        ("3,7,,9,-2", "missing-value"),
        ("3,x,1,9,-2", "not-a-number"),
        ("3,nan,1,9,-2", "not-finite"),
        ("3,7,inf,9,-2", "not-finite"),
        (",7,1,9,-2", "bad-stream"),
        ('{"unit": 3, "cycle": 7, "a": 1}', "missing-field"),
        ('{"unit": 3, "cycle": 7, "a": "x", "c": 1}', "not-a-number"),
        ('{"unit": [1], "cycle": 7, "a": 1, "c": 1}', "bad-stream"),
        ('{"unit": 3, "cycle": 7, "a": 1, "c": true}', "not-a-number"),
        ("{not json", "bad-json"),
        ("[1, 2]", "field-count"),
    ],
)
def test_malformed_lines_are_rejected_with_a_reason(line, reason):
    with pytest.raises(SampleError) as err:
        parser().parse(line)
    assert err.value.reason == reason


def test_nan_is_accepted_only_where_the_bundle_imputes():
    sample = parser(imputable=["a"]).parse("3,7,nan,9,-2")
    assert np.isnan(sample.values[0])
    with pytest.raises(SampleError):
        parser(imputable=["a"]).parse("3,7,1,9,nan")


def split_all(data, chunks, max_bytes=100):
    splitter = LineSplitter(max_bytes)
    out = []
    for k in range(0, len(data), chunks):
        out += splitter.feed(data[k : k + chunks])
    return [(n, text, err.reason if err else None) for n, text, err in out + splitter.finish()]


def test_line_splitter_reports_bad_utf8_and_over_long_lines_and_keeps_going():
    data = b"1,1,1,1,1\n\xff\xfe,1\n" + b"9" * 200 + b"\n2,2,2,2,2\n3,3"
    assert split_all(data, len(data)) == [
        (1, "1,1,1,1,1", None),
        (2, None, "bad-utf8"),
        (3, None, "too-long"),
        (4, "2,2,2,2,2", None),
        (5, "3,3", None),
    ]


@given(st.binary(max_size=400), st.integers(1, 50))
def test_line_splitter_gives_the_same_lines_whatever_the_chunk_sizes(data, chunks):
    assert split_all(data, chunks) == split_all(data, max(1, len(data)))


finite = st.floats(allow_nan=False, allow_infinity=False)


@given(st.integers(0, 10**6), st.integers(0, 10**6), finite, finite, finite)
def test_format_line_round_trips_exactly(unit, cycle, a, b, c):
    sample = parser().parse(format_line([unit, cycle, a, b, c], SPEC))
    assert sample.stream == str(unit)
    assert sample.time == cycle
    assert sample.values.tolist() == [a, c]
