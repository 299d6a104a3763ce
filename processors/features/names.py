"""Feature names, feature sets, object fields and the sentinels of undefined features."""

from __future__ import annotations

import math

NO_JET_DPHI = math.pi
"""|dphi(jet, MET)| of an event without jets: the largest possible separation."""

NO_JET_PT = 0.0
"""pT of the leading jet of an event without jets."""

NO_JET_RATIO = -1.0
"""MET / pT(leading jet) of an event without jets (outside the physical range)."""

UNDEFINED_ANGLE = 0.0
"""Super-razor angle whose reference vector vanishes (``dphi_r_beta``, ``cos_theta_r1``)."""

LEPTON_FIELDS = ("pt", "eta", "phi", "mass", "charge", "flavour")
"""Fields of the lepton collection (``flavour``: 11 electron, 13 muon); the one definition."""

JET_FIELDS = ("pt", "eta", "phi", "mass", "btag")
"""Fields of the jet collection the features read."""

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
