import json
import math

import numpy as np
import pytest
from fuzzing import TIERS, mutated
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


# Fuzzing: whatever the line, the parser gives a sample it can serve or a SampleError with a reason.

REASONS = {"field-count", "bad-json", "missing-field", "bad-stream", "missing-value", "not-a-number", "not-finite",
           "missing-column", "bad-time"}  # fmt: skip
# Factories: a header line changes a parser's columns, so every example gets a fresh one.
PARSERS = [
    parser,
    lambda: parser(imputable=["a", "c"]),
    lambda: SampleParser(SPEC, imputable={"a": 0.0}, settings=("b",)),
]

odd_tokens = st.sampled_from(
    ["", " ", "nan", "NaN", "inf", "-Infinity", "1e999", "-1e-999", "0x10", "1_0", "+", ".", "1e", "١٢", "\x00", "true"]
)
number_tokens = st.one_of(
    st.integers().map(str),
    st.floats().map(repr),
    st.integers(10**300, 10**400).map(str),  # past the largest float
    odd_tokens,
    st.text(max_size=12),
)
csv_lines = st.tuples(st.lists(number_tokens, min_size=3, max_size=7), st.sampled_from([",", " ", "\t", ", "])).map(
    lambda t: t[1].join(t[0])
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12) | st.integers(10**300, 10**400),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=8,
)
json_objects = st.dictionaries(st.sampled_from([*SPEC["fields"], "x", ""]), json_values, max_size=7).map(json.dumps)
full_json_objects = st.fixed_dictionaries({name: json_values for name in SPEC["fields"]}).map(json.dumps)
raw_json = st.one_of(
    st.text(max_size=60).map(lambda t: "{" + t),
    st.integers(1, 3000).map(lambda n: '{"unit": ' + "[" * n + "]" * n + "}"),  # deeper than the recursion limit
    st.integers(4290, 4400).map(lambda n: '{"unit": 1, "cycle": ' + "9" * n + ', "a": 1, "c": 2}'),  # int digits limit
)
good_lines = st.tuples(st.integers(0, 10**6), st.integers(0, 10**6), finite, finite, finite).map(
    lambda row: format_line(list(row), SPEC)
)
lines = st.one_of(
    st.text(max_size=120),
    csv_lines,
    json_objects,
    full_json_objects,
    raw_json,
    mutated(good_lines),
    mutated(full_json_objects),
)


def check_line(make, line):
    """The parser's contract: a Sample whose numbers the pipeline can use, None for a header line
    (then the parser has its columns), or a SampleError with a known reason."""
    p = make()
    try:
        sample = p.parse(line.strip())
    except SampleError as exc:
        assert exc.reason in REASONS and str(exc)
        return
    if sample is None:
        assert p.header is not None
        return
    assert isinstance(sample.stream, str) and sample.stream
    assert math.isfinite(sample.time)
    assert sample.values.shape == (2,) and not np.isinf(sample.values).any()
    assert np.isfinite(sample.values[~p._may_be_missing]).all()
    assert np.isfinite(sample.settings).all() and len(sample.settings) == len(p.settings)


@pytest.mark.parametrize("tier", TIERS)
def test_fuzz_any_line_is_a_sample_or_an_error_with_a_reason(fuzz, tier):
    fuzz.run(tier, "sample parser", st.tuples(st.sampled_from(PARSERS), lines), lambda args: check_line(*args))


@pytest.mark.parametrize(
    "line, reason",
    [
        ('{"unit": 1, "cycle": ' + "9" * 5000 + ', "a": 1, "c": 2}', "bad-json"),
        ('{"unit": ' + "[" * 50_000, "bad-json"),
        ('{"unit": 1, "cycle": 1' + "0" * 400 + ', "a": 1, "c": 2}', "not-finite"),
    ],
)
def test_json_past_the_parsers_limits_is_a_bad_line_not_a_crash(line, reason):
    """Found by fuzzing: Python's int digit limit, its recursion limit and int -> float overflow."""
    with pytest.raises(SampleError) as err:
        parser().parse(line)
    assert err.value.reason == reason


def test_a_header_line_maps_columns_by_name_in_any_order_and_extra_columns_are_ignored():
    p = parser()
    assert p.parse("extra;c;cycle;unit;a") is None  # semicolons, another order, no b, an extra column
    sample = p.parse("x;-2;7;3;1.5")
    assert (sample.stream, sample.time, sample.values.tolist()) == ("3", 7.0, [1.5, -2.0])
    with pytest.raises(SampleError, match="field-count|expected 5 fields"):
        p.parse("3;7;1.5")


def test_a_header_that_lacks_a_column_names_it_and_its_lines_are_errors_until_a_good_header():
    p = parser()
    with pytest.raises(SampleError, match="lacks c") as exc:
        p.parse("unit,cycle,a,b")
    assert exc.value.reason == "missing-column"
    with pytest.raises(SampleError, match="lacks c"):
        p.parse("3,7,1.5,9")
    assert p.parse("unit\tcycle\ta\tb\tc") is None  # tab separated
    assert p.parse("3\t7\t1.5\t9\t-2").values.tolist() == [1.5, -2.0]


def test_iso_8601_times_are_seconds_since_the_epoch_naive_ones_utc():
    p = parser()
    assert p.parse("3,2026-03-01T12:00:00Z,1,2,3").time == 1772366400.0
    assert p.parse("3,2026-03-01T12:00:01,1,2,3").time == 1772366401.0
    assert p.parse("3,2026-03-01T14:00:02.5+02:00,1,2,3").time == 1772366402.5
    assert p.parse('{"unit": "m1", "cycle": "2026-03-01 12:00:03", "a": 1, "b": 2, "c": 3}').time == 1772366403.0
    with pytest.raises(SampleError, match="neither a number nor an ISO 8601 time") as exc:
        p.parse("3,2026-13-01T00:00:00,1,2,3")
    assert exc.value.reason == "bad-time"
