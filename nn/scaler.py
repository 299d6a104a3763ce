"""Input standardisation x -> (x - mean) / std with statistics of the training split only.

The statistics are accumulated in float64 over row chunks (no float64 copy of the data) and
applied in place; a constant input (std 0, e.g. ``n_lepton`` after a two-lepton selection)
gets std 1.  The scaler is stored as plain JSON in the model artifact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Standardizer"]

_CHUNK_ROWS = 65_536


@dataclass(frozen=True, eq=False)
class Standardizer:
    """Per-column mean and standard deviation (float64 arrays of length d)."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> "Standardizer":
        """Column means and standard deviations of ``x`` (n, d), two passes over row chunks."""
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[0] == 0:
            raise ValueError(f"cannot fit a scaler on an array of shape {x.shape}")
        n, d = x.shape
        total = np.zeros(d)
        for start in range(0, n, _CHUNK_ROWS):
            total += x[start : start + _CHUNK_ROWS].sum(axis=0, dtype=np.float64)
        mean = total / n
        squares = np.zeros(d)
        for start in range(0, n, _CHUNK_ROWS):
            centred = x[start : start + _CHUNK_ROWS].astype(np.float64) - mean
            squares += np.einsum("ij,ij->j", centred, centred)
        std = np.sqrt(squares / n)
        std = np.where(std > 1e-12 * np.maximum(1.0, np.abs(mean)), std, 1.0)
        return cls(mean=mean, std=std)

    def transform_(self, x: np.ndarray) -> np.ndarray:
        """Standardise the float32 array ``x`` in place (chunked) and return it."""
        mean = self.mean.astype(x.dtype)
        inverse = (1.0 / self.std).astype(x.dtype)
        for start in range(0, x.shape[0], _CHUNK_ROWS):
            block = x[start : start + _CHUNK_ROWS]
            block -= mean
            block *= inverse
        return x

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``{"mean": [...], "std": [...]}``."""
        return {"mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Standardizer":
        """Inverse of :meth:`to_dict`; checks lengths and that every std is positive."""
        mean = np.asarray(data["mean"], dtype=np.float64)
        std = np.asarray(data["std"], dtype=np.float64)
        if mean.shape != std.shape or mean.ndim != 1:
            raise ValueError(f"scaler mean and std must be equal-length lists, got {mean.shape} and {std.shape}")
        if not (np.all(np.isfinite(mean)) and np.all(std > 0) and np.all(np.isfinite(std))):
            raise ValueError("scaler mean must be finite and std finite and > 0")
        return cls(mean=mean, std=std)
