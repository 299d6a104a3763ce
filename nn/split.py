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

**Cross-training** (``training.folds = k``, with a test fraction of exactly 1/k): u cut into k
equal slices gives each event its fold, :func:`event_fold` = floor(k u).  The network of fold j
is tested on the events of slice j and trained / validated on the others, which are split by
their position counted from the end of slice j (so each fold's train and validation fractions
are those of the config); every event is in the test split of exactly one fold's network, and
the score histograms hold all events instead of a fifth.
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
    "event_fold",
    "fold_count",
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
    fold: int | None = None,
) -> np.ndarray:
    """Split code per event (:data:`TRAIN` 0, :data:`VALIDATION` 1, :data:`TEST` 2) as int8.

    ``fractions`` are (train, validation, test) and must sum to 1; ``seed`` is the config's
    ``training.split_seed`` (stored in the model artifact, so scoring can reproduce it).
    ``fold``: the split of that fold's network in a cross-training of ``1 / fractions[2]``
    folds (module doc).  See :func:`event_uniform` for the accepted forms of ``dataset``.
    """
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-9:
        raise ValueError(f"split fractions must be three numbers >= 0 summing to 1, got {fractions}")
    u = event_uniform(dataset, event, seed=seed, purpose="split", dataset_names=dataset_names)
    if fold is None:
        split = np.full(u.shape, TEST, dtype=np.int8)
        split[u < fractions[0] + fractions[1]] = VALIDATION
        split[u < fractions[0]] = TRAIN
        return split
    folds = fold_count(fractions)
    if not 0 <= fold < folds:
        raise ValueError(f"fold {fold} is not one of the {folds} folds of test fraction {fractions[2]}")
    # the position in [0, 1 - 1/k) counted from the end of this fold's slice; the test events by their fold
    position = np.mod(u - (fold + 1) / folds, 1.0)
    split = np.where(position < fractions[0], TRAIN, VALIDATION).astype(np.int8)
    split[_fold_of(u, folds) == fold] = TEST
    return split


def fold_count(fractions: Sequence[float]) -> int:
    """The number of cross-training folds of split ``fractions``: 1 / test fraction, which must
    be a whole number >= 2."""
    test = float(fractions[2])
    folds = round(1.0 / test) if test > 0 else 0
    if folds < 2 or abs(folds * test - 1.0) > 1e-6:
        raise ValueError(f"cross-training needs a test fraction of 1/k for k >= 2 folds, got {test}")
    return folds


def event_fold(dataset, event, folds: int, seed: int = 0, dataset_names: Sequence[str] | None = None) -> np.ndarray:
    """The cross-training fold (0 .. ``folds`` - 1) of each event: floor(folds * u), int8."""
    return _fold_of(event_uniform(dataset, event, seed=seed, purpose="split", dataset_names=dataset_names), folds)


def _fold_of(u: np.ndarray, folds: int) -> np.ndarray:
    return np.minimum((u * folds).astype(np.int64), folds - 1).astype(np.int8)
