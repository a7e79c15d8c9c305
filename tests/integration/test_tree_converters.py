"""Every supported tree family through TL2cgen and gcc, against its native predict, NaN included."""

import numpy as np
import pytest
from sklearn import ensemble
from xgboost import XGBClassifier

from edge_convert import ConversionError, trees


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1500, 12)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(int)
    X[rng.random(X.shape) < 0.05] = np.nan
    return X, y


FAMILIES = {
    "xgboost": lambda: XGBClassifier(n_estimators=40, max_depth=4),
    "random-forest": lambda: ensemble.RandomForestClassifier(n_estimators=20, max_depth=6, random_state=0),
    "extra-trees": lambda: ensemble.ExtraTreesClassifier(n_estimators=20, max_depth=6, random_state=0),
    "gradient-boosting": lambda: ensemble.GradientBoostingClassifier(n_estimators=20, random_state=0),
    "hist-gradient-boosting": lambda: ensemble.HistGradientBoostingClassifier(max_iter=20, random_state=0),
}


@pytest.mark.parametrize("family", [*FAMILIES, "xgboost-booster"])
def test_compiled_library_matches_the_native_model(family, data, tmp_path):
    X, y = data
    if family == "gradient-boosting":  # the only family without native missing-value support
        X = np.nan_to_num(X)
    model = FAMILIES[family.replace("-booster", "")]().fit(X, y)
    if family == "xgboost-booster":
        model = model.get_booster()
    defines = trees.generate_source(model, tmp_path / "src")
    lib = trees.compile_library(tmp_path / "src", defines, tmp_path / "model.so")
    report = trees.parity(model, lib, X[:400])
    assert report["max_abs_diff"] <= 1e-6
    scores = trees.library_scores(lib, X[:400])
    assert scores.std() > 0.05  # real, varied predictions, not a constant


def test_an_unsupported_model_is_refused_by_name(tmp_path):
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    with pytest.raises(ConversionError, match="a LogisticRegression cannot be compiled to C; tree models that can"):
        trees.generate_source(model, tmp_path / "src")


def test_a_compile_error_is_reported_with_the_compiler_output(tmp_path, data):
    X, y = data
    model = FAMILIES["xgboost"]().fit(X, y)
    defines = trees.generate_source(model, tmp_path / "src")
    (tmp_path / "src" / "broken.c").write_text("this is not C;\n")
    with pytest.raises(ConversionError, match=r"compiling .*broken\.c failed(.|\n)*unknown type name"):
        trees.compile_library(tmp_path / "src", defines, tmp_path / "model.so")
