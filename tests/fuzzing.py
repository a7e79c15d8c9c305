"""Property-based fuzzing in two tiers, and a count of what each target was fed.

A fuzz test is parametrized by TIERS: the fast tier runs hypothesis' default
profile (a few examples), the slow tier the `fuzz` profile (thousands). Every
input is counted per target; an exception the property does not expect is a
crash, recorded by its type and place. The session prints one line ("fuzzed N
inputs ..., K crashes") and writes the same numbers to fuzz-summary.json in
pytest's base temp dir (see the `fuzz` fixture in conftest.py).
"""

import json
import traceback
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FUZZ_EXAMPLES = 10_000
# deadline None: on a shared 2-core machine an example's time says nothing about correctness.
settings.register_profile(
    "fast", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
settings.register_profile(
    "fuzz",
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,  # thousands of passing examples are not worth keeping
)
TIERS = [pytest.param("fast", id="fast"), pytest.param("fuzz", id="fuzz", marks=pytest.mark.slow)]


class Fuzzer:
    """Runs properties under a tier's settings and counts inputs and crashes per target."""

    def __init__(self):
        self.inputs = Counter()
        self.crashes = {}  # (target, exception type, file:line) -> first message

    def run(self, tier, target, strategy, check, share=1.0, size=None):
        """check(example) for examples drawn from strategy; share scales the tier's max_examples
        (targets that cost a process or a file copy per example run fewer); size(example) is the
        number of inputs one example holds (default 1; e.g. the bad lines of one agent stream)."""
        profile = settings.get_profile(tier)

        @settings(profile, max_examples=max(1, int(profile.max_examples * share)))
        @given(strategy)
        def prop(example):
            self.inputs[target] += size(example) if size else 1
            try:
                check(example)
            except Exception as exc:
                where = traceback.extract_tb(exc.__traceback__)[-1]
                self.crash(target, type(exc).__name__, f"{where.filename}:{where.lineno}", str(exc))
                raise

        prop()

    def count(self, target, n):
        """Inputs fed outside hypothesis (atheris runs)."""
        self.inputs[target] += n

    def crash(self, target, kind, where, message):
        """Record a crash once per (target, exception type, place)."""
        self.crashes.setdefault((target, kind, where), message[:200])

    def summary(self):
        return {
            "inputs": sum(self.inputs.values()),
            "crashes": len(self.crashes),
            "by_target": dict(sorted(self.inputs.items())),
            "crash_sites": [
                {"target": t, "type": kind, "where": where, "message": message}
                for (t, kind, where), message in self.crashes.items()
            ],
        }

    def write(self, path):
        path.write_text(json.dumps(self.summary(), indent=2) + "\n")
        return self.summary()


@st.composite
def mutated(draw, base, max_edits=4):
    """A str or bytes drawn from `base`, then damaged by a few edits: flip, delete, insert, duplicate, truncate."""
    data = draw(base)
    piece = st.text(max_size=8) if isinstance(data, str) else st.binary(max_size=8)
    for _ in range(draw(st.integers(1, max_edits))):
        n = len(data)
        i = draw(st.integers(0, n))
        j = draw(st.integers(i, min(n, i + 16)))
        edit = draw(st.sampled_from(("flip", "delete", "insert", "duplicate", "truncate")))
        if edit == "flip" and i < n:
            if isinstance(data, str):
                data = data[:i] + chr(ord(data[i]) ^ draw(st.integers(1, 127))) + data[i + 1 :]
            else:
                data = data[:i] + bytes([data[i] ^ draw(st.integers(1, 255))]) + data[i + 1 :]
        elif edit == "delete":
            data = data[:i] + data[j:]
        elif edit == "insert":
            data = data[:i] + draw(piece) + data[i:]
        elif edit == "duplicate":
            data = data[:j] + data[i:j] + data[j:]
        elif edit == "truncate":
            data = data[:i]
    return data
