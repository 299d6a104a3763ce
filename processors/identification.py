"""Object requirements as CMS and ATLAS analyses write them: kinematics, identification and
isolation working points from NanoAOD branches, jet ID; and the object cutflow they give.

Each collection's requirements are applied one after the other (:func:`requirements`), and the
number of objects that pass each one is counted (:func:`apply_requirements`), so the cutflow
shows what the working points cost:

========== ============================================ ========================================
collection requirement                                   branch (``selection.objects`` setting)
========== ============================================ ========================================
muons      pT > ``muon_pt_min``, abs(eta) < ``muon_abs_eta_max``  ``Muon_pt``, ``Muon_eta``
           identification ``muon_id`` (loose/medium/tight)       ``Muon_looseId`` / ``mediumId`` / ``tightId``
           isolation < ``muon_iso_max``                          ``Muon_<muon_iso_branch>`` (``pfRelIso04_all``)
electrons  pT, abs(eta)                                           ``Electron_pt``, ``Electron_eta``
           cut-based ID >= ``electron_id`` (veto 1 ... tight 4)  ``Electron_cutBased``
           isolation < ``electron_iso_max``                      ``Electron_<electron_iso_branch>`` (``pfRelIso03_all``)
jets       pT, abs(eta)                                           ``Jet_pt``, ``Jet_eta``
           jet ID bit ``jet_id`` (loose 1, tight 2, lepton veto 4) ``Jet_jetId``
========== ============================================ ========================================

The jets' overlap removal against the selected leptons is counted by :mod:`processors.objects`.
"""

from __future__ import annotations

import awkward as ak
import numpy as np

from analysis.core.config import ELECTRON_IDS, JET_IDS, ObjectSelection

from .inputs import object_field

__all__ = ["apply_requirements", "describe_objects", "requirements"]

#: Object collections and the step name of all their objects in the object cutflow.
ALL_OBJECTS = "all"


def _kinematics(events, collection: str, pt_min: float, abs_eta_max: float):
    pt = object_field(events, collection, "pt")
    eta = object_field(events, collection, "eta")
    return f"pT > {pt_min:g} GeV, |eta| < {abs_eta_max:g}", (pt > pt_min) & (abs(eta) < abs_eta_max)


def requirements(events, objects: ObjectSelection, collection: str) -> list[tuple[str, ak.Array]]:
    """The ``(step name, jagged mask)`` requirements of ``collection`` (``Muon``, ``Electron`` or
    ``Jet``) in application order; a working point set to none/null adds no step."""
    if collection == "Muon":
        steps = [_kinematics(events, "Muon", objects.muon_pt_min, objects.muon_abs_eta_max)]
        if objects.muon_id != "none":
            branch = f"{objects.muon_id}Id"
            steps.append((f"{objects.muon_id} ID (Muon_{branch})",
                          object_field(events, "Muon", branch, f"selection.objects.muon_id: {objects.muon_id}") != 0))
        if objects.muon_iso_max is not None:
            iso = object_field(events, "Muon", objects.muon_iso_branch, "selection.objects.muon_iso_max")
            steps.append((f"Muon_{objects.muon_iso_branch} < {objects.muon_iso_max:g}", iso < objects.muon_iso_max))
        return steps
    if collection == "Electron":
        steps = [_kinematics(events, "Electron", objects.electron_pt_min, objects.electron_abs_eta_max)]
        if objects.electron_id != "none":
            level = ELECTRON_IDS[objects.electron_id]
            cut_based = object_field(events, "Electron", "cutBased", f"selection.objects.electron_id: {objects.electron_id}")
            steps.append((f"{objects.electron_id} ID (Electron_cutBased >= {level})", cut_based >= level))
        if objects.electron_iso_max is not None:
            iso = object_field(events, "Electron", objects.electron_iso_branch, "selection.objects.electron_iso_max")
            steps.append((f"Electron_{objects.electron_iso_branch} < {objects.electron_iso_max:g}",
                          iso < objects.electron_iso_max))
        return steps
    if collection == "Jet":
        steps = [_kinematics(events, "Jet", objects.jet_pt_min, objects.jet_abs_eta_max)]
        if objects.jet_id != "none":
            bit = JET_IDS[objects.jet_id]
            jet_id = ak.values_astype(object_field(events, "Jet", "jetId", f"selection.objects.jet_id: {objects.jet_id}"),
                                      np.int64)
            steps.append((f"{objects.jet_id} jet ID (Jet_jetId & {bit})", (jet_id & bit) != 0))
        return steps
    raise ValueError(f"unknown collection {collection!r}")


def apply_requirements(steps: list[tuple[str, ak.Array]], n_objects: ak.Array) -> tuple[ak.Array, dict[str, int]]:
    """The combined jagged mask of ``steps`` and the object cutflow: objects of the chunk in
    total (``all``, from the per-event counts ``n_objects``) and after each step in turn."""
    counts = {ALL_OBJECTS: int(ak.sum(n_objects))}
    mask = None
    for name, step in steps:
        mask = step if mask is None else mask & step
        counts[name] = int(ak.sum(mask))
    return mask, counts


def describe_objects(objects: ObjectSelection) -> list[str]:
    """The object definitions in force, one line per collection, each setting marked
    ``(default)`` when the config left it out (logged at the start of every run)."""
    given = objects.model_fields_set

    def value(name: str, text: str) -> str:
        return text if name in given else f"{text} (default)"

    lines = []
    if objects.use_muons:
        parts = [value("muon_pt_min", f"pT > {objects.muon_pt_min:g} GeV"),
                 value("muon_abs_eta_max", f"|eta| < {objects.muon_abs_eta_max:g}"),
                 value("muon_id", "no ID" if objects.muon_id == "none" else f"{objects.muon_id} ID (Muon_{objects.muon_id}Id)"),
                 value("muon_iso_max", "no isolation" if objects.muon_iso_max is None
                       else f"Muon_{objects.muon_iso_branch} < {objects.muon_iso_max:g}")]
        lines.append("muons: " + ", ".join(parts))
    else:
        lines.append("muons: not used")
    if objects.use_electrons:
        parts = [value("electron_pt_min", f"pT > {objects.electron_pt_min:g} GeV"),
                 value("electron_abs_eta_max", f"|eta| < {objects.electron_abs_eta_max:g}"),
                 value("electron_id", "no ID" if objects.electron_id == "none"
                       else f"{objects.electron_id} ID (Electron_cutBased >= {ELECTRON_IDS[objects.electron_id]})"),
                 value("electron_iso_max", "no isolation" if objects.electron_iso_max is None
                       else f"Electron_{objects.electron_iso_branch} < {objects.electron_iso_max:g}")]
        lines.append("electrons: " + ", ".join(parts))
    else:
        lines.append("electrons: not used")
    if objects.use_jets:
        parts = [value("jet_pt_min", f"pT > {objects.jet_pt_min:g} GeV"),
                 value("jet_abs_eta_max", f"|eta| < {objects.jet_abs_eta_max:g}"),
                 value("jet_id", "no jet ID" if objects.jet_id == "none" else f"{objects.jet_id} jet ID"),
                 value("jet_lepton_overlap_dr", f"removed within dR < {objects.jet_lepton_overlap_dr:g} of a lepton"),
                 value("btag_branch", f"b-tag Jet_{objects.btag_branch}") + " > "
                 + value("btag_threshold", f"{objects.btag_threshold:g}"),
                 value("bjet_pt_min", f"b-jets counted above {objects.bjet_pt_min:g} GeV")]
        lines.append("jets: " + ", ".join(parts))
    else:
        lines.append("jets: not used")
    lines.append("MET: " + (value("met_flavour", f"{objects.met_flavour}_pt, {objects.met_flavour}_phi")
                            if objects.use_met else "not used (0)"))
    return lines
