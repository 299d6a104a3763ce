r"""Weighted training losses (pure jax.numpy, differentiable, jit-friendly).

All losses share one signature, built by :func:`make_loss`::

    loss(logits, target, weight, n_events, yield_scale) -> scalar

``logits`` is ``(n, k)`` (k = 1: binary; k > 1: classes, signal first), ``target`` the
integer class (binary: 1 signal / 0 background; multi-class: 0 signal, 1.. backgrounds),
``weight`` the per-event weight (0 for padding rows), ``n_events`` the number of real rows and
``yield_scale`` the factor that turns a batch's weighted sums into expected yields.

* ``bce``    weighted (binary or categorical) cross entropy, sum(w l) / n_events, with optional
             label smoothing: targets t = y (1 - alpha) + alpha / K (K = 2 for binary).
* ``focal``  focal loss (Lin et al. 2017): -sum_c t_c (1 - p_c)^gamma log p_c; gamma = 0 is
             the cross entropy.
* ``asimov`` L = 1 / (Z_A + eps) from the weighted batch yields s = yield_scale * sum_sig w p,
             b = yield_scale * sum_bkg w p (p = signal probability), sigma_b = rel * b
             (Elwood and Kruecker, arXiv:1806.00322), with Z_A from :func:`asimov_significance`,
             the differentiable twin of :func:`analysis.core.statistics.asimov_significance`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "LossSpec",
    "asimov_loss",
    "asimov_significance",
    "cross_entropy",
    "focal_loss",
    "make_loss",
]

# --------------------------------------------------------------- Asimov significance
# Same formula and algorithm as analysis/significance.py (Z^2 = 2 s (r(x) - r(w)), x = s/b,
# w = x u/(1+u), u = sigma^2/b), with the series / quadrature switch points moved so that the
# result is accurate to ~1e-6 also in float32: the Taylor series of r and q (converging for
# |y| < 1) is used below y = 0.5, and Gauss-Legendre quadrature of r' = q over [w, x] when
# b / (b + sigma^2) < 0.5 (the singularity of q at y = -1 then lies >= 2 half-widths away).
_SERIES_CUT = 0.5
_SERIES_TERMS = 24
_QUADRATURE_CUT = 0.5
_N = np.arange(_SERIES_TERMS, dtype=np.float64)
_R_COEFFS = tuple(float(c) for c in (-1.0) ** _N / ((_N + 1.0) * (_N + 2.0)))
_Q_COEFFS = tuple(float(c) for c in (-1.0) ** _N / (_N + 2.0))
_GAUSS_NODES, _GAUSS_WEIGHTS = (np.asarray(a, dtype=np.float32) for a in np.polynomial.legendre.leggauss(12))


def _series(y: jax.Array, coefficients: tuple[float, ...]) -> jax.Array:
    result = jnp.zeros_like(y)
    for c in coefficients[::-1]:
        result = result * y + c
    return result


def _r(y: jax.Array) -> jax.Array:
    """r(y) = ((1+y) ln(1+y) - y) / y, r(0) = 0 (series for small y; NaN-free gradients)."""
    small = y < _SERIES_CUT
    safe = jnp.where(small, 1.0, y)
    tiny = jnp.where(small, y, 0.0)
    return jnp.where(small, tiny * _series(tiny, _R_COEFFS), (1.0 + 1.0 / safe) * jnp.log1p(safe) - 1.0)


def _q(y: jax.Array) -> jax.Array:
    """q(y) = r'(y) = (y - ln(1+y)) / y^2, q(0) = 1/2."""
    small = y < _SERIES_CUT
    safe = jnp.where(small, 1.0, y)
    tiny = jnp.where(small, y, 0.0)
    return jnp.where(small, _series(tiny, _Q_COEFFS), (safe - jnp.log1p(safe)) / safe / safe)


def _r_difference(x: jax.Array, w: jax.Array, eps: jax.Array) -> jax.Array:
    """r(x) - r(w) for w = (1 - eps) x, by quadrature of q when eps is small."""
    half_width = 0.5 * x * eps
    nodes = (x - half_width)[..., None] + half_width[..., None] * _GAUSS_NODES
    integral = half_width * jnp.sum(_GAUSS_WEIGHTS * _q(nodes), axis=-1)
    return jnp.where(eps < _QUADRATURE_CUT, integral, _r(x) - _r(w))


def _safe_sqrt(value: jax.Array) -> jax.Array:
    positive = value > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, value, 1.0)), 0.0)


def _as_float(value) -> jax.Array:
    value = jnp.asarray(value)
    return value if jnp.issubdtype(value.dtype, jnp.floating) else value.astype(jnp.float32)


def asimov_significance(s, b, sigma_b=0.0) -> jax.Array:
    """Asimov discovery significance Z(s, b, sigma_b) in jax.numpy (differentiable in s, b, sigma_b).

    The same function as :func:`analysis.core.statistics.asimov_significance`
    (ATL-PHYS-PUB-2020-025 Eq. 1; sigma_b the absolute background uncertainty; Cowan et al.
    for sigma_b = 0): NaN for invalid input (b <= 0, s < 0, sigma_b < 0, non-finite), 0 for
    s = 0.  Computes in the inputs' floating dtype (float32 by default) and agrees with the
    float64 reference to ~1e-6 relative.  Gradients are finite wherever the input is valid.
    """
    s, b, sigma_b = jnp.broadcast_arrays(*(_as_float(v) for v in (s, b, sigma_b)))
    valid = jnp.isfinite(s) & jnp.isfinite(b) & jnp.isfinite(sigma_b) & (s >= 0) & (b > 0) & (sigma_b >= 0)
    s_ = jnp.where(valid, s, 0.0)
    b_ = jnp.where(valid, b, 1.0)
    sigma_ = jnp.where(valid, sigma_b, 0.0)
    x = s_ / b_
    u = sigma_ * sigma_ / b_
    eps = 1.0 / (1.0 + u)  # b / (b + sigma^2)
    w = x * (u / (1.0 + u))  # x sigma^2 / (b + sigma^2), finite gradient at sigma = 0
    z = _safe_sqrt(2.0 * s_ * _r_difference(x, w, eps))
    return jnp.where(valid, z, jnp.nan)


# --------------------------------------------------------------------------- losses


@dataclass(frozen=True)
class LossSpec:
    """Which loss and its settings (hashable: it is a static argument of the jitted steps)."""

    kind: str = "bce"
    label_smoothing: float = 0.0
    focal_gamma: float = 2.0
    relative_uncertainty: float = 0.3
    asimov_eps: float = 1e-3


def _smoothed_targets(target: jax.Array, n_outputs: int, smoothing: float) -> jax.Array:
    """Per-class targets (n, K) with K = max(2, n_outputs); binary classes are (bkg, sig)."""
    n_classes = max(2, n_outputs)
    one_hot = jax.nn.one_hot(target, n_classes, dtype=jnp.float32)
    return one_hot * (1.0 - smoothing) + smoothing / n_classes


def _log_probabilities(logits: jax.Array) -> jax.Array:
    """(n, K) log class probabilities; a single logit z gives (log(1-p), log p)."""
    if logits.shape[-1] == 1:
        z = logits[..., 0]
        return jnp.stack([-jax.nn.softplus(z), -jax.nn.softplus(-z)], axis=-1)
    return jax.nn.log_softmax(logits, axis=-1)


def cross_entropy(logits, target, weight, n_events, label_smoothing: float = 0.0) -> jax.Array:
    """Weighted cross entropy sum_i w_i l_i / n_events (binary for one logit, else categorical)."""
    log_p = _log_probabilities(logits)
    t = _smoothed_targets(target, logits.shape[-1], label_smoothing)
    per_event = -jnp.sum(t * log_p, axis=-1)
    return jnp.sum(weight * per_event) / n_events


def focal_loss(logits, target, weight, n_events, gamma: float = 2.0, label_smoothing: float = 0.0) -> jax.Array:
    """Weighted focal loss -sum_c t_c (1 - p_c)^gamma log p_c, averaged like :func:`cross_entropy`."""
    log_p = _log_probabilities(logits)
    t = _smoothed_targets(target, logits.shape[-1], label_smoothing)
    modulation = (1.0 - jnp.exp(log_p)) ** gamma if gamma else 1.0
    per_event = -jnp.sum(t * modulation * log_p, axis=-1)
    return jnp.sum(weight * per_event) / n_events


def asimov_loss(
    logits, target, weight, yield_scale, relative_uncertainty: float = 0.3, eps: float = 1e-3
) -> jax.Array:
    """1 / (Z_A(s, b, rel * b) + eps) with soft yields s, b of the batch scaled by ``yield_scale``.

    ``weight`` should be physics weights (luminosity-normalised, not class-balanced).  b is
    floored at 1e-6 so that a batch without background (or with negative net background
    weight) stays finite.
    """
    probability = jax.nn.sigmoid(logits[..., 0]) if logits.shape[-1] == 1 else jax.nn.softmax(logits, -1)[..., 0]
    is_signal = (target == 1) if logits.shape[-1] == 1 else (target == 0)
    s = yield_scale * jnp.sum(jnp.where(is_signal, weight * probability, 0.0))
    b = yield_scale * jnp.sum(jnp.where(is_signal, 0.0, weight * probability))
    s = jnp.maximum(s, 0.0)
    b = jnp.maximum(b, 1e-6)
    z = asimov_significance(s, b, relative_uncertainty * b)
    return 1.0 / (z + eps)


def make_loss(spec: LossSpec) -> Callable[..., jax.Array]:
    """The loss function ``(logits, target, weight, n_events, yield_scale) -> scalar`` of ``spec``."""
    if spec.kind == "bce":
        return lambda logits, target, weight, n_events, yield_scale: cross_entropy(
            logits, target, weight, n_events, spec.label_smoothing
        )
    if spec.kind == "focal":
        return lambda logits, target, weight, n_events, yield_scale: focal_loss(
            logits, target, weight, n_events, spec.focal_gamma, spec.label_smoothing
        )
    if spec.kind == "asimov":
        return lambda logits, target, weight, n_events, yield_scale: asimov_loss(
            logits, target, weight, yield_scale, spec.relative_uncertainty, spec.asimov_eps
        )
    raise ValueError(f"unknown loss {spec.kind!r}; use bce, focal or asimov")
