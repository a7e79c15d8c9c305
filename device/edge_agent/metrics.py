"""Binary classification metrics, shared by the host's reports and the converters' checks."""

import numpy as np


def classification(y_true, y_pred):
    """{"f1", "precision", "recall", "n", "positives"} of 0/1 labels and predictions."""
    y_true = np.asarray(y_true).astype(bool)
    y_pred = np.asarray(y_pred).astype(bool)
    tp = int(np.sum(y_true & y_pred))
    fp = int(np.sum(~y_true & y_pred))
    fn = int(np.sum(y_true & ~y_pred))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"f1": f1, "precision": precision, "recall": recall, "n": len(y_true), "positives": int(y_true.sum())}


def best_threshold(y_true, scores):
    """The decision threshold on scores that maximizes F1 (ties: the lowest), and that F1."""
    y_true = np.asarray(y_true).astype(bool)
    candidates = np.unique(np.round(np.asarray(scores, dtype=np.float64), 4))
    best = (0.5, -1.0)
    for t in candidates:
        f1 = classification(y_true, scores >= t)["f1"]
        if f1 > best[1]:
            best = (float(t), f1)
    return best


def alarms(values, threshold, direction="above"):
    """The alarms of regression values (a number, a list or an array): at or above the threshold, or at or
    below it ("below"). The agent's record and the host's scores use this one rule."""
    if isinstance(values, (list, tuple)):  # a number stays a number: the agent calls this once a window
        values = np.asarray(values, dtype=np.float64)
    return values <= threshold if direction == "below" else values >= threshold


def best_alarm_threshold(y_true, predicted, level, direction="above"):
    """The threshold on predicted values whose alarms best match (F1) the true values' alarms at `level`,
    and that F1: a model that errs low near the level alarms best a little above it."""
    sign = -1.0 if direction == "below" else 1.0
    t, f1 = best_threshold(alarms(y_true, level, direction), sign * np.asarray(predicted, dtype=np.float64))
    return sign * t, f1


def multiclass(y_true, y_pred, n_classes):
    """{"accuracy", "macro_f1", "n"} of class indices and predicted class indices."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    f1s = [classification(y_true == k, y_pred == k)["f1"] for k in range(n_classes) if np.any(y_true == k)]
    accuracy = float(np.mean(y_true == y_pred)) if len(y_true) else 0.0
    return {"accuracy": accuracy, "macro_f1": float(np.mean(f1s)) if f1s else 0.0, "n": int(len(y_true))}
