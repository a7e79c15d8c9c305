"""Preprocessing: impute missing values, then standardize. Fitted on the host, applied on the board.

The fitted parameters live in the manifest under "preprocessing"; this module is
the only code that fits or applies them, so training and serving cannot differ.
"""

import numpy as np

from edge_agent.errors import BundleError


def fit(train_values, feature_names, impute=True):
    """Fit imputation (median) and scaling (mean, std) on training rows (n, F).

    With impute=False, NaN stays an error on the board for every feature.
    """
    values = np.asarray(train_values, dtype=np.float64)
    medians = np.nanmedian(values, axis=0)
    medians = np.where(np.isnan(medians), 0.0, medians)  # a column that is all NaN
    filled = np.where(np.isnan(values), medians, values)
    center = filled.mean(axis=0)
    scale = filled.std(axis=0)
    scale = np.where(scale < 1e-12, 1.0, scale)
    return {
        "impute": {name: float(m) for name, m in zip(feature_names, medians)} if impute else {},
        "center": center.tolist(),
        "scale": scale.tolist(),
    }


class Preprocessor:
    """Applies fitted preprocessing to one sample's feature values (F,)."""

    def __init__(self, params, feature_names):
        impute = params.get("impute", {})
        self.fill = np.array([impute.get(name, np.nan) for name in feature_names], dtype=np.float64)
        self.center = np.array(params["center"], dtype=np.float64)
        self.scale = np.array(params["scale"], dtype=np.float64)
        if not (len(self.center) == len(self.scale) == len(feature_names)):
            raise BundleError("manifest: preprocessing parameters do not match the number of input features")

    def apply(self, values):
        values = np.where(np.isnan(values), self.fill, values)
        return (values - self.center) / self.scale
