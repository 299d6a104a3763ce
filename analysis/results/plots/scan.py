"""Significance-scan figures: Z vs threshold per grid point and Z over the (m, dm) plane, from
a :class:`analysis.results.scan.ScanSummary`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.ticker
import numpy as np
from matplotlib.figure import Figure

from analysis.results.scan import ScanSummary, sensitivity_map

from .common import label, new_figure, note, save, style

__all__ = ["Z_LEVELS", "best_points", "plot_sensitivity_contour", "plot_significance_scan"]

#: Significance levels drawn as contours on the sensitivity map.
Z_LEVELS = (2.0, 3.0, 5.0)


def best_points(summary: ScanSummary, max_points: int | None):
    """The grid points by decreasing best Z (points without a finite Z last); the first
    ``max_points`` of them (all for None)."""
    ranked = sorted(summary.points, key=lambda p: -p.best_z if np.isfinite(p.best_z) else np.inf)
    return ranked if max_points is None else ranked[:max_points]


def plot_significance_scan(summary: ScanSummary, path: str | Path, max_points: int | None = 8) -> Path:
    """Z vs score threshold of the grid points (the ``max_points`` with the highest best Z, all
    for None), each optimal threshold marked with a star, the standard threshold dashed."""
    with style():
        figure, ax = new_figure()
        for point in best_points(summary, max_points):
            (line,) = ax.plot(point.thresholds, np.asarray(point.z, dtype=float), label=f"{point.label} (Z = {point.best_z:.2f})")
            if np.isfinite(point.best_z):
                ax.plot(point.best_threshold, point.best_z, marker="*", markersize=14, color=line.get_color())
        if np.isfinite(summary.standard_threshold):
            ax.axvline(summary.standard_threshold, color="grey", linestyle="--",
                       label=f"standard threshold {summary.standard_threshold:g}")
        if not any(np.isfinite(p.best_z) for p in summary.points):
            note(ax, "no threshold passes the minimum yields")
        ax.set_xlabel("score threshold")
        ax.set_ylabel("significance Z")
        ax.set_xlim(0, 1)
        ax.set_ylim(bottom=0)
        ax.legend(fontsize="x-small")
        label(ax, f"{summary.luminosity_fb:g} fb$^{{-1}}$")
        return save(figure, path)


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
    that the map reaches (labelled), and every grid point marked with its Z +- MC spread; a point
    that fails the minimums (yields, background ESS) is a red cross and the map is blank around
    it. With fewer than three usable points only the points are drawn.
    """
    interpolated = _interpolated_map(summary, which)
    with style():
        figure, ax = new_figure(width=9.0)
        if interpolated is not None:
            _draw_contours(figure, ax, *interpolated)
        else:
            note(ax, "too few grid points with a finite Z to interpolate")
        failed = False
        for point in summary.points:
            z = getattr(point, which)
            if getattr(point, "status", "ok") != "ok" or not np.isfinite(z):
                # Fails the minimum yields or the background ESS minimum: no Z, no contour through it.
                failed = True
                ax.plot(point.m_slepton, point.dm, marker="x", color="red", markersize=8, markeredgewidth=2)
                ax.annotate("fails min.", (point.m_slepton, point.dm), textcoords="offset points", xytext=(4, 4),
                            fontsize="x-small", color="red")
                continue
            ax.plot(point.m_slepton, point.dm, marker="o", color="black", markersize=5)
            error = getattr(point, "best_z_mc_error" if which == "best_z" else "z_at_standard_mc_error", float("nan"))
            text = f"{z:.2f}" + (f"$\\pm${error:.2f}" if np.isfinite(error) else "")
            ax.annotate(text, (point.m_slepton, point.dm), textcoords="offset points", xytext=(4, 4),
                        fontsize="x-small", color="black")
        if failed:
            ax.text(0.01, 0.01, "x: fails the minimum yields or background ESS", transform=ax.transAxes,
                    fontsize="x-small", color="red", ha="left", va="bottom")
        if summary.points:
            _pad_limits(ax, [p.m_slepton for p in summary.points], [p.dm for p in summary.points])
        ax.set_xlabel(r"$m(\tilde{\ell})$ [GeV]")
        ax.set_ylabel(r"$\Delta m(\tilde{\ell}, \tilde{\chi}_1^0)$ [GeV]")
        label(ax, f"{summary.luminosity_fb:g} fb$^{{-1}}$")
        return save(figure, path)
