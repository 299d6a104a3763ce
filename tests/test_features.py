"""Tests of processors.features: every expected number is worked out by hand in a comment."""

from __future__ import annotations

import math

import awkward as ak
import numpy as np
import pytest

from processors.features import (
    BALDI_FEATURES,
    FEATURE_SETS,
    NO_JET_DPHI,
    NO_JET_PT,
    NO_JET_RATIO,
    THESIS_FEATURES,
    UNDEFINED_ANGLE,
    axial_met,
    compute_features,
    delta_phi,
    delta_r,
    invariant_mass,
    met_rel,
    min_delta_phi_jets_met,
    mt2,
    razor_mr,
    razor_mtr,
    razor_r,
    super_razor,
    transverse_mass,
)

PI = math.pi
LEPTON_COLUMNS = (("pt", float), ("eta", float), ("phi", float), ("mass", float), ("charge", int), ("flavour", int))
JET_COLUMNS = (("pt", float), ("eta", float), ("phi", float), ("mass", float), ("btag", bool))


def _collection(events, columns):
    """Jagged record array from per-event lists of tuples ordered as ``columns``."""
    counts = np.array([len(objects) for objects in events], dtype=np.int64)
    fields = {
        name: np.array([obj[i] for objects in events for obj in objects], dtype=dtype)
        for i, (name, dtype) in enumerate(columns)
    }
    return ak.unflatten(ak.zip(fields), counts)


def leptons_of(*events):
    """Leptons; each lepton is (pt, eta, phi, mass, charge, flavour)."""
    return _collection(events, LEPTON_COLUMNS)


def jets_of(*events):
    """Jets; each jet is (pt, eta, phi, mass, btag)."""
    return _collection(events, JET_COLUMNS)


def arr(*values):
    return np.array(values, dtype=np.float64)


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------


def test_delta_phi_wraps_into_minus_pi_to_pi():
    # 0.1 - 0.3 = -0.2 (no wrap); 3.0 - (-3.0) = 6.0 -> 6.0 - 2 pi = -0.28319;
    # -3.0 - 3.0 = -6.0 -> -6.0 + 2 pi = +0.28319
    result = delta_phi(arr(0.1, 3.0, -3.0), arr(0.3, -3.0, 3.0))
    np.testing.assert_allclose(result, [-0.2, 6.0 - 2 * PI, -6.0 + 2 * PI], atol=1e-12)
    assert np.all(result >= -PI) and np.all(result < PI)


def test_delta_phi_broadcasts_met_into_jagged_jets():
    jet_phi = ak.Array([[0.1, 3.0], [], [-1.0]])
    met_phi = arr(0.3, 1.0, 1.0)
    # event 0: 0.1 - 0.3 = -0.2 and 3.0 - 0.3 = 2.7; event 2: -1 - 1 = -2
    result = delta_phi(jet_phi, ak.Array(met_phi))
    assert ak.to_list(result[1]) == []
    np.testing.assert_allclose(ak.to_list(result[0]), [-0.2, 2.7], atol=1e-12)
    np.testing.assert_allclose(ak.to_list(result[2]), [-2.0], atol=1e-12)


def test_delta_r_is_the_3_4_5_triangle_and_wraps_phi():
    # deta = 0.3, dphi = 0.4 -> dR = 0.5;  phi 3.1 vs -3.1: dphi = 2 pi - 6.2 = 0.08319
    result = delta_r(arr(0.0, 1.0), arr(0.0, 3.1), arr(0.3, 1.0), arr(0.4, -3.1))
    np.testing.assert_allclose(result, [0.5, 2 * PI - 6.2], atol=1e-12)


def test_transverse_mass_back_to_back_parallel_and_perpendicular():
    # pT = 40, MET = 90.  back-to-back: sqrt(2*40*90*(1+1)) = sqrt(14400) = 120 = 2 sqrt(pT MET)
    # parallel: 0;  perpendicular: sqrt(2*40*90) = sqrt(7200) = 84.8528
    result = transverse_mass(arr(40, 40, 40), arr(0.0, 0.0, 0.0), arr(90, 90, 90), arr(PI, 0.0, PI / 2))
    np.testing.assert_allclose(result, [120.0, 0.0, math.sqrt(7200.0)], atol=1e-9)


def test_invariant_mass_of_back_to_back_massless_leptons_is_twice_their_energy():
    # event 0: pT 45 at phi 0 and pi, eta 0: E = 45 each -> m = 90
    # event 1: pT 30 at eta +1 and -1, phi 0 and pi: exactly back-to-back in 3D,
    #          E = 30 cosh(1) = 46.2924 each -> m = 60 cosh(1) = 92.5849
    # event 2: two muons at rest (pT 0, m 0.1057) -> m = 0.2114
    # event 3: massless, m^2 = 2 pT1 pT2 (cosh deta - cos dphi)
    #          = 2*20*50*(cosh 0.5 - cos 1) = 2000*(1.1276260 - 0.5403023) = 1174.6474 -> 34.2731
    result = invariant_mass(
        arr(45, 30, 0, 20), arr(0, 1, 0, 0.5), arr(0, 0, 0, 1.0), arr(0, 0, 0.1057, 0),
        arr(45, 30, 0, 50), arr(0, -1, 0, 0.0), arr(PI, PI, 0, 0.0), arr(0, 0, 0.1057, 0),
    )
    expected_3 = math.sqrt(2 * 20 * 50 * (math.cosh(0.5) - math.cos(1.0)))
    np.testing.assert_allclose(result, [90.0, 60 * math.cosh(1.0), 0.2114, expected_3], rtol=1e-9)


# --------------------------------------------------------------------------------------
# Thesis features on three hand-built events
# --------------------------------------------------------------------------------------
#
# event 0: l1 (pT 60, eta 0.5, phi 0, mu-), l2 (pT 40, eta -0.5, phi pi/2, mu+),
#          jets j1 (pT 100, phi 2.5, not b), j2 (pT 30, phi -3.0, b), MET 80 at phi pi
# event 1: same leptons, no jets, MET 50 at phi 0
# event 2: e+ e-, one b-tagged jet of pT 15 (below the 20 GeV b-tag threshold), MET 10 at 0

EVENT_LEPTONS = (
    [(60.0, 0.5, 0.0, 0.0, -1, 13), (40.0, -0.5, PI / 2, 0.0, +1, 13)],
    [(60.0, 0.5, 0.0, 0.0, -1, 13), (40.0, -0.5, PI / 2, 0.0, +1, 13)],
    [(25.0, 0.0, 0.0, 0.000511, +1, 11), (20.0, 0.0, 1.0, 0.000511, -1, 11)],
)
EVENT_JETS = (
    [(100.0, 1.0, 2.5, 10.0, False), (30.0, 0.0, -3.0, 5.0, True)],
    [],
    [(15.0, 0.0, 2.0, 3.0, True)],
)
EVENT_MET = arr(80.0, 50.0, 10.0)
EVENT_MET_PHI = arr(PI, 0.0, 0.0)


@pytest.fixture()
def thesis():
    leptons, jets = leptons_of(*EVENT_LEPTONS), jets_of(*EVENT_JETS)
    return compute_features(leptons, jets, EVENT_MET, EVENT_MET_PHI, feature_set="thesis")


def test_thesis_features_copy_met_and_the_two_leptons(thesis):
    np.testing.assert_array_equal(thesis["met"], [80.0, 50.0, 10.0])
    np.testing.assert_array_equal(thesis["met_phi"], [PI, 0.0, 0.0])
    np.testing.assert_array_equal(thesis["lep1_pt"], [60.0, 60.0, 25.0])
    np.testing.assert_array_equal(thesis["lep2_eta"], [-0.5, -0.5, 0.0])
    np.testing.assert_array_equal(thesis["lep2_phi"], [PI / 2, PI / 2, 1.0])
    np.testing.assert_array_equal(thesis["lep1_flavour"], [13, 13, 11])
    np.testing.assert_array_equal(thesis["lep1_charge"], [-1, -1, 1])
    np.testing.assert_array_equal(thesis["lep2_charge"], [1, 1, -1])
    np.testing.assert_array_equal(thesis["n_lepton"], [2, 2, 2])


def test_thesis_transverse_masses_and_lepton_met_angles(thesis):
    # event 0: l1 back-to-back with MET: mT = 2 sqrt(60*80) = 138.5641, dphi = pi;
    #          l2 perpendicular to MET:  mT = sqrt(2*40*80) = 80, dphi = pi/2
    # event 1: l1 along MET: mT = 0, dphi = 0; l2 perpendicular: sqrt(2*40*50) = 63.2456
    np.testing.assert_allclose(thesis["mt_lep1"][:2], [2 * math.sqrt(60 * 80), 0.0], atol=1e-9)
    np.testing.assert_allclose(thesis["mt_lep2"][:2], [80.0, math.sqrt(4000.0)], atol=1e-9)
    np.testing.assert_allclose(thesis["dphi_lep1_met"][:2], [PI, 0.0], atol=1e-12)
    np.testing.assert_allclose(thesis["dphi_lep2_met"][:2], [PI / 2, PI / 2], atol=1e-12)


def test_thesis_jet_met_angles_with_pi_for_events_without_jets(thesis):
    # event 0: j1 at 2.5 vs MET at pi: |2.5 - pi| = 0.64159; j2 at -3.0: -3 - pi + 2 pi = 0.14159
    #          -> min = 0.14159, leading = 0.64159
    # event 1: no jet -> pi for both;  event 2: jet at 2.0 vs 0 -> 2.0
    np.testing.assert_allclose(thesis["min_dphi_jet_met"], [PI - 3.0, NO_JET_DPHI, 2.0], atol=1e-12)
    np.testing.assert_allclose(thesis["dphi_jet1_met"], [PI - 2.5, NO_JET_DPHI, 2.0], atol=1e-12)


def test_thesis_dilepton_mass_distance_and_pt(thesis):
    # event 0: massless, deta = 1, dphi = pi/2:
    #   m_ll^2 = 2*60*40*(cosh 1 - cos pi/2) = 4800*1.5430806 = 7406.787 -> 86.0627
    #   dR = sqrt(1 + (pi/2)^2) = 1.8621;  pT_ll = |(60, 40)| = sqrt(5200) = 72.1110
    np.testing.assert_allclose(thesis["mll"][0], math.sqrt(4800 * math.cosh(1.0)), rtol=1e-9)
    np.testing.assert_allclose(thesis["dr_ll"][0], math.sqrt(1 + (PI / 2) ** 2), rtol=1e-12)
    np.testing.assert_allclose(thesis["ptll"][0], math.sqrt(5200.0), rtol=1e-12)


def test_thesis_jet_counts_leading_jet_pt_and_met_ratio(thesis):
    # event 0: 2 jets, 1 b-tag (30 GeV > 20), pT(j1) = 100, MET/pT(j1) = 80/100 = 0.8
    # event 1: no jet -> 0 jets, pT(j1) = 0, ratio = -1 (sentinels)
    # event 2: 1 jet, its b-tag is below 20 GeV -> 0 b-jets; ratio = 10/15
    np.testing.assert_array_equal(thesis["n_jet"], [2, 0, 1])
    np.testing.assert_array_equal(thesis["n_bjet"], [1, 0, 0])
    np.testing.assert_array_equal(thesis["jet1_pt"], [100.0, NO_JET_PT, 15.0])
    np.testing.assert_allclose(thesis["met_over_jet1_pt"], [0.8, NO_JET_RATIO, 10.0 / 15.0], rtol=1e-12)


def test_b_jet_threshold_is_configurable():
    leptons, jets = leptons_of(*EVENT_LEPTONS), jets_of(*EVENT_JETS)
    # with a 10 GeV threshold the 15 GeV b-tagged jet of event 2 counts
    features = compute_features(leptons, jets, EVENT_MET, EVENT_MET_PHI, btag_pt_min=10.0)
    np.testing.assert_array_equal(features["n_bjet"], [1, 0, 1])


def test_min_delta_phi_jets_met_takes_the_closest_jet():
    # jets at 1.0, -0.2, 2.0 vs MET at 0.1: separations 0.9, 0.3, 1.9 -> 0.3; no jets -> pi
    result = min_delta_phi_jets_met(ak.Array([[1.0, -0.2, 2.0], []]), arr(0.1, 0.0))
    np.testing.assert_allclose(result, [0.3, PI], atol=1e-12)


# --------------------------------------------------------------------------------------
# Baldi et al. variables
# --------------------------------------------------------------------------------------


def test_met_rel_uses_sine_of_nearest_object_within_90_degrees():
    # MET 100 at phi 0.  event 0: objects at 0.5, 2.0, -1.0 -> nearest 0.5 < pi/2:
    #   100 sin(0.5) = 47.9426.   event 1: objects at 2.0, -2.0 (> pi/2) -> 100.
    #   event 2: no object -> 100
    result = met_rel(arr(100, 100, 100), arr(0, 0, 0), ak.Array([[0.5, 2.0, -1.0], [2.0, -2.0], []]))
    np.testing.assert_allclose(result, [100 * math.sin(0.5), 100.0, 100.0], rtol=1e-12)


def test_axial_met_is_minus_met_projected_on_the_dilepton_axis():
    # dilepton along +x.  MET 50 at pi: -50 cos(pi) = +50;  at 0: -50;  at pi/2: 0;
    # at 2 pi/3: -50 cos(2 pi/3) = +25;  pT_ll = 0: no axis -> 0
    result = axial_met(
        arr(50, 50, 50, 50, 50), arr(PI, 0, PI / 2, 2 * PI / 3, 1.0), arr(50, 50, 50, 50, 0), arr(0, 0, 0, 0, 0)
    )
    np.testing.assert_allclose(result, [50.0, -50.0, 0.0, 25.0, 0.0], atol=1e-9)


def test_razor_mass_transverse_mass_and_ratio():
    # event 0: pT 50 at phi 0 and pi, eta 0: E1 + E2 = 100, pz = 0 -> M_R = 100;
    #          MET 40 at pi/2 (perpendicular to pT1 + pT2 = 0): M_TR = sqrt(40*100/2) = 44.7214,
    #          R = 0.447214
    # event 1: l1 pT 30 with sinh(eta) = 4/3 (eta = ln 3): pz = 40, E = 50; l2 pT 30, eta 0: E = 30
    #          -> M_R = sqrt((50 + 30)^2 - 40^2) = sqrt(4800) = 69.2820
    m_r = razor_mr(arr(50, 50), arr(0, 40), arr(50, 30), arr(0, 0))
    np.testing.assert_allclose(m_r, [100.0, math.sqrt(4800.0)], rtol=1e-12)
    leptons = leptons_of([(30.0, math.log(3.0), 0.0, 0.0, 1, 13), (30.0, 0.0, 2.0, 0.0, -1, 13)])
    through_entry_point = compute_features(leptons, jets_of([]), arr(10.0), arr(0.0), feature_set="baldi")
    np.testing.assert_allclose(through_entry_point["razor_m_r"], [math.sqrt(4800.0)], rtol=1e-12)
    m_tr = razor_mtr(arr(50), arr(0), arr(50), arr(PI), arr(40), arr(PI / 2))
    np.testing.assert_allclose(m_tr, [math.sqrt(2000.0)], rtol=1e-12)
    np.testing.assert_allclose(razor_r(m_tr, m_r[:1]), [math.sqrt(2000.0) / 100.0], rtol=1e-12)


def _mt2_massless(pt1, phi1, pt2, phi2, met_pt, met_phi):
    zero = np.zeros_like(np.asarray(pt1, dtype=float))
    return mt2(pt1, phi1, zero, pt2, phi2, zero, met_pt, met_phi)


def test_mt2_without_met_is_the_largest_visible_mass():
    # MET = 0: q1 = q2 = 0 gives mT(l_i, 0) = m_i, so MT2 = max(m1, m2): 0 for massless leptons,
    # 5 for visible masses 5 and 3
    result = mt2(arr(40, 40), arr(0, 0), arr(0, 5), arr(30, 30), arr(2, 2), arr(0, 3), arr(0, 0), arr(0, 0))
    np.testing.assert_allclose(result, [0.0, 5.0], atol=1e-6)


def test_mt2_is_zero_when_met_lies_between_the_two_leptons():
    # massless leptons at phi 0 and 1, MET at 0.5: split MET into q1 || l1 and q2 || l2,
    # each mT = 0.  Back-to-back leptons with perpendicular MET: infimum 0 as well.
    result = _mt2_massless(arr(50, 50), arr(0, 0), arr(80, 80), arr(1.0, PI), arr(40, 40), arr(0.5, PI / 2))
    np.testing.assert_allclose(result, [0.0, 0.0], atol=1e-5)


def test_mt2_approaches_the_parent_mass_from_below():
    # Two parents of mass M = 200 at rest, each -> massless lepton + neutrino of energy M/2 = 100
    # in the transverse plane; the leptons at phi = +-delta/2, the neutrinos opposite, so
    # MET = -(l1 + l2) = 200 cos(delta/2) along -x.
    # The best split is q1 = 100 (-cos(delta/2), +sin(delta/2)), q2 its mirror image:
    # |q_i| = 100, l1.q1 = 100^2 (-cos^2 + sin^2) = -100^2 cos(delta), so
    # mT^2 = 2 (100*100 + 100^2 cos delta) = 4*100^2 cos^2(delta/2): MT2 = M cos(delta/2),
    # equal to M for collinear leptons and below it otherwise.
    deltas = arr(0.0, 0.05, 0.5, 1.0, PI / 2)
    result = _mt2_massless(
        np.full(5, 100.0), deltas / 2, np.full(5, 100.0), -deltas / 2, 200 * np.cos(deltas / 2), np.full(5, PI)
    )
    np.testing.assert_allclose(result, 200 * np.cos(deltas / 2), rtol=1e-7)
    assert np.all(np.diff(result) < 0) and np.all(result <= 200.0 + 1e-9)


def test_mt2_is_bounded_by_the_transverse_masses_of_each_lepton_with_all_the_met():
    # Giving all the MET to lepton i and none to the other (mT = 0 for a massless lepton) is one
    # allowed split, so MT2 <= min(mT(l1, MET), mT(l2, MET)); and MT2 >= 0.
    rng = np.random.default_rng(7)
    n = 200
    pt1, pt2, met = rng.uniform(10, 200, n), rng.uniform(10, 200, n), rng.uniform(0, 300, n)
    phi1, phi2, met_phi = (rng.uniform(-PI, PI, n) for _ in range(3))
    result = _mt2_massless(pt1, phi1, pt2, phi2, met, met_phi)
    bound = np.minimum(transverse_mass(pt1, phi1, met, met_phi), transverse_mass(pt2, phi2, met, met_phi))
    assert np.all(result >= 0.0)
    assert np.all(result <= bound + 1e-6)


def test_mt2_does_not_depend_on_the_order_of_the_leptons():
    rng = np.random.default_rng(11)
    pt1, pt2, met = rng.uniform(10, 200, 50), rng.uniform(10, 200, 50), rng.uniform(0, 300, 50)
    phi1, phi2, met_phi = (rng.uniform(-PI, PI, 50) for _ in range(3))
    forward = _mt2_massless(pt1, phi1, pt2, phi2, met, met_phi)
    swapped = _mt2_massless(pt2, phi2, pt1, phi1, met, met_phi)
    np.testing.assert_allclose(forward, swapped, rtol=1e-9, atol=1e-5)


def _boosted_slepton_pair(eta_shift):
    """Parents of mass 100 produced at rest, then the whole event boosted by beta = 0.6 along x.

    Rest frame: l1 = (50; 50, 0), l2 = (50; 0, 50), nu1 = (50; -50, 0), nu2 = (50; 0, -50).
    Boost (gamma = 1.25, E' = 1.25 (E + 0.6 px), px' = 1.25 (px + 0.6 E)):
    l1 = (100; 100, 0), l2 = (62.5; 37.5, 50), nu1 = (25; -25, 0), nu2 = (62.5; 37.5, -50),
    so MET = (12.5, -50).  Both leptons get the same pseudorapidity (a longitudinal boost).
    """
    return (
        arr(100.0), arr(eta_shift), arr(0.0),
        arr(62.5), arr(eta_shift), arr(math.atan2(50.0, 37.5)),
        arr(math.hypot(12.5, 50.0)), arr(math.atan2(-50.0, 12.5)),
    )


@pytest.mark.parametrize("eta_shift", [0.0, 0.7])
def test_super_razor_recovers_a_boosted_slepton_pair(eta_shift):
    # Longitudinal frame (undoes the common eta): E_V = 162.5, pT_ll = (137.5, 50),
    #   m_V^2 = 162.5^2 - 137.5^2 - 50^2 = 5000;  E_I = sqrt(51.539^2 + 5000) = sqrt(7656.25) = 87.5
    #   J_T = (150, 0);  s_R = (162.5 + 87.5)^2 - 150^2 = 40000  -> sqrt(s_R) = 200 = 2 x 100
    # R frame: beta_R = 150/250 = 0.6 along x (the true boost) -> leptons back at (50; 50, 0),
    #   (50; 0, 50).  beta_R+1 = (50, -50)/100, |beta| = 1/sqrt2, gamma = sqrt2
    #   -> M_Delta^R = 200/(2 sqrt2) = 70.7107
    #   cos theta = l1_hat . beta_hat = 1/sqrt2 = beta -> cos theta_R+1 = (b - b)/(1 - b^2) = 0
    # dphi_R^beta = angle of pT_ll (atan(50/137.5) = 0.348771) minus angle of beta_R (0)
    result = super_razor(*_boosted_slepton_pair(eta_shift))
    np.testing.assert_allclose(result.sqrt_s_r, [200.0], rtol=1e-12)
    np.testing.assert_allclose(result.m_delta_r, [100.0 / math.sqrt(2.0)], rtol=1e-12)
    np.testing.assert_allclose(result.cos_theta_r1, [0.0], atol=1e-9)
    np.testing.assert_allclose(result.dphi_r_beta, [math.atan(50.0 / 137.5)], rtol=1e-12)


def test_super_razor_of_collinear_leptons_reaches_the_m_delta_endpoint():
    # Parents of mass 100 at rest, both leptons along +x with E = 50, MET = 100 along -x.
    # m_V = 0, E_V = 100, E_I = 100, J_T = 0 -> sqrt(s_R) = 200; beta_R+1 = 0, gamma = 1
    # -> M_Delta^R = 100 = M_Delta = (m_parent^2 - 0)/m_parent.  With no boost the two angles
    # are undefined and take the sentinel 0.
    result = super_razor(arr(50), arr(0), arr(0), arr(50), arr(0), arr(0), arr(100), arr(PI))
    np.testing.assert_allclose(result.sqrt_s_r, [200.0], rtol=1e-12)
    np.testing.assert_allclose(result.m_delta_r, [100.0], rtol=1e-12)
    assert result.dphi_r_beta[0] == UNDEFINED_ANGLE
    assert result.cos_theta_r1[0] == UNDEFINED_ANGLE


def test_super_razor_of_back_to_back_leptons_without_met():
    # E = 50 each, back-to-back, MET = 0: m_V = 100 = E_I, J_T = 0 -> sqrt(s_R) = 200;
    # beta_R+1 = (p1 - p2)/(E1 + E2) = 1 -> gamma infinite -> M_Delta^R = 0 (finite, no NaN)
    result = super_razor(arr(50), arr(0), arr(0), arr(50), arr(0), arr(PI), arr(0), arr(0))
    np.testing.assert_allclose(result.sqrt_s_r, [200.0], rtol=1e-12)
    np.testing.assert_allclose(result.m_delta_r, [0.0], atol=1e-6)
    assert all(np.isfinite(value).all() for value in result)


def test_super_razor_matches_an_explicit_boost_chain_with_the_vector_library():
    """The same frames built step by step with vector's Lorentz boosts, on random events."""
    vector = pytest.importorskip("vector")
    rng = np.random.default_rng(3)
    n = 100
    pt1, pt2, met = rng.uniform(5, 200, n), rng.uniform(5, 200, n), rng.uniform(0, 300, n)
    eta1, eta2 = rng.uniform(-2.5, 2.5, n), rng.uniform(-2.5, 2.5, n)
    phi1, phi2, met_phi = (rng.uniform(-PI, PI, n) for _ in range(3))
    zeros = np.zeros(n)

    l1 = vector.array({"pt": pt1, "eta": eta1, "phi": phi1, "mass": zeros})
    l2 = vector.array({"pt": pt2, "eta": eta2, "phi": phi2, "mass": zeros})
    beta_l = vector.array({"x": zeros, "y": zeros, "z": (l1.pz + l2.pz) / (l1.E + l2.E)})
    l1, l2 = l1.boost_beta3(-beta_l), l2.boost_beta3(-beta_l)
    dilepton = l1 + l2
    total_x, total_y = dilepton.px + met * np.cos(met_phi), dilepton.py + met * np.sin(met_phi)
    total_e = dilepton.E + np.sqrt(met**2 + dilepton.mass**2)
    sqrt_s_r = np.sqrt(total_e**2 - total_x**2 - total_y**2)
    beta_r = vector.array({"x": total_x / total_e, "y": total_y / total_e, "z": zeros})
    dphi_r_beta = np.abs(dilepton.to_xy().deltaphi(beta_r.to_xy()))
    l1, l2 = l1.boost_beta3(-beta_r), l2.boost_beta3(-beta_r)
    beta_rp1 = (l1.to_xyz() - l2.to_xyz()) / (l1.E + l2.E)
    l1, l2 = l1.boost_beta3(-beta_rp1), l2.boost_beta3(beta_rp1)
    m_delta_r = l1.E + l2.E
    cos_theta_r1 = np.abs(l1.to_xyz().dot(beta_rp1) / (l1.to_xyz().mag * beta_rp1.mag))

    result = super_razor(pt1, eta1, phi1, pt2, eta2, phi2, met, met_phi)
    np.testing.assert_allclose(result.sqrt_s_r, sqrt_s_r, rtol=1e-9)
    np.testing.assert_allclose(result.m_delta_r, m_delta_r, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(result.dphi_r_beta, dphi_r_beta, atol=1e-9)
    np.testing.assert_allclose(result.cos_theta_r1, cos_theta_r1, atol=1e-8)


def test_baldi_features_of_the_boosted_slepton_pair():
    # Same event as above, through compute_features: m_r = E1 + E2 = 162.5 (eta 0),
    # M_TR = sqrt((51.539*162.5 - (12.5*137.5 - 50*50)) / 2) = sqrt((8375.15 + 781.25)/2) = 67.665
    pt1, _eta1, phi1, pt2, _eta2, phi2, met, met_phi = _boosted_slepton_pair(0.0)
    leptons = leptons_of([(pt1[0], 0.0, phi1[0], 0.0, -1, 13), (pt2[0], 0.0, phi2[0], 0.0, +1, 13)])
    features = compute_features(leptons, jets_of([]), met, met_phi, feature_set="baldi")
    m_tr = math.sqrt((math.hypot(12.5, 50.0) * 162.5 - (12.5 * 137.5 - 50.0 * 50.0)) / 2)
    np.testing.assert_allclose(features["razor_m_r"], [162.5], rtol=1e-12)
    np.testing.assert_allclose(features["razor_m_tr"], [m_tr], rtol=1e-12)
    np.testing.assert_allclose(features["razor_r"], [m_tr / 162.5], rtol=1e-12)
    np.testing.assert_allclose(features["sqrt_s_r"], [200.0], rtol=1e-12)
    np.testing.assert_allclose(features["m_delta_r"], [100.0 / math.sqrt(2.0)], rtol=1e-12)
    # true neutrino split: mT(l, nu) <= parent mass 100, so MT2 <= 100
    assert 0.0 < features["mt2"][0] <= 100.0 + 1e-9


# --------------------------------------------------------------------------------------
# The entry point
# --------------------------------------------------------------------------------------


def test_feature_sets_have_the_documented_sizes_and_no_duplicates():
    assert len(THESIS_FEATURES) == 26 and len(set(THESIS_FEATURES)) == 26
    assert len(BALDI_FEATURES) == 10 and len(set(BALDI_FEATURES)) == 10
    assert FEATURE_SETS["all"] == THESIS_FEATURES + BALDI_FEATURES
    assert not set(THESIS_FEATURES) & set(BALDI_FEATURES)


@pytest.mark.parametrize("feature_set", sorted(FEATURE_SETS))
def test_compute_features_returns_exactly_the_set_as_float64(feature_set):
    leptons, jets = leptons_of(*EVENT_LEPTONS), jets_of(*EVENT_JETS)
    features = compute_features(leptons, jets, ak.Array(EVENT_MET), EVENT_MET_PHI, feature_set=feature_set)
    assert tuple(features) == FEATURE_SETS[feature_set]
    for name, values in features.items():
        assert isinstance(values, np.ndarray) and values.dtype == np.float64, name
        assert values.shape == (3,), name


def test_unknown_feature_set_is_rejected_by_name():
    leptons, jets = leptons_of(*EVENT_LEPTONS), jets_of(*EVENT_JETS)
    with pytest.raises(ValueError, match="'higgs'"):
        compute_features(leptons, jets, EVENT_MET, EVENT_MET_PHI, feature_set="higgs")


def test_events_without_jets_and_degenerate_kinematics_give_finite_features():
    # No event has a jet.  Events: ordinary; MET = 0; back-to-back leptons with MET = 0;
    # collinear leptons with the MET along them (s_R = 0); one lepton; three leptons; none.
    lepton_events = (
        [(50.0, 0.3, 0.1, 0.1057, -1, 13), (30.0, -1.0, 2.0, 0.1057, 1, 13)],
        [(50.0, 0.3, 0.1, 0.1057, -1, 13), (30.0, -1.0, 2.0, 0.1057, 1, 13)],
        [(50.0, 0.0, 0.0, 0.0, -1, 11), (50.0, 0.0, PI, 0.0, 1, 11)],
        [(50.0, 0.3, 0.0, 0.0, -1, 11), (30.0, 0.3, 0.0, 0.0, 1, 11)],
        [(50.0, 0.3, 0.1, 0.000511, -1, 11)],
        [(50.0, 0.3, 0.1, 0.0, -1, 11), (30.0, -1.0, 2.0, 0.0, 1, 13), (20.0, 2.0, -2.0, 0.0, 1, 13)],
        [],
    )
    met = arr(70.0, 0.0, 0.0, 40.0, 25.0, 60.0, 30.0)
    met_phi = arr(-2.0, 0.0, 0.0, 0.0, 1.0, 3.0, -1.0)
    leptons, jets = leptons_of(*lepton_events), jets_of(*([],) * 7)
    features = compute_features(leptons, jets, met, met_phi, feature_set="all")
    for name, values in features.items():
        assert values.shape == (7,), name
        assert np.all(np.isfinite(values)), f"{name}: {values}"
    np.testing.assert_array_equal(features["n_jet"], np.zeros(7))
    np.testing.assert_array_equal(features["min_dphi_jet_met"], np.full(7, NO_JET_DPHI))
    np.testing.assert_array_equal(features["dphi_jet1_met"], np.full(7, NO_JET_DPHI))
    np.testing.assert_array_equal(features["met_over_jet1_pt"], np.full(7, NO_JET_RATIO))
    np.testing.assert_array_equal(features["n_lepton"], [2, 2, 2, 2, 1, 3, 0])
    # a missing second lepton is a zero four-vector: pT 0, charge 0, flavour 0
    assert features["lep2_pt"][4] == 0.0 and features["lep2_flavour"][4] == 0.0


def test_empty_chunk_gives_empty_features():
    features = compute_features(leptons_of(), jets_of(), arr(), arr(), feature_set="all")
    assert all(values.shape == (0,) for values in features.values())


def test_inputs_with_missing_fields_or_lengths_are_rejected_by_name():
    leptons, jets = leptons_of(*EVENT_LEPTONS), jets_of(*EVENT_JETS)
    with pytest.raises(ValueError, match="btag"):
        compute_features(leptons, jets[["pt", "eta", "phi", "mass"]], EVENT_MET, EVENT_MET_PHI)
    with pytest.raises(ValueError, match="met_phi"):
        compute_features(leptons, jets, EVENT_MET, EVENT_MET_PHI[:2])
    with pytest.raises(ValueError, match="met_pt"):
        compute_features(leptons, jets, arr(80.0, np.nan, 10.0), EVENT_MET_PHI)


# --------------------------------------------------------------------------------------
# Four-vector library and object access
# --------------------------------------------------------------------------------------


def test_delta_phi_and_delta_r_are_the_vector_library_definitions():
    vector = pytest.importorskip("vector")
    rng = np.random.default_rng(5)
    eta1, eta2 = rng.uniform(-2.5, 2.5, 200), rng.uniform(-2.5, 2.5, 200)
    phi1, phi2 = rng.uniform(-PI, PI, 200), rng.uniform(-PI, PI, 200)
    one = vector.array({"pt": np.full(200, 30.0), "eta": eta1, "phi": phi1, "mass": np.zeros(200)})
    two = vector.array({"pt": np.full(200, 50.0), "eta": eta2, "phi": phi2, "mass": np.zeros(200)})
    np.testing.assert_allclose(delta_phi(phi1, phi2), one.deltaphi(two), atol=1e-12)
    np.testing.assert_allclose(delta_r(eta1, phi1, eta2, phi2), one.deltaR(two), atol=1e-12)


def test_leading_leptons_of_filtered_and_sliced_collections():
    # Objects come cut and sliced (a pT cut, then the events still selected): the leading
    # leptons must be read through the jagged structure, not from the unfiltered contents.
    leptons = leptons_of(
        [(5.0, 0.1, 0.2, 0.0, 1, 11), (60.0, 0.5, 0.0, 0.0, -1, 13), (40.0, -0.5, 1.0, 0.0, 1, 13)],
        [(8.0, 0.0, 0.0, 0.0, 1, 11)],
        [(70.0, 1.0, 2.0, 0.1057, -1, 13), (30.0, -1.0, -2.0, 0.000511, 1, 11)],
    )
    selected = leptons[leptons.pt > 10.0][[0, 2]]  # event 1 is left without leptons, then dropped
    jets = jets_of([], [])
    features = compute_features(selected, jets, arr(50.0, 50.0), arr(0.0, 0.0), feature_set="thesis")
    np.testing.assert_array_equal(features["lep1_pt"], [60.0, 70.0])
    np.testing.assert_array_equal(features["lep2_pt"], [40.0, 30.0])
    np.testing.assert_array_equal(features["lep2_flavour"], [13, 11])
    np.testing.assert_array_equal(features["lep1_charge"], [-1, -1])
    np.testing.assert_array_equal(features["n_lepton"], [2, 2])
    # massless event 0: m^2 = 2*60*40*(cosh 1 - cos 1) = 4800*(1.5430806 - 0.5403023) = 4813.336
    np.testing.assert_allclose(features["mll"][0], math.sqrt(4800 * (math.cosh(1.0) - math.cos(1.0))), rtol=1e-12)


def test_all_features_equal_the_two_sets_computed_separately():
    leptons, jets = leptons_of(*EVENT_LEPTONS), jets_of(*EVENT_JETS)
    together = compute_features(leptons, jets, EVENT_MET, EVENT_MET_PHI, feature_set="all")
    thesis = compute_features(leptons, jets, EVENT_MET, EVENT_MET_PHI, feature_set="thesis")
    baldi = compute_features(leptons, jets, EVENT_MET, EVENT_MET_PHI, feature_set="baldi")
    for name, values in {**thesis, **baldi}.items():
        np.testing.assert_array_equal(together[name], values, err_msg=name)
