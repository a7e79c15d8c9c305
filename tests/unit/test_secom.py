import re
from datetime import datetime

import numpy as np
import pytest
from conftest import ROOT, missing

from edge_agent.metrics import best_threshold
from edgectl.data import secom
from edgectl.errors import EdgectlError

REAL = ROOT.parent / "shared" / "datasets" / "secom"


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    return secom.write_synthetic(tmp_path_factory.mktemp("secom"), seed=0)


@pytest.fixture(scope="module")
def data(written):
    return secom.load(written)


def test_synthetic_data_has_secoms_shape_and_proportions(data):
    assert data.X.shape == (1567, 590) and data.X.dtype == np.float64
    assert data.y.tolist().count(1) == 104 and set(data.y.tolist()) == {0, 1}
    assert 0.04 < np.isnan(data.X).mean() < 0.05
    by_column = np.isnan(data.X).mean(axis=0)
    assert np.sum(by_column > 0.5) >= 20 and np.median(by_column) < 0.02  # uneven: a few columns mostly missing
    assert 100 <= np.sum(np.nanstd(data.X, axis=0) == 0) <= 130
    typical = np.nanmedian(np.abs(data.X), axis=0)
    assert np.sum(typical > 300) >= 20 and np.sum((typical > 0) & (typical < 0.01)) >= 20
    stamps = [datetime.strptime(t, secom.TIME_FORMAT) for t in data.times]
    assert stamps == sorted(stamps) and stamps[0] == datetime(2008, 7, 19, 11, 55) and stamps[-1].year == 2008


def test_files_are_in_the_uci_format_and_round_trip(written, data, tmp_path):
    reading = r"(-?\d+(\.\d{0,3}[1-9])?|NaN)"
    first = (written / secom.DATA).read_bytes().split(b"\r\n")[0].decode()
    assert re.fullmatch(rf"{reading}( {reading}){{589}}", first)
    labels = (written / secom.LABELS).read_bytes().split(b"\r\n")
    assert all(re.fullmatch(rb'(-1|1) "\d\d/\d\d/2008 \d\d:\d\d:00"', line) for line in labels[:-1])
    assert labels[-1] == b""
    secom.write_data(tmp_path / secom.DATA, data.X)
    secom.write_labels(tmp_path / secom.LABELS, data.y, data.times)
    for name in (secom.DATA, secom.LABELS):
        assert (tmp_path / name).read_bytes() == (written / name).read_bytes()


def test_synthetic_data_is_deterministic_by_seed(tmp_path):
    a = secom.write_synthetic(tmp_path / "a", n=60, n_features=40, seed=3)
    b = secom.write_synthetic(tmp_path / "b", n=60, n_features=40, seed=3)
    c = secom.write_synthetic(tmp_path / "c", n=60, n_features=40, seed=4)
    assert (a / secom.DATA).read_bytes() == (b / secom.DATA).read_bytes()
    assert (a / secom.LABELS).read_bytes() == (b / secom.LABELS).read_bytes()
    assert (a / secom.DATA).read_bytes() != (c / secom.DATA).read_bytes()
    assert secom.load(a, n_features=40).X.shape == (60, 40)


def broken(written, tmp_path, name, line, text):
    """A copy of the written files with one line of one file replaced."""
    for other in (secom.DATA, secom.LABELS):
        (tmp_path / other).write_bytes((written / other).read_bytes())
    lines = (tmp_path / name).read_text().splitlines()
    lines[line - 1] = text
    (tmp_path / name).write_text("\n".join(lines) + "\n")
    return tmp_path


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (secom.DATA, "1.5 2 NaN", r"secom\.data:7: expected 590 readings, found 3"),
        (secom.DATA, " ".join(["1"] * 300 + ["n/a"] * 290), r"secom\.data:7: reading 301 is not a number or NaN: .n/a"),
        (secom.LABELS, '0 "19/07/2008 11:55:00"', r"secom_labels\.data:7: the label must be -1 \(pass\) or 1 \(fail\)"),
        (secom.LABELS, '-1 "19/07/2008 11:55:00', r"secom_labels\.data:7: unterminated timestamp"),
        (secom.LABELS, "-1", r"secom_labels\.data:7: expected a quoted timestamp"),
        (secom.LABELS, '1 "2008-07-19 11:55:00"', r"secom_labels\.data:7: timestamp .* is not DD/MM/YYYY HH:MM:SS"),
    ],
)  # fmt: skip
def test_a_bad_line_is_named_with_its_file_and_number(written, tmp_path, name, text, message):
    with pytest.raises(EdgectlError, match=message):
        secom.load(broken(written, tmp_path, name, 7, text))


def test_missing_file_and_unequal_line_counts_are_errors(written, tmp_path):
    (tmp_path / secom.DATA).write_bytes((written / secom.DATA).read_bytes())
    with pytest.raises(
        EdgectlError, match=r"secom_labels\.data: missing; .*UCI files secom\.data and secom_labels\.data"
    ):
        secom.load(tmp_path)
    labels = (written / secom.LABELS).read_text().splitlines()
    (tmp_path / secom.LABELS).write_text("\n".join(labels[:-1]) + "\n")
    with pytest.raises(EdgectlError, match="secom.data has 1567 lines but secom_labels.data has 1566"):
        secom.load(tmp_path)


def test_a_boosted_model_learns_the_synthetic_signal_and_not_shuffled_labels(data):
    from sklearn.model_selection import StratifiedKFold
    from xgboost import XGBClassifier

    def cv_f1(y):
        """Best-threshold F1 on each of 5 stratified folds."""
        scores = []
        for train, test in StratifiedKFold(5, shuffle=True, random_state=0).split(data.X, y):
            # 32 bins instead of 256: a third of the time, the same F1 on this data
            model = XGBClassifier(n_estimators=100, n_jobs=1, max_bin=32, random_state=0)
            model.fit(data.X[train], y[train])
            scores.append(best_threshold(y[test], model.predict_proba(data.X[test])[:, 1])[1])
        return np.array(scores)

    real = cv_f1(data.y)
    control = cv_f1(np.random.default_rng(1).permutation(data.y))
    assert real.mean() > 0.05
    assert real.mean() > control.mean() + 0.05, (real, control)


def test_the_real_uci_labels_file_parses(tmp_path):
    if not (REAL / secom.LABELS).is_file():
        missing(f"UCI SECOM labels at {REAL}")
    y, times = secom.read_labels(REAL / secom.LABELS)
    assert len(y) == 1567 and int(y.sum()) == 104
    assert times[0] == "19/07/2008 11:55:00" and times[-1] == "17/10/2008 06:07:00"
