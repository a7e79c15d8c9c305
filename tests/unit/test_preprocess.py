"""Preprocessing fitted on the host and applied on the board, with and without operating conditions."""

import numpy as np

from edge_agent import preprocess


def conditions_data(n_conditions, n=3000, seed=0):
    rng = np.random.default_rng(seed)
    points = rng.uniform(0, 40, size=(n_conditions, 3))
    which = rng.integers(0, n_conditions, size=n)
    settings = points[which] + rng.normal(0, 0.002, size=(n, 3))
    offsets = rng.normal(0, 50, size=(n_conditions, 4))
    values = offsets[which] + rng.normal(0, 1, size=(n, 4))
    return settings, values, which


def test_six_tight_setting_clusters_become_six_conditions_each_standardized_on_its_own():
    settings, values, which = conditions_data(6)
    params = preprocess.fit(values, list("abcd"), impute=False, settings=settings, setting_names=["x", "y", "z"])
    assert len(params["conditions"]["centers"]) == 6
    prep = preprocess.Preprocessor(params, list("abcd"))
    out = np.array([prep.apply(v, s) for v, s in zip(values, settings)])
    for k in range(6):  # every condition lands at mean 0, std 1 (the pooled scaling would leave offsets of ~50)
        part = out[which == k]
        np.testing.assert_allclose(part.mean(axis=0), 0, atol=1e-9)
        np.testing.assert_allclose(part.std(axis=0), 1, atol=1e-9)
    assert prep.setting_fields == ["x", "y", "z"]


def test_settings_that_are_noise_around_one_point_stay_one_condition():
    settings, values, _ = conditions_data(1)
    params = preprocess.fit(values, list("abcd"), impute=False, settings=settings, setting_names=["x", "y", "z"])
    assert "conditions" not in params
    assert preprocess.Preprocessor(params, list("abcd")).setting_fields == []


def test_imputation_fills_missing_values_with_training_medians():
    values = np.array([[1.0, np.nan], [3.0, 4.0], [np.nan, 6.0]])
    params = preprocess.fit(values, ["a", "b"])
    assert params["impute"] == {"a": 2.0, "b": 5.0}
    prep = preprocess.Preprocessor(params, ["a", "b"])
    np.testing.assert_allclose(prep.apply(np.array([np.nan, np.nan])), prep.apply(np.array([2.0, 5.0])))
