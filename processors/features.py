"""Kinematic features of a dilepton + missing-transverse-momentum (slepton) search.

Every function here is a pure, vectorised function of whole arrays: numpy for one
value per event, awkward for the jagged object collections.  There is no loop over
events (the only Python loop is the fixed number of bisection steps inside
:func:`mt2`, each acting on all events at once).

Inputs (built by the caller, NanoAOD-style, objects already selected and pT-ordered)
------------------------------------------------------------------------------------
``leptons``
    jagged awkward record array, fields ``pt, eta, phi, mass, charge, flavour``
    (``flavour`` = 11 for electrons, 13 for muons).  The features are defined for
    events with exactly two leptons; the caller has required this.  Other counts do not
    crash: a missing lepton is replaced by a *zero four-vector* (pt = eta = phi = mass
    = 0, charge = flavour = 0).
``jets``
    jagged awkward record array, fields ``pt, eta, phi, mass, btag`` (bool); an event
    may have no jets.
``met_pt``, ``met_phi``
    flat arrays (numpy or awkward), one value per event.

Units and conventions
---------------------
* Energies, momenta and masses in GeV; angles in radians.
* :func:`delta_phi` is signed and wrapped into [-pi, pi); every *feature* that is an
  azimuthal difference is its absolute value, in [0, pi].
* Every feature comes back as a flat ``numpy.float64`` array with one entry per event
  (integer-like features such as ``n_jet`` or ``lep1_charge`` too), always finite.
* Transverse masses treat the lepton and the invisible particle as massless
  (mT^2 = 2 pT MET (1 - cos dphi)); invariant masses and the razor ``m_r`` use the
  lepton masses, and so does :func:`mt2` (with massless invisible particles); the
  super-razor treats the leptons as massless, as its public implementations do (for
  electrons and muons above 10 GeV the effect is of order m^2/p^2 < 1e-4).

Sentinels (values used where a feature is undefined; never NaN)
---------------------------------------------------------------
==========================  ================================  =============================
feature                     when undefined                    value
==========================  ================================  =============================
``min_dphi_jet_met``        no jet                            pi  (:data:`NO_JET_DPHI`)
``dphi_jet1_met``           no jet                            pi  (:data:`NO_JET_DPHI`)
``jet1_pt``                 no jet                            0   (:data:`NO_JET_PT`)
``met_over_jet1_pt``        no jet                            -1  (:data:`NO_JET_RATIO`)
``met_rel``                 no lepton and no jet              MET (nearest object at pi)
``axial_met``               pT_ll = 0 (direction undefined)   0
``razor_r``                 m_r = 0                           0
``dphi_r_beta``             pT_ll = 0 or no R-frame boost     0   (:data:`UNDEFINED_ANGLE`)
``cos_theta_r1``            no R+1 boost (beta_R+1 = 0)       0   (:data:`UNDEFINED_ANGLE`)
==========================  ================================  =============================

pi for the azimuthal separations means "as far as possible from MET", so the usual
QCD-rejection cut ``min_dphi_jet_met > 0.4`` passes events without jets, as analysts
intend.  -1 for the MET / jet ratio lies outside the physical range [0, inf), so an
event without jets is never mistaken for one with a hard jet.

Feature sets
------------
:data:`THESIS_FEATURES` (26) are the reference slepton-search thesis variables;
:data:`BALDI_FEATURES` (10) are the high-level variables of the UCI "SUSY" benchmark
(Baldi, Sadowski, Whiteson, Nature Commun. 5 (2014) 4308), with the super-razor of
Buckley, Lykken, Rogan, Spiropulu, PRD 89 (2014) 055020, arXiv:1310.4827.
:data:`BALDI_UCI_NAMES` maps them to the UCI column names.  The single entry point is
:func:`compute_features`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import awkward as ak
import numpy as np

__all__ = [
    "BALDI_FEATURES",
    "BALDI_UCI_NAMES",
    "FEATURE_SETS",
    "NO_JET_DPHI",
    "NO_JET_PT",
    "NO_JET_RATIO",
    "THESIS_FEATURES",
    "UNDEFINED_ANGLE",
    "SuperRazor",
    "axial_met",
    "baldi_features",
    "compute_features",
    "delta_phi",
    "delta_r",
    "count_b_jets",
    "invariant_mass",
    "leading_jet_delta_phi_met",
    "met_over_leading_jet_pt",
    "met_rel",
    "min_delta_phi_jets_met",
    "mt2",
    "razor_mr",
    "razor_mtr",
    "razor_r",
    "super_razor",
    "thesis_features",
    "transverse_mass",
]

# --------------------------------------------------------------------------------------
# Sentinels and feature names
# --------------------------------------------------------------------------------------

NO_JET_DPHI = math.pi
"""|dphi(jet, MET)| of an event without jets: the largest possible separation."""

NO_JET_PT = 0.0
"""pT of the leading jet of an event without jets."""

NO_JET_RATIO = -1.0
"""MET / pT(leading jet) of an event without jets (outside the physical range)."""

UNDEFINED_ANGLE = 0.0
"""Super-razor angle whose reference vector vanishes (``dphi_r_beta``, ``cos_theta_r1``)."""

LEPTON_FIELDS = ("pt", "eta", "phi", "mass", "charge", "flavour")
JET_FIELDS = ("pt", "eta", "phi", "mass", "btag")

THESIS_FEATURES: tuple[str, ...] = (
    "met",
    "met_phi",
    "lep1_pt",
    "lep1_eta",
    "lep1_phi",
    "lep1_flavour",
    "lep1_charge",
    "lep2_pt",
    "lep2_eta",
    "lep2_phi",
    "lep2_flavour",
    "lep2_charge",
    "mt_lep1",
    "mt_lep2",
    "dphi_lep1_met",
    "dphi_lep2_met",
    "min_dphi_jet_met",
    "dphi_jet1_met",
    "mll",
    "dr_ll",
    "met_over_jet1_pt",
    "n_jet",
    "n_bjet",
    "n_lepton",
    "jet1_pt",
    "ptll",
)

BALDI_FEATURES: tuple[str, ...] = (
    "met_rel",
    "axial_met",
    "razor_m_r",
    "razor_m_tr",
    "razor_r",
    "mt2",
    "sqrt_s_r",
    "m_delta_r",
    "dphi_r_beta",
    "cos_theta_r1",
)

BALDI_UCI_NAMES: dict[str, str] = {
    "met_rel": "MET_rel",
    "axial_met": "axial_MET",
    "razor_m_r": "M_R",
    "razor_m_tr": "M_TR_2",
    "razor_r": "R",
    "mt2": "MT2",
    "sqrt_s_r": "S_R",
    "m_delta_r": "M_Delta_R",
    "dphi_r_beta": "dPhi_r_b",
    "cos_theta_r1": "cos_theta_r1",
}
"""Our Baldi feature names -> the column names of the UCI "SUSY" data set."""

FEATURE_SETS: dict[str, tuple[str, ...]] = {
    "thesis": THESIS_FEATURES,
    "baldi": BALDI_FEATURES,
    "all": THESIS_FEATURES + BALDI_FEATURES,
}

# --------------------------------------------------------------------------------------
# Small numeric helpers
# --------------------------------------------------------------------------------------


_NEGLIGIBLE = 1e-12
"""Relative size below which a vector counts as zero (rounding noise), and 1 - max beta."""


def _as_flat_float(values, name: str) -> np.ndarray:
    """``values`` (numpy, awkward or list; one number per event) as a flat float64 array."""
    if isinstance(values, ak.Array):
        if values.ndim != 1:
            raise ValueError(f"{name} must be flat (one value per event), got {values.type}")
        values = ak.to_numpy(values)
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a one-dimensional array, got shape {array.shape}")
    return array


def _safe_divide(numerator, denominator, where_zero: float = 0.0) -> np.ndarray:
    """numerator / denominator, and ``where_zero`` wherever the denominator is 0."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    out = np.full(np.broadcast(numerator, denominator).shape, where_zero, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def _sqrt_clipped(value) -> np.ndarray:
    """sqrt(max(value, 0)): square root of a quantity that is >= 0 up to rounding."""
    return np.sqrt(np.maximum(value, 0.0))


def _cartesian(pt, eta, phi, mass):
    """(E, px, py, pz) of objects given as (pT, eta, phi, m).

    px = pT cos(phi), py = pT sin(phi), pz = pT sinh(eta), E = sqrt(|p|^2 + m^2).
    """
    px = pt * np.cos(phi)
    py = pt * np.sin(phi)
    pz = pt * np.sinh(eta)
    energy = np.sqrt(px**2 + py**2 + pz**2 + mass**2)
    return energy, px, py, pz


def _boost(energy, px, py, pz, beta_x, beta_y, beta_z):
    """Components of a four-vector in a frame moving with velocity beta (c = 1).

    E' = gamma (E - beta.p),  p' = p + [(gamma - 1)/beta^2 (beta.p) - gamma E] beta,
    with (gamma - 1)/beta^2 written as gamma^2/(1 + gamma), finite at beta = 0.
    (ROOT's ``TLorentzVector.Boost(-beta)``.)
    """
    beta_sq = beta_x**2 + beta_y**2 + beta_z**2
    gamma = 1.0 / np.sqrt(1.0 - beta_sq)
    beta_dot_p = beta_x * px + beta_y * py + beta_z * pz
    along = gamma**2 / (1.0 + gamma) * beta_dot_p - gamma * energy
    return (
        gamma * (energy - beta_dot_p),
        px + along * beta_x,
        py + along * beta_y,
        pz + along * beta_z,
    )


# --------------------------------------------------------------------------------------
# Reusable kinematic helpers (numpy or awkward arrays)
# --------------------------------------------------------------------------------------


def delta_phi(phi1, phi2):
    """Signed azimuthal difference phi1 - phi2 wrapped into [-pi, pi).

    dphi = ((phi1 - phi2 + pi) mod 2 pi) - pi.  Works on numpy and awkward arrays (a
    flat per-event array broadcasts against a jagged per-object one); take ``abs`` for
    the separation in [0, pi].
    """
    return (phi1 - phi2 + np.pi) % (2.0 * np.pi) - np.pi


def delta_r(eta1, phi1, eta2, phi2):
    """Angular distance dR = sqrt(deta^2 + dphi^2), with dphi from :func:`delta_phi`."""
    return np.sqrt((eta1 - eta2) ** 2 + delta_phi(phi1, phi2) ** 2)


def transverse_mass(pt, phi, met_pt, met_phi):
    """Transverse mass of a (massless) visible object and the missing momentum.

    mT = sqrt(2 pT MET (1 - cos dphi)), dphi = phi - phi_MET.  A lepton back-to-back
    with the MET gives mT = 2 sqrt(pT MET); one parallel to it gives 0.
    """
    mt_squared = 2.0 * pt * met_pt * (1.0 - np.cos(delta_phi(phi, met_phi)))
    return np.sqrt(np.maximum(mt_squared, 0.0))


def invariant_mass(pt1, eta1, phi1, m1, pt2, eta2, phi2, m2):
    """Invariant mass of two objects given as (pT, eta, phi, m).

    m^2 = m1^2 + m2^2 + 2 (E1 E2 - p1.p2), clipped at 0 against rounding.  Two
    massless back-to-back objects of energy E give m = 2E.
    """
    e1, px1, py1, pz1 = _cartesian(pt1, eta1, phi1, m1)
    e2, px2, py2, pz2 = _cartesian(pt2, eta2, phi2, m2)
    mass_squared = m1**2 + m2**2 + 2.0 * (e1 * e2 - px1 * px2 - py1 * py2 - pz1 * pz2)
    return np.sqrt(np.maximum(mass_squared, 0.0))


# --------------------------------------------------------------------------------------
# Access to the objects of the event
# --------------------------------------------------------------------------------------


class _Lepton(NamedTuple):
    """One lepton per event (the i-th leading), as flat float64 arrays."""

    pt: np.ndarray
    eta: np.ndarray
    phi: np.ndarray
    mass: np.ndarray
    charge: np.ndarray
    flavour: np.ndarray


def _require_fields(collection, name: str, fields: tuple[str, ...]) -> None:
    """Raise a ValueError naming the fields that ``collection`` lacks."""
    present = set(ak.fields(collection))
    missing = [field for field in fields if field not in present]
    if missing:
        raise ValueError(f"{name} lacks the field(s) {missing}; it has {sorted(present)}")


def _nth_object_field(collection, index: int, field: str, fill: float = 0.0) -> np.ndarray:
    """``collection[field]`` of the ``index``-th object of each event; ``fill`` where absent."""
    padded = ak.pad_none(collection[field], index + 1, axis=1)
    return ak.to_numpy(ak.fill_none(padded[:, index], fill)).astype(np.float64)


def _nth_lepton(leptons, index: int) -> _Lepton:
    """The ``index``-th lepton of each event; a zero four-vector where there is none."""
    return _Lepton(*(_nth_object_field(leptons, index, field) for field in LEPTON_FIELDS))


def _leading_jet_pt(jets) -> np.ndarray:
    """pT of the leading jet, :data:`NO_JET_PT` where there is no jet."""
    return _nth_object_field(jets, 0, "pt", fill=NO_JET_PT)


def _per_event(values: np.ndarray) -> ak.Array:
    """A flat per-event array as awkward, so that it broadcasts into jagged collections."""
    return ak.Array(np.asarray(values, dtype=np.float64))


# --------------------------------------------------------------------------------------
# Thesis features
# --------------------------------------------------------------------------------------


def _min_delta_phi_to_met(object_phi, met_phi) -> np.ndarray:
    """min over the objects of |dphi(object, MET)| (``object_phi`` jagged); pi if none."""
    separations = abs(delta_phi(object_phi, _per_event(met_phi)))
    smallest = ak.min(separations, axis=1, mask_identity=True)
    return ak.to_numpy(ak.fill_none(smallest, np.pi)).astype(np.float64)


def min_delta_phi_jets_met(jet_phi, met_phi) -> np.ndarray:
    """Smallest |dphi(jet, MET)| over all jets of the event; :data:`NO_JET_DPHI` without jets.

    min_dphi = min_j |phi_j - phi_MET| (wrapped), ``jet_phi`` jagged, ``met_phi`` flat.
    """
    smallest = _min_delta_phi_to_met(jet_phi, met_phi)
    return np.where(ak.to_numpy(ak.num(jet_phi, axis=1)) > 0, smallest, NO_JET_DPHI)


def leading_jet_delta_phi_met(jet_phi, met_phi) -> np.ndarray:
    """|dphi(leading jet, MET)|; :data:`NO_JET_DPHI` without jets."""
    first_phi = ak.firsts(jet_phi, axis=1)
    separation = abs(delta_phi(first_phi, _per_event(met_phi)))
    return ak.to_numpy(ak.fill_none(separation, NO_JET_DPHI)).astype(np.float64)


def met_over_leading_jet_pt(met_pt, jet1_pt) -> np.ndarray:
    """MET / pT(leading jet); :data:`NO_JET_RATIO` where there is no jet (jet1_pt = 0)."""
    return _safe_divide(met_pt, jet1_pt, where_zero=NO_JET_RATIO)


def count_b_jets(jets, pt_min: float) -> np.ndarray:
    """Number of jets with ``btag`` true and pT > ``pt_min``, as float64."""
    tagged = ak.values_astype(jets["btag"], bool) & (jets["pt"] > pt_min)
    return ak.to_numpy(ak.sum(tagged, axis=1)).astype(np.float64)


def _dilepton_transverse_momentum(lep1: _Lepton, lep2: _Lepton):
    """(px, py) of the dilepton system: pT_ll vector = pT1 vector + pT2 vector."""
    px = lep1.pt * np.cos(lep1.phi) + lep2.pt * np.cos(lep2.phi)
    py = lep1.pt * np.sin(lep1.phi) + lep2.pt * np.sin(lep2.phi)
    return px, py


def thesis_features(leptons, jets, met_pt, met_phi, btag_pt_min: float = 20.0) -> dict[str, np.ndarray]:
    """The 26 variables of :data:`THESIS_FEATURES`, in that order.

    met, met_phi; for each of the two leading leptons pT, eta, phi, flavour, charge;
    mT(l_i, MET) (:func:`transverse_mass`) and |dphi(l_i, MET)|;
    min_j |dphi(j, MET)| and |dphi(j1, MET)| (pi without jets);
    m_ll (:func:`invariant_mass`), dR(l1, l2) (:func:`delta_r`);
    MET / pT(j1) (-1 without jets); numbers of jets, of b-tagged jets with
    pT > ``btag_pt_min`` and of leptons; pT(j1) (0 without jets);
    pT_ll = |pT1 vector + pT2 vector|.
    """
    _require_fields(leptons, "leptons", LEPTON_FIELDS)
    _require_fields(jets, "jets", JET_FIELDS)
    met_pt = _as_flat_float(met_pt, "met_pt")
    met_phi = _as_flat_float(met_phi, "met_phi")
    lep1, lep2 = _nth_lepton(leptons, 0), _nth_lepton(leptons, 1)
    jet1_pt = _leading_jet_pt(jets)
    ptll_x, ptll_y = _dilepton_transverse_momentum(lep1, lep2)

    features = {"met": met_pt, "met_phi": met_phi}
    for prefix, lepton in (("lep1", lep1), ("lep2", lep2)):
        features[f"{prefix}_pt"] = lepton.pt
        features[f"{prefix}_eta"] = lepton.eta
        features[f"{prefix}_phi"] = lepton.phi
        features[f"{prefix}_flavour"] = lepton.flavour
        features[f"{prefix}_charge"] = lepton.charge
    for prefix, lepton in (("lep1", lep1), ("lep2", lep2)):
        features[f"mt_{prefix}"] = transverse_mass(lepton.pt, lepton.phi, met_pt, met_phi)
    for prefix, lepton in (("lep1", lep1), ("lep2", lep2)):
        features[f"dphi_{prefix}_met"] = np.abs(delta_phi(lepton.phi, met_phi))
    features["min_dphi_jet_met"] = min_delta_phi_jets_met(jets["phi"], met_phi)
    features["dphi_jet1_met"] = leading_jet_delta_phi_met(jets["phi"], met_phi)
    features["mll"] = invariant_mass(*lep1[:4], *lep2[:4])
    features["dr_ll"] = delta_r(lep1.eta, lep1.phi, lep2.eta, lep2.phi)
    features["met_over_jet1_pt"] = met_over_leading_jet_pt(met_pt, jet1_pt)
    features["n_jet"] = ak.to_numpy(ak.num(jets, axis=1)).astype(np.float64)
    features["n_bjet"] = count_b_jets(jets, btag_pt_min)
    features["n_lepton"] = ak.to_numpy(ak.num(leptons, axis=1)).astype(np.float64)
    features["jet1_pt"] = jet1_pt
    features["ptll"] = np.hypot(ptll_x, ptll_y)
    return {name: features[name] for name in THESIS_FEATURES}


# --------------------------------------------------------------------------------------
# Baldi et al. high-level features: MET_rel, axial MET, razor
# --------------------------------------------------------------------------------------


def met_rel(met_pt, met_phi, object_phi) -> np.ndarray:
    """Relative missing transverse momentum.

    MET_rel = MET                 if dphi >= pi/2,
            = MET * sin(dphi)     if dphi <  pi/2,
    where dphi = min over the objects (``object_phi``, jagged: the leptons and jets of
    the event) of |phi_object - phi_MET|.  Without objects dphi = pi, so MET_rel = MET.
    """
    met_pt = _as_flat_float(met_pt, "met_pt")
    nearest = _min_delta_phi_to_met(object_phi, met_phi)
    return np.where(nearest >= np.pi / 2, met_pt, met_pt * np.sin(nearest))


def axial_met(met_pt, met_phi, dilepton_px, dilepton_py) -> np.ndarray:
    """Missing momentum projected on the dilepton axis, sign flipped.

    axial MET = -MET cos(dphi(MET, pT_ll)) = -(MET vector . pT_ll vector) / |pT_ll|:
    +MET when the MET recoils against the dilepton system, -MET when it is parallel.
    0 where pT_ll = 0 (no axis).
    """
    met_x = met_pt * np.cos(met_phi)
    met_y = met_pt * np.sin(met_phi)
    dilepton_pt = np.hypot(dilepton_px, dilepton_py)
    return -_safe_divide(met_x * dilepton_px + met_y * dilepton_py, dilepton_pt)


def razor_mr(e1, pz1, e2, pz2) -> np.ndarray:
    """Razor mass M_R = sqrt((E1 + E2)^2 - (pz1 + pz2)^2) of the two leptons.

    (Rogan, arXiv:1006.2727, with the two leptons in place of the two megajets.)  It is
    the dilepton energy in the frame where the dilepton has no longitudinal momentum.
    """
    return _sqrt_clipped((e1 + e2) ** 2 - (pz1 + pz2) ** 2)


def razor_mtr(pt1, phi1, pt2, phi2, met_pt, met_phi) -> np.ndarray:
    """Razor transverse mass M_T^R.

    M_T^R = sqrt( [MET (pT1 + pT2) - MET vector . (pT1 vector + pT2 vector)] / 2 ).
    """
    met_x, met_y = met_pt * np.cos(met_phi), met_pt * np.sin(met_phi)
    sum_x = pt1 * np.cos(phi1) + pt2 * np.cos(phi2)
    sum_y = pt1 * np.sin(phi1) + pt2 * np.sin(phi2)
    return _sqrt_clipped((met_pt * (pt1 + pt2) - (met_x * sum_x + met_y * sum_y)) / 2.0)


def razor_r(m_tr, m_r) -> np.ndarray:
    """Razor ratio R = M_T^R / M_R (0 where M_R = 0)."""
    return _safe_divide(m_tr, m_r)


# --------------------------------------------------------------------------------------
# MT2
# --------------------------------------------------------------------------------------


class _Mt2Inputs(NamedTuple):
    """Per-event quantities of the MT2 problem (flat float64 arrays).

    ``pair_plus`` = E_T1 E_T2 + p1.p2 and ``pair_minus`` = E_T1 E_T2 - p1.p2 (both >= 0)
    are computed without cancellation, as (E_T1 E_T2 - pT1 pT2) + 2 pT1 pT2 cos^2(dphi/2)
    and (...) + 2 pT1 pT2 sin^2(dphi/2), so that nearly back-to-back or collinear
    leptons keep full precision.
    """

    px1: np.ndarray
    py1: np.ndarray
    et1: np.ndarray
    m1_sq: np.ndarray
    px2: np.ndarray
    py2: np.ndarray
    et2: np.ndarray
    m2_sq: np.ndarray
    pair_plus: np.ndarray
    pair_minus: np.ndarray
    met_x: np.ndarray
    met_y: np.ndarray
    met_pt: np.ndarray
    met_ux: np.ndarray
    met_uy: np.ndarray
    p2_dot_met: np.ndarray


def _mt2_inputs(pt1, phi1, m1, pt2, phi2, m2, met_pt, met_phi) -> _Mt2Inputs:
    """Cartesian components and the pair products used by :func:`_mt2_dual`."""
    et1, et2 = np.hypot(pt1, m1), np.hypot(pt2, m2)
    met_x, met_y = met_pt * np.cos(met_phi), met_pt * np.sin(met_phi)
    met_norm = np.hypot(met_x, met_y)
    px2, py2 = pt2 * np.cos(phi2), pt2 * np.sin(phi2)
    mass_excess = (m1**2 * pt2**2 + m2**2 * pt1**2 + m1**2 * m2**2) / np.maximum(et1 * et2 + pt1 * pt2, 1e-300)
    half_dphi = 0.5 * delta_phi(phi1, phi2)
    return _Mt2Inputs(
        px1=pt1 * np.cos(phi1),
        py1=pt1 * np.sin(phi1),
        et1=et1,
        m1_sq=m1**2,
        px2=px2,
        py2=py2,
        et2=et2,
        m2_sq=m2**2,
        pair_plus=mass_excess + 2.0 * pt1 * pt2 * np.cos(half_dphi) ** 2,
        pair_minus=mass_excess + 2.0 * pt1 * pt2 * np.sin(half_dphi) ** 2,
        met_x=met_x,
        met_y=met_y,
        met_pt=met_norm,
        met_ux=_safe_divide(met_x, met_norm),  # unit vector, (0, 0) if MET = 0
        met_uy=_safe_divide(met_y, met_norm),
        p2_dot_met=px2 * met_x + py2 * met_y,
    )


def _lens_min_dot(radius_b, w_x, w_y, radius_a, event: _Mt2Inputs, outer_gap, inner_gap) -> np.ndarray:
    """min of t.k over t in the lens  {|t| <= b}  intersected with  {|t - w| <= a}, k = MET.

    The lens is never empty here (|w| <= a + b).  The minimum of a linear function over
    the intersection of two discs is the optimum of one disc (-b k_hat, or w - a k_hat)
    if that point lies in the other disc, else one of the two corners where the circles
    cross: at distance x = (|w|^2 + b^2 - a^2) / (2|w|) along w_hat and
    y = +-sqrt(outer_gap * inner_gap) / (2|w|) across it, with the exactly computed
    outer_gap = (a + b)^2 - |w|^2 and inner_gap = |w|^2 - (a - b)^2.
    """
    k_x, k_y, k_norm, kx_hat, ky_hat = event.met_x, event.met_y, event.met_pt, event.met_ux, event.met_uy
    slack = _NEGLIGIBLE * (radius_a + radius_b)

    # Optimum of the disc |t| <= b, if inside the other disc.
    in_other_1 = np.hypot(w_x + radius_b * kx_hat, w_y + radius_b * ky_hat) <= radius_a + slack
    value_1 = -radius_b * k_norm
    # Optimum of the disc |t - w| <= a, if inside the other disc.
    in_other_2 = np.hypot(w_x - radius_a * kx_hat, w_y - radius_a * ky_hat) <= radius_b + slack
    value_2 = w_x * k_x + w_y * k_y - radius_a * k_norm
    # Corners of the lens.
    w_norm = np.hypot(w_x, w_y)
    wx_hat, wy_hat = _safe_divide(w_x, w_norm), _safe_divide(w_y, w_norm)
    along = _safe_divide(w_norm**2 + radius_b**2 - radius_a**2, 2.0 * w_norm)
    across = _safe_divide(_sqrt_clipped(outer_gap * inner_gap), 2.0 * w_norm)
    k_along = wx_hat * k_x + wy_hat * k_y
    k_across = -wy_hat * k_x + wx_hat * k_y
    value_corner = along * k_along - across * np.abs(k_across)

    return np.where(in_other_1, value_1, np.where(in_other_2, value_2, value_corner))


def _mt2_dual(weight, event: _Mt2Inputs) -> np.ndarray:
    """Dual function h(lambda) of the MT2 problem, whose maximum over [0, 1] is MT2^2.

    With f_i(q) = m_i^2 + 2 (E_T,i |q| - p_i.q) the squared transverse mass of visible
    object i and an invisible massless momentum q, and k the MET vector,

        MT2^2 = min_q max(f_1(q), f_2(k - q)) = max_{lambda in [0,1]} h(lambda),
        h(lambda) = min_q [lambda f_1(q) + (1 - lambda) f_2(k - q)]
                  = lambda m_1^2 + (1 - lambda) m_2^2 - 2 (1 - lambda) p_2.k
                    - 2 min_{t in lens} t.k,

    lens = {|t| <= (1 - lambda) E_T,2} intersected with {|t - w| <= lambda E_T,1},
    w = lambda p_1 - (1 - lambda) p_2 (minimax theorem, with each norm written as a
    maximum over a disc: a|q| = max_{|s| <= a} s.q).  h is concave in lambda.
    """
    other = 1.0 - weight
    radius_a, radius_b = weight * event.et1, other * event.et2
    w_x = weight * event.px1 - other * event.px2
    w_y = weight * event.py1 - other * event.py2
    masses = weight**2 * event.m1_sq + other**2 * event.m2_sq
    outer_gap = masses + 2.0 * weight * other * event.pair_plus
    inner_gap = -masses + 2.0 * weight * other * event.pair_minus
    lens_min = _lens_min_dot(radius_b, w_x, w_y, radius_a, event, outer_gap, inner_gap)
    return weight * event.m1_sq + other * event.m2_sq - 2.0 * other * event.p2_dot_met - 2.0 * lens_min


def mt2(pt1, phi1, m1, pt2, phi2, m2, met_pt, met_phi, n_steps: int = 40) -> np.ndarray:
    """Stransverse mass MT2 (Lester & Summers, hep-ph/9906349) with massless invisibles.

    MT2 = min over q1 + q2 = MET vector of max(mT(l1, q1), mT(l2, q2)),
    mT^2(l, q) = m_l^2 + 2 (E_T,l |q| - pT_l vector . q),  E_T,l = sqrt(m_l^2 + pT_l^2).

    Computed through its concave dual (see ``_mt2_dual``): MT2^2 = max over lambda in
    [0, 1] of a closed-form h(lambda), found for all events at once by a vectorised
    bisection on the sign of the slope of h.  Each of the ``n_steps`` steps nearly
    halves the lambda interval; 40 shrink it below 1e-12, and MT2 then agrees with a
    brute-force minimisation over the split to ~1e-5 GeV (about 1.5 s per 1e5 events).

    Limits: MET = 0 gives max(m1, m2) (0 for massless leptons); MET inside the cone
    spanned by two massless leptons gives 0; MT2 <= max(mT(l1, MET), m2) and
    MT2 <= max(m1, mT(l2, MET)); two equal-mass parents decaying at rest to massless
    lepton + neutrino give at most the parent mass.
    """
    arrays = (np.asarray(x, dtype=np.float64) for x in (pt1, phi1, m1, pt2, phi2, m2, met_pt, met_phi))
    event = _mt2_inputs(*arrays)
    low = np.zeros_like(event.met_x)
    high = np.ones_like(event.met_x)
    for _ in range(n_steps):
        middle = 0.5 * (low + high)
        step = 1e-3 * (high - low)
        rising = _mt2_dual(middle + step, event) >= _mt2_dual(middle - step, event)
        # h is concave: if it rises (or is flat) across the middle, a maximum lies above
        # middle - step; otherwise it lies below middle + step.
        low = np.where(rising, middle - step, low)
        high = np.where(rising, high, middle + step)
    candidates = [_mt2_dual(weight, event) for weight in (low, 0.5 * (low + high), high)]
    return _sqrt_clipped(np.maximum.reduce(candidates))


# --------------------------------------------------------------------------------------
# Super-razor
# --------------------------------------------------------------------------------------


class SuperRazor(NamedTuple):
    """The four super-razor variables, flat float64 arrays (see :func:`super_razor`)."""

    sqrt_s_r: np.ndarray
    m_delta_r: np.ndarray
    dphi_r_beta: np.ndarray
    cos_theta_r1: np.ndarray


def _azimuthal_separation(x1, y1, x2, y2, scale) -> np.ndarray:
    """|dphi| between two transverse vectors, :data:`UNDEFINED_ANGLE` if either is zero.

    A vector counts as zero when its length is below 1e-12 x ``scale`` (rounding noise).
    """
    separation = np.abs(delta_phi(np.arctan2(y1, x1), np.arctan2(y2, x2)))
    threshold = _NEGLIGIBLE * scale
    defined = (np.hypot(x1, y1) > threshold) & (np.hypot(x2, y2) > threshold)
    return np.where(defined, separation, UNDEFINED_ANGLE)


def _below_light_speed(beta_x, beta_y):
    """The velocity (beta_x, beta_y) shortened, if needed, to |beta| <= 1 - 1e-12.

    |beta| = 1 happens only for a massless total system (s_R = 0), e.g. collinear
    leptons with the MET along them; capping keeps the boost finite.
    """
    speed = np.hypot(beta_x, beta_y)
    shrink = np.minimum(1.0, _safe_divide(1.0 - _NEGLIGIBLE, speed, where_zero=1.0))
    return beta_x * shrink, beta_y * shrink


def super_razor(pt1, eta1, phi1, pt2, eta2, phi2, met_pt, met_phi) -> SuperRazor:
    """Super-razor variables of two leptons and MET (Buckley et al., arXiv:1310.4827).

    The leptons are taken massless.  The event is reconstructed in a chain of frames:

    1. Lab -> longitudinal frame, boost along z with
       beta_L = (pz1 + pz2) / (E1 + E2), so that the dilepton has pz = 0.  There the
       dilepton has energy E_V (= the razor M_R) and mass m_V.
    2. The invisible system is given the transverse momentum MET, pz = 0 and the
       dilepton's mass, E_I = sqrt(MET^2 + m_V^2).  With J_T = pT_ll + MET vector,
           s_R  = (E_V + E_I)^2 - |J_T|^2,      **sqrt_s_r** = sqrt(s_R),
       the estimate of the partonic centre-of-mass energy.
    3. Longitudinal -> R frame (approximate centre-of-mass frame), transverse boost
       beta_R = J_T / (E_V + E_I) = J_T / sqrt(|J_T|^2 + s_R).
       **dphi_r_beta** (Delta phi_R^beta) = |dphi(pT_ll, beta_R)|, the azimuthal angle
       between the dilepton momentum and that boost.
    4. R frame -> R+1 frames (approximate rest frames of the two parents), opposite
       boosts +-beta_R+1 with beta_R+1 = (p1 - p2) / (E1 + E2) (R-frame momenta), which
       give the two leptons equal energies;  gamma_R+1 = 1 / sqrt(1 - beta_R+1^2).
           **m_delta_r** = M_Delta^R = sqrt(s_R) / (2 gamma_R+1),
       whose distribution ends at M_Delta = (m_parent^2 - m_invisible^2) / m_parent.
       **cos_theta_r1** = |cos theta_R+1|, the cosine of the angle between lepton 1 in
       its R+1 frame and beta_R+1, by aberration from the R-frame angle theta:
           cos theta_R+1 = (cos theta - beta_R+1) / (1 - beta_R+1 cos theta).

    Where a reference vector vanishes (pT_ll = 0 or J_T = 0 for ``dphi_r_beta``,
    beta_R+1 = 0 for ``cos_theta_r1``) the angle is :data:`UNDEFINED_ANGLE`.  This is
    the recipe of the public implementations used by ATLAS (``superRazor``, boosts
    written out here as closed formulas); a test rebuilds it with ``vector`` boosts.
    """
    pt1, eta1, phi1, pt2, eta2, phi2, met_pt, met_phi = (
        np.asarray(x, dtype=np.float64) for x in (pt1, eta1, phi1, pt2, eta2, phi2, met_pt, met_phi)
    )
    e1, px1, py1, pz1 = _cartesian(pt1, eta1, phi1, 0.0)
    e2, px2, py2, pz2 = _cartesian(pt2, eta2, phi2, 0.0)
    zero = np.zeros_like(e1)

    # 1. Longitudinal boost to the frame where the dilepton has pz = 0.
    beta_l = _safe_divide(pz1 + pz2, e1 + e2)
    e1, px1, py1, pz1 = _boost(e1, px1, py1, pz1, zero, zero, beta_l)
    e2, px2, py2, pz2 = _boost(e2, px2, py2, pz2, zero, zero, beta_l)

    # 2. Invisible system with the dilepton mass; centre-of-mass energy estimate.
    visible_e, visible_x, visible_y = e1 + e2, px1 + px2, py1 + py2
    visible_mass_sq = np.maximum(visible_e**2 - visible_x**2 - visible_y**2 - (pz1 + pz2) ** 2, 0.0)
    met_x, met_y = met_pt * np.cos(met_phi), met_pt * np.sin(met_phi)
    invisible_e = np.sqrt(met_pt**2 + visible_mass_sq)
    total_e = visible_e + invisible_e
    total_x, total_y = visible_x + met_x, visible_y + met_y
    sqrt_s_r = _sqrt_clipped(total_e**2 - total_x**2 - total_y**2)

    # 3. Transverse boost to the R frame.
    beta_r_x, beta_r_y = _below_light_speed(_safe_divide(total_x, total_e), _safe_divide(total_y, total_e))
    dphi_r_beta = _azimuthal_separation(visible_x, visible_y, total_x, total_y, scale=total_e)
    e1, px1, py1, pz1 = _boost(e1, px1, py1, pz1, beta_r_x, beta_r_y, zero)
    e2, px2, py2, pz2 = _boost(e2, px2, py2, pz2, beta_r_x, beta_r_y, zero)

    # 4. Opposite boosts to the R+1 frames.
    m_delta_r, cos_theta_r1 = _r_plus_one_frames((e1, px1, py1, pz1), (e2, px2, py2, pz2), sqrt_s_r)
    return SuperRazor(sqrt_s_r, m_delta_r, dphi_r_beta, cos_theta_r1)


def _r_plus_one_frames(lepton1, lepton2, sqrt_s_r):
    """(M_Delta^R, |cos theta_R+1|) from the two massless leptons (E, px, py, pz) in the R frame.

    beta_R+1 = |p1 - p2| / (E1 + E2);  M_Delta^R = sqrt(s_R) sqrt(1 - beta_R+1^2) / 2;
    cos theta_R+1 = (cos theta - beta_R+1) / (1 - beta_R+1 cos theta), theta the angle
    between p1 and p1 - p2.  beta_R+1 -> 1 (back-to-back leptons) gives M_Delta^R -> 0.
    """
    e1, px1, py1, pz1 = lepton1
    e2, px2, py2, pz2 = lepton2
    diff_x, diff_y, diff_z = px1 - px2, py1 - py2, pz1 - pz2
    diff_norm = np.sqrt(diff_x**2 + diff_y**2 + diff_z**2)
    beta = np.minimum(_safe_divide(diff_norm, e1 + e2), 1.0)
    m_delta_r = 0.5 * sqrt_s_r * np.sqrt(1.0 - beta**2)

    cos_theta = _safe_divide(px1 * diff_x + py1 * diff_y + pz1 * diff_z, e1 * diff_norm)
    beta_capped = np.minimum(beta, 1.0 - _NEGLIGIBLE)  # keeps 1 - beta cos(theta) > 0
    cos_theta_rp1 = (cos_theta - beta_capped) / (1.0 - beta_capped * cos_theta)
    has_boost = beta > _NEGLIGIBLE
    cos_theta_r1 = np.where(has_boost, np.clip(np.abs(cos_theta_rp1), 0.0, 1.0), UNDEFINED_ANGLE)
    return m_delta_r, cos_theta_r1


def baldi_features(leptons, jets, met_pt, met_phi) -> dict[str, np.ndarray]:
    """The 10 variables of :data:`BALDI_FEATURES`, in that order.

    met_rel (:func:`met_rel`, nearest of the leptons and jets), axial_met
    (:func:`axial_met`), the razor razor_m_r, razor_m_tr, razor_r (:func:`razor_mr`,
    :func:`razor_mtr`, :func:`razor_r`), mt2 (:func:`mt2`) and the super-razor
    sqrt_s_r, m_delta_r, dphi_r_beta, cos_theta_r1 (:func:`super_razor`), all built
    from the two leading leptons and the MET.
    """
    _require_fields(leptons, "leptons", LEPTON_FIELDS)
    _require_fields(jets, "jets", ("phi",))
    met_pt = _as_flat_float(met_pt, "met_pt")
    met_phi = _as_flat_float(met_phi, "met_phi")
    lep1, lep2 = _nth_lepton(leptons, 0), _nth_lepton(leptons, 1)
    ptll_x, ptll_y = _dilepton_transverse_momentum(lep1, lep2)
    e1, _, _, pz1 = _cartesian(*lep1[:4])
    e2, _, _, pz2 = _cartesian(*lep2[:4])
    objects_phi = ak.concatenate([leptons["phi"], jets["phi"]], axis=1)

    m_r = razor_mr(e1, pz1, e2, pz2)
    m_tr = razor_mtr(lep1.pt, lep1.phi, lep2.pt, lep2.phi, met_pt, met_phi)
    razor = super_razor(lep1.pt, lep1.eta, lep1.phi, lep2.pt, lep2.eta, lep2.phi, met_pt, met_phi)
    return {
        "met_rel": met_rel(met_pt, met_phi, objects_phi),
        "axial_met": axial_met(met_pt, met_phi, ptll_x, ptll_y),
        "razor_m_r": m_r,
        "razor_m_tr": m_tr,
        "razor_r": razor_r(m_tr, m_r),
        "mt2": mt2(lep1.pt, lep1.phi, lep1.mass, lep2.pt, lep2.phi, lep2.mass, met_pt, met_phi),
        "sqrt_s_r": razor.sqrt_s_r,
        "m_delta_r": razor.m_delta_r,
        "dphi_r_beta": razor.dphi_r_beta,
        "cos_theta_r1": razor.cos_theta_r1,
    }


# --------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------


def _validate_inputs(leptons, jets, met_pt: np.ndarray, met_phi: np.ndarray) -> None:
    """Raise a ValueError naming the input that has the wrong fields, length or values."""
    _require_fields(leptons, "leptons", LEPTON_FIELDS)
    _require_fields(jets, "jets", JET_FIELDS)
    lengths = {"leptons": len(leptons), "jets": len(jets), "met_pt": len(met_pt), "met_phi": len(met_phi)}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"inputs must have one entry per event, got lengths {lengths}")
    for name, values in (("met_pt", met_pt), ("met_phi", met_phi)):
        if not np.all(np.isfinite(values)):
            raise ValueError(f"{name} holds non-finite values")
    for name, collection in (("leptons", leptons), ("jets", jets)):
        for field in ("pt", "eta", "phi", "mass"):
            values = ak.to_numpy(ak.flatten(collection[field], axis=None)).astype(np.float64)
            if not np.all(np.isfinite(values)):
                raise ValueError(f"{name}.{field} holds non-finite values")


def compute_features(
    leptons, jets, met_pt, met_phi, feature_set: str = "thesis", btag_pt_min: float = 20.0
) -> dict[str, np.ndarray]:
    """Features of ``feature_set`` ("thesis", "baldi" or "all"), as {name: float64 array}.

    The keys are exactly ``FEATURE_SETS[feature_set]``, in that order; every array has
    one finite value per event (the length of ``met_pt``).  ``btag_pt_min`` (GeV) is the
    pT above which b-tagged jets are counted in ``n_bjet``.  An unknown feature set, or
    inputs with missing fields, different lengths or non-finite values, raise ValueError.
    """
    if feature_set not in FEATURE_SETS:
        raise ValueError(f"unknown feature set {feature_set!r}; known sets: {sorted(FEATURE_SETS)}")
    met_pt = _as_flat_float(met_pt, "met_pt")
    met_phi = _as_flat_float(met_phi, "met_phi")
    _validate_inputs(leptons, jets, met_pt, met_phi)

    wanted = FEATURE_SETS[feature_set]
    features: dict[str, np.ndarray] = {}
    if set(wanted) & set(THESIS_FEATURES):
        features.update(thesis_features(leptons, jets, met_pt, met_phi, btag_pt_min))
    if set(wanted) & set(BALDI_FEATURES):
        features.update(baldi_features(leptons, jets, met_pt, met_phi))
    return {name: np.asarray(features[name], dtype=np.float64) for name in wanted}
