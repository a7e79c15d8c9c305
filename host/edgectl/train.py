"""Reference models edgectl trains: tree ensembles on window features, a small Conv1D or a one-block
transformer encoder on raw windows.

Each trainer takes the training windows and their labels (0/1, class indices or values) and
returns a fitted model; save_model writes it as a file `edgectl convert` reads.
"""

import os

import numpy as np

from edge_convert.quiet import captured_output
from edgectl.errors import EdgectlError

TREE_KINDS = (
    "xgboost",
    "xgboost-tiny",
    "lightgbm",
    "random-forest",
    "extra-trees",
    "gradient-boosting",
    "hist-gradient-boosting",
)
NEURAL_KINDS = ("conv1d", "attention")
MODEL_KINDS = TREE_KINDS + NEURAL_KINDS
CONV1D_MIN_LENGTH = 9
SMALL_DATA = 5000  # training rows below which tree ensembles train on one thread


def train_trees(kind, X, y, seed=0, task="binary"):
    """Fit a tree ensemble of the given kind on feature rows X: binary (0/1 labels), multiclass
    (class indices) or regression (values)."""
    # On a few thousand rows a second thread costs more in synchronization than it saves (5x slower
    # than one thread on a busy 2-core machine, measured on SECOM-sized data).
    jobs = threads(kind, len(y))
    regression = task == "regression"
    if kind in ("xgboost", "xgboost-tiny"):
        from xgboost import XGBClassifier, XGBRegressor

        common = dict(n_estimators=200, max_depth=4, learning_rate=0.05, subsample=0.8, colsample_bytree=0.8,
                      random_state=seed, n_jobs=jobs, tree_method="hist")  # fmt: skip
        if kind == "xgboost-tiny":  # a cascade's stage 1: tens of KB, a microsecond or two
            common.update(n_estimators=30, max_depth=2, learning_rate=0.3)
        if task == "binary":
            positive = max(1, int(np.sum(y)))
            common["scale_pos_weight"] = ((len(y) - positive) / positive) ** 0.5
        model = XGBRegressor(**common) if regression else XGBClassifier(**common)
    elif kind == "lightgbm":
        from lightgbm import LGBMClassifier, LGBMRegressor

        common = dict(n_estimators=300, num_leaves=15, learning_rate=0.05, subsample=0.8, subsample_freq=1,
                      colsample_bytree=0.8, min_child_samples=20, random_state=seed, n_jobs=jobs, verbose=-1,
                      deterministic=True, force_row_wise=True)  # fmt: skip
        if task == "binary":
            positive = max(1, int(np.sum(y)))
            common["scale_pos_weight"] = ((len(y) - positive) / positive) ** 0.5
        model = LGBMRegressor(**common) if regression else LGBMClassifier(**common)
    else:
        from sklearn import ensemble

        forest = dict(n_estimators=100, max_depth=10, min_samples_leaf=5, random_state=seed, n_jobs=jobs)
        makers = {
            "random-forest": (ensemble.RandomForestClassifier, ensemble.RandomForestRegressor, forest),
            "extra-trees": (ensemble.ExtraTreesClassifier, ensemble.ExtraTreesRegressor, forest),
            "gradient-boosting": (ensemble.GradientBoostingClassifier, ensemble.GradientBoostingRegressor,
                                  dict(n_estimators=100, random_state=seed)),
            "hist-gradient-boosting": (ensemble.HistGradientBoostingClassifier, ensemble.HistGradientBoostingRegressor,
                                       dict(max_iter=200, random_state=seed)),
        }  # fmt: skip
        classifier, regressor, params = makers.get(kind, (None, None, None))
        model = (regressor if regression else classifier)(**params) if classifier else None
        if model is None:
            raise EdgectlError(f"unknown tree model {kind!r}; choose one of {', '.join(TREE_KINDS)}")
    model.fit(X, y)
    return model


def save_model(model, path_stem):
    """Write a trained model as a file `edgectl convert` reads: XGBoost JSON, LightGBM text, scikit-learn
    skops, Keras."""
    module = type(model).__module__
    if module.startswith("xgboost"):
        path = path_stem.with_name(path_stem.name + ".json")
        model.get_booster().save_model(path)
        return path
    if module.startswith("lightgbm"):
        path = path_stem.with_name(path_stem.name + ".txt")
        model.booster_.save_model(str(path))
        return path
    if module.startswith("keras"):
        path = path_stem.with_name(path_stem.name + ".keras")
        with captured_output():
            model.save(path)
        return path
    import skops.io

    path = path_stem.with_name(path_stem.name + ".skops")
    skops.io.dump(model, path)
    return path


def train_neural(kind, X, y, seed=0, task="binary", n_classes=2):
    """Fit the neural model of `kind` on raw windows X (n, length, F): binary (0/1 labels), multiclass
    (class indices) or regression (values)."""
    keras = _keras(seed)
    length, width = X.shape[1:]
    outputs, activation, loss = {
        "binary": (1, "sigmoid", "binary_crossentropy"),
        "multiclass": (n_classes, "softmax", "sparse_categorical_crossentropy"),
        "regression": (1, None, "mse"),
    }[task]
    check_window(kind, length)
    if kind == "conv1d":
        model, epochs = _conv1d(keras, length, width, outputs, activation), 12
    elif kind == "attention":
        model, epochs = _attention(keras, length, width, outputs, activation), 10
    else:
        raise EdgectlError(f"unknown neural model {kind!r}; choose one of {', '.join(NEURAL_KINDS)}")
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss=loss)
    weight = None
    if task == "binary":
        positive = max(1, int(np.sum(y)))
        weight = {0: 1.0, 1: ((len(y) - positive) / positive) ** 0.5}
    with captured_output():
        model.fit(X, y, epochs=epochs, batch_size=128, verbose=0, class_weight=weight, shuffle=True)
    return model


def check_window(kind, length, what="the spec's window length"):
    """Refuse, before any work, a window too short for the model: conv1d's two 5-wide convolutions."""
    if kind == "conv1d" and length < CONV1D_MIN_LENGTH:
        raise EdgectlError(
            f"conv1d needs windows of at least {CONV1D_MIN_LENGTH} samples (two 5-wide convolutions); "
            f"{what} is {length}: use a longer window, attention or a tree model"
        )


NEURAL_THREADS = 1  # one thread: the same inputs give the same weights, byte for byte


def _keras(seed):
    """Keras, seeded and deterministic: op determinism, fixed thread counts, oneDNN off (its kernels
    pick a code path by CPU and load, and round differently)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # read when TensorFlow is imported
    with captured_output():  # TensorFlow's import and first graph log from C++
        import keras
        import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    try:
        tf.config.threading.set_intra_op_parallelism_threads(NEURAL_THREADS)
        tf.config.threading.set_inter_op_parallelism_threads(NEURAL_THREADS)
    except RuntimeError:  # set once per process, before TensorFlow's first op: already so
        pass
    return keras


def threads(kind, n_rows):
    """The threads a reference trainer uses (recorded in the manifest's built_with)."""
    if kind in NEURAL_KINDS:
        return NEURAL_THREADS
    return 1 if n_rows < SMALL_DATA else 2


def _conv1d(keras, length, width, outputs=1, activation="sigmoid"):
    """Two small convolutions over time, pooled: ~14 KB as INT8."""
    return keras.Sequential(
        [
            keras.Input((length, width)),
            keras.layers.Conv1D(32, 5, activation="relu"),
            keras.layers.Conv1D(32, 5, activation="relu"),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(outputs, activation=activation),
        ]
    )


def _attention(keras, length, width, outputs=1, activation="sigmoid", dim=32, heads=2):
    """One transformer encoder block (self-attention over the window's time steps, then a feed-forward
    layer), with a learned position embedding: the article's "small transformer", small enough for INT8."""
    layers = keras.layers
    inputs = keras.Input((length, width))
    h = layers.Dense(dim)(inputs)
    h = h + layers.Embedding(length, dim)(keras.ops.arange(length))
    h = layers.LayerNormalization()(h + layers.MultiHeadAttention(heads, dim // heads)(h, h))
    ff = layers.Dense(dim)(layers.Dense(2 * dim, activation="relu")(h))
    h = layers.LayerNormalization()(h + ff)
    h = layers.GlobalAveragePooling1D()(h)
    return keras.Model(inputs, layers.Dense(outputs, activation=activation)(layers.Dense(16, activation="relu")(h)))
