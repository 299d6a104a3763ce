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
  before and after the score cut.

:func:`make_all_plots` draws them all into one folder for the report.

Inputs (as the scoring and scan stages make them):

* ``score``: ``hist.Hist`` with axes ``split`` x ``process`` x ``point`` x ``score``
  (``Weight()`` storage). For grid point ``P`` the signal is the process labelled ``P``;
  the background is the sum of the processes named in ``background_processes``.
* ``control``: ``{variable: hist.Hist}`` with axes ``step`` x ``process`` x ``point`` x variable.
* ``history``: the training loop's per-epoch list of dicts (``train``/``val`` metrics).
* ``summary``: :class:`analysis.results.scan.ScanSummary`.

The numeric helpers (:func:`roc_from_histograms`, :func:`binned_ks_statistic`,
:func:`confusion_matrix`, :func:`row_fractions`) are plain numpy and tested against hand
computations. Only the bins of the score axis enter (no under/overflow), as in the scan.

Figures are :class:`matplotlib.figure.Figure` objects with an Agg canvas, never registered with
pyplot: no GUI backend is needed, the global backend of an interactive session is left alone,
and no figure stays open after a call.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import hist
import matplotlib
import matplotlib.ticker
import mplhep
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from analysis.results.scan import ScanSummary, sensitivity_map

__all__ = [
    "Z_LEVELS",
    "binned_ks_statistic",
    "class_counts",
    "confusion_matrix",
    "make_all_plots",
    "overtraining_ks",
    "plot_confusion_matrix",
    "plot_control_distribution",
    "plot_control_distributions",
    "plot_overtraining",
    "plot_roc",
    "plot_score_distributions",
    "plot_sensitivity_contour",
    "plot_significance_scan",
    "plot_training_history",
    "roc_aucs",
    "roc_from_histograms",
    "row_fractions",
]

#: Significance levels drawn as contours on the sensitivity map.
Z_LEVELS = (2.0, 3.0, 5.0)
#: Category axes of the control histograms; the remaining axis is the variable.
_CONTROL_CATEGORY_AXES = ("step", "process", "point")
_DPI = 100
_SIGNAL_COLOUR = "tab:red"
_BACKGROUND_COLOUR = "tab:blue"


# ------------------------------------------------------------------ numeric helpers


def _counts(name: str, values) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array of bin contents; got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains non-finite bin contents")
    return array


def _counts_pair(signal_counts, background_counts) -> tuple[np.ndarray, np.ndarray]:
    signal = _counts("signal_counts", signal_counts)
    background = _counts("background_counts", background_counts)
    if signal.shape != background.shape:
        raise ValueError(f"signal and background have {signal.size} and {background.size} bins; they must match")
    return signal, background


def _positive_total(name: str, counts: np.ndarray) -> float:
    total = float(counts.sum())
    if not total > 0:
        raise ValueError(f"{name} has total weight {total!r}; it must be > 0")
    return total


def roc_from_histograms(signal_counts, background_counts) -> tuple[np.ndarray, np.ndarray, float]:
    """Weighted ROC curve and its area from binned signal and background score distributions.

    Cutting at each lower bin edge (score >= edge, from the highest bin down) gives the
    background efficiency ``fpr`` and signal efficiency ``tpr``: the cumulative bin contents
    from above over the totals, starting at (0, 0) and ending at (1, 1). The AUC is the
    trapezoidal area under ``tpr(fpr)``, i.e. P(score_s > score_b) + P(same bin) / 2.

    Returns ``(fpr, tpr, auc)`` with ``fpr`` and ``tpr`` of length nbins + 1. Raises
    ``ValueError`` when a class has no positive total weight or the bin counts mismatch.
    """
    signal, background = _counts_pair(signal_counts, background_counts)
    tpr = _efficiency_from_above(signal, _positive_total("signal_counts", signal))
    fpr = _efficiency_from_above(background, _positive_total("background_counts", background))
    return fpr, tpr, float(np.trapezoid(tpr, fpr))


def _efficiency_from_above(counts: np.ndarray, total: float) -> np.ndarray:
    efficiency = np.concatenate(([0.0], np.cumsum(counts[::-1]) / total))
    efficiency[-1] = 1.0  # the whole sample passes the lowest cut (no rounding residue)
    return efficiency


def binned_ks_statistic(counts1, counts2) -> float:
    """Kolmogorov-Smirnov distance of two binned weighted distributions on the same bins.

    D = max_i |C1_i - C2_i| with C_i the cumulative bin contents up to bin i over the total.
    For samples sitting at the bin centres this equals
    :func:`analysis.core.statistics.weighted_ks_statistic` of the unbinned samples.
    Raises ``ValueError`` when a distribution has no positive total weight.
    """
    first = _counts("counts1", counts1)
    second = _counts("counts2", counts2)
    if first.shape != second.shape:
        raise ValueError(f"the distributions have {first.size} and {second.size} bins; they must match")
    cdf1 = np.cumsum(first) / _positive_total("counts1", first)
    cdf2 = np.cumsum(second) / _positive_total("counts2", second)
    return float(np.max(np.abs(cdf1 - cdf2)))


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
    signal, background = _counts_pair(signal_counts, background_counts)
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


# ----------------------------------------------------------- reading the histograms


def _check_label(histogram: hist.Hist, axis: str, label: str) -> None:
    if label not in histogram.axes[axis]:
        known = ", ".join(histogram.axes[axis])
        raise KeyError(f"{axis} {label!r} is not in the histogram (known: {known})")


def _process_sum(histogram: hist.Hist, fixed: Mapping[str, str], processes: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Summed bin values and variances of ``processes`` after fixing the other category axes.

    Processes missing from the process axis contribute nothing (no events of them).
    """
    for axis, label in fixed.items():
        _check_label(histogram, axis, label)
    view = histogram[dict(fixed)].view()  # (process, variable)
    process_axis = histogram.axes["process"]
    index = [process_axis.index(p) for p in processes if p in process_axis]
    if not index:
        zeros = np.zeros(view.shape[-1])
        return zeros, zeros.copy()
    return view["value"][index].sum(axis=0), view["variance"][index].sum(axis=0)


def _per_process(histogram: hist.Hist, fixed: Mapping[str, str], processes: Sequence[str]) -> dict[str, np.ndarray]:
    """Bin values of each process present on the process axis."""
    return {p: _process_sum(histogram, fixed, [p])[0] for p in processes if p in histogram.axes["process"]}


def class_counts(score: hist.Hist, point: str, background_processes: Sequence[str], split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """Per-bin sum of weights of the signal of ``point`` and of the summed background, in ``split``."""
    fixed = {"split": split, "point": point}
    return _process_sum(score, fixed, [point])[0], _process_sum(score, fixed, background_processes)[0]


def _points(score: hist.Hist, points: Sequence[str] | None) -> list[str]:
    return list(score.axes["point"]) if points is None else list(points)


def roc_aucs(score: hist.Hist, background_processes: Sequence[str], points: Sequence[str] | None = None, split: str = "test") -> dict[str, float]:
    """Weighted ROC AUC per grid point (all points of the axis by default); NaN where a class is empty."""
    aucs = {}
    for point in _points(score, points):
        try:
            aucs[point] = roc_from_histograms(*class_counts(score, point, background_processes, split))[2]
        except ValueError:
            aucs[point] = float("nan")
    return aucs


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


# --------------------------------------------------------------------- figures


@contextlib.contextmanager
def _style() -> Iterator[None]:
    """The mplhep ATLAS style for the figures drawn inside (rcParams restored afterwards)."""
    with matplotlib.style.context(mplhep.style.ATLAS):
        yield


def _new_figure(ncols: int = 1, width: float = 8.0, height: float = 6.0):
    """A figure with an Agg canvas (not registered with pyplot) and ``ncols`` axes."""
    figure = Figure(figsize=(width * ncols, height), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, ncols, squeeze=False)[0]
    return figure, (axes[0] if ncols == 1 else list(axes))


def _save(figure: Figure, path: str | Path) -> Path:
    """Write ``figure`` as a PNG at ``path`` (folders created) and release it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=_DPI, format="png")
    figure.clear()
    return path


def _label(ax, title: str | None = None) -> None:
    """Experiment-style label above the axes ("bsmscan Simulation") and a title on the right.

    Plain ``Axes.text``/``set_title``: mplhep's label helpers redraw the figure several times
    and open a pyplot figure, which a library function must not leave behind.
    """
    name = ax.text(0.0, 1.01, "bsmscan", transform=ax.transAxes, ha="left", va="bottom", fontweight="bold")
    ax.annotate(" Simulation", xy=(1.0, 0.0), xycoords=name, ha="left", va="bottom", fontstyle="italic")
    if title:
        ax.set_title(title, loc="right", fontsize="small")


def _note(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize="small")


def _score_edges(score: hist.Hist) -> np.ndarray:
    return np.asarray(score.axes["score"].edges)


def _density(values: np.ndarray, edges: np.ndarray) -> np.ndarray | None:
    """Values scaled to unit area (sum of value x bin width = 1); None without positive total."""
    total = float(values.sum())
    return values / (total * np.diff(edges)) if total > 0 else None


def _log_y_if_positive(ax, *arrays: np.ndarray) -> None:
    positive = np.concatenate([a[a > 0] for a in arrays]) if arrays else np.array([])
    if positive.size:
        ax.set_yscale("log")
        ax.set_ylim(bottom=0.5 * positive.min())


def _draw_stack(ax, edges: np.ndarray, backgrounds: dict[str, np.ndarray], signal: np.ndarray, signal_label: str) -> None:
    """Backgrounds stacked (largest at the bottom) and the signal as a line on top."""
    ordered = sorted(backgrounds.items(), key=lambda item: -float(item[1].sum()))
    if ordered:
        mplhep.histplot([v for _, v in ordered], edges, stack=True, histtype="fill",
                        label=[name for name, _ in ordered], ax=ax, flow="none")
    mplhep.histplot(signal, edges, histtype="step", color=_SIGNAL_COLOUR, linewidth=2,
                    label=signal_label, ax=ax, flow="none")
    stack_total = np.sum([v for _, v in ordered], axis=0) if ordered else np.zeros_like(signal)
    _log_y_if_positive(ax, stack_total, signal)
    ax.legend(fontsize="x-small", ncols=2)


def plot_roc(score: hist.Hist, background_processes: Sequence[str], path: str | Path, points: Sequence[str] | None = None, split: str = "test") -> Path:
    """Weighted ROC curves (signal vs background efficiency) of every grid point, AUC in the legend."""
    with _style():
        figure, ax = _new_figure()
        for point in _points(score, points):
            try:
                fpr, tpr, auc = roc_from_histograms(*class_counts(score, point, background_processes, split))
            except ValueError:
                continue  # a class without weight: no curve
            ax.plot(fpr, tpr, label=f"{point} (AUC = {auc:.3f})")
        ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="random (AUC = 0.5)")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("background efficiency")
        ax.set_ylabel("signal efficiency")
        ax.legend(fontsize="x-small", loc="lower right")
        _label(ax, f"{split} split")
        return _save(figure, path)


def plot_score_distributions(score: hist.Hist, background_processes: Sequence[str], point: str, path: str | Path, split: str = "test") -> Path:
    """Weighted score distributions per process at ``point``: unit-area shapes and the stack."""
    edges = _score_edges(score)
    fixed = {"split": split, "point": point}
    backgrounds = _per_process(score, fixed, background_processes)
    signal = _process_sum(score, fixed, [point])[0]
    with _style():
        figure, (shape_ax, stack_ax) = _new_figure(ncols=2)
        for name, values in [*backgrounds.items(), (point, signal)]:
            density = _density(values, edges)
            if density is not None:
                colour = _SIGNAL_COLOUR if name == point else None
                mplhep.histplot(density, edges, histtype="step", label=name, color=colour, ax=shape_ax, flow="none")
        shape_ax.set_xlabel("classifier score")
        shape_ax.set_ylabel("normalised to unit area")
        shape_ax.legend(fontsize="x-small")
        _label(shape_ax, point)
        _draw_stack(stack_ax, edges, backgrounds, signal, point)
        stack_ax.set_xlabel("classifier score")
        stack_ax.set_ylabel("weighted events / bin")
        _label(stack_ax, f"{split} split")
        return _save(figure, path)


_HISTORY_PANELS = (("loss", "loss"), ("auc", "ROC AUC"), ("precision", "precision"))


def plot_training_history(history: Sequence[Mapping], path: str | Path) -> Path:
    """Loss, ROC AUC and precision per epoch, training and validation split."""
    if not history:
        raise ValueError("the training history is empty: nothing to plot")
    epochs = [entry["epoch"] for entry in history]
    with _style():
        figure, axes = _new_figure(ncols=len(_HISTORY_PANELS), width=6.0, height=5.0)
        for ax, (metric, title) in zip(axes, _HISTORY_PANELS):
            for split, name, style in (("train", "training", "-"), ("val", "validation", "--")):
                values = [entry.get(split, {}).get(metric, np.nan) for entry in history]
                ax.plot(epochs, np.asarray(values, dtype=float), style, marker="o", markersize=3, label=name)
            ax.set_xlabel("epoch")
            ax.set_ylabel(title)
            ax.legend(fontsize="small")
        return _save(figure, path)


def plot_confusion_matrix(score: hist.Hist, background_processes: Sequence[str], point: str, threshold: float, path: str | Path, split: str = "test") -> Path:
    """Weighted signal/background confusion matrix of ``score >= threshold``, rows normalised."""
    signal, background = class_counts(score, point, background_processes, split)
    matrix = confusion_matrix(signal, background, _score_edges(score), threshold)
    fractions = row_fractions(matrix)
    with _style():
        figure, ax = _new_figure(width=7.0)
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
        _label(ax, point)
        return _save(figure, path)


def _normalised_with_errors(values: np.ndarray, variances: np.ndarray, edges: np.ndarray):
    total = float(values.sum())
    if not total > 0:
        return None, None
    scale = 1.0 / (total * np.diff(edges))
    return values * scale, np.sqrt(np.clip(variances, 0.0, None)) * scale


def plot_overtraining(score: hist.Hist, background_processes: Sequence[str], point: str, path: str | Path, train_split: str = "train", test_split: str = "test") -> Path:
    """Train (filled) vs test (points) score shapes of signal and background with the KS distance."""
    edges = _score_edges(score)
    centres = 0.5 * (edges[1:] + edges[:-1])
    distances = overtraining_ks(score, point, background_processes, train_split, test_split)
    classes = (("signal", [point], _SIGNAL_COLOUR), ("background", list(background_processes), _BACKGROUND_COLOUR))
    with _style():
        figure, ax = _new_figure()
        for name, processes, colour in classes:
            train, _ = _normalised_with_errors(*_process_sum(score, {"split": train_split, "point": point}, processes), edges)
            test, errors = _normalised_with_errors(*_process_sum(score, {"split": test_split, "point": point}, processes), edges)
            if train is not None:
                mplhep.histplot(train, edges, histtype="fill", alpha=0.35, color=colour, label=f"{name} ({train_split})", ax=ax, flow="none")
            if test is not None:
                shown = test > 0  # empty bins would draw a row of points on the axis
                label = f"{name} ({test_split}), KS D = {distances[name]:.3f}"
                ax.errorbar(centres[shown], test[shown], yerr=errors[shown], fmt="o", markersize=3,
                            color=colour, label=label)
        ax.set_xlabel("classifier score")
        ax.set_ylabel("normalised to unit area")
        ax.legend(fontsize="x-small")
        _label(ax, point)
        return _save(figure, path)


def _best_points(summary: ScanSummary, max_points: int | None):
    ranked = sorted(summary.points, key=lambda p: -p.best_z if np.isfinite(p.best_z) else np.inf)
    return ranked if max_points is None else ranked[:max_points]


def plot_significance_scan(summary: ScanSummary, path: str | Path, max_points: int | None = 8) -> Path:
    """Z vs score threshold of the grid points (the ``max_points`` with the highest best Z, all
    for None), each optimal threshold marked with a star, the standard threshold dashed."""
    with _style():
        figure, ax = _new_figure()
        for point in _best_points(summary, max_points):
            (line,) = ax.plot(point.thresholds, np.asarray(point.z, dtype=float), label=f"{point.label} (Z = {point.best_z:.2f})")
            if np.isfinite(point.best_z):
                ax.plot(point.best_threshold, point.best_z, marker="*", markersize=14, color=line.get_color())
        if np.isfinite(summary.standard_threshold):
            ax.axvline(summary.standard_threshold, color="grey", linestyle="--",
                       label=f"standard threshold {summary.standard_threshold:g}")
        if not any(np.isfinite(p.best_z) for p in summary.points):
            _note(ax, "no threshold passes the minimum yields")
        ax.set_xlabel("score threshold")
        ax.set_ylabel("significance Z")
        ax.set_xlim(0, 1)
        ax.set_ylim(bottom=0)
        ax.legend(fontsize="x-small")
        _label(ax, f"{summary.luminosity_fb:g} fb$^{{-1}}$")
        return _save(figure, path)


def _interpolated_map(summary: ScanSummary, which: str):
    """``sensitivity_map`` of the points, or None when it cannot be built (too few points)."""
    try:
        m_grid, dm_grid, z_grid = sensitivity_map(summary.points, which=which)
    except (ValueError, RuntimeError):  # < 3 finite points, or collinear ones
        return None
    return (m_grid, dm_grid, z_grid) if np.isfinite(z_grid).any() else None


def _draw_contours(figure: Figure, ax, m_grid, dm_grid, z_grid) -> None:
    """Filled Z colours and the labelled Z_LEVELS lines that the map reaches."""
    z_min, z_max = float(np.nanmin(z_grid)), float(np.nanmax(z_grid))
    upper = z_max if z_max > z_min else z_min + 1.0
    colour_levels = matplotlib.ticker.MaxNLocator(nbins=20).tick_values(z_min, upper)
    filled = ax.contourf(m_grid, dm_grid, z_grid, levels=colour_levels, cmap="viridis", extend="both")
    figure.colorbar(filled, ax=ax, label="significance Z")
    levels = [level for level in Z_LEVELS if z_min < level < z_max]
    if levels:
        lines = ax.contour(m_grid, dm_grid, z_grid, levels=levels, colors="white", linestyles=["--", "-", "-."][: len(levels)])
        ax.clabel(lines, fmt=lambda level: f"{level:g}$\\sigma$", fontsize="small")


def _pad_limits(ax, x: Sequence[float], y: Sequence[float], fraction: float = 0.08) -> None:
    """Axis limits around the points with a margin, so that markers on the edge stay visible."""
    for values, set_limits in ((x, ax.set_xlim), (y, ax.set_ylim)):
        low, high = float(np.min(values)), float(np.max(values))
        margin = fraction * (high - low) if high > low else max(abs(low) * fraction, 1.0)
        set_limits(low - margin, high + margin)


def plot_sensitivity_contour(summary: ScanSummary, path: str | Path, which: str = "best_z") -> Path:
    """Z (``which``: ``best_z`` or ``z_at_standard``) over the (m(slepton), dm) plane.

    Filled colours from :func:`analysis.results.scan.sensitivity_map`, the 2, 3 and 5 sigma contours
    that the map reaches (labelled), and every grid point marked with its Z. With fewer than
    three usable points only the points are drawn.
    """
    interpolated = _interpolated_map(summary, which)
    with _style():
        figure, ax = _new_figure(width=9.0)
        if interpolated is not None:
            _draw_contours(figure, ax, *interpolated)
        else:
            _note(ax, "too few grid points with a finite Z to interpolate")
        for point in summary.points:
            z = getattr(point, which)
            ax.plot(point.m_slepton, point.dm, marker="o", color="black", markersize=5)
            ax.annotate(f"{z:.2f}" if np.isfinite(z) else "n/a", (point.m_slepton, point.dm),
                        textcoords="offset points", xytext=(4, 4), fontsize="x-small", color="black")
        if summary.points:
            _pad_limits(ax, [p.m_slepton for p in summary.points], [p.dm for p in summary.points])
        ax.set_xlabel(r"$m(\tilde{\ell})$ [GeV]")
        ax.set_ylabel(r"$\Delta m(\tilde{\ell}, \tilde{\chi}_1^0)$ [GeV]")
        _label(ax, f"{summary.luminosity_fb:g} fb$^{{-1}}$")
        return _save(figure, path)


def _variable_axis(histogram: hist.Hist):
    names = [axis.name for axis in histogram.axes if axis.name not in _CONTROL_CATEGORY_AXES]
    if len(names) != 1:
        raise ValueError(f"a control histogram needs exactly one variable axis besides {_CONTROL_CATEGORY_AXES}; got {names}")
    return histogram.axes[names[0]]


def plot_control_distribution(histogram: hist.Hist, background_processes: Sequence[str], point: str, path: str | Path) -> Path:
    """One control variable at ``point``: stacked backgrounds and the signal line, one panel per
    step of the ``step`` axis (preselection, score cut)."""
    axis = _variable_axis(histogram)
    edges = np.asarray(axis.edges)
    steps = list(histogram.axes["step"])
    with _style():
        figure, axes = _new_figure(ncols=len(steps))
        for ax, step in zip(np.atleast_1d(axes), steps):
            fixed = {"step": step, "point": point}
            _draw_stack(ax, edges, _per_process(histogram, fixed, background_processes),
                        _process_sum(histogram, fixed, [point])[0], point)
            ax.set_xlabel(axis.label or axis.name)
            ax.set_ylabel("weighted events / bin")
            _label(ax, step)
        return _save(figure, path)


def plot_control_distributions(control: Mapping[str, hist.Hist], background_processes: Sequence[str], point: str, outdir: str | Path) -> dict[str, Path]:
    """:func:`plot_control_distribution` for every variable; returns ``{variable: path}``
    (files ``control_<variable>.png`` in ``outdir``)."""
    return {
        name: plot_control_distribution(histogram, background_processes, point, Path(outdir) / f"control_{name}.png")
        for name, histogram in control.items()
    }


# ------------------------------------------------------------------------- all


def _chosen_point(summary: ScanSummary, score: hist.Hist) -> str:
    ranked = _best_points(summary, 1)
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
    is the confusion-matrix cut. The training curves are skipped when ``history`` is empty.
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
    images[f"Overtraining check, {point}"] = plot_overtraining(score, background_processes, point, outdir / "overtraining.png")
    images["Significance vs threshold"] = plot_significance_scan(summary, outdir / "significance.png")
    images["Sensitivity contour (best Z)"] = plot_sensitivity_contour(summary, outdir / "sensitivity.png")
    for name, path in plot_control_distributions(control, background_processes, point, outdir).items():
        images[f"Control distribution {name}, {point}"] = path
    return images
