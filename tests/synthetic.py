"""A synthetic feature store in exactly the processing stage's format (a test fixture, also used
by ``benchmarks/``).

:func:`write_synthetic_store` writes ``<store>/parts/*.parquet`` and ``<store>/schema.json``
with gaussian-like signal and background: background process k has features
x_j ~ N(mu_kj, s_kj); the signal of grid point (m, dm) has x_j ~ N(a_j(m, dm), 1), whose mean
moves with the grid point, so a parametrised network has something to learn.  One feature
(``n_lepton``) is constant, as after a two-lepton preselection, and one is a product of two
others (a non-linear interaction).  The separability is fixed by ``separation`` (0: none).
Weights mimic physics weights (cross section x luminosity / events); a fraction of background
events can carry negative weights, as from NLO generators.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from analysis.core.names import point_name

__all__ = ["DEFAULT_FEATURES", "DEFAULT_GRID", "take_rows", "write_synthetic_store"]

#: Feature names of the synthetic store (a few of the thesis variables' names).
DEFAULT_FEATURES = (
    "met",
    "lep1_pt",
    "lep2_pt",
    "mll",
    "mt_lep1",
    "mt_lep2",
    "dphi_lep1_met",
    "dr_ll",
    "ptll",
    "n_lepton",
    "met_x_mll",
)
#: Default signal grid (m_slepton, dm) in GeV.
DEFAULT_GRID = ((100.0, 10.0), (100.0, 40.0), (200.0, 10.0), (200.0, 40.0), (300.0, 40.0), (300.0, 75.0))
_BACKGROUNDS = {"WW": 10_000.0, "ttbar": 800.0, "ZZ": 1_200.0}  # cross sections in fb


def _signal_means(n_features: int, m_slepton: float, dm: float, separation: float) -> np.ndarray:
    """Mean vector of a grid point's signal: shifted along a direction that turns with (m, dm)."""
    j = np.arange(n_features)
    mass = (m_slepton - 200.0) / 100.0
    split = (dm - 40.0) / 35.0
    return separation * (0.6 + 0.4 * np.cos(j + 1.3 * mass) + 0.3 * split * np.sin(2.0 * j + 0.5))


def _events(rng, n: int, means: np.ndarray, scales: np.ndarray, names: Sequence[str]) -> np.ndarray:
    x = rng.normal(means, scales, size=(n, len(means))).astype(np.float32)
    columns = list(names)
    if "n_lepton" in columns:
        x[:, columns.index("n_lepton")] = 2.0
    if "met_x_mll" in columns and "met" in columns and "mll" in columns:
        product = x[:, columns.index("met")] * x[:, columns.index("mll")]
        x[:, columns.index("met_x_mll")] = product + rng.normal(0.0, 0.5, n).astype(np.float32)
    return x


def _weights(rng, n: int, xsec_fb: float, luminosity_fb: float, negative_fraction: float) -> np.ndarray:
    weight = np.full(n, xsec_fb * luminosity_fb / n)
    if negative_fraction > 0:
        negative = rng.random(n) < negative_fraction
        weight = np.where(negative, -weight, weight) / (1.0 - 2.0 * negative_fraction)
    return weight


def _write_parts(parts_dir: Path, name: str, columns: dict[str, np.ndarray], n_parts: int) -> None:
    n = len(columns["weight"])
    bounds = np.linspace(0, n, n_parts + 1).astype(int)
    for i in range(n_parts):
        lo, hi = bounds[i], bounds[i + 1]
        table = pa.table({key: pa.array(values[lo:hi]) for key, values in columns.items()})
        pq.write_table(table, parts_dir / f"{name}_{i:03d}.parquet")


def write_synthetic_store(
    store: str | Path,
    n_signal: int = 2_000,
    n_background: int = 6_000,
    grid: Sequence[tuple[float, float]] = DEFAULT_GRID,
    backgrounds: Sequence[str] = ("WW", "ttbar", "ZZ"),
    feature_names: Sequence[str] = DEFAULT_FEATURES,
    separation: float = 1.0,
    negative_fraction: float = 0.0,
    parts_per_dataset: int = 2,
    luminosity_fb: float = 139.0,
    seed: int = 0,
) -> Path:
    """Write a synthetic feature store to ``store`` and return its path.

    ``n_signal`` events per grid point and ``n_background`` per background process (from
    ``WW``, ``ttbar``, ``ZZ``), each dataset in ``parts_per_dataset`` Parquet parts with the
    columns of the real store (features float32, ``weight`` float64, ``label`` int8,
    ``dataset``/``process`` strings, ``m_slepton``/``dm`` float32 -- NaN for background --
    and ``event`` uint64).  ``negative_fraction`` of the background events get negative
    weights (the total stays the same).  Deterministic for a given ``seed``.
    """
    store = Path(store)
    parts_dir = store / "parts"
    parts_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    d = len(feature_names)
    datasets: dict[str, dict] = {}

    def columns_for(x, weight, label, name, process, m, dm):
        n = len(weight)
        columns = {feature: x[:, j] for j, feature in enumerate(feature_names)}
        columns.update(
            weight=weight.astype(np.float64),
            label=np.full(n, label, dtype=np.int8),
            dataset=np.full(n, name, dtype=object),
            process=np.full(n, process, dtype=object),
            m_slepton=np.full(n, m, dtype=np.float32),
            dm=np.full(n, dm, dtype=np.float32),
            event=(rng.permutation(n).astype(np.uint64) * np.uint64(3) + np.uint64(1000)),
        )
        return columns

    for k, process in enumerate(backgrounds):
        if process not in _BACKGROUNDS:
            raise ValueError(f"unknown synthetic background {process!r}; known: {sorted(_BACKGROUNDS)}")
        means = 0.3 * np.sin(np.arange(d) * (k + 1.0))
        scales = 1.0 + 0.3 * np.cos(np.arange(d) + k) ** 2
        x = _events(rng, n_background, means, scales, feature_names)
        weight = _weights(rng, n_background, _BACKGROUNDS[process], luminosity_fb, negative_fraction)
        _write_parts(parts_dir, process, columns_for(x, weight, 0, process, process, np.nan, np.nan), parts_per_dataset)
        datasets[process] = {"process": process, "is_signal": False, "m_slepton": None, "dm": None}

    for m_slepton, dm in grid:
        name = point_name(m_slepton, dm)
        x = _events(rng, n_signal, _signal_means(d, m_slepton, dm, separation), np.ones(d), feature_names)
        xsec = 50.0 * (100.0 / m_slepton) ** 4
        weight = _weights(rng, n_signal, xsec, luminosity_fb, 0.0)
        _write_parts(parts_dir, name, columns_for(x, weight, 1, name, "slepton", m_slepton, dm), parts_per_dataset)
        datasets[name] = {"process": "slepton", "is_signal": True, "m_slepton": float(m_slepton), "dm": float(dm)}

    schema = {"feature_names": list(feature_names), "feature_set": "synthetic", "datasets": datasets}
    (store / "schema.json").write_text(json.dumps(schema, indent=2))
    return store


def take_rows(table, rows: np.ndarray):
    """A copy of the :class:`nn.data.FeatureTable` ``table`` with only ``rows`` (an index or
    boolean array), e.g. to shuffle its row order."""
    per_row = ("features", "weight", "label", "dataset", "process", "m_slepton", "dm", "event")
    return dataclasses.replace(table, **{name: np.ascontiguousarray(getattr(table, name)[rows]) for name in per_row})
