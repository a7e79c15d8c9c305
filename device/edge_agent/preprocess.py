"""Preprocessing: impute missing values, then standardize, per operating condition where there are several.

Fitted on the host, applied on the board. The fitted parameters live in the
manifest under "preprocessing"; this module is the only code that fits or
applies them, so training and serving cannot differ.

Operating conditions (C-MAPSS FD002/FD004: six altitude / Mach / throttle
settings) shift every sensor's baseline far more than wear does, so each sensor
is standardized with the mean and spread of its own condition. The condition of
a sample is the nearest centre of the setting fields.
"""

import numpy as np

from edge_agent.errors import BundleError

MAX_CONDITIONS = 8
CLUSTERED = 0.999  # share of the settings' variance the condition centres must explain


def fit(train_values, feature_names, impute=True, settings=None, setting_names=()):
    """Fit imputation (median) and scaling (mean, std) on training rows (n, F).

    With impute=False, NaN stays an error on the board for every feature.
    settings (n, S): the operating-setting fields; when they fall into a few tight
    clusters, scaling is fitted per cluster ("conditions").
    """
    values = np.asarray(train_values, dtype=np.float64)
    medians = np.nanmedian(values, axis=0) if len(values) else np.zeros(values.shape[1])
    medians = np.where(np.isnan(medians), 0.0, medians)  # a column that is all NaN
    filled = np.where(np.isnan(values), medians, values)
    params = {"impute": {name: float(m) for name, m in zip(feature_names, medians)} if impute else {}}
    conditions = fit_conditions(settings, setting_names) if settings is not None else None
    if conditions is None:
        center, scale = _moments(filled)
        return dict(params, center=center.tolist(), scale=scale.tolist())
    which = condition_of(np.asarray(settings, dtype=np.float64), conditions)
    moments = [_moments(filled[which == k]) for k in range(len(conditions["centers"]))]
    conditions["center"] = [m[0].tolist() for m in moments]
    conditions["scale"] = [m[1].tolist() for m in moments]
    return dict(params, conditions=conditions)


def _moments(values):
    scale = values.std(axis=0)
    return values.mean(axis=0), np.where(scale < 1e-12, 1.0, scale)


def fit_conditions(settings, names):
    """{"fields", "setting_scale", "centers"} when the settings form 2..8 tight clusters, else None.

    FD001's settings are noise around one point and stay one condition.
    """
    z_raw = np.asarray(settings, dtype=np.float64)
    spread = z_raw.std(axis=0)
    spread = np.where(spread < 1e-12, 1.0, spread)
    z = z_raw / spread
    total = float(((z - z.mean(axis=0)) ** 2).sum())
    if total == 0:  # constant settings: one condition
        return None
    rng = np.random.default_rng(0)
    for k in range(2, MAX_CONDITIONS + 1):
        centers = _kmeans(z, k, rng)
        inertia = float(np.min(_distances(z, centers), axis=1).sum())
        if inertia <= (1 - CLUSTERED) * total:
            centers = centers[np.lexsort(centers.T[::-1])]  # a stable order, whatever the seed found
            return {"fields": list(names), "setting_scale": spread.tolist(), "centers": centers.tolist()}
    return None


def _kmeans(z, k, rng, rounds=30, restarts=4):
    """Plain k-means with k-means++ seeding; the best of a few restarts."""
    best, best_inertia = None, np.inf
    for _ in range(restarts):
        centers = z[[rng.integers(len(z))]]
        while len(centers) < k:
            d = np.min(_distances(z, centers), axis=1)
            if d.sum() == 0:  # fewer distinct points than k
                break
            centers = np.vstack([centers, z[rng.choice(len(z), p=d / d.sum())]])
        for _ in range(rounds):
            which = np.argmin(_distances(z, centers), axis=1)
            centers = np.array([z[which == j].mean(axis=0) if np.any(which == j) else c for j, c in enumerate(centers)])
        inertia = np.min(_distances(z, centers), axis=1).sum()
        if inertia < best_inertia:
            best, best_inertia = centers, inertia
    return best


def _distances(z, centers):
    return ((z[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2)


def condition_of(settings, conditions):
    """Index of the nearest condition centre for settings (n, S) or (S,)."""
    z = np.atleast_2d(settings) / np.asarray(conditions["setting_scale"])
    which = np.argmin(_distances(z, np.asarray(conditions["centers"])), axis=1)
    return which if np.ndim(settings) == 2 else int(which[0])


class Preprocessor:
    """Applies fitted preprocessing to one sample's feature values (F,) and settings (S,)."""

    def __init__(self, params, feature_names):
        impute = params.get("impute", {})
        self.fill = np.array([impute.get(name, np.nan) for name in feature_names], dtype=np.float64)
        self.conditions = params.get("conditions")
        source = self.conditions or params
        self.center = np.atleast_2d(np.array(source["center"], dtype=np.float64))
        self.scale = np.atleast_2d(np.array(source["scale"], dtype=np.float64))
        if not (self.center.shape == self.scale.shape and self.center.shape[1] == len(feature_names)):
            raise BundleError("manifest: preprocessing parameters do not match the number of input features")
        if self.conditions and len(self.conditions["centers"]) != len(self.center):
            raise BundleError("manifest: preprocessing has a different number of condition centres and scalings")

    @property
    def setting_fields(self):
        """The fields a sample must carry besides its features: the settings that pick its condition."""
        return self.conditions["fields"] if self.conditions else []

    def apply(self, values, settings=None):
        values = np.where(np.isnan(values), self.fill, values)
        k = condition_of(settings, self.conditions) if self.conditions else 0
        return (values - self.center[k]) / self.scale[k]
