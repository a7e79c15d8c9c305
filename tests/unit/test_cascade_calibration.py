"""The cascade's band: the fewest escalations under which the cascade decides as the better stage does
(on every out-of-fold window, or all but a tolerated share)."""

import itertools

import numpy as np

from edgectl.cascade import calibrate


def scores(seed=0, n=3000):
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.12
    weak = np.clip(y * 0.5 + rng.normal(0.25, 0.2, n), 0, 1)  # overlaps around its threshold
    strong = np.clip(y * 0.8 + rng.normal(0.1, 0.08, n), 0, 1)
    return y, weak, strong


def cascade(y, s1, t1, s2, t2, low, high):
    """The cascade's decisions under a band, its F1 and its escalation rate."""
    band = (s1 >= low) & (s1 < high)
    pred = np.where(band, s2 >= t2, s1 >= t1)
    tp = np.sum(pred & y)
    return pred, 2 * tp / (2 * tp + np.sum(pred & ~y) + np.sum(~pred & y)), band.mean()


def test_a_weak_fast_stage_escalates_its_uncertain_windows_and_decides_as_the_strong_stage():
    y, weak, strong = scores()
    got = calibrate(y, (weak, 0.5), (strong, 0.5))
    pred, f1, escalated = cascade(y, weak, 0.5, strong, 0.5, got["low"], got["high"])
    assert got["f1"] == f1 and got["escalation"] == escalated  # what it reports is what the band does
    assert np.array_equal(pred, strong >= 0.5) and got["unlike_better_stage"] == 0
    assert f1 == got["f1_single"]["stage2"] > got["f1_single"]["stage1"]
    assert 0 < escalated < 0.6
    assert got["curve"][-1]["f1"] >= got["curve"][0]["f1"] == got["f1_single"]["stage1"]


def test_no_coarser_band_escalates_fewer_windows_within_the_tolerance():
    y, weak, strong = scores(seed=1, n=800)
    got = calibrate(y, (weak, 0.5), (strong, 0.5), tolerance=0.01)
    assert 0 < got["unlike_better_stage"] <= 0.01
    assert got["escalation"] < calibrate(y, (weak, 0.5), (strong, 0.5))["escalation"]  # the tolerance buys fewer
    edges = np.quantile(weak, np.linspace(0, 1, 41))
    for low, high in itertools.product(edges[edges <= 0.5], edges[edges >= 0.5]):
        pred, _, escalated = cascade(y, weak, 0.5, strong, 0.5, low, high)
        assert not (np.mean(pred != (strong >= 0.5)) <= 0.01 and escalated < got["escalation"])


def test_a_fast_stage_that_is_already_best_escalates_nothing():
    y, weak, strong = scores(seed=2)
    got = calibrate(y, (strong, 0.5), (weak, 0.5))
    assert got["escalation"] == 0 and got["f1"] == got["f1_single"]["stage1"]
