"""Weighted classification metrics (numpy, float64): ROC AUC, precision, accuracy.

Every metric takes per-event weights; with unit weights they reduce to the usual definitions
(e.g. :func:`weighted_roc_auc` equals ``sklearn.metrics.roc_auc_score``).  Negative weights
are allowed and simply enter the sums.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["binary_metrics", "weighted_accuracy", "weighted_precision", "weighted_roc_auc", "weighted_roc_curve"]


def _arrays(scores: Any, labels: Any, weights: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel().astype(bool)
    weights = np.ones_like(scores) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    if not (scores.shape == labels.shape == weights.shape):
        raise ValueError(f"scores, labels and weights differ in length: {scores.shape}, {labels.shape}, {weights.shape}")
    return scores, labels, weights


def weighted_roc_curve(scores: Any, labels: Any, weights: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted ROC curve: (false-positive rate, true-positive rate, thresholds).

    Thresholds are the distinct scores in decreasing order (an event passes if
    ``score >= threshold``); the curve starts at (0, 0).  Ties are one point.
    """
    scores, labels, weights = _arrays(scores, labels, weights)
    order = np.argsort(-scores, kind="stable")
    scores, labels, weights = scores[order], labels[order], weights[order]
    true_positive = np.cumsum(np.where(labels, weights, 0.0))
    false_positive = np.cumsum(np.where(labels, 0.0, weights))
    last_of_tie = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1] if scores.size else np.zeros(0, int)
    total_positive, total_negative = true_positive[-1], false_positive[-1]
    if not (total_positive != 0 and total_negative != 0):
        raise ValueError("the ROC curve needs a non-zero total weight of both signal and background")
    tpr = np.r_[0.0, true_positive[last_of_tie] / total_positive]
    fpr = np.r_[0.0, false_positive[last_of_tie] / total_negative]
    return fpr, tpr, scores[last_of_tie]


def weighted_roc_auc(scores: Any, labels: Any, weights: Any = None) -> float:
    """Area under the weighted ROC curve (trapezoidal, ties counted half), in [0, 1] for w >= 0.

    Equals the weighted probability that a signal event scores above a background event.
    Returns NaN when either class has zero total weight.
    """
    try:
        fpr, tpr, _ = weighted_roc_curve(scores, labels, weights)
    except ValueError:
        return float("nan")
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) * 0.5))


def weighted_precision(predicted: Any, labels: Any, weights: Any = None) -> float:
    """Weighted precision: sum w over true positives / sum w over predicted positives (NaN if none)."""
    predicted, labels, weights = _arrays(predicted, labels, weights)
    predicted = predicted.astype(bool)
    denominator = np.sum(weights[predicted])
    return float(np.sum(weights[predicted & labels]) / denominator) if denominator != 0 else float("nan")


def weighted_accuracy(predicted: Any, labels: Any, weights: Any = None) -> float:
    """Weighted fraction of events whose predicted class equals the true class."""
    predicted = np.asarray(predicted).ravel()
    labels = np.asarray(labels).ravel()
    weights = np.ones(predicted.shape) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    total = np.sum(weights)
    return float(np.sum(weights[predicted == labels]) / total) if total != 0 else float("nan")


def binary_metrics(signal_probability: Any, is_signal: Any, weights: Any, threshold: float = 0.5) -> dict[str, float]:
    """Weighted ROC AUC, precision and accuracy of a signal-probability score at ``threshold``."""
    probability = np.asarray(signal_probability, dtype=np.float64).ravel()
    is_signal = np.asarray(is_signal).ravel().astype(bool)
    predicted = probability >= threshold
    return {
        "auc": weighted_roc_auc(probability, is_signal, weights),
        "precision": weighted_precision(predicted, is_signal, weights),
        "accuracy": weighted_accuracy(predicted, is_signal, weights),
    }
