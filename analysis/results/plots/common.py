"""What every figure module of :mod:`analysis.results.plots` shares: reading the histograms with
hist (fixing category labels, summing processes) and drawing with mplhep on Agg figures.

Process sums, variances and stacks are hist operations: ``h[{"split": s, "point": p}]`` fixes
category axes, ``h[{"process": [...]}]`` keeps some processes (in that order), ``[{"process":
sum}]`` adds them with their variances, and ``.stack("process").plot(stack=True)`` draws a stack.
Only the bins of the variable axis are drawn (``flow="none"``), as the scan counts them.

Figures are :class:`matplotlib.figure.Figure` objects with an Agg canvas, never registered with
pyplot: no GUI backend is needed, the global backend of an interactive session is left alone,
and no figure stays open after a call.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import hist
import matplotlib
import mplhep
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 100
SIGNAL_COLOUR = "tab:red"
BACKGROUND_COLOUR = "tab:blue"


# ----------------------------------------------------------- reading the histograms


def check_label(histogram: hist.Hist, axis: str, label: str) -> None:
    """``KeyError`` naming the axis, the label and the known labels when ``label`` is not on ``axis``."""
    if label not in histogram.axes[axis]:
        known = ", ".join(histogram.axes[axis])
        raise KeyError(f"{axis} {label!r} is not in the histogram (known: {known})")


def select(histogram: hist.Hist, fixed: Mapping[str, str], processes: Sequence[str]) -> hist.Hist:
    """``histogram`` at the ``fixed`` category labels, with only ``processes`` on the process axis
    (in that order; processes missing from the axis had no events and are left out): a process x
    variable histogram. Raises ``KeyError`` for an unknown fixed label."""
    for axis, label in fixed.items():
        check_label(histogram, axis, label)
    present = [p for p in processes if p in histogram.axes["process"]]
    # by bin index, not by label: hist reads '*' and '?' in a label as wildcards ("Z/gamma* -> ll")
    index = {axis: histogram.axes[axis].index(label) for axis, label in fixed.items()}
    index["process"] = [histogram.axes["process"].index(p) for p in present]
    with warnings.catch_warnings():
        # hist calls list selection experimental because the removed categories do not go to the
        # overflow bin; that is what is wanted here: a sum over exactly these processes.
        warnings.filterwarnings("ignore", message="List indexing selection is experimental", category=UserWarning)
        return histogram[index]


def process_sum(histogram: hist.Hist, fixed: Mapping[str, str], processes: Sequence[str]) -> hist.Hist:
    """The sum of ``processes`` (values and variances) at the ``fixed`` labels: a 1-D histogram."""
    return select(histogram, fixed, processes)[{"process": sum}]


def by_yield(histogram: hist.Hist) -> hist.Hist:
    """A process x variable histogram with its processes ordered by decreasing total weight."""
    totals = histogram.values().sum(axis=1)
    order = [histogram.axes["process"][i] for i in np.argsort(-totals, kind="stable")]
    return select(histogram, {}, order)


# --------------------------------------------------------------------- figures


@contextlib.contextmanager
def style() -> Iterator[None]:
    """The mplhep ATLAS style for the figures drawn inside (rcParams restored afterwards)."""
    with matplotlib.style.context(mplhep.style.ATLAS):
        yield


def new_figure(ncols: int = 1, width: float = 8.0, height: float = 6.0):
    """A figure with an Agg canvas (not registered with pyplot) and ``ncols`` axes."""
    figure = Figure(figsize=(width * ncols, height), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, ncols, squeeze=False)[0]
    return figure, (axes[0] if ncols == 1 else list(axes))


def save(figure: Figure, path: str | Path) -> Path:
    """Write ``figure`` as a PNG at ``path`` (folders created) and release it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=DPI, format="png")
    figure.clear()
    return path


def label(ax, title: str | None = None) -> None:
    """Experiment-style label above the axes ("bsmscan Simulation") and a title on the right.

    Plain ``Axes.text``/``set_title``: mplhep's label helpers redraw the figure several times
    and open a pyplot figure, which a library function must not leave behind.
    """
    name = ax.text(0.0, 1.01, "bsmscan", transform=ax.transAxes, ha="left", va="bottom", fontweight="bold")
    ax.annotate(" Simulation", xy=(1.0, 0.0), xycoords=name, ha="left", va="bottom", fontstyle="italic")
    if title:
        ax.set_title(title, loc="right", fontsize="small")


def note(ax, text: str) -> None:
    """A short message in the middle of the axes (e.g. why nothing is drawn)."""
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize="small")


def log_y_if_positive(ax, *histograms: hist.Hist) -> None:
    """Log y axis down to half the smallest positive bin of ``histograms`` (linear if none)."""
    values = np.concatenate([h.values() for h in histograms]) if histograms else np.array([])
    positive = values[values > 0]
    if positive.size:
        ax.set_yscale("log")
        ax.set_ylim(bottom=0.5 * positive.min())


def draw_stack(ax, backgrounds: hist.Hist, signal: hist.Hist, signal_label: str) -> None:
    """Backgrounds (process x variable) stacked, largest at the bottom, and the signal as a line."""
    stacked = by_yield(backgrounds)
    if len(stacked.axes["process"]):
        stacked.stack("process").plot(stack=True, histtype="fill", ax=ax, flow="none")
    mplhep.histplot(signal, histtype="step", color=SIGNAL_COLOUR, linewidth=2, label=signal_label, ax=ax,
                    flow="none", yerr=False)
    log_y_if_positive(ax, backgrounds[{"process": sum}], signal)
    ax.legend(fontsize="x-small", ncols=2)
