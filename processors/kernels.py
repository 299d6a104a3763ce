"""Compiled kernels for object building on flat arrays: per-event ordering, merging, overlap.

Awkward's generic jagged operations (``ak.concatenate(axis=1)``, ``ak.argsort``,
``ak.cartesian`` + ``ak.all``) cost most of the selection stage on 100k-event chunks; the
same work on the flat contents and offsets of the collections, in one pass of a ``numba``
kernel, is an order of magnitude cheaper (see README, "Selection and features",
Performance). Every kernel loops over events and their (few) objects; the results equal the
awkward expressions they replace element for element:

- :func:`select_descending`: ``x[mask]`` then ``ak.argsort(pt, axis=1, ascending=False)``
  (stable: equal values keep their order), as flat indices into ``x`` (:func:`descending_order`
  without a mask);
- :func:`merge_descending`: ``ak.concatenate([a[mask_a], b[mask_b]], axis=1)`` then the above;
- :func:`far_from_all`: ``ak.all(delta_r(jets, leptons) > min_dr, axis=2)`` over the nested
  jet x lepton pairs, with dphi wrapped as ``(dphi + pi) % 2 pi - pi`` and every operation in
  the inputs' floating dtype (float32 for NanoAOD), as numpy computes it;
- :func:`event_sums` and :func:`event_minima`: ``ak.sum(values, axis=1)`` (added in order, in
  the values' dtype, as awkward does) and ``ak.fill_none(ak.min(values, axis=1), empty)``.

Kernels are compiled on first use and cached on disk (``cache=True``), so each worker process
of a cluster loads them instead of compiling.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["counts_from_mask", "descending_order", "event_minima", "event_sums", "far_from_all", "merge_descending",
           "select_descending"]


@numba.njit(cache=True, nogil=True)
def _sort_descending(order, keys, start, stop):
    """Stable insertion sort of ``order[start:stop]`` by ``keys[order]``, largest first."""
    for i in range(start + 1, stop):
        moving = order[i]
        value = keys[moving]
        j = i
        while j > start and keys[order[j - 1]] < value:
            order[j] = order[j - 1]
            j -= 1
        order[j] = moving


def select_descending(offsets: np.ndarray, mask: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The objects where ``mask`` is true, each event's ordered by ``keys``, largest first (stable).

    ``offsets``: n_events + 1 entries from 0. Returns the new offsets and, for every kept
    object, its flat index into the inputs.
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    none = np.zeros(len(offsets), dtype=np.int64)  # the merge with an empty second collection
    return _merge_descending(offsets, np.asarray(mask, dtype=np.bool_), none, np.zeros(0, dtype=np.bool_), np.asarray(keys))


def descending_order(offsets: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Flat indices that order the objects of each event by ``keys``, largest first; equal keys
    keep their order."""
    return select_descending(offsets, np.ones(len(keys), dtype=np.bool_), keys)[1]


@numba.njit(cache=True, nogil=True)
def _merge_descending(offsets_a, mask_a, offsets_b, mask_b, keys):
    n_events = len(offsets_a) - 1
    n_a = offsets_a[n_events]
    offsets = np.empty(n_events + 1, dtype=np.int64)
    offsets[0] = 0
    order = np.empty(len(keys), dtype=np.int64)
    out = 0
    for event in range(n_events):
        start = out
        for i in range(offsets_a[event], offsets_a[event + 1]):
            if mask_a[i]:
                order[out] = i
                out += 1
        for i in range(offsets_b[event], offsets_b[event + 1]):
            if mask_b[i]:
                order[out] = n_a + i
                out += 1
        offsets[event + 1] = out
        _sort_descending(order, keys, start, out)
    return offsets, order[:out]


def merge_descending(offsets_a: np.ndarray, mask_a: np.ndarray, keys_a: np.ndarray, offsets_b: np.ndarray,
                     mask_b: np.ndarray, keys_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The objects of two collections where their masks are true, merged event by event (``a``'s
    first), each event's then ordered by key, largest first (stable).

    Returns the merged offsets and, for every merged object, its index into
    ``concatenate([contents of a, contents of b])``.
    """
    keys = np.concatenate([np.asarray(keys_a), np.asarray(keys_b)])
    return _merge_descending(np.asarray(offsets_a, dtype=np.int64), np.asarray(mask_a, dtype=np.bool_),
                             np.asarray(offsets_b, dtype=np.int64), np.asarray(mask_b, dtype=np.bool_), keys)


@numba.njit(cache=True, nogil=True)
def _wrapped(difference, pi, two_pi):
    """(difference + pi) % two_pi - pi, as numpy's floating remainder gives it (a fast path for
    |difference + pi| < 2 two_pi, where fmod is a subtraction or the value itself)."""
    shifted = difference + pi
    if shifted >= 0 and shifted < two_pi:
        remainder = shifted
    elif shifted >= two_pi and shifted < 2 * two_pi:
        remainder = shifted - two_pi
    elif shifted < 0 and shifted > -two_pi:
        remainder = shifted + two_pi
    else:
        remainder = shifted % two_pi
    return remainder - pi


@numba.njit(cache=True, nogil=True)
def _far_from_all(jet_offsets, jet_mask, jet_eta, jet_phi, lepton_offsets, lepton_eta, lepton_phi, constants):
    pi, two_pi, min_dr = constants[0], constants[1], constants[2]
    keep = jet_mask.copy()
    for event in range(len(jet_offsets) - 1):
        first, last = lepton_offsets[event], lepton_offsets[event + 1]
        for jet in range(jet_offsets[event], jet_offsets[event + 1]):
            if not keep[jet]:
                continue
            for lepton in range(first, last):
                deta = jet_eta[jet] - lepton_eta[lepton]
                dphi = _wrapped(jet_phi[jet] - lepton_phi[lepton], pi, two_pi)
                if not np.sqrt(deta * deta + dphi * dphi) > min_dr:
                    keep[jet] = False
                    break
    return keep


def far_from_all(jet_offsets, jet_eta, jet_phi, lepton_offsets, lepton_eta, lepton_phi, min_dr: float,
                 jet_mask: np.ndarray | None = None) -> np.ndarray:
    """Flat mask of the jets (of those where ``jet_mask`` is true) farther than ``min_dr``
    (dR > min_dr) from every lepton of their event.

    Computed in the common floating dtype of the four coordinate arrays (the comparison too,
    ``min_dr`` cast to it), so the decisions equal numpy's on the same arrays.
    """
    dtype = np.result_type(jet_eta.dtype, jet_phi.dtype, lepton_eta.dtype, lepton_phi.dtype, np.float32)
    constants = np.array([np.pi, 2.0 * np.pi, min_dr], dtype=dtype)
    mask = np.ones(len(jet_eta), dtype=np.bool_) if jet_mask is None else np.asarray(jet_mask, dtype=np.bool_)
    return _far_from_all(np.asarray(jet_offsets, dtype=np.int64), mask, np.asarray(jet_eta, dtype=dtype),
                         np.asarray(jet_phi, dtype=dtype), np.asarray(lepton_offsets, dtype=np.int64),
                         np.asarray(lepton_eta, dtype=dtype), np.asarray(lepton_phi, dtype=dtype), constants)


def counts_from_mask(offsets: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Objects kept per event by the flat ``mask`` (``offsets``: n_events + 1 entries from 0)."""
    kept = np.concatenate([[0], np.cumsum(mask, dtype=np.int64)])
    return kept[offsets[1:]] - kept[offsets[:-1]]


@numba.njit(cache=True, nogil=True)
def _event_sums(offsets, values, out):
    for event in range(len(offsets) - 1):
        total = out[event]
        for i in range(offsets[event], offsets[event + 1]):
            total += values[i]
        out[event] = total
    return out


def event_sums(offsets: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per-event sums of the flat ``values`` (in order, accumulated in their dtype; 0 without objects)."""
    values = np.asarray(values)
    return _event_sums(np.asarray(offsets, dtype=np.int64), values, np.zeros(len(offsets) - 1, dtype=values.dtype))


@numba.njit(cache=True, nogil=True)
def _event_minima(offsets, values, out):
    for event in range(len(offsets) - 1):
        start, stop = offsets[event], offsets[event + 1]
        if stop > start:
            smallest = values[start]
            for i in range(start + 1, stop):
                smallest = min(smallest, values[i])
            out[event] = smallest
    return out


def event_minima(offsets: np.ndarray, values: np.ndarray, empty: float) -> np.ndarray:
    """Per-event minima of the flat ``values``; ``empty`` for events without objects."""
    values = np.asarray(values)
    return _event_minima(np.asarray(offsets, dtype=np.int64), values, np.full(len(offsets) - 1, empty, dtype=values.dtype))


def warm_up() -> None:
    """Run every kernel once on tiny inputs of the dtypes the processors give them (float32
    NanoAOD-style and float64 columns), so that their machine code (cached on disk) is loaded
    and numba started: :mod:`processors.warmup` does it in the forkserver of local Dask workers."""
    offsets = np.array([0, 2, 3], dtype=np.int64)
    mask = np.ones(3, dtype=np.bool_)
    for dtype in (np.float32, np.float64):
        values = np.array([3.0, 1.0, 2.0], dtype=dtype)
        select_descending(offsets, mask, values)
        merge_descending(offsets, mask, values, offsets, mask, values)
        far_from_all(offsets, values, values, offsets, values, values, 0.4, jet_mask=mask)
        event_sums(offsets, values)
        event_minima(offsets, values, np.pi)
