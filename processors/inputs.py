"""Event-level input branches: one value per event, read straight from the input files.

Cuts, features and control histograms may name branches of the input (``nMuon``,
``HLT_IsoMu24``, ``PV_npvs``, ``MET_sumEt``), and the event filters are such branches
(:func:`trigger_mask`: the OR of ``selection.triggers``; :func:`flag_mask`: the AND of
``selection.flags``). The same name works whichever way coffea built the events: a flat branch
(``BaseSchema``, RNTuple, Parquet), a field of a NanoAOD collection (``events.HLT.IsoMu24``
for ``HLT_IsoMu24`` with ``NanoAODSchema``) or a collection's counter (``nMuon`` is
``ak.num(events.Muon)`` there). A jagged branch (``Muon_pt``) is refused: name a derived
column (``lep1_pt``) instead.
"""

from __future__ import annotations

import awkward as ak
import numpy as np

from analysis.core.errors import UserError

__all__ = ["InputBranchError", "event_branch", "flag_mask", "object_field", "trigger_mask"]


class InputBranchError(UserError, KeyError):
    """An event-level branch a cut or filter needs is missing or is not one value per event."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


def _source(events) -> str:
    metadata = getattr(events, "metadata", None) or {}
    return metadata.get("filename", "<events>")


def _lookup(events, name: str):
    fields = events.fields
    if name in fields:
        return events[name]
    collection, _, field = name.partition("_")
    if field and collection in fields and field in events[collection].fields:
        return events[collection][field]
    if name.startswith("n") and name[1:] in fields and events[name[1:]].ndim > 1:
        return ak.num(events[name[1:]], axis=1)
    return None


def event_branch(events, name: str, used_by: str = "") -> np.ndarray:
    """The branch ``name`` of a chunk as a flat numpy array (one value per event).

    :class:`InputBranchError` naming the file (and ``used_by``, the setting that needs it) when
    the branch is missing or holds a list per event.
    """
    values = _lookup(events, name)
    where = f" (used by {used_by})" if used_by else ""
    if values is None:
        raise InputBranchError(f"branch {name!r}{where} is missing in {_source(events)}")
    if values.ndim != 1 or isinstance(ak.type(values).content, ak.types.RecordType):
        raise InputBranchError(f"branch {name!r}{where} in {_source(events)} holds a list or record per event, not one "
                               "value: cuts and features take event-level branches (use a derived column such as "
                               "lep1_pt for objects)")
    array = ak.to_numpy(values)
    if array.dtype.kind in "iu" and array.dtype.itemsize < 8:
        array = array.astype(np.int64)
    return array


def _as_bool(events, name: str, used_by: str) -> np.ndarray:
    array = event_branch(events, name, used_by)
    if array.dtype != np.bool_:
        array = array != 0
    return array


def trigger_mask(events, names) -> np.ndarray:
    """Events where at least one of the trigger branches ``names`` is true (all events if none)."""
    mask = np.zeros(len(events), dtype=bool) if names else np.ones(len(events), dtype=bool)
    for name in names:
        mask |= _as_bool(events, name, "selection.triggers")
    return mask


def flag_mask(events, names) -> np.ndarray:
    """Events where every event-filter branch of ``names`` is true (all events if none)."""
    mask = np.ones(len(events), dtype=bool)
    for name in names:
        mask &= _as_bool(events, name, "selection.flags")
    return mask


def object_field(events, collection: str, field: str, used_by: str = ""):
    """``collection.field`` of NanoAOD-style events, or the flat jagged branch ``collection_field``.

    :class:`InputBranchError` naming the branch, the setting that needs it and the file when absent.
    """
    if collection in events.fields and field in events[collection].fields:
        return events[collection][field]
    branch = f"{collection}_{field}"
    if branch in events.fields:
        return events[branch]
    where = f" (needed by {used_by})" if used_by else ""
    raise InputBranchError(f"branch {branch!r}{where} is missing in {_source(events)}")
