"""Weighted classification metrics (numpy, float64): ROC AUC, precision, accuracy.

Every metric takes per-event weights; with unit weights they reduce to the usual definitions
(e.g. :func:`weighted_roc_auc` equals ``sklearn.metrics.roc_auc_score``).  Negative weights
are allowed and simply enter the sums.  The ROC curve and AUC are the analysis' one
implementation, :func:`analysis.core.metrics.weighted_roc_curve` / ``weighted_roc_auc``
(the same code the report uses on binned scores), re-exported here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from analysis.core.metrics import event_arrays, weighted_roc_auc, weighted_roc_curve

__all__ = ["binary_metrics", "weighted_accuracy", "weighted_precision", "weighted_roc_auc", "weighted_roc_curve"]


def weighted_precision(predicted: Any, labels: Any, weights: Any = None) -> float:
    """Weighted precision: sum w over true positives / sum w over predicted positives (NaN if none)."""
    predicted, labels, weights = event_arrays(predicted, labels, weights)
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
