"""Stransverse mass MT2 of two visible objects and the missing momentum (own implementation).

Vectorised over events through the concave dual of the MT2 problem (see :func:`mt2`); the
only Python loop is the fixed number of bisection steps, each acting on all events at once.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .kinematics import NEGLIGIBLE, delta_phi, safe_divide, sqrt_clipped


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
        met_ux=safe_divide(met_x, met_norm),  # unit vector, (0, 0) if MET = 0
        met_uy=safe_divide(met_y, met_norm),
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
    slack = NEGLIGIBLE * (radius_a + radius_b)

    # Optimum of the disc |t| <= b, if inside the other disc.
    in_other_1 = np.hypot(w_x + radius_b * kx_hat, w_y + radius_b * ky_hat) <= radius_a + slack
    value_1 = -radius_b * k_norm
    # Optimum of the disc |t - w| <= a, if inside the other disc.
    in_other_2 = np.hypot(w_x - radius_a * kx_hat, w_y - radius_a * ky_hat) <= radius_b + slack
    value_2 = w_x * k_x + w_y * k_y - radius_a * k_norm
    # Corners of the lens.
    w_norm = np.hypot(w_x, w_y)
    wx_hat, wy_hat = safe_divide(w_x, w_norm), safe_divide(w_y, w_norm)
    along = safe_divide(w_norm**2 + radius_b**2 - radius_a**2, 2.0 * w_norm)
    across = safe_divide(sqrt_clipped(outer_gap * inner_gap), 2.0 * w_norm)
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
    return sqrt_clipped(np.maximum.reduce(candidates))
