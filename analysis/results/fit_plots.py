"""Plots of the likelihood fits (:class:`analysis.results.likelihood.FitSummary`).

* :func:`plot_brazil` -- the 95% CL upper limit on the signal strength against m(slepton), one
  panel per dm slice: expected median, +-1 sigma (green) and +-2 sigma (yellow) bands, the
  observed limit when there are data, and mu = 1;
* :func:`plot_exclusion` -- beside each other: the expected discovery significance of the fit
  over the (m(slepton), dm) plane with its 3 and 5 sigma contours, and the expected 95% CL
  exclusion contour (mu_up = 1) with its +-1 sigma band (and the observed contour with data);
* :func:`make_fit_plots` draws both for the report.

Maps are linear interpolations on a Delaunay triangulation of the points that have a result
(log10 of the limits); points without one are marked with a cross and never interpolated
through. Figures use an Agg canvas, not pyplot (see :mod:`analysis.results.plots`).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import matplotlib
import matplotlib.ticker
import mplhep
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from analysis.results.likelihood import FitPoint, FitSummary
from analysis.results.scan import sensitivity_map

__all__ = ["interpolated", "make_fit_plots", "plot_brazil", "plot_exclusion"]

_DPI = 100
_GREEN, _YELLOW = "#00c000", "#ffd700"
_M_LABEL = r"$m(\tilde{\ell})$ [GeV]"
_DM_LABEL = r"$\Delta m(\tilde{\ell}, \tilde{\chi}_1^0)$ [GeV]"


@contextlib.contextmanager
def _style() -> Iterator[None]:
    with matplotlib.style.context(mplhep.style.ATLAS):
        yield


def _figure(ncols: int, width: float = 7.0, height: float = 5.5):
    figure = Figure(figsize=(width * ncols, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure, list(figure.subplots(1, ncols, squeeze=False)[0])


def _save(figure: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=_DPI, format="png")
    figure.clear()
    return path


def _label(ax, summary: FitSummary) -> None:
    name = ax.text(0.0, 1.01, "bsmscan", transform=ax.transAxes, ha="left", va="bottom", fontweight="bold")
    ax.annotate(" Simulation", xy=(1.0, 0.0), xycoords=name, ha="left", va="bottom", fontstyle="italic")
    luminosity = summary.settings.get("luminosity_fb")
    if luminosity:
        ax.set_title(f"{luminosity:g} fb$^{{-1}}$, 95% CL", loc="right", fontsize="small")


def _slices(points: list[FitPoint]) -> dict[float, list[FitPoint]]:
    slices: dict[float, list[FitPoint]] = {}
    for point in sorted(points, key=lambda p: (p.dm, p.m_slepton)):
        slices.setdefault(point.dm, []).append(point)
    return slices


def _span(x: np.ndarray) -> np.ndarray:
    """x values for bands: a single point gets a short segment so that its band shows."""
    return np.array([x[0] - 5.0, x[0] + 5.0]) if x.size == 1 else x


def _draw_slice(ax, points: list[FitPoint], with_data: bool) -> None:
    good = [p for p in points if p.ok]
    if good:
        x = np.array([p.m_slepton for p in good])
        limits = np.array([p.expected_limit for p in good])  # (points, 5): -2..+2 sigma
        xs = _span(x)
        expand = (lambda column: np.repeat(column, 2)) if x.size == 1 else (lambda column: column)
        ax.fill_between(xs, expand(limits[:, 0]), expand(limits[:, 4]), color=_YELLOW, label=r"expected $\pm 2\sigma$")
        ax.fill_between(xs, expand(limits[:, 1]), expand(limits[:, 3]), color=_GREEN, label=r"expected $\pm 1\sigma$")
        ax.plot(xs, expand(limits[:, 2]), color="black", linestyle="--", label="expected")
        if with_data:
            observed = [(p.m_slepton, p.observed_limit) for p in good if p.observed_limit is not None]
            if observed:
                ax.plot(*zip(*observed), color="black", marker="o", label="observed")
    for point in points:
        if not point.ok:
            ax.plot(point.m_slepton, 1.0, marker="x", color="tab:red", linestyle="none")
            ax.annotate(f"no fit: {point.status}", (point.m_slepton, 1.0), textcoords="offset points",
                        xytext=(4, 6), fontsize="x-small", color="tab:red")
    ax.axhline(1.0, color="tab:red", linewidth=1.0, label=r"$\mu = 1$")
    ax.set_yscale("log")
    ax.set_xlabel(_M_LABEL)
    ax.set_ylabel(r"95% CL upper limit on $\mu$")


def plot_brazil(summary: FitSummary, path: str | Path) -> Path:
    """Upper limits on mu against m(slepton), one panel per dm (expected bands, observed)."""
    slices = _slices(summary.points)
    with_data = any(p.has_data for p in summary.points)
    with _style():
        figure, axes = _figure(max(len(slices), 1))
        for ax, (dm, points) in zip(axes, slices.items()):
            _draw_slice(ax, points, with_data)
            ax.text(0.04, 0.94, rf"$\Delta m$ = {dm:g} GeV", transform=ax.transAxes, va="top", fontsize="small")
            _label(ax, summary)
        if slices:
            axes[0].legend(loc="lower right", fontsize="x-small")
        return _save(figure, path)


def interpolated(points: list[FitPoint], values: list[float | None], n: int = 100, log: bool = False):
    """``(m_grid, dm_grid, value_grid)`` over the plane from the points with a finite value
    (log10 of it with ``log``); None when fewer than three non-collinear points have one."""
    usable = [SimpleNamespace(m_slepton=p.m_slepton, dm=p.dm, value=math.log10(v) if log else v)
              for p, v in zip(points, values) if v is not None and math.isfinite(v) and (v > 0 or not log)]
    try:
        m_grid, dm_grid, grid = sensitivity_map(usable, which="value", n=n)
    except (ValueError, RuntimeError):  # < 3 points, or collinear ones
        return None
    return (m_grid, dm_grid, grid) if np.isfinite(grid).any() else None


def _mark_points(ax, points: list[FitPoint], values: list[float | None], fmt: str) -> None:
    for point, value in zip(points, values):
        if value is None:
            ax.plot(point.m_slepton, point.dm, marker="x", color="tab:red", markersize=7)
            continue
        ax.plot(point.m_slepton, point.dm, marker="o", color="black", markersize=4)
        ax.annotate(format(value, fmt), (point.m_slepton, point.dm), textcoords="offset points", xytext=(4, 4),
                    fontsize="x-small")


def _z_panel(figure, ax, points: list[FitPoint]) -> None:
    values = [p.expected_z if p.ok else None for p in points]
    grid = interpolated(points, values)
    if grid is not None:
        low, high = float(np.nanmin(grid[2])), float(np.nanmax(grid[2]))
        levels = matplotlib.ticker.MaxNLocator(nbins=20).tick_values(low, high if high > low else low + 1.0)
        filled = ax.contourf(*grid, levels=levels, cmap="viridis", extend="both")
        figure.colorbar(filled, ax=ax, label="expected discovery Z (likelihood fit)")
        lines = [level for level in (3.0, 5.0) if low < level < high]
        if lines:
            contour = ax.contour(*grid, levels=lines, colors="white", linestyles=["-", "-."][: len(lines)])
            ax.clabel(contour, fmt=lambda level: f"{level:g}$\\sigma$", fontsize="small")
    _mark_points(ax, points, values, ".2f")


def _exclusion_panel(figure, ax, points: list[FitPoint]) -> None:
    median = [p.median_limit if p.ok else None for p in points]
    grid = interpolated(points, median, log=True)
    if grid is None:
        ax.text(0.5, 0.5, "too few grid points with a limit to interpolate", transform=ax.transAxes, ha="center")
    else:
        filled = ax.contourf(*grid, levels=20, cmap="RdYlBu")
        figure.colorbar(filled, ax=ax, label=r"$\log_{10}$ expected $\mu_{up}$ (95% CL)")
        minus = interpolated(points, [p.expected_limit[1] if p.ok else None for p in points], log=True)
        plus = interpolated(points, [p.expected_limit[3] if p.ok else None for p in points], log=True)
        if minus is not None and plus is not None:
            band = ((minus[2] < 0) & (plus[2] > 0)).astype(float)
            ax.contourf(grid[0], grid[1], band, levels=[0.5, 1.5], colors=[_YELLOW], alpha=0.6)
            for side in (minus, plus):
                ax.contour(*side, levels=[0.0], colors="black", linestyles=":", linewidths=1.0)
        ax.contour(*grid, levels=[0.0], colors="black", linestyles="--", linewidths=2.0)
        observed = interpolated(points, [p.observed_limit if p.ok else None for p in points], log=True)
        if observed is not None:
            ax.contour(*observed, levels=[0.0], colors="tab:red", linewidths=2.0)
    ax.plot([], [], color="black", linestyle="--", label=r"expected ($\mu_{up} = 1$)")
    ax.fill_between([], [], color=_YELLOW, label=r"expected $\pm 1\sigma$")
    if any(p.observed_limit is not None for p in points):
        ax.plot([], [], color="tab:red", label="observed")
    ax.legend(loc="upper right", fontsize="x-small")
    _mark_points(ax, points, median, ".2g")


def plot_exclusion(summary: FitSummary, path: str | Path) -> Path:
    """Expected discovery Z map beside the expected 95% CL exclusion contour with its +-1 sigma band."""
    points = summary.points
    with _style():
        figure, (z_ax, limit_ax) = _figure(2, width=8.0)
        _z_panel(figure, z_ax, points)
        _exclusion_panel(figure, limit_ax, points)
        for ax in (z_ax, limit_ax):
            if points:
                m = [p.m_slepton for p in points]
                dm = [p.dm for p in points]
                ax.set_xlim(min(m) - 0.08 * (max(m) - min(m) or 10), max(m) + 0.08 * (max(m) - min(m) or 10))
                ax.set_ylim(min(dm) - 0.08 * (max(dm) - min(dm) or 10), max(dm) + 0.08 * (max(dm) - min(dm) or 10))
            ax.set_xlabel(_M_LABEL)
            ax.set_ylabel(_DM_LABEL)
            _label(ax, summary)
        return _save(figure, path)


def make_fit_plots(outdir: str | Path, summary: FitSummary) -> dict[str, Path]:
    """Both fit figures in ``outdir``: ``{caption: path}``."""
    outdir = Path(outdir)
    return {
        "Fit: 95% CL upper limits on the signal strength per dm slice (Brazil bands)": plot_brazil(summary, outdir / "fit_limits.png"),
        "Fit: expected discovery significance and 95% CL exclusion contour": plot_exclusion(summary, outdir / "fit_exclusion.png"),
    }
