"""Physics objects from a chunk of events: leptons, jets (with b-tags) and MET.

Works on events read with coffea's ``BaseSchema`` (flat branches such as ``Electron_pt``,
the generator's ntuples) and ``NanoAODSchema`` (collections such as ``events.Electron``),
from ROOT TTrees, RNTuples or Parquet. Object definitions (pT and eta thresholds, the
b-tag discriminant and working point, jet-lepton overlap removal, NanoAOD identification and
isolation working points and jet ID (:mod:`processors.identification`), the MET flavour) come
from the config's ``selection.objects`` section; the objects passing each requirement are
counted (``Objects.cutflow``). A branch the config needs but the file lacks raises
:class:`MissingBranchError` naming the branch and the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dataclass_field

import awkward as ak
import numpy as np

from analysis.core.config import ObjectSelection
from analysis.core.errors import UserError

from .features import LEPTON_FIELDS
from .features.kinematics import flat_field
from .identification import apply_requirements, requirements
from .kernels import counts_from_mask, far_from_all, merge_descending, select_descending

#: The lepton fields read from the input (``LEPTON_FIELDS`` less ``flavour``, set per collection).
LEPTON_BRANCH_FIELDS = tuple(field for field in LEPTON_FIELDS if field != "flavour")
JET_FIELDS = ("pt", "eta", "phi", "mass")


class MissingBranchError(UserError, KeyError):
    """A branch the analysis needs is not in the input file."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


@dataclass
class Objects:
    """The selected objects of a chunk, as awkward arrays (one entry per event)."""

    leptons: ak.Array  # pt, eta, phi, mass, charge, flavour (11 or 13); pT-ordered
    jets: ak.Array  # pt, eta, phi, mass, btag; pT-ordered, overlap-removed
    met_pt: np.ndarray
    met_phi: np.ndarray
    #: objects of the chunk passing each requirement in turn, per collection (identification.py)
    cutflow: dict[str, dict[str, int]] = dataclass_field(default_factory=dict)


def _source(events) -> str:
    metadata = getattr(events, "metadata", None) or {}
    return metadata.get("filename", "<events>")


def _field(events, collection: str, field: str):
    """``collection.field`` from NanoAOD-style events, or the flat branch ``collection_field``."""
    if collection in events.fields and field in events[collection].fields:
        return events[collection][field]
    branch = f"{collection}_{field}"
    if branch in events.fields:
        return events[branch]
    raise MissingBranchError(f"branch {branch!r} is missing in {_source(events)}")


class FlatBranches:
    """The object branches of a chunk as flat numpy contents, by branch name (``Muon_pt``).

    Works like the events for :func:`processors.inputs.object_field` (``fields`` membership,
    item access, ``metadata``), so the requirements of :mod:`processors.identification` give
    flat masks. Each branch is flattened once; every field of a collection must have the
    collection's object counts (:class:`MissingBranchError` names the branch otherwise).
    """

    def __init__(self, events):
        self.events = events
        self.metadata = getattr(events, "metadata", None) or {}
        self.fields = self  # ``branch in flat.fields``
        self._values: dict[str, np.ndarray] = {}
        self._offsets: dict[str, np.ndarray] = {}

    def __contains__(self, branch) -> bool:
        collection, _, field = str(branch).partition("_")
        if not field:
            return False
        fields = self.events.fields
        return (collection in fields and field in self.events[collection].fields) or branch in fields

    def __getitem__(self, branch: str) -> np.ndarray:
        if branch not in self._values:
            collection, _, field = branch.partition("_")
            offsets, values = flat_field(_field(self.events, collection, field))
            known = self._offsets.setdefault(collection, offsets)
            if known is not offsets and not np.array_equal(known, offsets):
                raise MissingBranchError(f"branch {branch} in {_source(self.events)} has other object counts than "
                                         f"the other {collection} branches")
            self._values[branch] = values
        return self._values[branch]

    def offsets(self, collection: str) -> np.ndarray:
        """Per-event offsets of ``collection`` (after one of its branches was read)."""
        return self._offsets[collection]


@dataclass
class FlatCollection:
    """A jagged collection as per-event ``offsets`` (n_events + 1, from 0) and flat field contents.

    Object building works on these (numpy and :mod:`processors.kernels`), which is an order of
    magnitude cheaper than awkward's generic jagged operations; :meth:`to_awkward` gives the
    records the features read (zero-copy).
    """

    offsets: np.ndarray
    fields: dict[str, np.ndarray]

    @classmethod
    def from_events(cls, flat: FlatBranches, collection: str, fields: tuple[str, ...]) -> FlatCollection:
        """``collection``'s ``fields`` (NanoAOD collection or flat ``<collection>_<field>`` branches)."""
        contents = {name: flat[f"{collection}_{name}"] for name in fields}
        return cls(flat.offsets(collection), contents)

    @classmethod
    def empty(cls, n_events: int, fields: dict[str, type]) -> FlatCollection:
        """``n_events`` events without objects, with the given fields and dtypes."""
        return cls(np.zeros(n_events + 1, dtype=np.int64), {name: np.zeros(0, dtype=dtype) for name, dtype in fields.items()})

    @property
    def counts(self) -> np.ndarray:
        """Objects per event."""
        return np.diff(self.offsets)

    def select(self, mask: np.ndarray) -> FlatCollection:
        """The objects where the flat boolean ``mask`` is true (order kept)."""
        offsets = np.zeros_like(self.offsets)
        offsets[1:] = counts_from_mask(self.offsets, mask)
        np.cumsum(offsets, out=offsets)
        return FlatCollection(offsets, {name: values[mask] for name, values in self.fields.items()})

    def take(self, offsets: np.ndarray, index: np.ndarray) -> FlatCollection:
        """The objects at the flat ``index``, grouped per event by ``offsets``."""
        return FlatCollection(offsets, {name: values[index] for name, values in self.fields.items()})

    def with_field(self, name: str, values: np.ndarray) -> FlatCollection:
        """The same objects with one more flat field."""
        return FlatCollection(self.offsets, {**self.fields, name: values})

    def to_awkward(self) -> ak.Array:
        """A jagged record array of the objects (one list per event)."""
        record = ak.contents.RecordArray([ak.contents.NumpyArray(values) for values in self.fields.values()],
                                         list(self.fields), length=int(self.offsets[-1]))
        return ak.Array(ak.contents.ListOffsetArray(ak.index.Index64(self.offsets), record))


def _lepton_candidates(flat: FlatBranches, name: str, objects: ObjectSelection, cutflow: dict):
    """All leptons of collection ``name`` and the flat mask of those passing its requirements."""
    leptons = FlatCollection.from_events(flat, name, LEPTON_BRANCH_FIELDS)
    mask, cutflow[name] = apply_requirements(requirements(flat, objects, name), leptons.counts)
    return leptons, np.asarray(mask, dtype=bool)


def _merge_leptons(candidates: list[tuple[FlatCollection, np.ndarray, int]]) -> FlatCollection:
    """The selected electrons and muons in one collection per event, pT-ordered (largest first,
    stable: electrons before muons of equal pT), each gathered once from the input branches."""
    flavoured = [leptons.with_field("flavour", np.full(len(leptons.fields["pt"]), flavour, dtype=np.int32))
                 for leptons, _, flavour in candidates]
    if len(candidates) == 1:
        (only, mask, _), = candidates
        offsets, index = select_descending(only.offsets, mask, only.fields["pt"])
        return flavoured[0].take(offsets, index)
    (first, first_mask, _), (second, second_mask, _) = candidates
    offsets, index = merge_descending(first.offsets, first_mask, first.fields["pt"], second.offsets, second_mask,
                                      second.fields["pt"])
    return FlatCollection(offsets, {name: np.concatenate([flavoured[0].fields[name], flavoured[1].fields[name]])[index]
                                    for name in flavoured[0].fields})


def select_objects(events, objects: ObjectSelection) -> Objects:
    """Leptons, jets and MET of a chunk according to the object definitions in ``objects``.

    Collections switched off in the config (``use_electrons``, ``use_jets``, ``use_met``)
    are empty (MET = 0), for inputs that do not have them (e.g. a muon-only dataset).
    The collections are built on flat arrays (:class:`FlatCollection`, :mod:`processors.kernels`).
    """
    n_events = len(events)
    flat = FlatBranches(events)
    candidates, cutflow = [], {}
    if objects.use_electrons:
        candidates.append((*_lepton_candidates(flat, "Electron", objects, cutflow), 11))
    if objects.use_muons:
        candidates.append((*_lepton_candidates(flat, "Muon", objects, cutflow), 13))
    if candidates:
        leptons = _merge_leptons(candidates)
    else:
        leptons = FlatCollection.empty(n_events, {**dict.fromkeys(LEPTON_FIELDS, np.float64), "flavour": np.int32})

    if objects.use_jets:
        jets = FlatCollection.from_events(flat, "Jet", JET_FIELDS)
        jets = jets.with_field("btag", flat[f"Jet_{objects.btag_branch}"] > objects.btag_threshold)
        mask, cutflow["Jet"] = apply_requirements(requirements(flat, objects, "Jet"), jets.counts)
        keep = remove_overlaps(jets, np.asarray(mask, dtype=bool), leptons, objects.jet_lepton_overlap_dr)
        if objects.jet_lepton_overlap_dr > 0:
            cutflow["Jet"][f"dR(jet, lepton) > {objects.jet_lepton_overlap_dr:g}"] = int(np.count_nonzero(keep))
        jets = jets.take(*select_descending(jets.offsets, keep, jets.fields["pt"]))
    else:
        jets = FlatCollection.empty(n_events, {**dict.fromkeys(JET_FIELDS, np.float64), "btag": np.bool_})

    if objects.use_met:
        met_pt = ak.to_numpy(_field(events, objects.met_flavour, "pt")).astype(np.float64)
        met_phi = ak.to_numpy(_field(events, objects.met_flavour, "phi")).astype(np.float64)
    else:
        met_pt = met_phi = np.zeros(n_events)
    return Objects(leptons=leptons.to_awkward(), jets=jets.to_awkward(), met_pt=met_pt, met_phi=met_phi,
                   cutflow=cutflow)


def remove_overlaps(jets: FlatCollection, mask: np.ndarray, leptons: FlatCollection, min_dr: float) -> np.ndarray:
    """Flat mask of the jets passing ``mask`` that lie farther than ``min_dr`` from every selected
    lepton of their event (dR > min_dr; none removed if ``min_dr`` <= 0)."""
    if min_dr <= 0:
        return mask
    return far_from_all(jets.offsets, jets.fields["eta"], jets.fields["phi"], leptons.offsets, leptons.fields["eta"],
                        leptons.fields["phi"], min_dr, jet_mask=mask)


def non_finite_counts(events, objects: ObjectSelection) -> dict[str, int]:
    """Branches of the collections ``objects`` uses with NaN or infinite values, and how many.

    Checks the kinematics (pt, eta, phi, mass) of electrons, muons and jets, the b-tag
    discriminant and MET: a NaN pT fails every cut silently, so such inputs must be named.
    """
    checks = []
    if objects.use_electrons:
        checks += [("Electron", field) for field in ("pt", "eta", "phi", "mass")]
    if objects.use_muons:
        checks += [("Muon", field) for field in ("pt", "eta", "phi", "mass")]
    if objects.use_jets:
        checks += [("Jet", field) for field in ("pt", "eta", "phi", "mass", objects.btag_branch)]
    if objects.use_met:
        checks += [(objects.met_flavour, "pt"), (objects.met_flavour, "phi")]
    counts = {}
    branches = FlatBranches(events)
    for collection, field in checks:
        values = _field(events, collection, field)
        if values.ndim == 2:  # a list of objects per event: the flat contents, from the layout
            flat = branches[f"{collection}_{field}"]
        else:
            flat = ak.to_numpy(ak.flatten(values, axis=None)) if values.ndim > 1 else ak.to_numpy(values)
        if flat.dtype.kind == "f":
            bad = int(np.count_nonzero(~np.isfinite(flat)))
            if bad:
                counts[f"{collection}_{field}"] = bad
    return counts
