"""The bench's statistics: a latency summary, and MLPerf LoadGen's early-stopping estimate of a percentile."""

import math

import numpy as np

from edge_agent.telemetry import percentiles


def summarize(values_us):
    """{"n", "p50", "p90", "p99", "max", "mean"} in µs (None values when empty)."""
    values = np.asarray(values_us, dtype=np.float64)
    if not len(values):
        return {"n": 0, **percentiles(values), "max": None, "mean": None}
    return {
        "n": len(values),
        **percentiles(values),
        "max": round(float(values.max()), 1),
        "mean": round(float(values.mean()), 1),
    }


def early_stopping(sorted_us, percentile=0.9, confidence=0.99):
    """MLPerf LoadGen's SingleStream early-stopping estimate of a latency percentile.

    With n queries, t is the largest count such that P(Binomial(n, 1 - percentile) <= t)
    <= 1 - confidence; the estimate is the t-th highest latency: at that confidence,
    the true percentile is no higher. None (and the queries it needs) when n is too small.
    """
    n = len(sorted_us)
    needed = _min_queries(percentile, confidence)
    t = _allowed_over(n, percentile, confidence)
    result = {"percentile": percentile * 100, "confidence": confidence, "queries": n, "min_queries": needed}
    if t < 1:
        return {**result, "estimate_us": None, "discarded": None}
    return {**result, "estimate_us": round(float(sorted_us[n - t]), 1), "discarded": t - 1}


def _allowed_over(n, p, c):
    """The largest t with P(Binomial(n, 1 - p) <= t) <= 1 - c (-1 when even t = 0 is too likely)."""
    if n == 0:
        return -1
    log_pmf = n * math.log(p)  # P(X = 0); summed in log space so a large n does not underflow the terms
    cdf, x = math.exp(log_pmf), 0
    while cdf <= 1 - c and x < n:
        x += 1
        log_pmf += math.log((n - x + 1) / x) + math.log((1 - p) / p)
        cdf += math.exp(log_pmf)
    return x - 1 if cdf > 1 - c else n


def _min_queries(p, c):
    n = 1
    while _allowed_over(n, p, c) < 1:
        n += 1
    return n
