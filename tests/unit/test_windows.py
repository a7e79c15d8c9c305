import numpy as np
import pytest

from edge_agent.windows import FEATURE_KINDS, Plan, StreamWindow, WindowSet, feature_names, parse_kind


def direct_features(window):
    """The same features computed from scratch, the slow obvious way."""
    t = np.arange(len(window))
    out = []
    for col in window.T:
        out += [col.mean(), col.std(), np.polyfit(t, col, 1)[0], col[-1]]
    return np.array(out)


@pytest.mark.parametrize("length, stride", [(2, 1), (5, 1), (30, 1), (30, 7), (8, 8)])
def test_running_sums_match_a_direct_computation_over_a_long_stream(length, stride):
    rng = np.random.default_rng(length * 100 + stride)
    data = rng.normal(size=(2000, 3)) * [1, 50, 0.01] + [0, 1000, 5]
    win = StreamWindow(Plan(length, stride, 3))
    emitted = 0
    for i, x in enumerate(data):
        if win.push(x):
            emitted += 1
            expected = direct_features(data[i - length + 1 : i + 1])
            np.testing.assert_allclose(win.features(), expected, rtol=1e-7, atol=1e-7)
            np.testing.assert_array_equal(win.raw(), data[i - length + 1 : i + 1])
    assert emitted == (len(data) - length) // stride + 1


def test_time_feature_is_last_and_named():
    win = StreamWindow(Plan(3, 1, 2, with_time=True))
    for t in range(1, 4):
        ready = win.push(np.array([t, -t], dtype=float), time=float(t))
    assert ready
    assert win.features()[-1] == 3.0
    assert feature_names(["a", "b"], "cycle") == [f"{c}_{k}" for c in "ab" for k in FEATURE_KINDS] + ["cycle"]


def test_window_set_is_bounded_and_evicts_the_least_recent_stream():
    windows = WindowSet(Plan(4, 1, 1), None, max_streams=3)
    for stream in ["a", "b", "c", "a", "d"]:
        windows.get(stream)
    assert list(windows.streams) == ["c", "a", "d"]
    assert windows.evicted == 1


def test_a_one_sample_window_with_chosen_kinds_gives_the_sample_itself():
    win = StreamWindow(Plan(1, 1, 3, kinds=("last",)))
    for x in ([1.0, 2.0, 3.0], [4.0, 5.0, 6.0]):
        assert win.push(np.array(x))
        np.testing.assert_array_equal(win.features(), x)
    assert feature_names(["a", "b"], kinds=("mean", "last")) == ["a_mean", "a_last", "b_mean", "b_last"]


def slope(y):
    return np.polyfit(np.arange(len(y)), y, 1)[0] if len(y) > 1 else 0.0


def ewm(y, span):
    e = y[0]
    for v in y[1:]:
        e = e + (v - e) * (2.0 / (span + 1))
    return e


def direct_history(h, length):
    """History features of one column's samples so far (h), computed from scratch."""
    rolling10 = [h[max(0, i - 9) : i + 1].mean() for i in range(len(h))]
    return {
        "mean": h[-length:].mean(),
        "mean:7": h[-7:].mean(),
        "std:60": h[-60:].std(),
        "slope:60": slope(h[-60:]),
        "slope:all": slope(h),
        "mean:all": h.mean(),
        "ewm:10": ewm(h, 10),
        "base:20": h[:20].mean(),
        "peak:10": max(rolling10),
        "mean-base:20": h[-length:].mean() - h[:20].mean(),
        "ewm:10-base:20": ewm(h, 10) - h[:20].mean(),
    }


def test_history_kinds_match_a_direct_computation_and_a_derived_channel_has_its_own_kinds():
    rng = np.random.default_rng(5)
    data = np.cumsum(rng.normal(size=(700, 2)), axis=0) * [1, 30] + [0, 500]
    kinds = list(direct_history(data[:50, 0], 30))
    channels = [{"name": "hi", "weights": [0.5, -0.5], "kinds": ["last", "slope:all", "ewm:10"]}]
    win = StreamWindow(Plan(30, 1, 2, kinds=kinds, channels=channels))
    names = feature_names(["a", "b"], kinds=kinds, channels=channels)
    assert names[: len(kinds)] == [f"a_{k}" for k in kinds] and names[-3:] == ["hi_last", "hi_slope:all", "hi_ewm:10"]
    for i, x in enumerate(data):
        if win.push(x) and i % 37 == 0:
            got = win.features()
            assert len(got) == len(names) == win.plan.n_features
            h = data[: i + 1]
            want = [direct_history(h[:, c], 30)[k] for c in range(2) for k in kinds]
            hi = h @ [0.5, -0.5]
            want += [hi[-1], slope(hi), ewm(hi, 10)]
            np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-6)
            np.testing.assert_array_equal(win.raw(), data[i - 29 : i + 1])  # the input columns only


def test_a_time_back_at_the_start_restarts_the_stream_and_a_repeat_is_stale():
    win = StreamWindow(Plan(2, 1, 1, kinds=["mean:all", "base:3"]))
    for t in (1.0, 2.0, 3.0):
        win.push(np.array([t * 10]), t)
    assert not win.enter(3.0) and not win.enter(2.0) and win.count == 3  # stale: nothing changes
    assert win.enter(4.0) and win.count == 3
    before = StreamWindow(Plan(2, 1, 1))
    for t in (1.0, 2.0):
        before.push(np.array([t]), t)
    assert before.enter(0.0) and before.count == 0  # before the start: a new run too
    assert win.enter(1.0) and win.count == 0  # back at the start: a new run
    win.push(np.array([100.0]), 1.0)
    win.push(np.array([200.0]), 2.0)
    np.testing.assert_array_equal(win.features(), [150.0, 150.0])  # nothing of the first run is left
    first = StreamWindow(Plan(2, 1, 1))
    first.push(np.array([1.0]), 5.0)
    assert not first.enter(5.0)  # one sample is not a run to restart


@pytest.mark.parametrize(
    "kind", ["mean:0", "mean:65537", "ewm", "slope:x", "median", "mean-std-last", "peak:all", "ewm:all", ""]
)
def test_a_bad_feature_kind_says_what_is_allowed(kind):
    with pytest.raises(ValueError, match="kind"):
        parse_kind(kind)
