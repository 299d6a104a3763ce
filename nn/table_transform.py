"""Input transforms applied to the raw features before the standardisation (stored as JSON).

* ``none`` -- the features as they are (then standardised, as every network's inputs);
* ``quantile`` -- the Gaussian-rank transform: each feature is mapped through its empirical
  cumulative distribution on the training rows (at most :data:`QUANTILE_KNOTS` knots, linear in
  between; tied knots of a discrete feature share the middle level) and then through the
  inverse normal CDF, so every input is close to N(0, 1) whatever its tails (transverse
  momenta, masses) or its steps (b-tags).  Values outside the training range map to the end
  levels, clipped to [1e-4, 1 - 1e-4] (|z| <= 3.72).

Multilayer perceptrons on small tables gain from it (``benchmarks/tables.py``); trees are
indifferent to any monotonic transform.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from jax.scipy.special import ndtri

__all__ = ["QUANTILE_KNOTS", "TRANSFORMS", "InputTransform"]

TRANSFORMS = ("none", "quantile")
QUANTILE_KNOTS = 512
_EPS = 1e-4


class InputTransform:
    """A per-feature monotonic transform of kind ``none`` or ``quantile`` (see the module doc)."""

    def __init__(self, kind: str = "quantile", knots: Sequence[Sequence[float]] | None = None,
                 levels: Sequence[Sequence[float]] | None = None, feature_names: Sequence[str] = ()):
        if kind not in TRANSFORMS:
            raise ValueError(f"unknown input transform {kind!r}; known: {list(TRANSFORMS)}")
        self.kind = kind
        self.knots = [np.asarray(k, dtype=np.float64) for k in (knots or [])]
        self.levels = [np.asarray(v, dtype=np.float64) for v in (levels or [])]
        self.feature_names = tuple(feature_names)

    def fit(self, x: np.ndarray, feature_names: Sequence[str]) -> InputTransform:
        """Fit on the training rows ``x`` (n, d); returns self."""
        self.feature_names = tuple(feature_names)
        if self.kind == "none":
            return self
        x = np.asarray(x, dtype=np.float64)
        if x.shape[0] == 0:
            raise ValueError("cannot fit an input transform on no rows")
        probabilities = np.linspace(0.0, 1.0, min(QUANTILE_KNOTS, x.shape[0]))
        quantiles = np.quantile(x, probabilities, axis=0)
        self.knots, self.levels = [], []
        for j in range(x.shape[1]):
            knots, inverse = np.unique(quantiles[:, j], return_inverse=True)
            levels = np.bincount(inverse, weights=probabilities) / np.bincount(inverse)
            self.knots.append(knots)
            self.levels.append(levels)
        return self

    def apply(self, x: np.ndarray) -> np.ndarray:
        """The transformed float32 copy of raw features ``x`` (n, d) (``none``: ``x`` itself)."""
        if self.kind == "none":
            return np.asarray(x, dtype=np.float32)
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != len(self.knots):
            raise ValueError(f"the input transform expects {len(self.knots)} feature columns, got shape {x.shape}")
        out = np.empty(x.shape, dtype=np.float32)
        for j, (knots, levels) in enumerate(zip(self.knots, self.levels)):
            if knots.size == 1:
                out[:, j] = 0.0
                continue
            u = np.interp(x[:, j].astype(np.float64), knots, levels)
            u = np.clip(u, _EPS, 1.0 - _EPS)
            tail = np.minimum(u, 1.0 - u).astype(np.float32)  # the small tail probability: exact in float32
            out[:, j] = np.where(u > 0.5, -1.0, 1.0) * np.asarray(ndtri(tail))
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the ``input_transform`` entry of ``model.json``)."""
        return {"kind": self.kind, "feature_names": list(self.feature_names),
                "knots": [k.tolist() for k in self.knots], "levels": [v.tolist() for v in self.levels]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputTransform:
        """Inverse of :meth:`to_dict`; checks that knots increase and levels lie in [0, 1]."""
        transform = cls(data.get("kind", "none"), data.get("knots"), data.get("levels"), data.get("feature_names", ()))
        if len(transform.knots) != len(transform.levels):
            raise ValueError("input transform: knots and levels differ in length")
        for knots, levels in zip(transform.knots, transform.levels):
            if knots.shape != levels.shape or knots.size == 0 or np.any(np.diff(knots) <= 0) or not np.all(np.isfinite(knots)):
                raise ValueError("input transform: each feature needs increasing, finite knots with one level each")
            if np.any((levels < 0) | (levels > 1)):
                raise ValueError("input transform: levels must lie in [0, 1]")
        return transform
