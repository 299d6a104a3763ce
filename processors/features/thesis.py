"""The 26 variables of the reference slepton-search thesis (:data:`THESIS_FEATURES`)."""

from __future__ import annotations

import numpy as np

from ..kernels import counts_from_mask, event_minima
from .kinematics import (
    Lepton,
    as_flat_float,
    delta_phi,
    delta_r,
    flat_field,
    leading_leptons,
    mass,
    nth_object_fields,
    require_fields,
    safe_divide,
    transverse_mass,
)
from .names import (
    JET_FIELDS,
    LEPTON_FIELDS,
    NO_JET_DPHI,
    NO_JET_PT,
    NO_JET_RATIO,
    THESIS_FEATURES,
)


def min_delta_phi_to_met(object_phi, met_phi) -> np.ndarray:
    """min over the objects of |dphi(object, MET)| (``object_phi`` jagged); pi if none.

    On the flat contents: each object against its event's MET (float64), then the per-event
    minimum (:func:`processors.kernels.event_minima`).
    """
    offsets, phi = flat_field(object_phi)
    met_phi = np.asarray(met_phi, dtype=np.float64)
    separations = np.abs(delta_phi(phi, np.repeat(met_phi, np.diff(offsets))))
    return event_minima(offsets, separations.astype(np.float64, copy=False), np.pi)


def min_delta_phi_jets_met(jet_phi, met_phi) -> np.ndarray:
    """Smallest |dphi(jet, MET)| over all jets of the event; :data:`NO_JET_DPHI` without jets.

    min_dphi = min_j |phi_j - phi_MET| (wrapped), ``jet_phi`` jagged, ``met_phi`` flat.
    """
    smallest = min_delta_phi_to_met(jet_phi, met_phi)
    return np.where(np.diff(flat_field(jet_phi)[0]) > 0, smallest, NO_JET_DPHI)


def leading_jet_delta_phi_met(jet_phi, met_phi) -> np.ndarray:
    """|dphi(leading jet, MET)|; :data:`NO_JET_DPHI` without jets."""
    offsets, phi = flat_field(jet_phi)
    present = np.diff(offsets) > 0
    separation = np.full(len(present), NO_JET_DPHI, dtype=np.float64)
    met_phi = np.asarray(met_phi, dtype=np.float64)
    separation[present] = np.abs(delta_phi(phi[offsets[:-1][present]], met_phi[present]))
    return separation


def met_over_leading_jet_pt(met_pt, jet1_pt) -> np.ndarray:
    """MET / pT(leading jet); :data:`NO_JET_RATIO` where there is no jet (jet1_pt = 0)."""
    return safe_divide(met_pt, jet1_pt, where_zero=NO_JET_RATIO)


def count_b_jets(jets, pt_min: float) -> np.ndarray:
    """Number of jets with ``btag`` true and pT > ``pt_min``, as float64."""
    offsets, btag = flat_field(jets, "btag")
    _, pt = flat_field(jets, "pt")
    return counts_from_mask(offsets, btag.astype(bool) & (pt > pt_min)).astype(np.float64)


def thesis_features(leptons, jets, met_pt, met_phi, btag_pt_min: float = 20.0) -> dict[str, np.ndarray]:
    """The 26 variables of :data:`THESIS_FEATURES`, in that order.

    met, met_phi; for each of the two leading leptons pT, eta, phi, flavour, charge;
    mT(l_i, MET) (:func:`transverse_mass`) and |dphi(l_i, MET)|;
    min_j |dphi(j, MET)| and |dphi(j1, MET)| (pi without jets);
    m_ll (``vector``: (p1 + p2).mass), dR(l1, l2) (:func:`delta_r`);
    MET / pT(j1) (-1 without jets); numbers of jets, of b-tagged jets with
    pT > ``btag_pt_min`` and of leptons; pT(j1) (0 without jets);
    pT_ll = |pT1 vector + pT2 vector|.
    """
    require_fields(leptons, "leptons", LEPTON_FIELDS)
    require_fields(jets, "jets", JET_FIELDS)
    met_pt, met_phi = as_flat_float(met_pt, "met_pt"), as_flat_float(met_phi, "met_phi")
    return thesis_from(leading_leptons(leptons), leptons, jets, met_pt, met_phi, btag_pt_min)


def thesis_from(pair: tuple[Lepton, Lepton], leptons, jets, met_pt, met_phi, btag_pt_min) -> dict[str, np.ndarray]:
    """:func:`thesis_features` from the already extracted two leading leptons."""
    lep1, lep2 = pair
    jet1_pt = nth_object_fields(jets, 0, ("pt",), fill=NO_JET_PT)["pt"]
    dilepton = lep1.p4 + lep2.p4

    features = {"met": met_pt, "met_phi": met_phi}
    for prefix, lepton in (("lep1", lep1), ("lep2", lep2)):
        for field in ("pt", "eta", "phi", "flavour", "charge"):
            features[f"{prefix}_{field}"] = getattr(lepton, field)
        features[f"mt_{prefix}"] = transverse_mass(lepton.pt, lepton.phi, met_pt, met_phi)
        features[f"dphi_{prefix}_met"] = np.abs(delta_phi(lepton.phi, met_phi))
    features["min_dphi_jet_met"] = min_delta_phi_jets_met(jets["phi"], met_phi)
    features["dphi_jet1_met"] = leading_jet_delta_phi_met(jets["phi"], met_phi)
    features["mll"] = mass(dilepton)
    features["dr_ll"] = delta_r(lep1.eta, lep1.phi, lep2.eta, lep2.phi)
    features["met_over_jet1_pt"] = met_over_leading_jet_pt(met_pt, jet1_pt)
    features["n_jet"] = np.diff(flat_field(jets, "pt")[0]).astype(np.float64)
    features["n_bjet"] = count_b_jets(jets, btag_pt_min)
    features["n_lepton"] = np.diff(flat_field(leptons, "pt")[0]).astype(np.float64)
    features["jet1_pt"] = jet1_pt
    features["ptll"] = np.asarray(dilepton.pt, dtype=np.float64)
    return {name: features[name] for name in THESIS_FEATURES}
