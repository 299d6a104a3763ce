"""Classifier-score figures and numbers, from the score histogram and the training history.

``score`` is a ``hist.Hist`` with axes ``split`` x ``process`` x ``point`` x ``score``
(``Weight()`` storage), as the scoring stage fills it. For grid point ``P`` the signal is the
process labelled ``P``; the background is the sum of the processes in ``background_processes``.
ROC curves and KS distances are :mod:`analysis.core.statistics`' (:func:`binned_roc`,
:func:`binned_ks_statistic`) on the bins of the score axis.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import hist
import mplhep
import numpy as np

from analysis.core.metrics import binned_ks_statistic, binned_roc

from .common import (
    BACKGROUND_COLOUR,
    SIGNAL_COLOUR,
    draw_stack,
    label,
    new_figure,
    process_sum,
    save,
    select,
    style,
)

__all__ = [
    "class_counts",
    "confusion_matrix",
    "overtraining_ks",
    "plot_confusion_matrix",
    "plot_overtraining",
    "plot_roc",
    "plot_score_distributions",
    "plot_training_history",
    "report_aucs",
    "roc_aucs",
    "row_fractions",
]


# ------------------------------------------------------------------------ numbers


def class_counts(score: hist.Hist, point: str, background_processes: Sequence[str], split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """Per-bin sum of weights of the signal of ``point`` and of the summed background, in ``split``."""
    fixed = {"split": split, "point": point}
    return process_sum(score, fixed, [point]).values(), process_sum(score, fixed, background_processes).values()


def _points(score: hist.Hist, points: Sequence[str] | None) -> list[str]:
    return list(score.axes["point"]) if points is None else list(points)


def roc_aucs(score: hist.Hist, background_processes: Sequence[str], points: Sequence[str] | None = None, split: str = "test") -> dict[str, float]:
    """Weighted ROC AUC per grid point (all points of the axis by default); NaN where a class is empty."""
    aucs = {}
    for point in _points(score, points):
        try:
            aucs[point] = binned_roc(*class_counts(score, point, background_processes, split))[2]
        except ValueError:
            aucs[point] = float("nan")
    return aucs


def report_aucs(score: hist.Hist, background_processes: Sequence[str], points: Sequence[str], model_metrics: Mapping | None = None) -> dict:
    """The AUC entries of the report summary, keyed as :mod:`analysis.results.html` shows them.

    ``aucs``: ``{grid point: AUC}`` of the test split from the score histograms (the AUC column
    of the scan table); ``model_aucs``: ``{split: {grid point: AUC}}`` from the training's
    unbinned evaluation (``model.json``'s ``metrics[split]["auc_per_point"]``), if any.
    """
    model_aucs = {split: dict(values["auc_per_point"]) for split, values in (model_metrics or {}).items()
                  if isinstance(values, Mapping) and isinstance(values.get("auc_per_point"), Mapping)}
    return {"aucs": roc_aucs(score, background_processes, points, split="test"), "model_aucs": model_aucs}


def overtraining_ks(score: hist.Hist, point: str, background_processes: Sequence[str], train_split: str = "train", test_split: str = "test") -> dict[str, float]:
    """Binned weighted KS distance between the train and test score shapes, per class.

    Returns ``{"signal": D, "background": D}`` (NaN for a class without weight in a split).
    """
    train = class_counts(score, point, background_processes, train_split)
    test = class_counts(score, point, background_processes, test_split)
    distances = {}
    for name, counts_train, counts_test in zip(("signal", "background"), train, test):
        try:
            distances[name] = binned_ks_statistic(counts_train, counts_test)
        except ValueError:
            distances[name] = float("nan")
    return distances


def _first_bin_at(edges: np.ndarray, threshold: float) -> int:
    """Index of the first bin whose lower edge is >= threshold (a bin edge, up to rounding)."""
    if not np.isfinite(threshold):
        raise ValueError(f"threshold must be finite; got {threshold!r}")
    tolerance = 1e-9 * float(np.min(np.diff(edges)))
    return int(np.searchsorted(edges[:-1], threshold - tolerance, side="left"))


def confusion_matrix(signal_counts, background_counts, edges, threshold: float) -> np.ndarray:
    """Weighted 2x2 confusion matrix of the cut ``score >= threshold``.

    Rows are the true class (signal, background), columns the prediction (selected as signal,
    rejected)::

        [[signal >= t,     signal < t],
         [background >= t, background < t]]

    A bin counts as selected when its lower edge is >= ``threshold`` (thresholds are bin
    edges, as in the scan; a bin that straddles the threshold counts as rejected).
    """
    signal = np.asarray(signal_counts, dtype=np.float64)
    background = np.asarray(background_counts, dtype=np.float64)
    if signal.ndim != 1 or signal.size == 0 or signal.shape != background.shape:
        raise ValueError(f"signal and background have shapes {signal.shape} and {background.shape}; "
                         "they must be non-empty, 1-D and match")
    if not (np.all(np.isfinite(signal)) and np.all(np.isfinite(background))):
        raise ValueError("signal or background contains non-finite bin contents")
    edges = np.asarray(edges, dtype=np.float64)
    if edges.shape != (signal.size + 1,):
        raise ValueError(f"edges must have {signal.size + 1} entries for {signal.size} bins; got {edges.shape}")
    start = _first_bin_at(edges, threshold)
    return np.array([
        [signal[start:].sum(), signal[:start].sum()],
        [background[start:].sum(), background[:start].sum()],
    ])


def row_fractions(matrix) -> np.ndarray:
    """Each row divided by its sum (NaN for a row that sums to zero)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    totals = matrix.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(totals != 0, matrix / np.where(totals != 0, totals, 1.0), np.nan)


# ------------------------------------------------------------------------ figures


def plot_roc(score: hist.Hist, background_processes: Sequence[str], path: str | Path, points: Sequence[str] | None = None, split: str = "test") -> Path:
    """Weighted ROC curves (signal vs background efficiency) of every grid point, AUC in the legend."""
    with style():
        figure, ax = new_figure()
        for point in _points(score, points):
            try:
                fpr, tpr, auc = binned_roc(*class_counts(score, point, background_processes, split))
            except ValueError:
                continue  # a class without weight: no curve
            ax.plot(fpr, tpr, label=f"{point} (AUC = {auc:.3f})")
        ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="random (AUC = 0.5)")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("background efficiency")
        ax.set_ylabel("signal efficiency")
        ax.legend(fontsize="x-small", loc="lower right")
        label(ax, f"{split} split")
        return save(figure, path)


def _has_weight(histogram: hist.Hist) -> bool:
    return float(histogram.values().sum()) > 0


def plot_score_distributions(score: hist.Hist, background_processes: Sequence[str], point: str, path: str | Path, split: str = "test") -> Path:
    """Weighted score distributions per process at ``point``: unit-area shapes and the stack."""
    fixed = {"split": split, "point": point}
    backgrounds = select(score, fixed, background_processes)
    signal = process_sum(score, fixed, [point])
    with style():
        figure, (shape_ax, stack_ax) = new_figure(ncols=2)
        shapes = [(name, backgrounds[{"process": name}], None) for name in backgrounds.axes["process"]]
        for name, histogram, colour in [*shapes, (point, signal, SIGNAL_COLOUR)]:
            if _has_weight(histogram):
                mplhep.histplot(histogram, density=True, histtype="step", yerr=False, label=name, color=colour,
                                ax=shape_ax, flow="none")
        shape_ax.set_xlabel("classifier score")
        shape_ax.set_ylabel("normalised to unit area")
        shape_ax.legend(fontsize="x-small")
        label(shape_ax, point)
        draw_stack(stack_ax, backgrounds, signal, point)
        stack_ax.set_xlabel("classifier score")
        stack_ax.set_ylabel("weighted events / bin")
        label(stack_ax, f"{split} split")
        return save(figure, path)


_HISTORY_PANELS = (("loss", "loss"), ("auc", "ROC AUC"), ("precision", "precision"))


def plot_training_history(history: Sequence[Mapping], path: str | Path) -> Path:
    """Loss, ROC AUC and precision per epoch, training and validation split."""
    if not history:
        raise ValueError("the training history is empty: nothing to plot")
    epochs = [entry["epoch"] for entry in history]
    with style():
        figure, axes = new_figure(ncols=len(_HISTORY_PANELS), width=6.0, height=5.0)
        for ax, (metric, title) in zip(axes, _HISTORY_PANELS):
            for split, name, line in (("train", "training", "-"), ("val", "validation", "--")):
                values = [entry.get(split, {}).get(metric, np.nan) for entry in history]
                ax.plot(epochs, np.asarray(values, dtype=float), line, marker="o", markersize=3, label=name)
            ax.set_xlabel("epoch")
            ax.set_ylabel(title)
            ax.legend(fontsize="small")
        return save(figure, path)


def plot_confusion_matrix(score: hist.Hist, background_processes: Sequence[str], point: str, threshold: float, path: str | Path, split: str = "test") -> Path:
    """Weighted signal/background confusion matrix of ``score >= threshold``, rows normalised."""
    signal, background = class_counts(score, point, background_processes, split)
    matrix = confusion_matrix(signal, background, score.axes["score"].edges, threshold)
    fractions = row_fractions(matrix)
    with style():
        figure, ax = new_figure(width=7.0)
        image = ax.imshow(np.nan_to_num(fractions), cmap="Blues", vmin=0.0, vmax=1.0)
        for (row, column), fraction in np.ndenumerate(fractions):
            colour = "white" if fraction > 0.6 else "black"
            ax.text(column, row, f"{fraction:.3f}\n({matrix[row, column]:.3g})", ha="center", va="center", color=colour)
        ax.set_xticks([0, 1], [f"score $\\geq$ {threshold:g}", f"score < {threshold:g}"])
        ax.set_yticks([0, 1], ["signal", "background"])
        ax.minorticks_off()
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        figure.colorbar(image, ax=ax, label="fraction of the true class")
        label(ax, point)
        return save(figure, path)


def _hide_empty_bins(artists, histogram: hist.Hist) -> None:
    """Drop the markers of empty bins from an mplhep error-bar plot (they would sit on the axis)."""
    marker_line = artists[0].errorbar.lines[0]
    y = np.asarray(marker_line.get_ydata(), dtype=float)
    marker_line.set_ydata(np.where(histogram.values() > 0, y, np.nan))


def plot_overtraining(score: hist.Hist, background_processes: Sequence[str], point: str, path: str | Path, train_split: str = "train", test_split: str = "test") -> Path:
    """Train (filled) vs test (points with sqrt(sum w^2) errors) score shapes of signal and
    background, each with the binned KS distance."""
    distances = overtraining_ks(score, point, background_processes, train_split, test_split)
    classes = (("signal", [point], SIGNAL_COLOUR), ("background", list(background_processes), BACKGROUND_COLOUR))
    with style():
        figure, ax = new_figure()
        for name, processes, colour in classes:
            train = process_sum(score, {"split": train_split, "point": point}, processes)
            test = process_sum(score, {"split": test_split, "point": point}, processes)
            if _has_weight(train):
                mplhep.histplot(train, density=True, histtype="fill", alpha=0.35, color=colour,
                                label=f"{name} ({train_split})", ax=ax, flow="none")
            if _has_weight(test):
                drawn = mplhep.histplot(test, density=True, histtype="errorbar", yerr=np.sqrt(test.variances()),
                                        marker="o", markersize=3, elinewidth=None, color=colour, ax=ax, flow="none",
                                        label=f"{name} ({test_split}), KS D = {distances[name]:.3f}")
                _hide_empty_bins(drawn, test)
        ax.set_xlabel("classifier score")
        ax.set_ylabel("normalised to unit area")
        ax.legend(fontsize="x-small")
        label(ax, point)
        return save(figure, path)
