"""Significance scans from score histograms, against hand computations; the MC-statistical
uncertainty, the background-ESS minimum and Z's MC spread (against toy replicas)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analysis.core.config import ScanConfig
from analysis.core.statistics import (
    asimov_significance,
    effective_sample_size,
    significance_mc_error,
    threshold_scan,
)
from analysis.results.scan import (
    PointScan,
    ScanSummary,
    scan_points,
    sensitivity_map,
    standard_threshold,
)
from processors.scoring import score_histogram

POINTS = ["slepton_100_10", "slepton_200_40"]
PROCESSES = ["WW", "ttbar", *POINTS]


def _fill(h, process, point, scores, weights, split="test"):
    h.fill(split=split, process=process, point=point, score=np.asarray(scores, float), weight=np.asarray(weights, float))


def _hand_built():
    """Four score bins (edges 0, .25, .5, .75, 1) at both points.

    At slepton_100_10: signal [1, 2, 4, 8], WW [60, 30, 6, 2], ttbar [40, 10, 4, 2]
    -> background [100, 40, 10, 4], cumulative s = 15, 14, 12, 8 and b = 154, 54, 14, 4.
    """
    h = score_histogram(PROCESSES, POINTS, 4)
    centres = [0.125, 0.375, 0.625, 0.875]
    _fill(h, "slepton_100_10", "slepton_100_10", centres, [1, 2, 4, 8])
    _fill(h, "WW", "slepton_100_10", centres, [60, 30, 6, 2])
    _fill(h, "ttbar", "slepton_100_10", centres, [40, 10, 4, 2])
    # Signal of the *other* point must not count as signal here:
    _fill(h, "slepton_200_40", "slepton_100_10", centres, [1000, 1000, 1000, 1000])
    # Training-split events must not enter a test-split scan:
    _fill(h, "slepton_100_10", "slepton_100_10", centres, [500, 500, 500, 500], split="train")
    # slepton_200_40: signal [0, 1, 1, 6], background as above.
    _fill(h, "slepton_200_40", "slepton_200_40", centres, [0, 1, 1, 6])
    _fill(h, "WW", "slepton_200_40", centres, [60, 30, 6, 2])
    _fill(h, "ttbar", "slepton_200_40", centres, [40, 10, 4, 2])
    return h


#: The scan as before MC statistics were included (the hand-built histogram has one heavy entry per bin).
NO_MC = {"include_mc_stat_uncertainty": False, "min_background_ess": 0.0}


def test_scan_of_a_hand_built_histogram():
    scan = ScanConfig(relative_background_uncertainty=0.3, min_signal=3, min_background=3, luminosities_fb=[139, 1390],
                      **NO_MC)
    summary = scan_points(_hand_built(), [("slepton_100_10", 100, 10), ("slepton_200_40", 200, 40)],
                          ["WW", "ttbar"], scan, luminosity_fb=139.0, split="test", split_fraction=1.0)
    first, second = summary.points
    assert first.signal == [15, 14, 12, 8] and first.background == [154, 54, 14, 4]
    expected = [asimov_significance(s, b, 0.3 * b) for s, b in zip(first.signal, first.background)]
    assert first.z == pytest.approx(expected, rel=1e-12)  # 0.304, 0.732, 1.788, 2.594
    assert first.best_threshold == 0.75 and first.best_z == pytest.approx(2.5940, abs=1e-3)
    # slepton_200_40: s = 8, 8, 7, 6; the last threshold has s = 6 >= 3, b = 4 >= 3 -> best at 0.75.
    assert second.signal == [8, 8, 7, 6] and second.best_threshold == 0.75
    # Standard threshold: the mean of the optimal ones (0.75, 0.75).
    assert summary.standard_threshold == 0.75
    assert first.z_at_standard == pytest.approx(first.best_z)
    # Z vs luminosity at the standard threshold: s and b scale with L, sigma_b = 0.3 b.
    assert summary.z_vs_luminosity["slepton_100_10"]["1390"] == pytest.approx(asimov_significance(80, 40, 12.0))


def test_minimum_yields_and_split_fraction_scaling():
    scan = ScanConfig(min_signal=3, min_background=5, **NO_MC)
    summary = scan_points(_hand_built(), [("slepton_100_10", 100, 10)], ["WW", "ttbar"], scan,
                          luminosity_fb=139.0, split="test", split_fraction=1.0)
    point = summary.points[0]
    assert math.isnan(point.z[3])  # b = 4 < 5
    assert point.best_threshold == 0.5  # s = 12, b = 14
    # The test split is a fifth of the events: yields are scaled by 5 to stand for all of them.
    scaled = scan_points(_hand_built(), [("slepton_100_10", 100, 10)], ["WW", "ttbar"], scan,
                         luminosity_fb=139.0, split="test", split_fraction=0.2).points[0]
    assert scaled.signal == pytest.approx([75, 70, 60, 40]) and scaled.background[3] == pytest.approx(20)
    assert scaled.best_threshold == 0.75  # b = 20 now passes the minimum


def test_no_valid_threshold_gives_nan_not_a_fake_significance():
    h = score_histogram(PROCESSES, POINTS, 4)
    _fill(h, "slepton_100_10", "slepton_100_10", [0.9], [1.0])  # s = 1 < 3 everywhere
    _fill(h, "WW", "slepton_100_10", [0.1], [50.0])
    point = scan_points(h, [("slepton_100_10", 100, 10)], ["WW"], ScanConfig(), 139.0).points[0]
    assert math.isnan(point.best_z) and math.isnan(point.best_threshold)


def test_standard_threshold_is_the_mean_rounded_down_to_a_bin_edge():
    class P:  # stand-in with just the attribute used
        def __init__(self, t):
            self.best_threshold = t

    edges = np.linspace(0, 1, 101)
    assert standard_threshold([P(0.40), P(0.50), P(float("nan"))], edges) == pytest.approx(0.45)
    assert standard_threshold([P(0.40), P(0.41)], edges) == pytest.approx(0.40)
    assert math.isnan(standard_threshold([P(float("nan"))], edges))


def test_sensitivity_map_interpolates_linearly_between_grid_points():
    class P:
        def __init__(self, m, dm):
            self.m_slepton, self.dm, self.best_z = m, dm, 0.01 * m + 0.1 * dm  # a plane

    points = [P(m, dm) for m in (100, 200, 300) for dm in (10, 40, 75)]
    m_grid, dm_grid, z_grid = sensitivity_map(points, n=21)
    inside = np.isfinite(z_grid)
    assert inside.mean() > 0.9
    assert z_grid[inside] == pytest.approx((0.01 * m_grid + 0.1 * dm_grid)[inside], rel=1e-9)
    with pytest.raises(ValueError, match="at least 3 grid points"):
        sensitivity_map(points[:2])


def _many_events(h, process, point, n, score_range, weight, rng, split="test"):
    scores = rng.uniform(*score_range, size=n)
    _fill(h, process, point, scores, np.full(n, weight), split=split)


def test_default_scan_includes_the_background_mc_statistics():
    """sigma_b^2 = (0.3 b)^2 + sum w^2 by default; by hand on the four-bin histogram."""
    assert ScanConfig().include_mc_stat_uncertainty and ScanConfig().min_background_ess == 10.0
    scan = ScanConfig(min_background_ess=0.0)
    point = scan_points(_hand_built(), [("slepton_100_10", 100, 10)], ["WW", "ttbar"], scan, 139.0).points[0]
    # Background sum of w^2 above each threshold: bins (60^2+40^2, 30^2+10^2, 6^2+4^2, 2^2+2^2) cumulated.
    sumw2 = np.cumsum([5200, 1000, 52, 8][::-1])[::-1]  # 6260, 1060, 60, 8
    assert point.background_sumw2 == pytest.approx(sumw2.tolist())
    b = np.array(point.background)
    expected = asimov_significance(np.array(point.signal), b, np.sqrt((0.3 * b) ** 2 + sumw2))
    assert point.z == pytest.approx(expected.tolist(), rel=1e-12)
    assert point.background_ess == pytest.approx((b**2 / sumw2).tolist())  # 3.79, 2.77, 2.65, 2.0


def test_threshold_needs_the_background_effective_sample_size():
    """5000 unit-weight background events below 0.5 and 8 events of weight 5 above 0.75:
    b = 40 above 0.5 but its ESS is 8 < 10, so the best threshold is 0.25 (ESS ~ 2500 unit-weight events)."""
    rng = np.random.default_rng(1)
    h = score_histogram(PROCESSES, POINTS, 4)
    _many_events(h, "WW", "slepton_100_10", 5000, (0.0, 0.5), 1.0, rng)
    _many_events(h, "WW", "slepton_100_10", 8, (0.75, 1.0), 5.0, rng)
    _many_events(h, "slepton_100_10", "slepton_100_10", 400, (0.5, 1.0), 0.5, rng)
    points = [("slepton_100_10", 100, 10)]
    strict = scan_points(h, points, ["WW"], ScanConfig(), 139.0).points[0]
    assert strict.background_ess[3] == pytest.approx(8.0)
    assert math.isnan(strict.z[3]) and math.isnan(strict.z[2])  # ESS 8 above 0.5 and 0.75
    assert strict.best_threshold == 0.25 and strict.passes_minimums
    assert strict.background_ess_at_best == pytest.approx(effective_sample_size(strict.background[1], strict.background_sumw2[1]))
    loose = scan_points(h, points, ["WW"], ScanConfig(min_background_ess=5.0), 139.0).points[0]
    assert loose.best_threshold == 0.5  # with ESS 8 allowed, the region without light background wins
    # Only the heavy events: no threshold passes, and the point says why.
    h2 = score_histogram(PROCESSES, POINTS, 4)
    _many_events(h2, "WW", "slepton_100_10", 8, (0.0, 1.0), 5.0, rng)
    _many_events(h2, "slepton_100_10", "slepton_100_10", 400, (0.5, 1.0), 0.5, rng)
    failed = scan_points(h2, points, ["WW"], ScanConfig(), 139.0).points[0]
    assert not failed.passes_minimums and math.isnan(failed.best_z) and math.isnan(failed.z_at_standard)
    assert "background effective sample size below 10" in failed.status and "max 8" in failed.status
    # ... and the sample is named: its ESS after the preselection (8) is below the minimum.
    warnings = scan_points(h2, points, ["WW"], ScanConfig(), 139.0).warnings
    assert len(warnings) == 1 and warnings[0].startswith("sample WW: effective sample size after the preselection")
    assert "8.0, below scan.min_background_ess = 10" in warnings[0]
    assert scan_points(h, points, ["WW"], ScanConfig(), 139.0).warnings == []


def test_z_mc_spread_matches_toy_replicas_of_the_simulated_events():
    """Propagated sigma_Z against the spread of Z over 400 replicas, each a new 'simulation':
    event counts Poisson-fluctuated (signal: 150 events of weight 0.2; background: 300 events of
    weight 0.05 plus 40 of weight 1.0 above the threshold)."""
    rng = np.random.default_rng(7)
    s, s_w2 = 150 * 0.2, 150 * 0.2**2
    b, b_w2 = 300 * 0.05 + 40 * 1.0, 300 * 0.05**2 + 40 * 1.0**2
    for include_mc in (False, True):
        propagated = significance_mc_error(s, s_w2, b, b_w2, 0.3, include_mc)
        toys = []
        for _ in range(400):
            ns, nb1, nb2 = rng.poisson(150), rng.poisson(300), rng.poisson(40)
            ts, tb, tb_w2 = ns * 0.2, nb1 * 0.05 + nb2 * 1.0, nb1 * 0.05**2 + nb2 * 1.0
            toys.append(asimov_significance(ts, tb, np.sqrt((0.3 * tb) ** 2 + (tb_w2 if include_mc else 0.0))))
        assert np.std(toys) == pytest.approx(propagated, rel=0.12), include_mc
    # The scan reports it per threshold and at the best one.
    result = threshold_scan([0.0, s], [0.0, s_w2], [0.0, b], [0.0, b_w2], [0.0, 0.5, 1.0], 0.3, True, 3, 3, 10)
    assert result.z_mc_error[1] == pytest.approx(significance_mc_error(s, s_w2, b, b_w2, 0.3, True))


def test_luminosity_projection_keeps_the_mc_precision():
    scan = ScanConfig(luminosities_fb=[139.0, 1390.0], min_background_ess=0.0)
    point = scan_points(_hand_built(), [("slepton_100_10", 100, 10)], ["WW", "ttbar"], scan, 139.0)
    summary = point
    p = summary.points[0]
    index = p.thresholds.index(summary.standard_threshold)
    s, b, w2 = 10 * p.signal[index], 10 * p.background[index], 100 * p.background_sumw2[index]
    expected = asimov_significance(s, b, math.sqrt((0.3 * b) ** 2 + w2))
    assert summary.z_vs_luminosity["slepton_100_10"]["1390"] == pytest.approx(expected, rel=1e-12)
    assert summary.z_vs_luminosity["slepton_100_10"]["139"] == pytest.approx(p.z_at_standard, rel=1e-12)
    assert p.z_at_standard_mc_error == pytest.approx(p.z_mc_error[index], rel=1e-9)


def test_scan_summary_round_trips_through_json_and_reads_old_files():
    summary = scan_points(_hand_built(), [("slepton_100_10", 100, 10)], ["WW", "ttbar"], ScanConfig(), 139.0)
    again = ScanSummary.from_json(summary.to_json())
    assert again.points[0].status == summary.points[0].status and again.min_background_ess == 10.0
    old = summary.to_json()
    for key in ("signal_sumw2", "background_sumw2", "background_ess", "z_mc_error", "best_z_mc_error",
                "background_ess_at_best", "z_at_standard_mc_error", "status"):
        old["points"][0].pop(key)
    assert ScanSummary.from_json(old).points[0].passes_minimums


def test_sensitivity_map_leaves_failing_points_blank():
    """A failing point in the middle of the grid: no interpolated Z in the triangles around it."""
    def point(m, dm, z):
        return PointScan(label=f"p{m}_{dm}", m_slepton=m, dm=dm, thresholds=[0.0], signal=[1.0], background=[1.0],
                         z=[z], best_threshold=0.0, best_z=z, signal_at_best=1.0, background_at_best=1.0)

    points = [point(m, dm, float("nan") if (m, dm) == (200, 40) else 0.01 * m + 0.1 * dm)
              for m in (100, 200, 300) for dm in (10, 40, 75)]
    m_grid, dm_grid, z_grid = sensitivity_map(points, n=41)
    near = (abs(m_grid - 200) < 20) & (abs(dm_grid - 40) < 5)
    assert np.isnan(z_grid[near]).all()
    finite = np.isfinite(z_grid)
    assert finite.any()
    assert z_grid[finite] == pytest.approx((0.01 * m_grid + 0.1 * dm_grid)[finite], rel=1e-9)
