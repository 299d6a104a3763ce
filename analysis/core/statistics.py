"""Discovery significance, threshold scans, effective sample sizes and MC-statistical errors.

* :func:`asimov_significance` -- the median discovery significance for ``s`` signal on
  ``b`` background events with an absolute background uncertainty ``sigma_b``
  (ATL-PHYS-PUB-2020-025, Eq. 1; Cowan, Cranmer, Gross, Vitells, EPJC 71 (2011) 1554),
  evaluated in float64 without catastrophic cancellation.
* :func:`threshold_scan` -- cumulative yields above each lower bin edge of a weighted
  classifier-score histogram and the significance of cutting there, optionally for a
  whole grid of signal points at once; the best threshold per grid point; the background's
  effective sample size above each threshold and Z's MC-statistical spread.
* :func:`effective_sample_size` -- (sum w)^2 / sum w^2, the number of unweighted events
  with the same relative statistical precision.
* :func:`significance_mc_error` -- the MC-statistical spread of Z from the sums of squared
  weights of s and b (linear propagation).

Classifier metrics (ROC, KS) live in :mod:`analysis.core.metrics`.

Conventions shared by this module:

* Invalid input (``b <= 0``, ``s < 0``, ``sigma_b < 0`` or a non-finite value) gives
  **NaN**, never a number that could pass for a real significance.  NaN also marks the
  thresholds of a scan that fail the minimum-yield rule.
* Everything is vectorised over numpy arrays with broadcasting; no per-event loops.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "ScanResult",
    "asimov_significance",
    "effective_sample_size",
    "significance_mc_error",
    "threshold_scan",
]

# Below this |y| the helper functions use their Taylor series (24 terms reach 1e-24).
_SERIES_CUT = 0.1
_SERIES_TERMS = 24
# Below this eps = b / (b + sigma_b**2) the difference r(x) - r(w) is integrated by
# Gauss-Legendre quadrature instead of subtracted (which would lose ~log10(1/eps) digits).
_QUADRATURE_CUT = 0.1
_GAUSS_NODES, _GAUSS_WEIGHTS = np.polynomial.legendre.leggauss(12)


# --------------------------------------------------------------- stable helpers


def _series(y: np.ndarray, coefficients: np.ndarray) -> np.ndarray:
    """Horner evaluation of sum_k coefficients[k] * y**k."""
    result = np.zeros_like(y)
    for c in coefficients[::-1]:  # fixed number of terms, vectorised over y
        result = result * y + c
    return result


_N = np.arange(_SERIES_TERMS, dtype=np.float64)
_SIGN = (-1.0) ** _N
# r(y) = sum_{k>=0} (-1)^k y^(k+1) / ((k+1)(k+2))
_R_COEFFS = _SIGN / ((_N + 1.0) * (_N + 2.0))
# q(y) = sum_{k>=0} (-1)^k y^k / (k+2)
_Q_COEFFS = _SIGN / (_N + 2.0)


def _r(y: np.ndarray) -> np.ndarray:
    """r(y) = ((1+y) ln(1+y) - y) / y, with r(0) = 0, for y >= 0."""
    small = y < _SERIES_CUT
    safe = np.where(small, 1.0, y)
    tiny = np.where(small, y, 0.0)
    direct = (1.0 + 1.0 / safe) * np.log1p(safe) - 1.0
    return np.where(small, tiny * _series(tiny, _R_COEFFS), direct)


def _q(y: np.ndarray) -> np.ndarray:
    """q(y) = r'(y) = (y - ln(1+y)) / y**2, with q(0) = 1/2, for y >= 0."""
    small = y < _SERIES_CUT
    safe = np.where(small, 1.0, y)
    tiny = np.where(small, y, 0.0)
    direct = (safe - np.log1p(safe)) / safe / safe
    return np.where(small, _series(tiny, _Q_COEFFS), direct)


def _r_difference(x: np.ndarray, w: np.ndarray, eps: np.ndarray) -> np.ndarray:
    """r(x) - r(w) for 0 <= w = (1 - eps) x <= x, accurate also when eps is tiny.

    For eps < 0.1 it integrates r'(y) = q(y) over [w, x] = [x - eps x, x] with 12-point
    Gauss-Legendre quadrature; q is analytic apart from y = -1, far outside the short
    interval, so the rule is exact to rounding.
    """
    close = eps < _QUADRATURE_CUT
    half_width = 0.5 * x * eps
    midpoint = x - half_width
    nodes = midpoint[..., None] + half_width[..., None] * _GAUSS_NODES
    integral = half_width * np.sum(_GAUSS_WEIGHTS * _q(nodes), axis=-1)
    return np.where(close, integral, _r(x) - _r(w))


# ----------------------------------------------------------------- significance


def asimov_significance(s: Any, b: Any, sigma_b: Any = 0.0) -> Any:
    r"""Median discovery significance Z for ``s`` signal over ``b`` +- ``sigma_b`` background.

    ATL-PHYS-PUB-2020-025, Eq. (1), with sigma = ``sigma_b`` the *absolute* background
    uncertainty (in events)::

        Z = sqrt(2 [ (s+b) ln((s+b)(b+sigma^2) / (b^2 + (s+b) sigma^2))
                     - (b^2/sigma^2) ln(1 + sigma^2 s / (b (b+sigma^2))) ])

    and its sigma -> 0 limit (Cowan, Cranmer, Gross, Vitells, EPJC 71 (2011) 1554)::

        Z0 = sqrt(2 ((s+b) ln(1 + s/b) - s))

    Numerics: with x = s/b, u = sigma^2/b, w = x u / (1+u) and
    r(y) = ((1+y) ln(1+y) - y)/y, the formula is exactly ``Z^2 = 2 s (r(x) - r(w))``
    (sigma = 0 gives w = 0, r(0) = 0, i.e. Z0).  r is evaluated by its Taylor series for
    small arguments, and the difference r(x) - r(w) by quadrature of r' when
    sigma^2 >> b, so there is no catastrophic cancellation anywhere (s << b, sigma -> 0,
    sigma -> infinity); the result is continuous in sigma at 0.

    Parameters broadcast against each other (numpy rules); computation is float64.

    Returns a float64 array of the broadcast shape (a numpy scalar for scalar input):
    ``0`` for ``s == 0``, and **NaN for invalid input**: ``b <= 0``, ``s < 0``,
    ``sigma_b < 0``, or any non-finite value -- never a finite number that could pass
    for a significance.
    """
    s, b, sigma_b = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (s, b, sigma_b)))
    valid = np.isfinite(s) & np.isfinite(b) & np.isfinite(sigma_b)
    valid &= (s >= 0.0) & (b > 0.0) & (sigma_b >= 0.0)
    # Harmless stand-ins where invalid, so that no warning is raised; masked below.
    s_ = np.where(valid, s, 0.0)
    b_ = np.where(valid, b, 1.0)
    sig_ = np.where(valid, sigma_b, 0.0)

    with np.errstate(divide="ignore", over="ignore"):
        x = s_ / b_
        u = sig_ * sig_ / b_
        eps = 1.0 / (1.0 + u)  # b / (b + sigma^2); 0 if sigma^2 overflows
        v = 1.0 / (1.0 + 1.0 / u)  # sigma^2 / (b + sigma^2); 0 at sigma = 0
    w = x * v
    z2 = 2.0 * s_ * _r_difference(x, w, eps)
    z = np.sqrt(np.maximum(z2, 0.0))
    z = np.where(valid, z, np.nan)
    return z[()] if z.ndim == 0 else z


# ---------------------------------------------------------------- threshold scan


@dataclass(frozen=True, eq=False)
class ScanResult:
    """Result of :func:`threshold_scan`.

    Arrays have shape ``(..., nbins)`` where ``...`` is the (possibly empty) grid-point
    shape; ``best_*`` have shape ``(...)`` (Python scalars without a grid axis).

    Attributes:
        thresholds: the lower bin edges, shape ``(nbins,)``; cut is ``score >= t``.
        s, b: cumulative signal and background yields above each threshold.
        sigma_b: absolute background uncertainty used at each threshold.
        z: Asimov significance; **NaN where the threshold is invalid**.
        valid: True where ``s >= min_signal``, ``b >= min_background`` and Z is finite.
        best_index: index of the highest valid Z (lowest threshold on ties);
            **-1** when no threshold is valid.
        best_threshold: ``thresholds[best_index]``; **NaN** when none is valid.
        best_z: the highest valid Z; **NaN** when none is valid.
        b_sumw2: cumulative sum of squared background weights above each threshold
            (NaN when ``background_sumw2`` was not given).
        background_ess: the background's effective sample size b^2 / b_sumw2 above each threshold.
        z_mc_error: MC-statistical spread of Z (:func:`significance_mc_error`); NaN where
            Z is NaN or the sums of squared weights were not given.
    """

    thresholds: np.ndarray
    s: np.ndarray
    b: np.ndarray
    sigma_b: np.ndarray
    z: np.ndarray
    valid: np.ndarray
    best_index: Any
    best_threshold: Any
    best_z: Any
    b_sumw2: np.ndarray | None = None
    background_ess: np.ndarray | None = None
    z_mc_error: np.ndarray | None = None


def _cumulative_above(counts: np.ndarray) -> np.ndarray:
    """Reverse cumulative sum over the last axis: out[..., i] = sum_{j >= i} counts[..., j]."""
    return np.flip(np.cumsum(np.flip(counts, axis=-1), axis=-1), axis=-1)


def _histogram_array(name: str, values: Any, nbins: int) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 0 or array.shape[-1] != nbins:
        raise ValueError(
            f"{name} must have shape (..., {nbins}) to match {nbins + 1} edges; "
            f"got shape {array.shape}"
        )
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains non-finite values")
    return array


def _check_edges(edges: Any) -> np.ndarray:
    edges = np.asarray(edges, dtype=np.float64)
    if edges.ndim != 1 or edges.size < 2:
        raise ValueError(f"edges must be 1-D with at least 2 entries; got shape {edges.shape}")
    if not np.all(np.diff(edges) > 0):
        raise ValueError("edges must be strictly increasing")
    return edges


def _best(z: np.ndarray, valid: np.ndarray, thresholds: np.ndarray):
    """Index, threshold and Z of the highest valid Z along the last axis."""
    any_valid = valid.any(axis=-1)
    index = np.argmax(np.where(valid, z, -np.inf), axis=-1)
    best_z = np.take_along_axis(z, index[..., None], axis=-1)[..., 0]
    best_z = np.where(any_valid, best_z, np.nan)
    best_threshold = np.where(any_valid, thresholds[index], np.nan)
    best_index = np.where(any_valid, index, -1)
    if best_index.ndim == 0:
        return int(best_index), float(best_threshold), float(best_z)
    return best_index, best_threshold, best_z


def threshold_scan(
    signal_counts: Any,
    signal_sumw2: Any,
    background_counts: Any,
    background_sumw2: Any,
    edges: Any,
    relative_bkg_uncertainty: float = 0.3,
    include_mc_stat: bool = False,
    min_signal: float = 3.0,
    min_background: float = 3.0,
    min_background_ess: float = 0.0,
) -> ScanResult:
    """Scan the lower threshold t on a classifier score and compute Z at each.

    Inputs are the per-bin sums of weights (``*_counts``) and of squared weights
    (``*_sumw2``) of a score histogram with bin ``edges`` (length nbins+1); arrays have
    shape ``(..., nbins)`` where a leading axis indexes signal grid points.  Signal and
    background broadcast against each other (a common background of shape ``(nbins,)``
    with a signal grid of shape ``(ngrid, nbins)`` is typical).  The sumw2 arrays may be
    ``None`` when unused (``signal_sumw2`` is only validated; ``background_sumw2`` is
    needed for ``include_mc_stat``).

    For each lower edge t_i = ``edges[i]``:

    * s(t_i) = sum_{j >= i} signal_counts[..., j], b(t_i) likewise (events with score >= t_i);
    * sigma_b = rel * b, or with ``include_mc_stat``
      sigma_b = sqrt((rel * b)^2 + sum_{j >= i} background_sumw2[..., j]);
    * Z = :func:`asimov_significance` (s, b, sigma_b) (ATL-PHYS-PUB-2020-025, Eq. 1).

    A threshold is **invalid** when s < ``min_signal`` or b < ``min_background``, when the
    background's effective sample size above it, b^2 / sum w^2, is below
    ``min_background_ess`` (needs ``background_sumw2``), or when Z is not finite (e.g.
    b <= 0); its Z is set to NaN.  The best threshold maximises Z over valid thresholds
    (the lowest one on ties); when none is valid, ``best_index`` is -1 and
    ``best_threshold`` and ``best_z`` are NaN.  With both sums of squared weights given,
    ``z_mc_error`` is Z's MC-statistical spread at every valid threshold.
    """
    edges = _check_edges(edges)
    nbins = edges.size - 1
    if not (np.isfinite(relative_bkg_uncertainty) and relative_bkg_uncertainty >= 0):
        raise ValueError(
            f"relative_bkg_uncertainty must be finite and >= 0; got {relative_bkg_uncertainty!r}"
        )
    signal = _histogram_array("signal_counts", signal_counts, nbins)
    background = _histogram_array("background_counts", background_counts, nbins)
    if signal_sumw2 is not None:
        np.broadcast_shapes(signal.shape, _histogram_array("signal_sumw2", signal_sumw2, nbins).shape)
    shape = np.broadcast_shapes(signal.shape, background.shape)

    s = np.broadcast_to(_cumulative_above(signal), shape)
    b = np.broadcast_to(_cumulative_above(background), shape)
    sigma_b = relative_bkg_uncertainty * b
    if include_mc_stat and background_sumw2 is None:
        raise ValueError("include_mc_stat=True needs background_sumw2")
    if min_background_ess > 0 and background_sumw2 is None:
        raise ValueError("min_background_ess > 0 needs background_sumw2")
    b_sumw2 = None
    if background_sumw2 is not None:
        sumw2 = _histogram_array("background_sumw2", background_sumw2, nbins)
        b_sumw2 = np.broadcast_to(np.clip(_cumulative_above(sumw2), 0.0, None), shape)
    if include_mc_stat:
        sigma_b = np.sqrt(sigma_b**2 + b_sumw2)
    sigma_b = np.broadcast_to(sigma_b, shape)

    z = asimov_significance(s, b, sigma_b)
    valid = (s >= min_signal) & (b >= min_background) & np.isfinite(z)
    ess = None
    if b_sumw2 is not None:
        ess = effective_sample_size(b, b_sumw2)
        valid &= ess >= min_background_ess
    z = np.where(valid, z, np.nan)
    z_error = np.full(shape, np.nan)
    if b_sumw2 is not None and signal_sumw2 is not None:
        s_sumw2 = np.broadcast_to(_cumulative_above(_histogram_array("signal_sumw2", signal_sumw2, nbins)), shape)
        z_error = significance_mc_error(s, s_sumw2, b, b_sumw2, relative_bkg_uncertainty, include_mc_stat)
        z_error = np.where(valid, z_error, np.nan)
    best_index, best_threshold, best_z = _best(z, valid, edges[:-1])
    return ScanResult(
        thresholds=edges[:-1].copy(),
        s=np.array(s),
        b=np.array(b),
        sigma_b=np.array(sigma_b),
        z=z,
        valid=valid,
        best_index=best_index,
        best_threshold=best_threshold,
        best_z=best_z,
        b_sumw2=None if b_sumw2 is None else np.array(b_sumw2),
        background_ess=None if ess is None else np.array(ess),
        z_mc_error=z_error,
    )


def effective_sample_size(sumw: Any, sumw2: Any) -> Any:
    """Kish's effective sample size (sum w)^2 / sum w^2, elementwise; 0 where sum w^2 == 0.

    The number of unweighted events that would give the same relative statistical
    uncertainty sqrt(sum w^2) / sum w as the weighted sample.

    >>> float(effective_sample_size(10.0, 10.0)), float(effective_sample_size(10.0, 25.0))
    (10.0, 4.0)
    """
    sumw, sumw2 = np.broadcast_arrays(np.asarray(sumw, dtype=np.float64), np.asarray(sumw2, dtype=np.float64))
    positive = sumw2 > 0
    ess = np.where(positive, np.square(sumw) / np.where(positive, sumw2, 1.0), 0.0)
    return ess[()] if ess.ndim == 0 else ess


def significance_mc_error(s: Any, s_sumw2: Any, b: Any, b_sumw2: Any, relative_bkg_uncertainty: float = 0.0,
                          include_mc_stat: bool = False) -> Any:
    """MC-statistical spread of Z = :func:`asimov_significance` (s, b, sigma_b), propagated:

    sigma_Z^2 = (dZ/ds)^2 sum w_s^2 + (dZ/db)^2 sum w_b^2,

    with sigma_b = rel x b, or sqrt((rel x b)^2 + sum w_b^2) with ``include_mc_stat`` (held
    fixed in the derivatives). The derivatives are central differences (relative step
    1e-5). The spread of simulated yields, not of a measurement: it says how much Z could
    move with another set of simulated events. NaN where Z is NaN.

    For sigma_b = 0 and s << b, Z ~ s / sqrt(b) and sigma_Z^2 ~ sum w_s^2 / b + s^2 sum w_b^2 / (4 b^3):

    >>> round(float(significance_mc_error(1.0, 0.01, 1.0e4, 1.0e2)), 6)
    0.001
    """
    arrays = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (s, s_sumw2, b, b_sumw2)))
    s, s_sumw2, b, b_sumw2 = arrays
    extra = b_sumw2 if include_mc_stat else np.zeros_like(b)

    def z_of(signal, background):
        return asimov_significance(signal, background, np.sqrt((relative_bkg_uncertainty * background) ** 2 + extra))

    h_s = 1e-5 * np.maximum(np.abs(s), 1e-12)
    h_b = 1e-5 * np.maximum(np.abs(b), 1e-12)
    with np.errstate(invalid="ignore"):
        dz_ds = (z_of(s + h_s, b) - z_of(np.maximum(s - h_s, 0.0), b)) / (h_s + np.minimum(h_s, s))
        dz_db = (z_of(s, b + h_b) - z_of(s, b - h_b)) / (2 * h_b)
    error = np.sqrt(dz_ds**2 * np.clip(s_sumw2, 0, None) + dz_db**2 * np.clip(b_sumw2, 0, None))
    error = np.where(np.isfinite(z_of(s, b)), error, np.nan)
    return error[()] if error.ndim == 0 else error
