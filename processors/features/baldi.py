"""The high-level SUSY variables of Baldi et al. 2014 (:data:`BALDI_FEATURES`).

MET_rel, axial MET, the razor M_R, M_T^R and R (Rogan, arXiv:1006.2727), MT2
(:mod:`.mt2`) and the super-razor of Buckley, Lykken, Rogan, Spiropulu, PRD 89 (2014)
055020, arXiv:1310.4827, whose frames are reached with ``vector``'s Lorentz boosts.
"""

from __future__ import annotations

from typing import NamedTuple

import awkward as ak
import numpy as np
import vector

from .kinematics import (
    NEGLIGIBLE,
    Lepton,
    as_flat_float,
    leading_leptons,
    massless,
    momenta,
    require_fields,
    safe_divide,
    sqrt_clipped,
    transverse,
)
from .mt2 import mt2
from .names import BALDI_FEATURES, LEPTON_FIELDS, UNDEFINED_ANGLE
from .thesis import min_delta_phi_to_met


def met_rel(met_pt, met_phi, object_phi) -> np.ndarray:
    """Relative missing transverse momentum.

    MET_rel = MET                 if dphi >= pi/2,
            = MET * sin(dphi)     if dphi <  pi/2,
    where dphi = min over the objects (``object_phi``, jagged: the leptons and jets of
    the event) of |phi_object - phi_MET|.  Without objects dphi = pi, so MET_rel = MET.
    """
    met_pt = as_flat_float(met_pt, "met_pt")
    nearest = min_delta_phi_to_met(object_phi, met_phi)
    return np.where(nearest >= np.pi / 2, met_pt, met_pt * np.sin(nearest))


def axial_met(met_pt, met_phi, dilepton_px, dilepton_py) -> np.ndarray:
    """Missing momentum projected on the dilepton axis, sign flipped.

    axial MET = -MET cos(dphi(MET, pT_ll)) = -(MET vector . pT_ll vector) / |pT_ll|:
    +MET when the MET recoils against the dilepton system, -MET when it is parallel.
    0 where pT_ll = 0 (no axis).
    """
    dilepton = vector.array({"x": np.asarray(dilepton_px, np.float64), "y": np.asarray(dilepton_py, np.float64)})
    return -safe_divide(transverse(met_pt, met_phi).dot(dilepton), dilepton.rho)


def razor_mr(e1, pz1, e2, pz2) -> np.ndarray:
    """Razor mass M_R = sqrt((E1 + E2)^2 - (pz1 + pz2)^2) of the two leptons.

    (Rogan, arXiv:1006.2727, with the two leptons in place of the two megajets.)  It is
    the dilepton energy in the frame where the dilepton has no longitudinal momentum.
    """
    return sqrt_clipped((e1 + e2) ** 2 - (pz1 + pz2) ** 2)


def razor_mtr(pt1, phi1, pt2, phi2, met_pt, met_phi) -> np.ndarray:
    """Razor transverse mass M_T^R.

    M_T^R = sqrt( [MET (pT1 + pT2) - MET vector . (pT1 vector + pT2 vector)] / 2 ).
    """
    visible = transverse(pt1, phi1) + transverse(pt2, phi2)
    return sqrt_clipped((met_pt * (pt1 + pt2) - transverse(met_pt, met_phi).dot(visible)) / 2.0)


def razor_r(m_tr, m_r) -> np.ndarray:
    """Razor ratio R = M_T^R / M_R (0 where M_R = 0)."""
    return safe_divide(m_tr, m_r)


class SuperRazor(NamedTuple):
    """The four super-razor variables, flat float64 arrays (see :func:`super_razor`)."""

    sqrt_s_r: np.ndarray
    m_delta_r: np.ndarray
    dphi_r_beta: np.ndarray
    cos_theta_r1: np.ndarray


def _azimuthal_separation(first, second, scale) -> np.ndarray:
    """|dphi| between two transverse ``vector``s, :data:`UNDEFINED_ANGLE` if either is zero.

    A vector counts as zero when its length is below 1e-12 x ``scale`` (rounding noise).
    """
    threshold = NEGLIGIBLE * scale
    defined = (first.rho > threshold) & (second.rho > threshold)
    return np.where(defined, np.abs(first.deltaphi(second)), UNDEFINED_ANGLE)


def _velocity(px, py, pz, energy) -> vector.VectorNumpy3D:
    """beta = p / E as a 3D ``vector``, (0, 0, 0) where E = 0, shortened to |beta| <= 1 - 1e-12.

    |beta| = 1 happens only for a massless system (e.g. s_R = 0 for collinear leptons with
    the MET along them); capping keeps the boost finite.
    """
    components = [safe_divide(component, energy) for component in (px, py, pz)]
    shrink = np.minimum(1.0, safe_divide(1.0 - NEGLIGIBLE, np.sqrt(sum(c**2 for c in components)), where_zero=1.0))
    return vector.array({axis: c * shrink for axis, c in zip(("x", "y", "z"), components)})


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
       **cos_theta_r1** = |cos theta_R+1|, the cosine of the angle between lepton 1 boosted
       into its R+1 frame and beta_R+1.

    Where a reference vector vanishes (pT_ll = 0 or J_T = 0 for ``dphi_r_beta``,
    beta_R+1 = 0 for ``cos_theta_r1``) the angle is :data:`UNDEFINED_ANGLE`.  This is
    the recipe of the public implementations used by ATLAS (``superRazor``); the boosts
    are ``vector``'s ``boostZ`` and ``boost_beta3``.
    """
    pt1, eta1, phi1, pt2, eta2, phi2, met_pt, met_phi = (
        np.asarray(x, dtype=np.float64) for x in (pt1, eta1, phi1, pt2, eta2, phi2, met_pt, met_phi)
    )
    return _super_razor(momenta(pt1, eta1, phi1, 0.0), momenta(pt2, eta2, phi2, 0.0), met_pt, met_phi)


def _super_razor(lep1, lep2, met_pt: np.ndarray, met_phi: np.ndarray) -> SuperRazor:
    """:func:`super_razor` of two massless lepton four-momenta (``vector``)."""
    # 1. Longitudinal boost to the frame where the dilepton has pz = 0.
    beta_l = safe_divide(lep1.pz + lep2.pz, lep1.E + lep2.E)
    lep1, lep2 = lep1.boostZ(beta=-beta_l), lep2.boostZ(beta=-beta_l)

    # 2. Invisible system with the dilepton mass; centre-of-mass energy estimate.
    visible = lep1 + lep2
    total_e = visible.E + np.sqrt(met_pt**2 + np.maximum(visible.mass2, 0.0))
    total = visible.to_xy() + transverse(met_pt, met_phi)
    sqrt_s_r = sqrt_clipped(total_e**2 - total.rho2)

    # 3. Transverse boost to the R frame.
    dphi_r_beta = _azimuthal_separation(visible.to_xy(), total, scale=total_e)
    beta_r = _velocity(total.x, total.y, 0.0, total_e)
    lep1, lep2 = lep1.boost_beta3(-beta_r), lep2.boost_beta3(-beta_r)

    # 4. Opposite boosts to the R+1 frames: beta_R+1 = (p1 - p2) / (E1 + E2).
    difference, energy = lep1.to_xyz() - lep2.to_xyz(), lep1.E + lep2.E
    speed = np.minimum(safe_divide(difference.mag, energy), 1.0)
    m_delta_r = 0.5 * sqrt_s_r * np.sqrt(1.0 - speed**2)  # -> 0 for back-to-back leptons (speed 1)
    beta_rp1 = _velocity(difference.x, difference.y, difference.z, energy)
    rest1 = lep1.boost_beta3(-beta_rp1).to_xyz()
    cos_theta = safe_divide(rest1.dot(beta_rp1), rest1.mag * beta_rp1.mag)
    cos_theta_r1 = np.where(speed > NEGLIGIBLE, np.clip(np.abs(cos_theta), 0.0, 1.0), UNDEFINED_ANGLE)
    return SuperRazor(sqrt_s_r, m_delta_r, dphi_r_beta, cos_theta_r1)


def baldi_features(leptons, jets, met_pt, met_phi) -> dict[str, np.ndarray]:
    """The 10 variables of :data:`BALDI_FEATURES`, in that order.

    met_rel (:func:`met_rel`, nearest of the leptons and jets), axial_met
    (:func:`axial_met`), the razor razor_m_r, razor_m_tr, razor_r (:func:`razor_mr`,
    :func:`razor_mtr`, :func:`razor_r`), mt2 (:func:`mt2`) and the super-razor
    sqrt_s_r, m_delta_r, dphi_r_beta, cos_theta_r1 (:func:`super_razor`), all built
    from the two leading leptons and the MET.
    """
    require_fields(leptons, "leptons", LEPTON_FIELDS)
    require_fields(jets, "jets", ("phi",))
    met_pt, met_phi = as_flat_float(met_pt, "met_pt"), as_flat_float(met_phi, "met_phi")
    return baldi_from(leading_leptons(leptons), leptons, jets, met_pt, met_phi)


def baldi_from(pair: tuple[Lepton, Lepton], leptons, jets, met_pt, met_phi) -> dict[str, np.ndarray]:
    """:func:`baldi_features` from the already extracted two leading leptons."""
    lep1, lep2 = pair
    dilepton = lep1.p4 + lep2.p4
    objects_phi = ak.concatenate([leptons["phi"], jets["phi"]], axis=1)
    m_r = razor_mr(lep1.p4.E, lep1.p4.pz, lep2.p4.E, lep2.p4.pz)
    m_tr = razor_mtr(lep1.pt, lep1.phi, lep2.pt, lep2.phi, met_pt, met_phi)
    razor = _super_razor(massless(lep1.p4), massless(lep2.p4), met_pt, met_phi)
    features = {
        "met_rel": met_rel(met_pt, met_phi, objects_phi),
        "axial_met": axial_met(met_pt, met_phi, dilepton.px, dilepton.py),
        "razor_m_r": m_r,
        "razor_m_tr": m_tr,
        "razor_r": razor_r(m_tr, m_r),
        "mt2": mt2(lep1.pt, lep1.phi, lep1.mass, lep2.pt, lep2.phi, lep2.mass, met_pt, met_phi),
        **razor._asdict(),
    }
    return {name: np.asarray(features[name], dtype=np.float64) for name in BALDI_FEATURES}
