"""Fuzzing the real agent: random bad lines among good ones, fed to `edge-agent run` on a real bundle.

Each bad line must give exactly one error record with its line number, and the good
lines the same predictions as without the bad ones: nothing lost, no window touched.
"""

import json

import pytest
from fuzzing import TIERS, mutated
from hypothesis import strategies as st

from edge_agent.pipeline import Pipeline
from edge_agent.samples import MAX_LINE_BYTES, SampleError

GOOD_LINES = 150  # the test split's first lines: a few engines, about 120 windows


def records(proc):
    assert proc.returncode == 0, proc.stderr.decode()
    return [json.loads(line) for line in proc.stdout.decode().splitlines()]


def predictions(recs):
    return [(r["stream"], r["t"], r["score"]) for r in recs if r["type"] == "prediction"]


def bad_line_filter(parser):
    """True for a line the agent must answer with an error record (a blank line gets none)."""

    def is_bad(raw):
        if len(raw) > MAX_LINE_BYTES:
            return True
        try:
            text = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            return True
        if not text:
            return False
        try:
            parser.parse(text)
        except SampleError:
            return True
        return False

    return is_bad


def bad_lines(good, fields, is_bad):
    json_lines = st.dictionaries(
        st.sampled_from(fields), st.none() | st.booleans() | st.floats() | st.text(max_size=8) | st.integers()
    ).map(lambda obj: json.dumps(obj).encode())
    lines = st.one_of(
        mutated(st.integers(0, len(good) - 1).map(lambda i: good[i])),
        st.binary(max_size=120),
        st.text(max_size=120).map(str.encode),
        json_lines,
        mutated(json_lines),
        st.integers(MAX_LINE_BYTES + 1, MAX_LINE_BYTES + 3000).map(lambda n: b"7" * n),
    )
    return lines.map(lambda raw: raw.replace(b"\n", b" ")).filter(is_bad)


def mix(good, placed):
    """The good lines with each bad line inserted before good line `at`; (stream, 1-based numbers of bad lines)."""
    out, numbers = [], []
    for i in range(len(good) + 1):
        for at, raw in placed:
            if at == i:
                out.append(raw)
                numbers.append(len(out))
        if i < len(good):
            out.append(good[i])
    return b"\n".join(out) + b"\n", numbers


@pytest.mark.parametrize("tier", TIERS)
def test_fuzz_bad_lines_give_one_error_record_each_and_lose_no_prediction(
    fuzz, tier, xgb_build, synthetic_splits, agent
):
    bundle = str(xgb_build.bundle_dir)
    good = synthetic_splits[1].path.read_bytes().splitlines()[:GOOD_LINES]
    clean = predictions(records(agent("run", "--bundle", bundle, stdin=b"\n".join(good) + b"\n")))
    assert len(clean) > 50
    parser = Pipeline(bundle, xgb_build.manifest, stages=[]).parser
    is_bad = bad_line_filter(parser)
    streams = st.lists(
        st.tuples(st.integers(0, len(good)), bad_lines(good, parser.fields, is_bad)), min_size=30, max_size=300
    )

    def check(placed):
        data, numbers = mix(good, placed)
        recs = records(agent("run", "--bundle", bundle, stdin=data))
        errors = [r for r in recs if r["type"] == "error"]
        assert [e["line"] for e in errors] == numbers
        assert all(e["reason"] and e["message"] for e in errors)
        assert predictions(recs) == clean
        assert recs[-1]["final"] and recs[-1]["errors"] == len(numbers)

    fuzz.run(tier, "agent (bad lines)", streams, check, share=0.004, size=len)
