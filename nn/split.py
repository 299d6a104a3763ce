"""Deterministic train/validation/test split by a hash of (dataset, event number).

An event's split depends only on its dataset name, its event number, the split fractions and
the ``split_seed`` -- never on the row order, the chunking or the other events of a run -- so
the same event lands in the same split in every training run and at scoring time::

    from nn.split import assign_split, TRAIN
    split = assign_split(["WW", "WW", "slepton_200_40"], [17, 18, 17], (0.6, 0.2, 0.2))
    is_train = split == TRAIN

The hash is splitmix64 (Steele, Lea, Flood 2014) of the event number, mixed with a 64-bit
BLAKE2b digest of ``"<seed>:<dataset name>"``; its top 53 bits give a uniform number
u in [0, 1), and u < f_train is train, u < f_train + f_val validation, else test.  Everything
is vectorised numpy (no per-event Python loop).  :func:`event_uniform` exposes u itself, with
a ``purpose`` salt, for other per-event deterministic draws (e.g. background parameters).
"""

from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np

__all__ = [
    "SPLIT_NAMES",
    "TEST",
    "TRAIN",
    "VALIDATION",
    "assign_split",
    "dataset_hash",
    "event_uniform",
    "splitmix64",
]

TRAIN, VALIDATION, TEST = 0, 1, 2
#: Split names indexed by split code.
SPLIT_NAMES = ("train", "val", "test")

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def splitmix64(values: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser applied elementwise to a uint64 array (wrapping arithmetic)."""
    z = np.asarray(values, dtype=np.uint64) + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def dataset_hash(name: str, seed: int = 0, purpose: str = "split") -> np.uint64:
    """A stable 64-bit hash of a dataset name (BLAKE2b of ``"<purpose>:<seed>:<name>"``)."""
    digest = hashlib.blake2b(f"{purpose}:{seed}:{name}".encode(), digest_size=8).digest()
    return np.uint64(int.from_bytes(digest, "little"))


def _dataset_codes(dataset, dataset_names: Sequence[str] | None) -> tuple[np.ndarray, list[str]]:
    if dataset_names is not None:
        return np.asarray(dataset, dtype=np.int64), list(dataset_names)
    if isinstance(dataset, str):
        return np.zeros((), dtype=np.int64), [dataset]
    names, codes = np.unique(np.asarray(dataset, dtype=str), return_inverse=True)
    return codes, [str(name) for name in names]


def event_uniform(
    dataset,
    event,
    seed: int = 0,
    purpose: str = "split",
    dataset_names: Sequence[str] | None = None,
) -> np.ndarray:
    """A uniform number in [0, 1) per event, a pure function of (purpose, seed, dataset, event).

    ``dataset`` is a dataset name, an array of names, or -- with ``dataset_names`` -- an
    array of integer codes into ``dataset_names`` (as in :class:`nn.data.FeatureTable`).
    ``event`` is an array of (non-negative) event numbers; both broadcast.
    """
    codes, names = _dataset_codes(dataset, dataset_names)
    hashes = np.array([dataset_hash(name, seed, purpose) for name in names], dtype=np.uint64)
    event = np.asarray(event)
    if event.dtype.kind not in "ui":
        raise TypeError(f"event numbers must be integers, got dtype {event.dtype}")
    if event.dtype.kind == "i" and event.size and event.min() < 0:
        raise ValueError("event numbers must be >= 0")
    mixed = splitmix64(splitmix64(event.astype(np.uint64)) ^ hashes[codes])
    return (mixed >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


def assign_split(
    dataset,
    event,
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    seed: int = 0,
    dataset_names: Sequence[str] | None = None,
) -> np.ndarray:
    """Split code per event (:data:`TRAIN` 0, :data:`VALIDATION` 1, :data:`TEST` 2) as int8.

    ``fractions`` are (train, validation, test) and must sum to 1; ``seed`` is the config's
    ``training.split_seed`` (stored in the model artifact, so scoring can reproduce it).
    See :func:`event_uniform` for the accepted forms of ``dataset``.
    """
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-9:
        raise ValueError(f"split fractions must be three numbers >= 0 summing to 1, got {fractions}")
    u = event_uniform(dataset, event, seed=seed, purpose="split", dataset_names=dataset_names)
    split = np.full(u.shape, TEST, dtype=np.int8)
    split[u < fractions[0] + fractions[1]] = VALIDATION
    split[u < fractions[0]] = TRAIN
    return split
