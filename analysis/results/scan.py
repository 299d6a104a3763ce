"""Significance scans from the score histograms.

For every signal grid point: the weighted signal (that point's events) and background (all
background processes) score distributions of one data split, scaled to the full luminosity
(divided by the split's fraction: the split is a uniform hash of the event number), a
threshold scan with the ATLAS Asimov significance with background uncertainty
(:func:`analysis.core.statistics.threshold_scan`), the optimal threshold and its Z; then the
"standard" threshold (the mean of the optimal ones) and each point's Z at it, Z as a function
of integrated luminosity, and the sensitivity map over the (m(slepton), dm) plane.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import hist
import numpy as np

from analysis.core.config import ScanConfig
from analysis.core.statistics import asimov_significance, threshold_scan


@dataclass
class PointScan:
    """The scan of one grid point (yields scaled to the configured luminosity)."""

    label: str
    m_slepton: float
    dm: float
    thresholds: list[float]
    signal: list[float]
    background: list[float]
    z: list[float]  # NaN where the minimum yields are not met
    best_threshold: float
    best_z: float
    signal_at_best: float
    background_at_best: float
    z_at_standard: float = float("nan")


@dataclass
class ScanSummary:
    """Every point's scan, the standard threshold and the luminosity projection."""

    split: str
    luminosity_fb: float
    relative_background_uncertainty: float
    points: list[PointScan]
    standard_threshold: float
    z_vs_luminosity: dict[str, dict[str, float]] = field(default_factory=dict)  # label -> {lumi: Z}

    def to_json(self) -> dict:
        """A JSON-serialisable dict (NaN kept as NaN; json writes it as NaN)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "ScanSummary":
        """The summary back from :meth:`to_json` output (e.g. ``scan.json``)."""
        data = dict(data)
        data["points"] = [PointScan(**point) for point in data["points"]]
        return cls(**data)


def _yields(score: hist.Hist, split: str, processes: list[str], point: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-bin sum of weights and of squared weights of ``processes`` at ``point``."""
    available = [p for p in processes if p in score.axes["process"]]
    n_bins = score.axes["score"].size
    if not available:
        return np.zeros(n_bins), np.zeros(n_bins)
    view = score[{"split": split, "point": point}].view()  # (process, score)
    index = [score.axes["process"].index(p) for p in available]
    return view["value"][index].sum(axis=0), view["variance"][index].sum(axis=0)


def scan_points(
    score: hist.Hist,
    points: list[tuple[str, float, float]],
    background_processes: list[str],
    scan: ScanConfig,
    luminosity_fb: float,
    split: str = "test",
    split_fraction: float = 1.0,
) -> ScanSummary:
    """Threshold scans of every grid point ``(label, m_slepton, dm)`` from the score histogram.

    Yields of ``split`` are divided by ``split_fraction`` so they stand for all events.
    """
    if not 0 < split_fraction <= 1:
        raise ValueError(f"split fraction must be in (0, 1], got {split_fraction}")
    edges = score.axes["score"].edges
    scale = 1.0 / split_fraction
    results = []
    for label, m_slepton, dm in points:
        background, background_sumw2 = _yields(score, split, background_processes, label)
        signal, signal_sumw2 = _yields(score, split, [label], label)
        result = threshold_scan(
            signal * scale, signal_sumw2 * scale**2, background * scale, background_sumw2 * scale**2, edges,
            relative_bkg_uncertainty=scan.relative_background_uncertainty,
            include_mc_stat=scan.include_mc_stat_uncertainty,
            min_signal=scan.min_signal, min_background=scan.min_background,
        )
        best = int(result.best_index)
        results.append(PointScan(
            label=label, m_slepton=m_slepton, dm=dm,
            thresholds=result.thresholds.tolist(), signal=result.s.tolist(), background=result.b.tolist(),
            z=result.z.tolist(), best_threshold=float(result.best_threshold), best_z=float(result.best_z),
            signal_at_best=float(result.s[best]) if best >= 0 else float("nan"),
            background_at_best=float(result.b[best]) if best >= 0 else float("nan"),
        ))
    summary = ScanSummary(split, luminosity_fb, scan.relative_background_uncertainty, results,
                          standard_threshold(results, edges))
    for point in results:
        point.z_at_standard = z_at_threshold(point, summary.standard_threshold, scan)
    summary.z_vs_luminosity = {
        point.label: z_vs_luminosity(point, summary.standard_threshold, luminosity_fb, scan) for point in results
    }
    return summary


def standard_threshold(points: list[PointScan], edges: np.ndarray) -> float:
    """The mean of the points' optimal thresholds (points without one are left out),
    rounded down to a bin edge so it can be applied to the histograms; NaN if none."""
    optimal = [p.best_threshold for p in points if np.isfinite(p.best_threshold)]
    if not optimal:
        return float("nan")
    mean = float(np.mean(optimal))
    return float(edges[np.searchsorted(edges, mean + 1e-12, side="right") - 1])


def _index_of(point: PointScan, threshold: float) -> int | None:
    if not np.isfinite(threshold):
        return None
    thresholds = np.asarray(point.thresholds)
    index = int(np.argmin(np.abs(thresholds - threshold)))
    return index if abs(thresholds[index] - threshold) < 1e-9 else None


def z_at_threshold(point: PointScan, threshold: float, scan: ScanConfig) -> float:
    """Z of a point at a given threshold (a bin edge), NaN where the minimum yields fail."""
    index = _index_of(point, threshold)
    if index is None:
        return float("nan")
    s, b = point.signal[index], point.background[index]
    if s < scan.min_signal or b < scan.min_background:
        return float("nan")
    return float(asimov_significance(s, b, scan.relative_background_uncertainty * b))


def z_vs_luminosity(point: PointScan, threshold: float, luminosity_fb: float, scan: ScanConfig) -> dict[str, float]:
    """Z at ``threshold`` for each of ``scan.luminosities_fb``: s and b scale with L, sigma_b = rel x b."""
    index = _index_of(point, threshold)
    projection = {}
    for target in scan.luminosities_fb:
        if index is None:
            projection[f"{target:g}"] = float("nan")
            continue
        factor = target / luminosity_fb
        s, b = point.signal[index] * factor, point.background[index] * factor
        valid = s >= scan.min_signal and b >= scan.min_background
        z = asimov_significance(s, b, scan.relative_background_uncertainty * b) if valid else float("nan")
        projection[f"{target:g}"] = float(z)
    return projection


def sensitivity_map(points: list[PointScan], which: str = "best_z", n: int = 100):
    """Z interpolated over the (m_slepton, dm) plane (linear, on a Delaunay triangulation).

    Returns ``(m_grid, dm_grid, z_grid)`` (2-D arrays; NaN outside the hull of the points or
    where the interpolation has no finite neighbours). Needs at least three non-collinear
    points with a finite Z.
    """
    import matplotlib.tri as mtri

    usable = [p for p in points if np.isfinite(getattr(p, which))]
    if len(usable) < 3:
        raise ValueError(f"a sensitivity map needs at least 3 grid points with a finite {which}; got {len(usable)}")
    m = np.array([p.m_slepton for p in usable])
    dm = np.array([p.dm for p in usable])
    z = np.array([getattr(p, which) for p in usable])
    triangulation = mtri.Triangulation(m, dm)
    m_grid, dm_grid = np.meshgrid(np.linspace(m.min(), m.max(), n), np.linspace(dm.min(), dm.max(), n))
    z_grid = mtri.LinearTriInterpolator(triangulation, z)(m_grid, dm_grid)
    return m_grid, dm_grid, np.ma.filled(z_grid, np.nan)
