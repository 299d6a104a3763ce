"""Significance scans from score histograms, against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analysis.core.config import ScanConfig
from analysis.core.statistics import asimov_significance
from analysis.results.scan import scan_points, sensitivity_map, standard_threshold
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


def test_scan_of_a_hand_built_histogram():
    scan = ScanConfig(relative_background_uncertainty=0.3, min_signal=3, min_background=3, luminosities_fb=[139, 1390])
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
    scan = ScanConfig(min_signal=3, min_background=5)
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
