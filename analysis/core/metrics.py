"""Classifier metrics of weighted events: ROC curves and AUCs, and the binned KS distance.

* :func:`binned_roc` -- the weighted ROC curve and AUC of binned signal and background
  score distributions; :func:`weighted_roc_curve` / :func:`weighted_roc_auc` -- the same
  from per-event scores (binned on their distinct values, so one code path serves both).
* :func:`binned_ks_statistic` -- the Kolmogorov-Smirnov distance between two binned
  weighted distributions (e.g. train vs test classifier scores).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["binned_ks_statistic", "binned_roc", "event_arrays", "weighted_roc_auc", "weighted_roc_curve"]


def _bin_pair(names: tuple[str, str], first: Any, second: Any) -> tuple[np.ndarray, np.ndarray]:
    """Two distributions on the same bins: 1-D, non-empty, finite, each with a total weight > 0."""
    pair = tuple(np.asarray(values, dtype=np.float64) for values in (first, second))
    for name, counts in zip(names, pair):
        if counts.ndim != 1 or counts.size == 0:
            raise ValueError(f"{name} must be a non-empty 1-D array of bin contents; got shape {counts.shape}")
        if not np.all(np.isfinite(counts)):
            raise ValueError(f"{name} contains non-finite bin contents")
        if not counts.sum() > 0:
            raise ValueError(f"{name} has total weight {float(counts.sum())!r}; it must be > 0")
    if pair[0].shape != pair[1].shape:
        raise ValueError(f"{names[0]} and {names[1]} have {pair[0].size} and {pair[1].size} bins; they must match")
    return pair


def _efficiency_above(name: str, counts: np.ndarray) -> np.ndarray:
    """Fraction of the total weight at or above each lower bin edge, from the top bin down
    (nbins + 1 values from 0 to exactly 1); ``ValueError`` for a zero total weight."""
    cumulative = np.concatenate(([0.0], np.cumsum(counts[::-1])))
    if cumulative[-1] == 0:
        raise ValueError(f"the ROC curve needs a non-zero total weight of the {name}")
    efficiency = cumulative / cumulative[-1]
    efficiency[-1] = 1.0  # the whole sample passes the lowest cut (no rounding residue)
    return efficiency


def _roc_of_bins(signal: np.ndarray, background: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    fpr, tpr = _efficiency_above("background", background), _efficiency_above("signal", signal)
    return fpr, tpr, float(np.trapezoid(tpr, fpr))


def binned_roc(signal_counts: Any, background_counts: Any) -> tuple[np.ndarray, np.ndarray, float]:
    """Weighted ROC curve ``(fpr, tpr, auc)`` of binned signal and background score distributions.

    Cutting at each lower bin edge (score >= edge, from the highest bin down) gives the
    background efficiency ``fpr`` and signal efficiency ``tpr`` (nbins + 1 values each, from
    (0, 0) to (1, 1)). The AUC is the trapezoidal area, P(score_s > score_b) + P(same bin) / 2.
    Raises ``ValueError`` for a class without positive total weight or mismatched bins.

    >>> fpr, tpr, auc = binned_roc([1.0, 3.0], [3.0, 1.0])
    >>> fpr.tolist(), tpr.tolist(), auc
    ([0.0, 0.25, 1.0], [0.0, 0.75, 1.0], 0.75)
    """
    return _roc_of_bins(*_bin_pair(("signal_counts", "background_counts"), signal_counts, background_counts))


def event_arrays(scores: Any, labels: Any, weights: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(scores as float64, labels as bool, weights as float64, 1 where None)``, flat and of one
    length (a ValueError names the lengths otherwise)."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel().astype(bool)
    weights = np.ones_like(scores) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    if not (scores.shape == labels.shape == weights.shape):
        raise ValueError(f"scores, labels and weights differ in length: {scores.shape}, {labels.shape}, {weights.shape}")
    return scores, labels, weights


def _binned_events(scores: Any, labels: Any, weights: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-event scores as bins, one per distinct score: (scores ascending, signal, background weight)."""
    scores, labels, weights = event_arrays(scores, labels, weights)
    distinct, bin_of_event = np.unique(scores, return_inverse=True)
    signal = np.bincount(bin_of_event, weights=np.where(labels, weights, 0.0), minlength=distinct.size)
    background = np.bincount(bin_of_event, weights=np.where(labels, 0.0, weights), minlength=distinct.size)
    return distinct, signal, background


def weighted_roc_curve(scores: Any, labels: Any, weights: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted ROC curve of per-event scores: (false-positive rate, true-positive rate, thresholds).

    :func:`binned_roc`'s curve with one bin per distinct score (ties are one point):
    thresholds are the distinct scores in decreasing order (pass if ``score >= threshold``),
    the curve starts at (0, 0). ``weights=None`` means unit weights; negative weights enter
    the sums, but each class needs a non-zero total weight (``ValueError`` otherwise).
    """
    distinct, signal, background = _binned_events(scores, labels, weights)
    fpr, tpr, _ = _roc_of_bins(signal, background)
    return fpr, tpr, distinct[::-1]


def weighted_roc_auc(scores: Any, labels: Any, weights: Any = None) -> float:
    """Area under :func:`weighted_roc_curve`: the weighted probability that a signal event scores
    above a background event, ties counted half (sklearn's ``roc_auc_score`` for unit weights).
    NaN when either class has zero total weight.

    >>> weighted_roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    0.75
    """
    _, signal, background = _binned_events(scores, labels, weights)
    try:
        return _roc_of_bins(signal, background)[2]
    except ValueError:
        return float("nan")


def binned_ks_statistic(counts1: Any, counts2: Any) -> float:
    """Kolmogorov-Smirnov distance D = max_i |C1_i - C2_i| of two binned weighted distributions,
    C_i the cumulative bin content up to bin i over the total.

    With one bin per distinct pooled value it is exactly the unbinned two-sample statistic of
    the weighted samples (``scipy.stats.ks_2samp`` for unit weights). Raises ``ValueError``
    for empty, non-finite or mismatched counts and for a total weight <= 0.

    >>> binned_ks_statistic([1.0, 2.0, 1.0], [1.0, 1.0, 2.0])
    0.25
    """
    first, second = _bin_pair(("counts1", "counts2"), counts1, counts2)
    return float(np.max(np.abs(np.cumsum(first) / first.sum() - np.cumsum(second) / second.sum())))
