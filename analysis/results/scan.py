"""Significance scans from the score histograms.

For every signal grid point: the weighted signal (that point's events) and background (all
background processes) score distributions of one data split, scaled to the full luminosity
(divided by the split's fraction: the split is a uniform hash of the event number), a
threshold scan with the ATLAS Asimov significance with background uncertainty
(:func:`analysis.core.statistics.threshold_scan`), the optimal threshold and its Z; then the
"standard" threshold (the mean of the optimal ones) and each point's Z at it, Z as a function
of integrated luminosity, and the sensitivity map over the (m(slepton), dm) plane.

Honest uncertainties (``scan`` config): sigma_b^2 = (f b)^2 + sum w^2 includes the background's
MC statistics above the threshold (``include_mc_stat_uncertainty``, on by default); a threshold
counts only where the background's effective sample size above it, (sum w)^2 / sum w^2,
reaches ``min_background_ess`` (10), besides the minimum expected yields; every Z carries its
MC-statistical spread (``z_mc_error``, propagated from the sums of squared weights of s and b).
A point without any threshold that passes has ``status`` saying which minimum failed; its Z
is NaN, and the sensitivity map leaves the triangles around it blank.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

import hist
import numpy as np

from analysis.core.config import ScanConfig
from analysis.core.statistics import (
    asimov_significance,
    effective_sample_size,
    significance_mc_error,
    threshold_scan,
)

NAN = float("nan")

log = logging.getLogger(__name__)


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
    z_at_standard: float = NAN
    signal_sumw2: list[float] = field(default_factory=list)  # cumulative above each threshold
    background_sumw2: list[float] = field(default_factory=list)
    background_ess: list[float] = field(default_factory=list)
    z_mc_error: list[float] = field(default_factory=list)
    best_z_mc_error: float = NAN
    background_ess_at_best: float = NAN
    z_at_standard_mc_error: float = NAN
    status: str = "ok"  # or why no threshold passes the minimums

    @property
    def passes_minimums(self) -> bool:
        """Whether some threshold passes the minimum yields and the background ESS minimum."""
        return self.status == "ok"


@dataclass
class ScanSummary:
    """Every point's scan, the standard threshold and the luminosity projection."""

    split: str
    luminosity_fb: float
    relative_background_uncertainty: float
    points: list[PointScan]
    standard_threshold: float
    z_vs_luminosity: dict[str, dict[str, float]] = field(default_factory=dict)  # label -> {lumi: Z}
    include_mc_stat_uncertainty: bool = False
    min_background_ess: float = 0.0
    warnings: list[str] = field(default_factory=list)  # e.g. samples whose ESS is below the minimum

    def to_json(self) -> dict:
        """A JSON-serialisable dict (NaN kept as NaN; json writes it as NaN)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> ScanSummary:
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
    warnings = low_ess_warnings(score, split, background_processes, [label for label, _, _ in points], scan)
    for message in warnings:
        log.warning(message)
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
            min_background_ess=scan.min_background_ess,
        )
        best = int(result.best_index)
        cumulative_signal_sumw2 = np.cumsum((signal_sumw2 * scale**2)[::-1])[::-1]
        results.append(PointScan(
            label=label, m_slepton=m_slepton, dm=dm,
            thresholds=result.thresholds.tolist(), signal=result.s.tolist(), background=result.b.tolist(),
            z=result.z.tolist(), best_threshold=float(result.best_threshold), best_z=float(result.best_z),
            signal_at_best=float(result.s[best]) if best >= 0 else NAN,
            background_at_best=float(result.b[best]) if best >= 0 else NAN,
            signal_sumw2=cumulative_signal_sumw2.tolist(), background_sumw2=result.b_sumw2.tolist(),
            background_ess=result.background_ess.tolist(), z_mc_error=result.z_mc_error.tolist(),
            best_z_mc_error=float(result.z_mc_error[best]) if best >= 0 else NAN,
            background_ess_at_best=float(result.background_ess[best]) if best >= 0 else NAN,
            status="ok" if best >= 0 else failure_reason(result.s, result.b, result.background_ess, scan),
        ))
    summary = ScanSummary(split, luminosity_fb, scan.relative_background_uncertainty, results,
                          standard_threshold(results, edges),
                          include_mc_stat_uncertainty=scan.include_mc_stat_uncertainty,
                          min_background_ess=scan.min_background_ess, warnings=warnings)
    for point in results:
        point.z_at_standard, point.z_at_standard_mc_error = z_and_error_at_threshold(point, summary.standard_threshold, scan)
    summary.z_vs_luminosity = {
        point.label: z_vs_luminosity(point, summary.standard_threshold, luminosity_fb, scan) for point in results
    }
    return summary


def low_ess_warnings(score: hist.Hist, split: str, backgrounds: list[str], points: list[str], scan: ScanConfig) -> list[str]:
    """One message per sample whose effective sample size in ``split`` (all selected events,
    every score) is below ``scan.min_background_ess``: a background process (summed over the
    points' histograms it is filled in once per point, so the first point is used), or a grid
    point's own signal."""
    if scan.min_background_ess <= 0 or not points:
        return []
    messages = []
    for name, point in [(process, points[0]) for process in backgrounds] + [(label, label) for label in points]:
        sumw, sumw2 = (float(v.sum()) for v in _yields(score, split, [name], point))
        ess = float(effective_sample_size(sumw, sumw2))
        if sumw2 > 0 and ess < scan.min_background_ess:
            messages.append(f"sample {name}: effective sample size after the preselection in the {split} split is "
                            f"{ess:.1f}, below scan.min_background_ess = {scan.min_background_ess:g}; its yield is "
                            "dominated by a few heavy events: generate more events of it")
    return messages


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


def failure_reason(s, b, background_ess, scan: ScanConfig) -> str:
    """Why no threshold of a scan passes: the first minimum that no threshold meets together
    with the ones before it (expected signal, expected background, background ESS)."""
    s, b = np.asarray(s), np.asarray(b)
    ess = np.asarray(background_ess) if background_ess is not None else np.full(s.shape, np.inf)
    signal_ok = s >= scan.min_signal
    if not signal_ok.any():
        return f"signal below the minimum of {scan.min_signal:g} events at every threshold (max {s.max():.3g})"
    background_ok = signal_ok & (b >= scan.min_background)
    if not background_ok.any():
        return f"background below {scan.min_background:g} events wherever s >= {scan.min_signal:g}"
    if not (background_ok & (ess >= scan.min_background_ess)).any():
        best = float(ess[background_ok].max())
        return (f"background effective sample size below {scan.min_background_ess:g} at every threshold with enough "
                f"signal and background (max {best:.3g}): generate more background events")
    return "no finite significance"


def _z_and_error(s: float, b: float, s_sumw2: float, b_sumw2: float, scan: ScanConfig) -> tuple[float, float]:
    """Z and its MC spread at one threshold, NaN where a minimum fails (yields, background ESS)."""
    ess = float(effective_sample_size(b, b_sumw2))
    if s < scan.min_signal or b < scan.min_background or ess < scan.min_background_ess:
        return NAN, NAN
    extra = b_sumw2 if scan.include_mc_stat_uncertainty else 0.0
    z = float(asimov_significance(s, b, np.sqrt((scan.relative_background_uncertainty * b) ** 2 + extra)))
    error = float(significance_mc_error(s, s_sumw2, b, b_sumw2, scan.relative_background_uncertainty,
                                        scan.include_mc_stat_uncertainty))
    return z, error


def _sums_at(point: PointScan, index: int) -> tuple[float, float, float, float]:
    """s, b and their sums of squared weights at a threshold index (sumw2 0 for old scan files)."""
    s_sumw2 = point.signal_sumw2[index] if point.signal_sumw2 else 0.0
    b_sumw2 = point.background_sumw2[index] if point.background_sumw2 else 0.0
    return point.signal[index], point.background[index], s_sumw2, b_sumw2


def z_and_error_at_threshold(point: PointScan, threshold: float, scan: ScanConfig) -> tuple[float, float]:
    """Z of a point at a given threshold (a bin edge) and its MC spread; NaN where a minimum fails."""
    index = _index_of(point, threshold)
    if index is None:
        return NAN, NAN
    return _z_and_error(*_sums_at(point, index), scan)


def z_at_threshold(point: PointScan, threshold: float, scan: ScanConfig) -> float:
    """Z of a point at a given threshold (a bin edge), NaN where a minimum fails."""
    return z_and_error_at_threshold(point, threshold, scan)[0]


def z_vs_luminosity(point: PointScan, threshold: float, luminosity_fb: float, scan: ScanConfig) -> dict[str, float]:
    """Z at ``threshold`` for each of ``scan.luminosities_fb``: s and b scale with L, their sums of
    squared weights with L^2 (so the MC's relative precision and the ESS stay as they are)."""
    index = _index_of(point, threshold)
    projection = {}
    for target in scan.luminosities_fb:
        if index is None:
            projection[f"{target:g}"] = NAN
            continue
        factor = target / luminosity_fb
        s, b, s_sumw2, b_sumw2 = _sums_at(point, index)
        z, _ = _z_and_error(s * factor, b * factor, s_sumw2 * factor**2, b_sumw2 * factor**2, scan)
        projection[f"{target:g}"] = float(z)
    return projection


def sensitivity_map(points: list[PointScan], which: str = "best_z", n: int = 100):
    """Z interpolated over the (m_slepton, dm) plane (linear, on a Delaunay triangulation).

    Returns ``(m_grid, dm_grid, z_grid)`` (2-D arrays; NaN outside the hull of the points).
    Every grid point is a vertex; a point whose Z is NaN (it fails the minimum yields or the
    background ESS minimum) makes the triangles around it NaN, so no contour is drawn through
    it. Needs at least three non-collinear points with a finite Z.
    """
    import matplotlib.tri as mtri  # matplotlib only when a map is drawn

    usable = [p for p in points if np.isfinite(getattr(p, which))]
    if len(usable) < 3:
        raise ValueError(f"a sensitivity map needs at least 3 grid points with a finite {which}; got {len(usable)}")
    m = np.array([p.m_slepton for p in points])
    dm = np.array([p.dm for p in points])
    z = np.array([getattr(p, which) for p in points], dtype=float)
    finite = np.isfinite(z)
    triangulation = mtri.Triangulation(m, dm)
    # A triangle with a vertex that has no Z is masked (the interpolator cannot take NaN values).
    triangulation.set_mask(~finite[triangulation.triangles].all(axis=1))
    m_grid, dm_grid = np.meshgrid(np.linspace(m.min(), m.max(), n), np.linspace(dm.min(), dm.max(), n))
    z_grid = mtri.LinearTriInterpolator(triangulation, np.where(finite, z, 0.0))(m_grid, dm_grid)
    return m_grid, dm_grid, np.ma.filled(z_grid, np.nan)
