"""Tests for analysis.core.statistics: Asimov Z, threshold scans, binned KS."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from analysis.core.metrics import binned_ks_statistic
from analysis.core.statistics import (
    ScanResult,
    asimov_significance,
    threshold_scan,
)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
REFERENCE = SHARED_DATA / "significance_reference.json"


def eq1(s: float, b: float, sigma: float) -> float:
    """Direct transcription of ATL-PHYS-PUB-2020-025 Eq. 1 (fine for benign values)."""
    if sigma == 0:
        return math.sqrt(2 * ((s + b) * math.log(1 + s / b) - s))
    v = sigma**2
    return math.sqrt(
        2
        * (
            (s + b) * math.log((s + b) * (b + v) / (b**2 + (s + b) * v))
            - (b**2 / v) * math.log(1 + v * s / (b * (b + v)))
        )
    )


# ------------------------------------------------------------------- Asimov Z


def _reference_values():
    if not REFERENCE.exists():
        pytest.skip(f"reference data not found at {REFERENCE} (../shared/data is absent)")
    return json.loads(REFERENCE.read_text())["values"]


def test_every_reference_value_to_1e9():
    values = _reference_values()
    assert values
    for entry in values:
        z = asimov_significance(entry["s"], entry["b"], entry["sigma_b"])
        assert z == pytest.approx(entry["Z"], rel=1e-9, abs=0), entry


def test_reference_values_vectorised_in_one_call():
    values = _reference_values()
    s, b, sigma = (np.array([e[k] for e in values], dtype=float) for k in ("s", "b", "sigma_b"))
    expected = np.array([e["Z"] for e in values])
    np.testing.assert_allclose(asimov_significance(s, b, sigma), expected, rtol=1e-9, atol=0)


# Values computed independently with mpmath at 250 digits from Eq. 1 / the sigma -> 0
# limit; each sits where the direct float64 formula cancels catastrophically.
EXTREME = [
    # s << b, sigma = 0: (s+b) ln(1+s/b) - s cancels ~12 digits
    (1e-3, 1e6, 0.0, 9.9999999983333335e-07),
    # sigma tiny but nonzero: b^2/sigma^2 = 1e30 times a log of ~1e-33
    (1e-3, 1e6, 1e-9, 9.9999999983333335e-07),
    (5.0, 1e4, 1e-6, 0.049995834201148801),
    # sigma^2 >> b: the two terms of Eq. 1 nearly cancel (Z ~ s / sigma)
    (10.0, 1e8, 3e7, 3.3333330370370713e-07),
    (2.0, 1e12, 3e11, 6.6666666666251852e-12),
    (1e-6, 1.0, 0.5, 8.9442701211455217e-07),
    # s >> b
    (1e6, 1e-2, 1e-3, 4291.7174720716155),
]


@pytest.mark.parametrize("s, b, sigma, expected", EXTREME)
def test_extreme_values_are_stable(s, b, sigma, expected):
    assert asimov_significance(s, b, sigma) == pytest.approx(expected, rel=1e-12, abs=0)


def test_sigma_to_zero_limit_is_continuous():
    s, b = 10.0, 100.0
    z0 = asimov_significance(s, b, 0.0)
    assert z0 == pytest.approx(eq1(s, b, 0.0), rel=1e-14)
    sigmas = np.array([1e-12, 1e-9, 1e-6, 1e-4, 1e-3])
    z = asimov_significance(s, b, sigmas)
    # Z decreases smoothly towards Z0: Z0 - Z = O(sigma^2)
    np.testing.assert_allclose(z, z0, rtol=1e-6)
    assert np.all(np.diff(z) <= 0)
    assert z[0] == pytest.approx(z0, rel=1e-15)
    assert np.all(z0 - z[2:] > 0)


def test_large_uncertainty_gives_s_over_sigma():
    s, b = 5.0, 1e6
    sigma = 1e5  # sigma^2 >> b
    assert asimov_significance(s, b, sigma) == pytest.approx(s / sigma, rel=1e-4)


def test_monotonic_in_s_and_sigma():
    s = np.linspace(0.0, 100.0, 11)
    z = asimov_significance(s, 50.0, 5.0)
    assert z[0] == 0.0
    assert np.all(np.diff(z) > 0)
    z = asimov_significance(20.0, 50.0, np.linspace(0.0, 50.0, 11))
    assert np.all(np.diff(z) < 0)


def test_broadcasting_and_return_types():
    z = asimov_significance(np.array([[1.0], [10.0]]), np.array([10.0, 100.0, 1000.0]), 0.0)
    assert z.shape == (2, 3) and z.dtype == np.float64
    assert z[1, 1] == pytest.approx(eq1(10.0, 100.0, 0.0), rel=1e-14)
    scalar = asimov_significance(10, 100, 10)
    assert np.ndim(scalar) == 0 and isinstance(float(scalar), float)


@pytest.mark.parametrize(
    "s, b, sigma",
    [
        (10.0, 0.0, 0.0),  # no background: formula diverges
        (10.0, -5.0, 0.0),
        (-1.0, 100.0, 0.0),  # negative signal
        (10.0, 100.0, -1.0),  # negative uncertainty
        (np.nan, 100.0, 0.0),
        (10.0, np.inf, 0.0),
        (np.inf, 100.0, 0.0),
        (10.0, 100.0, np.inf),
    ],
)
def test_invalid_input_is_nan_not_a_significance(s, b, sigma):
    with np.errstate(all="raise"):
        assert np.isnan(asimov_significance(s, b, sigma))


def test_invalid_entries_do_not_spoil_valid_neighbours():
    z = asimov_significance([10.0, 10.0, 10.0], [100.0, 0.0, 100.0], [0.0, 0.0, 10.0])
    assert np.isnan(z[1])
    assert z[0] == pytest.approx(0.9839916447569406, rel=1e-12)
    assert z[2] == pytest.approx(0.6901960632965302, rel=1e-12)


def test_zero_signal_is_zero():
    assert asimov_significance(0.0, 10.0, 3.0) == 0.0
    assert asimov_significance(0.0, 10.0) == 0.0


# -------------------------------------------------------------- threshold scan

EDGES = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
SIG = np.array([1.0, 2.0, 4.0, 8.0])
BKG = np.array([100.0, 40.0, 10.0, 4.0])
# cumulative above each lower edge, by hand: s = 15, 14, 12, 8;  b = 154, 54, 14, 4
S_CUM = np.array([15.0, 14.0, 12.0, 8.0])
B_CUM = np.array([154.0, 54.0, 14.0, 4.0])


def test_scan_cumulative_yields_and_best_threshold():
    result = threshold_scan(SIG, SIG, BKG, BKG, EDGES, relative_bkg_uncertainty=0.3)
    assert isinstance(result, ScanResult)
    np.testing.assert_array_equal(result.thresholds, [0.0, 0.25, 0.5, 0.75])
    np.testing.assert_array_equal(result.s, S_CUM)
    np.testing.assert_array_equal(result.b, B_CUM)
    np.testing.assert_allclose(result.sigma_b, 0.3 * B_CUM)
    expected = [eq1(s, b, 0.3 * b) for s, b in zip(S_CUM, B_CUM)]
    # by hand: Z = 0.3042, 0.7322, 1.7884, 2.5938 -> the tightest cut wins
    np.testing.assert_allclose(result.z, expected, rtol=1e-12)
    np.testing.assert_allclose(result.z, [0.3042300, 0.7322259, 1.7884054, 2.5937713], rtol=1e-6)
    assert result.valid.all()
    assert result.best_index == 3
    assert result.best_threshold == 0.75
    assert result.best_z == pytest.approx(expected[3], rel=1e-12)


def test_scan_without_uncertainty_uses_z0():
    result = threshold_scan(SIG, None, BKG, None, EDGES, relative_bkg_uncertainty=0.0)
    np.testing.assert_allclose(result.z, [eq1(s, b, 0.0) for s, b in zip(S_CUM, B_CUM)], rtol=1e-12)
    assert result.best_index == 3


def test_min_background_rule_moves_the_best_threshold():
    # b(0.75) = 4 < 5: the last threshold is invalid, the best is then t = 0.5
    result = threshold_scan(SIG, SIG, BKG, BKG, EDGES, min_background=5.0)
    np.testing.assert_array_equal(result.valid, [True, True, True, False])
    assert np.isnan(result.z[3])
    assert result.best_index == 2 and result.best_threshold == 0.5
    assert result.best_z == pytest.approx(eq1(12.0, 14.0, 0.3 * 14.0), rel=1e-12)
    # the cumulative yields themselves are still reported
    assert result.s[3] == 8.0 and result.b[3] == 4.0


def test_min_signal_rule_and_boundary_is_inclusive():
    # s = 15, 14, 12, 8: with min_signal = 14 only t = 0 and t = 0.25 survive (14 >= 14)
    result = threshold_scan(SIG, SIG, BKG, BKG, EDGES, min_signal=14.0)
    np.testing.assert_array_equal(result.valid, [True, True, False, False])
    assert result.best_index == 1 and result.best_threshold == 0.25


def test_no_valid_threshold_gives_nan_best():
    result = threshold_scan(SIG, SIG, BKG, BKG, EDGES, min_signal=100.0)
    assert not result.valid.any()
    assert np.isnan(result.z).all()
    assert result.best_index == -1
    assert math.isnan(result.best_threshold) and math.isnan(result.best_z)


def test_mc_stat_uncertainty_added_in_quadrature():
    sumw2 = np.array([50.0, 20.0, 8.0, 6.0])  # cumulative: 84, 34, 14, 6
    result = threshold_scan(SIG, SIG, BKG, sumw2, EDGES, include_mc_stat=True)
    expected_sigma = np.sqrt((0.3 * B_CUM) ** 2 + np.array([84.0, 34.0, 14.0, 6.0]))
    np.testing.assert_allclose(result.sigma_b, expected_sigma, rtol=1e-14)
    np.testing.assert_allclose(
        result.z, [eq1(s, b, sb) for s, b, sb in zip(S_CUM, B_CUM, expected_sigma)], rtol=1e-12
    )


def test_grid_axis_matches_per_point_scans():
    signal = np.stack([SIG, SIG[::-1], np.zeros(4)])  # 3 grid points, common background
    result = threshold_scan(signal, signal, BKG, BKG, EDGES)
    assert result.z.shape == (3, 4) and result.s.shape == (3, 4) and result.b.shape == (3, 4)
    assert result.best_index.shape == (3,)
    for i in range(2):
        single = threshold_scan(signal[i], signal[i], BKG, BKG, EDGES)
        np.testing.assert_array_equal(result.z[i], single.z)
        assert result.best_index[i] == single.best_index
        assert result.best_threshold[i] == single.best_threshold
        assert result.best_z[i] == single.best_z
    # second point: s = 15, 7, 3, 1 -> t = 0.75 fails min_signal
    np.testing.assert_array_equal(result.s[1], [15.0, 7.0, 3.0, 1.0])
    np.testing.assert_array_equal(result.valid[1], [True, True, True, False])
    # third point has no signal at all
    assert result.best_index[2] == -1
    assert np.isnan(result.best_threshold[2]) and np.isnan(result.best_z[2])


def test_grid_axis_with_per_point_background():
    signal = np.stack([SIG, 2 * SIG])
    background = np.stack([BKG, BKG])
    result = threshold_scan(signal, None, background, None, EDGES)
    np.testing.assert_array_equal(result.s[1], 2 * S_CUM)
    assert result.best_z[1] > result.best_z[0]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(edges=[0.0, 1.0]), r"signal_counts must have shape \(\.\.\., 1\)"),
        (dict(edges=[0.0, 0.5, 0.5, 0.7, 1.0]), "strictly increasing"),
        (dict(relative_bkg_uncertainty=-0.1), "relative_bkg_uncertainty"),
        (dict(background_counts=[1.0, np.nan, 1.0, 1.0]), "background_counts contains non-finite"),
        (dict(include_mc_stat=True, background_sumw2=None), "needs background_sumw2"),
    ],
)
def test_scan_rejects_bad_input(kwargs, message):
    args = dict(
        signal_counts=SIG, signal_sumw2=SIG, background_counts=BKG, background_sumw2=BKG, edges=EDGES
    )
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        threshold_scan(**args)


# ------------------------------------------------------------------- binned KS


def brute_force_ks(x1, w1, x2, w2):
    """max |F1 - F2| over the pooled points, with an explicit loop (test oracle)."""
    best = 0.0
    for t in np.concatenate([x1, x2]):
        f1 = w1[x1 <= t].sum() / w1.sum()
        f2 = w2[x2 <= t].sum() / w2.sum()
        best = max(best, abs(f1 - f2))
    return best


def on_distinct_values(x1, w1, x2, w2):
    """Both weighted samples binned with one bin per distinct pooled value (unit weights for None)."""
    x1, x2 = np.asarray(x1, dtype=float), np.asarray(x2, dtype=float)
    w1 = np.ones_like(x1) if w1 is None else np.asarray(w1, dtype=float)
    w2 = np.ones_like(x2) if w2 is None else np.asarray(w2, dtype=float)
    values = np.unique(np.concatenate([x1, x2]))
    return (np.bincount(np.searchsorted(values, x1), weights=w1, minlength=values.size),
            np.bincount(np.searchsorted(values, x2), weights=w2, minlength=values.size))


def test_binned_ks_by_hand():
    # F1 at 1, 1.5, 2, 2.5, 3, 3.5 = .25 .25 .75 .75 1 1
    # F2                          = 0  .25 .25 .5  .5 1   -> max |F1 - F2| = 0.5 (at 2 and 3)
    counts = on_distinct_values([1.0, 2.0, 3.0], [1.0, 2.0, 1.0], [1.5, 2.5, 3.5], [1.0, 1.0, 2.0])
    np.testing.assert_array_equal(counts[0], [1, 0, 2, 0, 1, 0])
    assert binned_ks_statistic(*counts) == pytest.approx(0.5, abs=1e-15)


def test_binned_ks_by_hand_with_a_shared_bin():
    # the shared value 2 counts fully in both CDFs at t = 2:
    # t:  1    2    3    4
    # F1: 1/3  2/3  1    1
    # F2: 0    1/4  1/4  1    -> |F1 - F2| = 1/3, 5/12, 3/4, 0 -> D = 3/4
    assert binned_ks_statistic([1, 1, 1, 0], [0, 1, 0, 3]) == pytest.approx(0.75, abs=1e-15)


def test_binned_ks_is_exact_for_dyadic_weights():
    # CDFs: [0.5, 1.75, 1.75, 3.75] / 3.75 vs [0, 1, 2, 4] / 4 -> D = 1.75 / 3.75 - 0.25
    assert binned_ks_statistic([0.5, 1.25, 0.0, 2.0], [0.0, 1.0, 1.0, 2.0]) == (0.5 + 1.25) / 3.75 - 0.25


def test_binned_ks_on_distinct_values_is_the_unweighted_ks():
    rng = np.random.default_rng(3)
    x1 = np.round(rng.normal(0.0, 1.0, 200), 1)  # rounding makes ties
    x2 = np.round(rng.normal(0.3, 1.2, 150), 1)
    ones1, ones2 = np.ones_like(x1), np.ones_like(x2)
    d = binned_ks_statistic(*on_distinct_values(x1, None, x2, None))
    assert d == pytest.approx(brute_force_ks(x1, ones1, x2, ones2), abs=1e-14)


def test_binned_ks_on_distinct_values_matches_scipy_when_available():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(4)
    x1, x2 = rng.normal(size=300), rng.normal(0.2, 1.0, size=250)
    expected = stats.ks_2samp(x1, x2).statistic
    assert binned_ks_statistic(*on_distinct_values(x1, None, x2, None)) == pytest.approx(expected, abs=1e-14)


def test_binned_ks_matches_brute_force_and_is_scale_invariant():
    rng = np.random.default_rng(5)
    x1, x2 = rng.uniform(size=80), rng.uniform(size=60) ** 1.5
    w1, w2 = rng.exponential(size=80), rng.exponential(size=60)
    counts1, counts2 = on_distinct_values(x1, w1, x2, w2)
    d = binned_ks_statistic(counts1, counts2)
    assert d == pytest.approx(brute_force_ks(x1, w1, x2, w2), abs=1e-14)
    assert binned_ks_statistic(7.0 * counts1, 0.1 * counts2) == pytest.approx(d, abs=1e-14)
    assert binned_ks_statistic(counts1, counts1) == 0.0
    assert binned_ks_statistic([1, 2, 3], [2, 4, 6]) == 0.0


@pytest.mark.parametrize(
    "args, message",
    [
        (([], [1.0]), "counts1 must be a non-empty"),
        (([1.0, 2.0], [1.0]), "must match"),
        (([1.0, np.nan], [1.0, 1.0]), "non-finite"),
        (([1.0], [0.0]), "counts2 has total weight"),
        (([[1.0]], [1.0]), "1-D"),
    ],
)
def test_binned_ks_rejects_bad_input(args, message):
    with pytest.raises(ValueError, match=message):
        binned_ks_statistic(*args)
