"""Diagnostic plots of the analysis, drawn from the histograms, the training history and the scan.

Every ``plot_*`` function takes the objects another stage produced plus an output path, draws
one figure in the mplhep ATLAS style, writes it as a PNG and returns the path:

* :func:`plot_roc` -- weighted ROC curves per grid point (test split), AUC in the legend;
* :func:`plot_score_distributions` -- score per process, normalised and stacked;
* :func:`plot_training_history` -- loss, ROC AUC and precision per epoch (train, validation);
* :func:`plot_confusion_matrix` -- weighted 2x2 signal/background matrix at a threshold;
* :func:`plot_overtraining` -- train vs test score shapes with the binned weighted KS distance;
* :func:`plot_significance_scan` -- Z vs threshold with the optimal threshold marked;
* :func:`plot_sensitivity_contour` -- Z over (m(slepton), dm) with the 2, 3, 5 sigma contours;
* :func:`plot_control_distribution` / :func:`plot_control_distributions` -- control variables
  before and after the score cut;
* :func:`plot_data_mc` / :func:`plot_data_mc_all` -- control histograms after the preselection:
  data over the stacked simulation with a data/MC ratio panel (:mod:`.datamc`).

:func:`make_all_plots` draws them all into one folder for the report. The modules:
:mod:`.score` (score histogram: ROC, shapes, confusion matrix, overtraining, training curves,
and the numbers :func:`roc_aucs`, :func:`report_aucs`, :func:`overtraining_ks`),
:mod:`.scan` (scan summary), :mod:`.control` (control histograms), :mod:`.common` (hist
selection and mplhep drawing helpers). Process sums, errors and stacks are hist/mplhep
operations; ROC and KS are :mod:`analysis.core.statistics`'.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import hist
import numpy as np

from analysis.results.scan import ScanSummary

from .control import plot_control_distribution, plot_control_distributions
from .datamc import control_statistics, plot_data_mc, plot_data_mc_all
from .scan import (
    Z_LEVELS,
    best_points,
    plot_sensitivity_contour,
    plot_significance_scan,
)
from .score import (
    class_counts,
    confusion_matrix,
    overtraining_ks,
    plot_confusion_matrix,
    plot_overtraining,
    plot_roc,
    plot_score_distributions,
    plot_training_history,
    report_aucs,
    roc_aucs,
    row_fractions,
)

__all__ = [
    "Z_LEVELS",
    "class_counts",
    "confusion_matrix",
    "control_statistics",
    "make_all_plots",
    "overtraining_ks",
    "plot_confusion_matrix",
    "plot_control_distribution",
    "plot_control_distributions",
    "plot_data_mc",
    "plot_data_mc_all",
    "plot_overtraining",
    "plot_roc",
    "plot_score_distributions",
    "plot_sensitivity_contour",
    "plot_significance_scan",
    "plot_training_history",
    "report_aucs",
    "roc_aucs",
    "row_fractions",
]


def _chosen_point(summary: ScanSummary, score: hist.Hist) -> str:
    ranked = best_points(summary, 1)
    return ranked[0].label if ranked else next(iter(score.axes["point"]))


def _chosen_threshold(summary: ScanSummary, point: str) -> float:
    if np.isfinite(summary.standard_threshold):
        return summary.standard_threshold
    best = {p.label: p.best_threshold for p in summary.points}.get(point, float("nan"))
    return best if np.isfinite(best) else 0.5


def make_all_plots(
    outdir: str | Path,
    score: hist.Hist,
    control: Mapping[str, hist.Hist],
    history: Sequence[Mapping] | None,
    summary: ScanSummary,
    background_processes: Sequence[str],
    point: str | None = None,
    threshold: float | None = None,
) -> dict[str, Path]:
    """Every diagnostic plot into ``outdir``; returns ``{caption: path}`` for the report.

    ``point`` (default: the point with the highest best Z) is the one shown in the per-point
    plots; ``threshold`` (default: the standard threshold, else that point's optimum, else 0.5)
    is the confusion-matrix cut. The training curves are skipped when ``history`` is empty, the
    overtraining check when the histograms hold no training events (a cross-training, whose
    per-fold train and test AUCs the report shows instead).
    """
    outdir = Path(outdir)
    point = point or _chosen_point(summary, score)
    threshold = _chosen_threshold(summary, point) if threshold is None else threshold
    images = {"ROC curves (test split)": plot_roc(score, background_processes, outdir / "roc.png")}
    images[f"Score distributions, {point}"] = plot_score_distributions(score, background_processes, point, outdir / "scores.png")
    if history:
        images["Training curves"] = plot_training_history(history, outdir / "training.png")
    images[f"Confusion matrix, {point}, score >= {threshold:g}"] = plot_confusion_matrix(
        score, background_processes, point, threshold, outdir / "confusion.png")
    if score[{"split": "train"}].sum(flow=True).value != 0:  # a cross-training scores no training events
        images[f"Overtraining check, {point}"] = plot_overtraining(score, background_processes, point, outdir / "overtraining.png")
    images["Significance vs threshold"] = plot_significance_scan(summary, outdir / "significance.png")
    images["Sensitivity contour (best Z)"] = plot_sensitivity_contour(summary, outdir / "sensitivity.png")
    for name, path in plot_control_distributions(control, background_processes, point, outdir).items():
        images[f"Control distribution {name}, {point}"] = path
    return images
