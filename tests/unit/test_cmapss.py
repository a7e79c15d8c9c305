import numpy as np
import pytest

from edgectl.data import cmapss, synthetic
from edgectl.errors import EdgectlError


def test_synthetic_fleet_is_deterministic_by_seed_and_in_the_original_format(tmp_path):
    a = synthetic.write_subset(tmp_path / "a", n_train=5, n_test=3, seed=11)
    b = synthetic.write_subset(tmp_path / "b", n_train=5, n_test=3, seed=11)
    c = synthetic.write_subset(tmp_path / "c", n_train=5, n_test=3, seed=12)
    for name in ("train_FD001.txt", "test_FD001.txt", "RUL_FD001.txt"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    assert (a / "train_FD001.txt").read_bytes() != (c / "train_FD001.txt").read_bytes()
    first = (a / "train_FD001.txt").read_text().splitlines()[0]
    assert first.endswith("  ") and len(first.split()) == 26


def test_rul_and_labels_follow_the_rul_file(tmp_path):
    d = synthetic.write_subset(tmp_path, n_train=4, n_test=3, seed=5)
    train, test = cmapss.load(d)
    rul_end = [float(v) for v in (d / "RUL_FD001.txt").read_text().split()]
    for i, unit in enumerate(np.unique(test.units)):
        rows = test.units == unit
        assert test.rul[rows][-1] == rul_end[i]
        assert np.all(np.diff(test.rul[rows]) == -1)
    assert train.rul[train.units == 1][-1] == 0
    assert cmapss.labels([0, 30, 31], horizon=30).tolist() == [1, 1, 0]


def test_a_bad_line_is_named(tmp_path):
    d = synthetic.write_subset(tmp_path, n_train=2, n_test=2, seed=5)
    lines = (d / "train_FD001.txt").read_text().splitlines()
    lines[4] = "1 5 0.1"
    (d / "train_FD001.txt").write_text("\n".join(lines))
    with pytest.raises(EdgectlError, match=r"train_FD001.txt:5: expected 26 values, found 3"):
        cmapss.load(d)


def test_rul_file_must_cover_every_test_unit(tmp_path):
    d = synthetic.write_subset(tmp_path, n_train=2, n_test=3, seed=5)
    (d / "RUL_FD001.txt").write_text("10 \n")
    with pytest.raises(EdgectlError, match="1 values for 3 test units"):
        cmapss.load(d)


def test_real_fd001_loads_with_the_published_shape(fd001_dir):
    train, test = cmapss.load(fd001_dir)
    assert train.rows.shape == (20631, 26)
    assert test.rows.shape == (13096, 26)
    assert len(np.unique(train.units)) == len(np.unique(test.units)) == 100
    assert train.rows[0, :5].tolist() == [1, 1, -0.0007, -0.0004, 100.0]
