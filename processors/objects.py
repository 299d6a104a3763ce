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

from .features import LEPTON_FIELDS, delta_r
from .identification import apply_requirements, requirements

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


def _collection(events, collection: str, fields: tuple[str, ...]) -> ak.Array:
    return ak.zip({field: _field(events, collection, field) for field in fields})


def _leptons(events, flavour: int, name: str, objects: ObjectSelection, cutflow: dict) -> ak.Array:
    leptons = _collection(events, name, LEPTON_BRANCH_FIELDS)
    mask, cutflow[name] = apply_requirements(requirements(events, objects, name), ak.num(leptons.pt, axis=1))
    leptons = leptons[mask]
    return ak.with_field(leptons, ak.full_like(leptons.pt, flavour, dtype=np.int32), "flavour")


def _empty_collection(n_events: int, fields: dict[str, type]) -> ak.Array:
    """``n_events`` empty lists of records with the given fields and dtypes."""
    no_objects = np.zeros(n_events, dtype=np.int64)
    return ak.zip({field: ak.unflatten(np.zeros(0, dtype=dtype), no_objects) for field, dtype in fields.items()})


def select_objects(events, objects: ObjectSelection) -> Objects:
    """Leptons, jets and MET of a chunk according to the object definitions in ``objects``.

    Collections switched off in the config (``use_electrons``, ``use_jets``, ``use_met``)
    are empty (MET = 0), for inputs that do not have them (e.g. a muon-only dataset).
    """
    n_events = len(events)
    collections, cutflow = [], {}
    if objects.use_electrons:
        collections.append(_leptons(events, 11, "Electron", objects, cutflow))
    if objects.use_muons:
        collections.append(_leptons(events, 13, "Muon", objects, cutflow))
    if collections:
        leptons = ak.concatenate(collections, axis=1) if len(collections) > 1 else collections[0]
        leptons = leptons[ak.argsort(leptons.pt, axis=1, ascending=False)]
    else:
        leptons = _empty_collection(n_events, {**dict.fromkeys(LEPTON_FIELDS, np.float64), "flavour": np.int32})

    if objects.use_jets:
        jets = _collection(events, "Jet", JET_FIELDS)
        jets = ak.with_field(jets, _field(events, "Jet", objects.btag_branch) > objects.btag_threshold, "btag")
        mask, cutflow["Jet"] = apply_requirements(requirements(events, objects, "Jet"), ak.num(jets.pt, axis=1))
        jets = remove_overlaps(jets[mask], leptons, objects.jet_lepton_overlap_dr)
        if objects.jet_lepton_overlap_dr > 0:
            cutflow["Jet"][f"dR(jet, lepton) > {objects.jet_lepton_overlap_dr:g}"] = int(ak.sum(ak.num(jets.pt, axis=1)))
        jets = jets[ak.argsort(jets.pt, axis=1, ascending=False)]
    else:
        jets = _empty_collection(n_events, {**dict.fromkeys(JET_FIELDS, np.float64), "btag": np.bool_})

    if objects.use_met:
        met_pt = ak.to_numpy(_field(events, objects.met_flavour, "pt")).astype(np.float64)
        met_phi = ak.to_numpy(_field(events, objects.met_flavour, "phi")).astype(np.float64)
    else:
        met_pt = met_phi = np.zeros(n_events)
    return Objects(leptons=leptons, jets=jets, met_pt=met_pt, met_phi=met_phi, cutflow=cutflow)


def remove_overlaps(jets: ak.Array, leptons: ak.Array, min_dr: float) -> ak.Array:
    """Jets farther than ``min_dr`` from every selected lepton (none removed if ``min_dr`` <= 0)."""
    if min_dr <= 0:
        return jets
    pairs = ak.cartesian({"jet": jets, "lep": leptons}, axis=1, nested=True)
    dr = delta_r(pairs.jet.eta, pairs.jet.phi, pairs.lep.eta, pairs.lep.phi)
    return jets[ak.all(dr > min_dr, axis=2)]


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
    for collection, field in checks:
        values = _field(events, collection, field)
        flat = ak.to_numpy(ak.flatten(values, axis=None)) if values.ndim > 1 else ak.to_numpy(values)
        if flat.dtype.kind == "f":
            bad = int(np.count_nonzero(~np.isfinite(flat)))
            if bad:
                counts[f"{collection}_{field}"] = bad
    return counts
