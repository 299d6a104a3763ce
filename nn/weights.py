"""Event weights for training: negative-weight policy, class balancing, resampling, ESS.

* :func:`apply_negative_weight_policy` -- ``keep`` the physics weights as they are, ``zero``
  the negative ones, or take their ``abs`` value.
* :func:`equalise_totals` -- rescale groups of events (classes, signal grid points) to the
  same total weight, keeping relative weights inside each group.
* :func:`effective_sample_size` -- (sum w)^2 / sum w^2, the number of unit-weight events
  with the same statistical power.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

__all__ = [
    "apply_negative_weight_policy",
    "effective_sample_size",
    "equalise_totals",
    "normalise_mean",
]


def apply_negative_weight_policy(weight: np.ndarray, policy: Literal["keep", "zero", "abs"]) -> np.ndarray:
    """A new array with the policy applied: ``keep`` (copy), ``zero`` (w<0 -> 0) or ``abs`` (|w|)."""
    weight = np.asarray(weight, dtype=np.float64)
    if policy == "keep":
        return weight.copy()
    if policy == "zero":
        return np.where(weight < 0, 0.0, weight)
    if policy == "abs":
        return np.abs(weight)
    raise ValueError(f"unknown negative-weight policy {policy!r}; use keep, zero or abs")


def equalise_totals(weight: np.ndarray, groups: np.ndarray, names: list[str] | None = None) -> np.ndarray:
    """Rescale each group (integer code in ``groups``) so that every group has total weight 1.

    Groups with no events are ignored.  Raises ``ValueError`` naming the group whose total
    weight is not positive (it cannot be rescaled).
    """
    weight = np.asarray(weight, dtype=np.float64)
    groups = np.asarray(groups, dtype=np.int64)
    n_groups = int(groups.max()) + 1 if groups.size else 0
    totals = np.bincount(groups, weights=weight, minlength=n_groups)
    present = np.bincount(groups, minlength=n_groups) > 0
    bad = np.flatnonzero(present & ~(totals > 0))
    if bad.size:
        label = names[bad[0]] if names is not None else int(bad[0])
        raise ValueError(f"class/group {label!r} has total weight {totals[bad[0]]!r} <= 0; it cannot be balanced")
    scale = np.divide(1.0, totals, out=np.zeros_like(totals), where=present)
    return weight * scale[groups]


def normalise_mean(weight: np.ndarray) -> np.ndarray:
    """``weight`` scaled so that its mean is 1 (a loss that averages w * l then has unit scale)."""
    weight = np.asarray(weight, dtype=np.float64)
    mean = weight.mean() if weight.size else 1.0
    if not mean > 0:
        raise ValueError(f"the mean event weight is {mean!r}; it must be > 0")
    return weight / mean


def effective_sample_size(weight: np.ndarray) -> float:
    """Kish's effective sample size (sum w)^2 / sum w^2 (0 for no events or all-zero weights)."""
    weight = np.asarray(weight, dtype=np.float64)
    sum_w2 = float(np.sum(weight * weight))
    return float(np.sum(weight)) ** 2 / sum_w2 if sum_w2 > 0 else 0.0
