"""The network and the tree baseline side by side in the report (``training.baseline: xgboost``).

The train stage leaves ``baseline/baseline.json`` next to the model (``points/<point>/baseline/``
for one network per grid point), whose ``comparison`` holds, for the test split, each
classifier's weighted AUC and score histograms, and per grid point the physics-weighted
histograms scaled to the full luminosity (:func:`nn.baseline.compare_classifiers`).  From them:

* :func:`plot_baseline_roc` -- both classifiers' ROC curves (binned, 100 bins), exact AUCs in the legend;
* :func:`plot_baseline_scores` -- both classifiers' signal and background score shapes;
* :func:`plot_baseline_significance` -- each grid point's best Asimov significance of a threshold
  scan (:func:`analysis.core.statistics.threshold_scan` with the ``scan`` settings) with each
  classifier;
* :func:`baseline_summary` -- the numbers for ``summary.json``.

:func:`make_baseline_plots` does all of it for a model folder (nothing when there is no baseline).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from analysis.core.metrics import binned_roc
from analysis.core.statistics import threshold_scan
from analysis.results.plots.common import (
    BACKGROUND_COLOUR,
    SIGNAL_COLOUR,
    label,
    new_figure,
    save,
    style,
)

__all__ = ["baseline_summary", "make_baseline_plots", "plot_baseline_roc", "plot_baseline_scores",
           "plot_baseline_significance", "read_comparisons"]

_LINES = {"network": "-", "xgboost": "--"}


def read_comparisons(model_dir: str | Path) -> dict[str, dict[str, Any]]:
    """``{member: comparison}`` of the baseline(s) in ``model_dir`` (member ``""`` for one
    network, the point name per grid point); empty when the model has no baseline."""
    model_dir = Path(model_dir)
    paths = {"": model_dir / "baseline" / "baseline.json"}
    paths.update({p.parent.parent.name: p for p in sorted(model_dir.glob("points/*/baseline/baseline.json"))})
    found = {}
    for member, path in paths.items():
        if path.exists():
            comparison = json.loads(path.read_text()).get("comparison")
            if comparison:
                found[member] = comparison
    return found


def _scan_z(entry: Mapping[str, Any], edges: np.ndarray, scan) -> float:
    result = threshold_scan(
        np.asarray(entry["signal"]), np.asarray(entry["signal_sumw2"]), np.asarray(entry["background"]),
        np.asarray(entry["background_sumw2"]), edges, relative_bkg_uncertainty=scan.relative_background_uncertainty,
        include_mc_stat=scan.include_mc_stat_uncertainty, min_signal=scan.min_signal,
        min_background=scan.min_background, min_background_ess=getattr(scan, "min_background_ess", 0.0))
    return float(result.best_z)


def baseline_summary(comparisons: Mapping[str, Mapping[str, Any]], scan) -> dict[str, Any]:
    """``{"baseline": ...}`` for ``summary.json``: test AUC of each classifier (per member),
    and per grid point each classifier's AUC and best threshold-scan Z."""
    if not comparisons:
        return {}
    members, points = {}, {}
    for member, comparison in comparisons.items():
        members[member or "model"] = {name: c["auc"] for name, c in comparison["classifiers"].items()}
        edges = np.asarray(comparison["edges"])
        for point, entry in comparison.get("points", {}).items():
            classifiers = [name for name in entry if isinstance(entry[name], dict)]
            points[point] = {"auc": {name: entry[name]["auc"] for name in classifiers},
                             "best_z": {name: _scan_z(entry[name], edges, scan) for name in classifiers}}
    return {"baseline": {"kind": "xgboost", "split": "test", "test_auc": members, "points": points}}


def plot_baseline_roc(comparisons: Mapping[str, Mapping[str, Any]], path: str | Path) -> Path:
    """ROC curves of the network and the baseline on the test split (one pair per member)."""
    with style():
        figure, ax = new_figure()
        for member, comparison in comparisons.items():
            for name, entry in comparison["classifiers"].items():
                try:
                    fpr, tpr, _ = binned_roc(entry["signal"], entry["background"])
                except ValueError:
                    continue  # a class without weight: no curve
                prefix = f"{member}: " if member else ""
                ax.plot(fpr, tpr, _LINES.get(name, ":"), label=f"{prefix}{name} (AUC = {entry['auc']:.4f})")
        ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="random (AUC = 0.5)")
        ax.set(xlim=(0, 1), ylim=(0, 1.05), xlabel="background efficiency", ylabel="signal efficiency")
        ax.legend(fontsize="x-small", loc="lower right")
        label(ax, "network vs tree baseline, test split")
        return save(figure, path)


def plot_baseline_scores(comparisons: Mapping[str, Mapping[str, Any]], path: str | Path) -> Path:
    """Signal and background score shapes of both classifiers (the first member's)."""
    comparison = next(iter(comparisons.values()))
    edges = np.asarray(comparison["edges"])
    names = list(comparison["classifiers"])
    with style():
        figure, axes = new_figure(ncols=len(names))
        for ax, name in zip(axes if len(names) > 1 else [axes], names):
            entry = comparison["classifiers"][name]
            for cls, colour in (("signal", SIGNAL_COLOUR), ("background", BACKGROUND_COLOUR)):
                counts = np.asarray(entry[cls], dtype=float)
                if counts.sum() > 0:
                    ax.stairs(counts / (counts.sum() * np.diff(edges)), edges, color=colour, linewidth=2, label=cls)
            ax.set(xlabel=f"{name} score", ylabel="normalised to unit area", xlim=(0, 1))
            ax.legend(fontsize="small")
            label(ax, f"{name}, test split")
        return save(figure, path)


def plot_baseline_significance(summary: Mapping[str, Any], path: str | Path) -> Path:
    """Best threshold-scan Z per grid point with each classifier (from :func:`baseline_summary`)."""
    points = summary["baseline"]["points"]
    names = sorted({name for entry in points.values() for name in entry["best_z"]})
    with style():
        figure, ax = new_figure(width=max(8.0, 0.9 * len(points)))
        x = np.arange(len(points))
        for offset, name in zip(np.linspace(-0.15, 0.15, len(names)), names):
            z = [points[p]["best_z"].get(name, math.nan) for p in points]
            ax.plot(x + offset, z, "o" if name == "network" else "s", label=name)
        ax.set_xticks(x, list(points), rotation=45, ha="right")
        ax.minorticks_off()
        ax.set(ylabel="best Asimov Z (test split, full luminosity)")
        ax.legend(fontsize="small")
        label(ax, "threshold scan with each classifier")
        return save(figure, path)


def make_baseline_plots(model_dir: str | Path, outdir: str | Path, scan) -> tuple[dict[str, Path], dict[str, Any]]:
    """``({caption: png}, {"baseline": ...})`` for the report; both empty without a baseline.

    ``scan`` is the config's ``scan`` section (the threshold-scan settings)."""
    comparisons = read_comparisons(model_dir)
    if not comparisons:
        return {}, {}
    outdir = Path(outdir)
    summary = baseline_summary(comparisons, scan)
    images = {
        "network vs tree baseline: ROC curves (test split)": plot_baseline_roc(comparisons, outdir / "baseline_roc.png"),
        "network vs tree baseline: score distributions (test split)": plot_baseline_scores(comparisons, outdir / "baseline_scores.png"),
    }
    if summary["baseline"]["points"]:
        images["network vs tree baseline: best significance per grid point"] = plot_baseline_significance(
            summary, outdir / "baseline_significance.png")
    return images, summary
