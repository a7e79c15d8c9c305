"""Two-stage bundles: a compiled tree model answers confident windows, a TFLite model the uncertain ones.

The uncertainty band [low, high) on stage 1's score is calibrated on out-of-fold
scores of the training units (never the test split): of all bands under which the
cascade decides as the better single stage does on every out-of-fold window (but a
tolerated share), the one that escalates the fewest windows. Stage 1 runs on every
window and stage 2 only on escalated ones, so the fewest escalations is the lowest
mean latency. Asking for the same decisions, not only the same F1, matters: a band
whose F1 matched stage 2's by trading one error for another lost 0.006 F1 on the
FD001 test split, the band that keeps stage 2's decisions lost none.
"""

import json
import shutil
from pathlib import Path

import numpy as np

from edge_convert import bundle
from edgectl.errors import EdgectlError
from edgectl.inspect_bundle import band_text

TOLERANCE = 0.0  # share of out-of-fold windows the cascade may decide unlike the better single stage
EDGES = 200  # candidate band edges: quantiles of stage 1's out-of-fold scores
CURVE_STEPS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0)
SPEC_KEYS = ("input", "window", "preprocessing", "features", "output")


def calibrate(y, first, second, tolerance=TOLERANCE):
    """Choose the band on stage 1's scores.

    y: labels; first, second: (scores, threshold) of each stage on the same windows,
    out of fold. Returns the band, the cascade's escalation rate and F1 on these
    windows, each single stage's F1 and the trade-off curve (best F1 reachable at
    each escalation rate).
    """
    y = np.asarray(y).astype(bool)
    s1, t1 = np.asarray(first[0]), first[1]
    p1, p2 = s1 >= t1, np.asarray(second[0]) >= second[1]
    order = np.argsort(s1, kind="stable")
    s1, y, p1, p2 = s1[order], y[order], p1[order], p2[order]
    # Scores are probabilities: -1 and 2 lie beyond every score, so "all below" and "all above" are bands too;
    # low == high == t1 is the empty band (stage 1 alone).
    # The stages' disagreements give edges too: a band that just holds them all (or all but a tolerated share).
    steps = np.linspace(0, 1, EDGES + 1)
    split = np.quantile(s1[p1 != p2], steps) if np.any(p1 != p2) else np.array([t1])
    edges = np.unique(np.concatenate([np.quantile(s1, steps), [t1, -1.0, 2.0], split, np.nextafter(split, 3)]))
    low, high = np.meshgrid(edges[edges <= t1], edges[edges >= t1], indexing="ij")
    lo, hi = np.searchsorted(s1, low.ravel(), "left"), np.searchsorted(s1, high.ravel(), "left")
    f1, escalated = _band_f1(y, p1, p2, lo, hi), (hi - lo) / len(y)
    single = {"stage1": _f1(y, p1), "stage2": _f1(y, p2)}
    # Unlike the better stage: stage 2 -> the disagreements left outside the band; stage 1 -> those inside it.
    differ = np.concatenate([[0], np.cumsum(p1 != p2)])
    inside = differ[hi] - differ[lo]
    unlike = (differ[-1] - inside if single["stage2"] > single["stage1"] else inside) / len(y)
    feasible = unlike <= tolerance  # never empty: the grid holds "stage 1 alone" and "all to stage 2"
    best = np.flatnonzero(feasible)[np.lexsort((-f1[feasible], escalated[feasible]))[0]]
    return {
        "low": float(low.ravel()[best]),
        "high": float(high.ravel()[best]),
        "escalation": float(escalated[best]),
        "f1": float(f1[best]),
        "f1_single": single,
        "unlike_better_stage": float(unlike[best]),
        "tolerance": tolerance,
        "windows": len(y),
        "method": "out-of-fold scores of the training units",
        "curve": [{"max_escalation": step, "f1": float(f1[escalated <= step].max())} for step in CURVE_STEPS],
    }


def _band_f1(y, p1, p2, lo, hi):
    """Cascade F1 for every band [lo, hi) of sorted positions: stage 2 inside, stage 1 outside."""

    def counts(pred):  # cumulative true positives, false positives, false negatives
        stacked = np.stack([pred & y, pred & ~y, ~pred & y]).astype(np.int64)
        return np.concatenate([np.zeros((3, 1), np.int64), np.cumsum(stacked, axis=1)], axis=1)

    c1, c2 = counts(p1), counts(p2)
    tp, fp, fn = c1[:, -1:] - (c1[:, hi] - c1[:, lo]) + (c2[:, hi] - c2[:, lo])
    return 2 * tp / np.maximum(2 * tp + fp + fn, 1)


def _f1(y, pred):
    tp = np.sum(pred & y)
    return float(2 * tp / max(2 * tp + np.sum(pred & ~y) + np.sum(~pred & y), 1))


def join(first, second, out_dir, tolerance=TOLERANCE, say=lambda msg: None):
    """Write a two-stage bundle to out_dir from two one-stage builds (BuildResult) of the same data.

    Returns (manifest, calibration).
    """
    if first.manifest["output"]["task"] != "binary":
        raise EdgectlError(
            f"a cascade is binary-only; this spec's task is {first.manifest['output']['task']}: serve one model"
        )
    spec = {key: first.manifest[key] for key in SPEC_KEYS}
    if spec != {key: second.manifest[key] for key in SPEC_KEYS} or not np.array_equal(first.y, second.y):
        raise EdgectlError("the two stages were built from different data or windows; build both from one split")
    stages = [first.manifest["stages"][0], second.manifest["stages"][0]]
    if stages[0]["kind"] != "tree-lib":
        raise EdgectlError("a cascade's stage 1 is a tree model (it answers every window, in microseconds)")
    if stages[0]["name"] == stages[1]["name"]:
        raise EdgectlError(f"both stages are named {stages[0]['name']!r}: a cascade joins two different models")
    calibration = calibrate(
        first.y, (first.oof, stages[0]["threshold"]), (second.oof, stages[1]["threshold"]), tolerance
    )
    say(
        f"cascade band {band_text(calibration, digits=3)}: out of fold, "
        f"{calibration['escalation']:.1%} of windows escalated, F1 {calibration['f1']:.3f} "
        "(stage 1 alone {stage1:.3f}, stage 2 alone {stage2:.3f})".format(**calibration["f1_single"])
    )
    advice = _advice(calibration)
    if advice:
        say(advice)
    with bundle.staged(out_dir) as work:
        manifest = _write(work, first, second, spec, stages, calibration)
    say(f"bundle {manifest['bundle_id']} written to {bundle.final_path(out_dir)}")
    return manifest, calibration


def _write(work, first, second, spec, stages, calibration):
    """The two-stage bundle in the directory work: both stages' files, joined golden vectors, the band."""
    work.mkdir()
    for result, stage in ((first, stages[0]), (second, stages[1])):
        shutil.copytree(result.bundle_dir / stage["name"], work / stage["name"])
    golden = _joined_golden(first.bundle_dir, second.bundle_dir)
    name = f"cascade-{stages[0]['name']}-{stages[1]['name']}"
    built_with = {"model": "cascade", "stages": [first.manifest["bundle_id"], second.manifest["bundle_id"]]}
    band = {"low": calibration["low"], "high": calibration["high"], "calibration": _without(calibration, "low", "high")}
    # The cascade answers with stage 2 inside the band: its score reference is the joined out-of-fold score.
    inside = (first.oof >= band["low"]) & (first.oof < band["high"])
    monitor = dict(first.manifest["drift"], score_mean=float(np.mean(np.where(inside, second.oof, first.oof))))
    return bundle.write_bundle(work, name, dict(spec, drift=monitor), stages, golden, built_with, cascade=band)


def _advice(calibration):
    """What to serve instead when the cascade does not pay, or None."""
    single = calibration["f1_single"]
    if calibration["escalation"] == 0:
        return "the cascade escalates nothing: stage 1 alone is as good (out of fold); serve stage 1 alone"
    if calibration["escalation"] >= 0.5:
        return (f"the cascade escalates {calibration['escalation']:.0%} of windows: it costs about what stage 2 "
                "alone does; serve stage 2 alone")  # fmt: skip
    if calibration["f1"] < single["stage2"]:
        return "the cascade is less accurate than stage 2 alone (out of fold); serve stage 2 alone"
    return None


def _without(d, *keys):
    return {k: v for k, v in d.items() if k not in keys}


def _joined_golden(first_dir, second_dir):
    """One golden file with both stages' scores for the same golden windows."""
    first = json.loads((Path(first_dir) / bundle.GOLDEN_NAME).read_text())
    second = json.loads((Path(second_dir) / bundle.GOLDEN_NAME).read_text())
    if first["lines"] != second["lines"]:
        raise EdgectlError("the two stages' golden samples differ; build both from one split")
    for a, b in zip(first["windows"], second["windows"]):
        a["scores"].update(b["scores"])
    return first
