"""Control-variable figures: a variable's stacked backgrounds and signal per step.

``control``: ``{variable: hist.Hist}`` with axes ``step`` x ``process`` x ``point`` x variable
(:func:`analysis.results.control.control_at_thresholds` makes them from the scoring pass).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import hist
import numpy as np

from .common import draw_stack, label, new_figure, process_sum, save, select, style

__all__ = ["plot_control_distribution", "plot_control_distributions"]

#: Category axes of the control histograms; the remaining axis is the variable.
CONTROL_CATEGORY_AXES = ("step", "process", "point")


def _variable_axis(histogram: hist.Hist):
    names = [axis.name for axis in histogram.axes if axis.name not in CONTROL_CATEGORY_AXES]
    if len(names) != 1:
        raise ValueError(f"a control histogram needs exactly one variable axis besides {CONTROL_CATEGORY_AXES}; got {names}")
    return histogram.axes[names[0]]


def plot_control_distribution(histogram: hist.Hist, background_processes: Sequence[str], point: str, path: str | Path) -> Path:
    """One control variable at ``point``: stacked backgrounds and the signal line, one panel per
    step of the ``step`` axis (preselection, score cut)."""
    axis = _variable_axis(histogram)
    steps = list(histogram.axes["step"])
    with style():
        figure, axes = new_figure(ncols=len(steps))
        for ax, step in zip(np.atleast_1d(axes), steps):
            fixed = {"step": step, "point": point}
            draw_stack(ax, select(histogram, fixed, background_processes), process_sum(histogram, fixed, [point]), point)
            ax.set_xlabel(axis.label or axis.name)
            ax.set_ylabel("weighted events / bin")
            label(ax, step)
        return save(figure, path)


def plot_control_distributions(control: Mapping[str, hist.Hist], background_processes: Sequence[str], point: str, outdir: str | Path) -> dict[str, Path]:
    """:func:`plot_control_distribution` for every variable; returns ``{variable: path}``
    (files ``control_<variable>.png`` in ``outdir``)."""
    return {
        name: plot_control_distribution(histogram, background_processes, point, Path(outdir) / f"control_{name}.png")
        for name, histogram in control.items()
    }
