"""Signal grid points as network inputs (parametrised network, Baldi et al. 2016).

A parametrised network sees the signal grid parameters (m_slepton, dm) as two extra inputs.
Signal events carry their own grid point; each background event gets a point drawn from the
signal parameter distribution -- the training weight share of each point -- by a
deterministic per-event draw (a hash of dataset, event number and seed, see
:func:`nn.split.event_uniform`), so the same event always gets the same point regardless of
row order.  At scoring time the network is evaluated at each grid point.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from analysis.core.names import point_name
from nn.split import event_uniform

__all__ = ["PARAMETER_NAMES", "draw_background_points", "match_points", "point_name"]

#: Names of the parameter inputs, appended after the features.
PARAMETER_NAMES = ("m_slepton", "dm")


def match_points(m_slepton: np.ndarray, dm: np.ndarray, points: Sequence[tuple[float, float]]) -> np.ndarray:
    """Index into ``points`` of each (m_slepton, dm) pair, -1 where it is none of them (e.g. NaN)."""
    codes = np.full(np.shape(m_slepton), -1, dtype=np.int32)
    for index, (m, d) in enumerate(points):  # one vectorised comparison per grid point
        hit = np.isclose(m_slepton, m, rtol=0, atol=1e-3) & np.isclose(dm, d, rtol=0, atol=1e-3)
        codes[hit] = index
    return codes


def draw_background_points(
    dataset: np.ndarray,
    event: np.ndarray,
    dataset_names: Sequence[str],
    probabilities: np.ndarray,
    seed: int,
) -> np.ndarray:
    """Grid-point index per background event, drawn with ``probabilities`` (a pure function of
    dataset, event number and ``seed``)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.ndim != 1 or probabilities.size == 0 or np.any(probabilities < 0) or not probabilities.sum() > 0:
        raise ValueError(f"point probabilities must be non-negative with a positive sum, got {probabilities}")
    cumulative = np.cumsum(probabilities / probabilities.sum())
    u = event_uniform(dataset, event, seed=seed, purpose="background-parameters", dataset_names=dataset_names)
    return np.minimum(np.searchsorted(cumulative, u, side="right"), probabilities.size - 1).astype(np.int32)
