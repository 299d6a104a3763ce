"""Data over simulation: control histograms after the preselection, with a data/MC ratio panel.

``histogram`` is a process x variable ``hist.Hist`` (``Weight()`` storage) as the selection
stage fills it (:mod:`processors.control`); which processes are collision data, simulation and
signal comes with it (``analysis.stages.control.ControlHistograms``). The figure:

- upper panel: the simulated backgrounds stacked (``h.stack("process").plot(stack=True)``,
  largest at the bottom), their total's statistical uncertainty sqrt(sum w^2) as a hatched
  band, each signal as a line, and the data as points with Poisson errors sqrt(N);
- lower panel (when there are data and simulation): data / simulation per bin with the data's
  relative error, and the simulation's relative statistical band around 1.

Data alone are drawn as points, simulation alone as the stack. ``normalise_mc_to_data`` scales
the simulation to the data's yield (a shape comparison; the factor is in the legend).
:func:`control_statistics` gives the numbers the report records (yields, means, peak bins).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import hist
import mplhep
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

from .common import DPI, SIGNAL_COLOUR, by_yield, note, save, select, style

__all__ = ["control_statistics", "plot_data_mc", "plot_data_mc_all"]

BAND_STYLE = {"hatch": "////", "facecolor": "none", "edgecolor": "0.35", "linewidth": 0}


def _total(histogram: hist.Hist, processes: Sequence[str]) -> hist.Hist | None:
    present = [p for p in processes if p in histogram.axes["process"]]
    return select(histogram, {}, present)[{"process": sum}] if present else None


def _band(ax, edges: np.ndarray, low: np.ndarray, high: np.ndarray, label: str | None = None) -> None:
    ax.stairs(high, edges, baseline=low, fill=True, label=label, **BAND_STYLE)


def _figure(ratio: bool):
    figure = Figure(figsize=(8.0, 8.0 if ratio else 6.0), layout="constrained", dpi=DPI)
    FigureCanvasAgg(figure)
    if not ratio:
        return figure, figure.subplots(), None
    top, bottom = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    return figure, top, bottom


def _label(ax, has_data: bool, has_simulation: bool, title: str | None) -> None:
    """"bsmscan Data / Simulation" inside the frame, top left (the axis' offset text, x10^7, sits
    above the frame there), with headroom above the highest bin for it and the legend."""
    kind = " / ".join(word for word, present in (("Data", has_data), ("Simulation", has_simulation)) if present)
    name = ax.text(0.03, 0.96, "bsmscan", transform=ax.transAxes, ha="left", va="top", fontweight="bold")
    ax.annotate(f" {kind}", xy=(1.0, 0.0), xycoords=name, ha="left", va="bottom", fontstyle="italic")
    if title:
        ax.set_title(title, loc="right", fontsize="small")
    bottom, top = ax.get_ylim()
    if ax.get_yscale() == "log" and bottom > 0:
        ax.set_ylim(bottom, top * (top / bottom) ** 0.4)
    else:
        ax.set_ylim(bottom, bottom + 1.4 * (top - bottom))


def plot_data_mc(histogram: hist.Hist, path: str | Path, *, data: Sequence[str] = (), simulation: Sequence[str] = (),
                 signal: Sequence[str] = (), log_y: bool = False, normalise_mc_to_data: bool = False,
                 title: str | None = None) -> Path:
    """One control histogram: data over the stacked simulation, with the ratio panel (see the
    module docstring). ``signal`` processes (part of ``simulation``) are drawn as lines, not
    stacked. Returns the PNG path."""
    axis = histogram.axes[1]
    edges = axis.edges
    backgrounds = [p for p in simulation if p not in signal and p in histogram.axes["process"]]
    data_total = _total(histogram, data)
    mc_total = _total(histogram, backgrounds)
    scale = 1.0
    if normalise_mc_to_data and data_total is not None and mc_total is not None and mc_total.values().sum() > 0:
        scale = float(data_total.values().sum() / mc_total.values().sum())
    has_ratio = data_total is not None and mc_total is not None
    with style():
        figure, ax, ratio_ax = _figure(has_ratio)
        if backgrounds:
            stack = by_yield(select(histogram, {}, backgrounds)) * scale
            stack.stack("process").plot(stack=True, histtype="fill", ax=ax, flow="none")
            values, errors = mc_total.values() * scale, np.sqrt(mc_total.variances()) * scale
            _band(ax, edges, values - errors, values + errors, "simulation stat. unc.")
        for process in signal:
            if process in histogram.axes["process"]:
                mplhep.histplot(select(histogram, {}, [process])[{"process": sum}] * scale, histtype="step",
                                linewidth=2, color=SIGNAL_COLOUR if len(signal) == 1 else None, label=process,
                                ax=ax, flow="none", yerr=False)
        if data_total is not None:  # points with Poisson errors; empty bins are not drawn
            counts, centres = data_total.values(), axis.centers
            shown = counts > 0
            ax.errorbar(centres[shown], counts[shown], yerr=np.sqrt(counts[shown]),
                        xerr=[(centres - edges[:-1])[shown], (edges[1:] - centres)[shown]], fmt="o", color="black",
                        markersize=5, label=f"data ({counts.sum():.0f} events)")
        if not backgrounds and data_total is None and not signal:
            note(ax, "no events")
        ax.set_ylabel("events / bin" if data_total is not None else "weighted events / bin")
        if log_y:
            shown_values = [data_total.values()] if data_total is not None else []
            shown_values += [mc_total.values() * scale] if mc_total is not None else []
            positive = np.concatenate([v[v > 0] for v in shown_values] or [np.array([])])
            ax.set_yscale("log")
            if positive.size:
                ax.set_ylim(bottom=0.5 * positive.min())
        else:
            ax.set_ylim(bottom=0.0)
        handles, _ = ax.get_legend_handles_labels()
        if handles:
            scaled = f"simulation scaled x {scale:.3g} to the data" if scale != 1.0 else None
            ax.legend(fontsize="x-small", ncols=2, title=scaled, title_fontsize="x-small")
        _label(ax, data_total is not None, bool(backgrounds or signal), title)
        bottom = ratio_ax if ratio_ax is not None else ax
        if axis.transform is not None:
            bottom.set_xscale("log")
            bottom.xaxis.set_minor_formatter(NullFormatter())
        bottom.set_xlim(edges[0], edges[-1])
        bottom.set_xlabel(axis.label or axis.name)
        if ratio_ax is not None:
            ax.set_xlabel("")
            ax.tick_params(labelbottom=False)
            _ratio_panel(ratio_ax, edges, axis.centers, data_total.values(), mc_total.values() * scale,
                         np.sqrt(mc_total.variances()) * scale)
        return save(figure, path)


def _ratio_panel(ax, edges: np.ndarray, centres: np.ndarray, data: np.ndarray, mc: np.ndarray, mc_error: np.ndarray) -> None:
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(mc > 0, data / mc, np.nan)
        ratio_error = np.where(mc > 0, np.sqrt(np.maximum(data, 0.0)) / mc, np.nan)
        relative = np.where(mc > 0, mc_error / mc, 0.0)
    _band(ax, edges, 1.0 - relative, 1.0 + relative)
    shown = np.isfinite(ratio) & (data > 0)
    ax.errorbar(centres[shown], ratio[shown], yerr=ratio_error[shown], fmt="o", color="black", markersize=4)
    ax.axhline(1.0, color="0.3", linewidth=1, linestyle="--")
    finite = ratio[shown]
    spread = max(0.5, float(np.max(np.abs(finite - 1.0) + ratio_error[shown]))) if finite.size else 0.5
    ax.set_ylim(max(0.0, 1.0 - min(spread, 1.0)), 1.0 + min(spread, 2.0))
    ax.set_ylabel("data / sim.")


def plot_data_mc_all(histograms: Mapping[str, hist.Hist], outdir: str | Path, *, data: Sequence[str],
                     simulation: Sequence[str], signal: Sequence[str] = (), specs: Mapping[str, Mapping] | None = None,
                     normalise_mc_to_data: bool = False) -> dict[str, Path]:
    """:func:`plot_data_mc` for every control histogram (``log_y`` from its ``specs`` entry);
    files ``preselection_<name>.png`` in ``outdir``; returns ``{name: path}``."""
    specs = specs or {}
    return {name: plot_data_mc(h, Path(outdir) / f"preselection_{name}.png", data=data, simulation=simulation,
                               signal=signal, log_y=bool(specs.get(name, {}).get("log_y", False)),
                               normalise_mc_to_data=normalise_mc_to_data, title="after the preselection")
            for name, h in histograms.items()}


def _statistics(h: hist.Hist | None) -> dict:
    if h is None:
        return {"events": 0.0}
    values = h.values()
    centres = h.axes[0].centers
    total = float(values.sum())
    if total <= 0:
        return {"events": total}
    return {"events": total, "mean": float(np.sum(values * centres) / total), "peak": float(centres[np.argmax(values)]),
            "stat_uncertainty": float(np.sqrt(h.variances().sum()))}


def control_statistics(histogram: hist.Hist, data: Sequence[str], simulation: Sequence[str],
                       signal: Sequence[str] = ()) -> dict:
    """Yield (in the range), mean, peak-bin centre and statistical uncertainty of the data, the
    simulated background and each signal; and data / background where both are there."""
    backgrounds = [p for p in simulation if p not in signal]
    stats = {"data": _statistics(_total(histogram, data)), "simulation": _statistics(_total(histogram, backgrounds))}
    for process in signal:
        stats[process] = _statistics(_total(histogram, [process]))
    if stats["data"]["events"] and stats["simulation"]["events"]:
        stats["data_over_simulation"] = stats["data"]["events"] / stats["simulation"]["events"]
    return stats
