"""Start-up self-test: replay the bundle's golden samples and compare every stage's score.

The host wrote the golden file with the scores it computed; a board whose
runtime, library or preprocessing disagrees beyond the stated tolerance refuses
to serve.
"""

import json
from pathlib import Path

from edge_agent.errors import BundleError
from edge_agent.manifest import check_finite
from edge_agent.pipeline import Pipeline
from edge_agent.samples import SampleError


def run_selftest(bundle_dir, manifest, stages):
    """Return {"windows", "max_abs_diff", "mean_abs_diff"} (per stage); raise BundleError on a mismatch.

    Every window must be within the stage's tolerance, and the mean within its mean tolerance.
    """
    golden_spec = manifest["golden"]
    path = Path(bundle_dir) / golden_spec["file"]
    golden = read_golden(path)
    tolerance = golden_spec["tolerance"]
    mean_tolerance = golden_spec.get("mean_tolerance", tolerance)
    fresh = Pipeline(bundle_dir, manifest, stages=stages)
    expected = iter(golden["windows"])
    worst, total = {}, {}  # per stage that loaded
    n = 0
    for i, line in enumerate(golden["lines"]):
        try:
            got = fresh.stage_scores(line)
        except SampleError as exc:
            raise BundleError(f"{path}: golden line {i + 1} does not parse: {exc}") from None
        if got is None:
            continue
        want = next(expected, None)
        if want is None or (got[0], got[1]) != (want["stream"], want["t"]):
            raise BundleError(f"{path}: self-test windows do not line up with the golden file at window {n}")
        for name, score in got[2].items():
            if name not in want["scores"]:
                raise BundleError(f"{path}: golden window {n} has no score for stage {name!r}")
            diff = _max_abs_diff(score, want["scores"][name])
            worst[name] = max(worst.get(name, 0.0), diff)
            total[name] = total.get(name, 0.0) + diff
            if not diff <= tolerance[name]:  # NaN fails too
                raise BundleError(
                    f"{path}: self-test failed: stage {name!r} scored {_text(score)} on golden window {n} "
                    f"(stream {want['stream']}, t={want['t']}), expected {_text(want['scores'][name])} "
                    f"within {tolerance[name]}"
                )
        n += 1
    if next(expected, None) is not None or n == 0:
        raise BundleError(f"{path}: self-test produced {n} windows, fewer than the golden file lists")
    mean = {name: total[name] / n for name in total}
    for name, value in mean.items():
        if not value <= mean_tolerance[name]:
            raise BundleError(
                f"{path}: self-test failed: stage {name!r} is off by {value:.4f} on average over {n} golden "
                f"windows (allowed {mean_tolerance[name]})"
            )
    return {"windows": n, "max_abs_diff": worst, "mean_abs_diff": mean}


def read_golden(path):
    """golden.json as {"lines": [str], "windows": [{"stream", "t", "scores": {stage: number}}]}; BundleError if not."""
    try:
        golden = json.loads(path.read_bytes().decode("utf-8"), parse_constant=_refuse)
        check_finite(golden, "golden")
    except (OSError, ValueError, RecursionError) as exc:
        raise BundleError(f"{path}: cannot read the golden vectors: {str(exc)[:200]}") from None
    windows = golden.get("windows") if isinstance(golden, dict) else None
    lines = golden.get("lines") if isinstance(golden, dict) else None
    if not (isinstance(lines, list) and all(isinstance(line, str) for line in lines) and isinstance(windows, list)):
        raise BundleError(f'{path}: golden vectors need "lines" (strings) and "windows"')
    for i, w in enumerate(windows):
        scores = w.get("scores") if isinstance(w, dict) else None
        if not (isinstance(scores, dict) and "stream" in w and "t" in w
                and all(_numeric(v) for v in scores.values())):  # fmt: skip
            raise BundleError(f"{path}: golden window {i} needs stream, t and numeric scores")
    return golden


def _refuse(name):
    raise ValueError(f"{name} is not a number")


def _numeric(value):
    """A score: a number, or a non-empty list of numbers (one per class)."""
    if isinstance(value, list):
        return 0 < len(value) <= 256 and all(type(v) in (int, float) for v in value)
    return type(value) in (int, float)


def _max_abs_diff(got, want):
    if isinstance(got, list) or isinstance(want, list):
        if not (isinstance(got, list) and isinstance(want, list) and len(got) == len(want)):
            return float("inf")
        return max(abs(a - b) for a, b in zip(got, want))
    return abs(got - want)


def _text(score):
    return f"[{', '.join(f'{v:.6f}' for v in score)}]" if isinstance(score, list) else f"{score:.6f}"
