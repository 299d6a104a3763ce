"""Kinematic features of a dilepton + missing-transverse-momentum (slepton) search.

Every function here is a pure, vectorised function of whole arrays: numpy for one
value per event, awkward for the jagged object collections, ``vector`` (numpy backend)
for four-momenta, sums, invariant masses and Lorentz boosts.  There is no loop over
events (the only Python loop is the fixed number of bisection steps inside
:func:`mt2`, each acting on all events at once).

Modules: :mod:`.names` (feature names, sets, sentinels, object fields), :mod:`.kinematics`
(angles, transverse and invariant masses, four-momenta, object access), :mod:`.thesis`,
:mod:`.baldi` (MET_rel, axial MET, razor, super-razor), :mod:`.mt2` (own MT2); this
package re-exports their public names.

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

import numpy as np

from .baldi import (
    SuperRazor,
    axial_met,
    baldi_features,
    baldi_from,
    met_rel,
    razor_mr,
    razor_mtr,
    razor_r,
    super_razor,
)
from .kinematics import (
    as_flat_float,
    delta_phi,
    delta_r,
    flat_field,
    invariant_mass,
    leading_leptons,
    require_fields,
    transverse_mass,
)
from .mt2 import mt2
from .names import (
    BALDI_FEATURES,
    BALDI_UCI_NAMES,
    FEATURE_SETS,
    JET_FIELDS,
    LEPTON_FIELDS,
    NO_JET_DPHI,
    NO_JET_PT,
    NO_JET_RATIO,
    THESIS_FEATURES,
    UNDEFINED_ANGLE,
)
from .thesis import (
    count_b_jets,
    leading_jet_delta_phi_met,
    met_over_leading_jet_pt,
    min_delta_phi_jets_met,
    thesis_features,
    thesis_from,
)

__all__ = [
    "BALDI_FEATURES",
    "BALDI_UCI_NAMES",
    "FEATURE_SETS",
    "JET_FIELDS",
    "LEPTON_FIELDS",
    "NO_JET_DPHI",
    "NO_JET_PT",
    "NO_JET_RATIO",
    "THESIS_FEATURES",
    "UNDEFINED_ANGLE",
    "SuperRazor",
    "axial_met",
    "baldi_features",
    "compute_features",
    "count_b_jets",
    "delta_phi",
    "delta_r",
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


def _validate_inputs(leptons, jets, met_pt: np.ndarray, met_phi: np.ndarray) -> None:
    """Raise a ValueError naming the input that has the wrong fields, length or values."""
    require_fields(leptons, "leptons", LEPTON_FIELDS)
    require_fields(jets, "jets", JET_FIELDS)
    lengths = {"leptons": len(leptons), "jets": len(jets), "met_pt": len(met_pt), "met_phi": len(met_phi)}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"inputs must have one entry per event, got lengths {lengths}")
    for name, values in (("met_pt", met_pt), ("met_phi", met_phi)):
        if not np.all(np.isfinite(values)):
            raise ValueError(f"{name} holds non-finite values")
    for name, collection in (("leptons", leptons), ("jets", jets)):
        for field in ("pt", "eta", "phi", "mass"):
            values = flat_field(collection, field)[1]
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
    The two leading leptons are extracted (and their four-momenta built) once for both sets.
    """
    if feature_set not in FEATURE_SETS:
        raise ValueError(f"unknown feature set {feature_set!r}; known sets: {sorted(FEATURE_SETS)}")
    met_pt = as_flat_float(met_pt, "met_pt")
    met_phi = as_flat_float(met_phi, "met_phi")
    _validate_inputs(leptons, jets, met_pt, met_phi)

    wanted = FEATURE_SETS[feature_set]
    pair = leading_leptons(leptons)
    features: dict[str, np.ndarray] = {}
    if set(wanted) & set(THESIS_FEATURES):
        features.update(thesis_from(pair, leptons, jets, met_pt, met_phi, btag_pt_min))
    if set(wanted) & set(BALDI_FEATURES):
        features.update(baldi_from(pair, leptons, jets, met_pt, met_phi))
    return {name: np.asarray(features[name], dtype=np.float64) for name in wanted}
