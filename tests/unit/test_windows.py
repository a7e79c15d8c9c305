import numpy as np
import pytest

from edge_agent.windows import FEATURE_KINDS, StreamWindow, WindowSet, feature_names


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
    win = StreamWindow(length, stride, 3)
    emitted = 0
    for i, x in enumerate(data):
        if win.push(x):
            emitted += 1
            expected = direct_features(data[i - length + 1 : i + 1])
            np.testing.assert_allclose(win.features(), expected, rtol=1e-7, atol=1e-7)
            np.testing.assert_array_equal(win.raw(), data[i - length + 1 : i + 1])
    assert emitted == (len(data) - length) // stride + 1


def test_time_feature_is_last_and_named():
    win = StreamWindow(3, 1, 2, with_time=True)
    for t in range(1, 4):
        ready = win.push(np.array([t, -t], dtype=float), time=float(t))
    assert ready
    assert win.features()[-1] == 3.0
    assert feature_names(["a", "b"], "cycle") == [f"{c}_{k}" for c in "ab" for k in FEATURE_KINDS] + ["cycle"]


def test_window_set_is_bounded_and_evicts_the_least_recent_stream():
    windows = WindowSet(4, 1, 1, max_streams=3)
    for stream in ["a", "b", "c", "a", "d"]:
        windows.get(stream)
    assert list(windows.streams) == ["c", "a", "d"]
    assert windows.evicted == 1


def test_a_one_sample_window_with_chosen_kinds_gives_the_sample_itself():
    win = StreamWindow(1, 1, 3, kinds=("last",))
    for x in ([1.0, 2.0, 3.0], [4.0, 5.0, 6.0]):
        assert win.push(np.array(x))
        np.testing.assert_array_equal(win.features(), x)
    assert feature_names(["a", "b"], kinds=("mean", "last")) == ["a_mean", "a_last", "b_mean", "b_last"]
