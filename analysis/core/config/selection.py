"""The ``selection``, ``features`` and ``control`` sections: objects, cuts, features, control histograms."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import (
    Field,
    StrictInt,
    field_validator,
    model_validator,
)

from analysis.core.config.base import _Section

#: NanoAOD working points: muon IDs (boolean branches ``Muon_<id>Id``), electron cut-based
#: levels (``Electron_cutBased >= level``) and jet-ID bits (``Jet_jetId & bit``).
MUON_IDS = ("none", "loose", "medium", "tight")
ELECTRON_IDS = {"none": 0, "veto": 1, "loose": 2, "medium": 3, "tight": 4}
JET_IDS = {"none": 0, "loose": 1, "tight": 2, "tight_lepton_veto": 4}
_BRANCH_FIELD = r"^[A-Za-z_][A-Za-z0-9_]*$"


class ObjectSelection(_Section):
    """Object definitions applied before the event preselection.

    The b-tag is ``Jet_<btag_branch> > btag_threshold``: ``btag`` > 0.5 for the generator's
    boolean flag; for CMS NanoAOD e.g. ``btagDeepFlavB`` > 0.2783 (DeepJet medium, 2018).
    Collections can be switched off for inputs that lack them (a muon-only dataset).
    NanoAOD working points: ``muon_id`` (``Muon_tightId`` ...), ``muon_iso_max`` (on
    ``Muon_pfRelIso04_all``), ``electron_id`` (``Electron_cutBased`` level), ``electron_iso_max``,
    ``jet_id`` (a ``Jet_jetId`` bit) and ``met_flavour`` (``MET``, ``PuppiMET``); every field left
    out keeps its default, which the run logs (``(default)``) before it starts.
    """

    use_electrons: bool = True
    use_muons: bool = True
    use_jets: bool = True
    use_met: bool = True
    electron_pt_min: float = Field(default=10.0, ge=0)
    electron_abs_eta_max: float = Field(default=2.47, gt=0)
    muon_pt_min: float = Field(default=10.0, ge=0)
    muon_abs_eta_max: float = Field(default=2.5, gt=0)
    jet_pt_min: float = Field(default=20.0, ge=0)
    jet_abs_eta_max: float = Field(default=4.5, gt=0)
    bjet_pt_min: float = Field(default=20.0, ge=0)
    btag_branch: str = Field(default="btag", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    btag_threshold: float = 0.5
    jet_lepton_overlap_dr: float = Field(default=0.4, ge=0, description="jets this close to a selected lepton are removed")
    # NanoAOD identification and isolation working points (processors/identification.py); "none" / null: not applied
    muon_id: Literal[MUON_IDS] = Field(default="none", description="Muon_<id>Id must be true (NanoAOD looseId, mediumId, tightId)")
    muon_iso_max: float | None = Field(default=None, gt=0, description="Muon_<muon_iso_branch> < this (relative isolation)")
    muon_iso_branch: str = Field(default="pfRelIso04_all", pattern=_BRANCH_FIELD)
    electron_id: Literal[tuple(ELECTRON_IDS)] = Field(
        default="none", description="Electron_cutBased >= the level (veto 1, loose 2, medium 3, tight 4)")
    electron_iso_max: float | None = Field(default=None, gt=0, description="Electron_<electron_iso_branch> < this")
    electron_iso_branch: str = Field(default="pfRelIso03_all", pattern=_BRANCH_FIELD)
    jet_id: Literal[tuple(JET_IDS)] = Field(
        default="none", description="bit of Jet_jetId that must be set (loose 1, tight 2, tight_lepton_veto 4)")
    met_flavour: str = Field(default="MET", pattern=r"^[A-Za-z][A-Za-z0-9]*$",
                             description="the MET collection: MET (MET_pt, MET_phi), PuppiMET, ChsMET, ...")


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def _check_names(names, what: str) -> None:
    bad = [name for name in names if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name)]
    if bad:
        raise ValueError(f"{what} must be names of letters, digits and '_' (not starting with a digit, at most 64 "
                         f"characters); got {bad}")


class SelectionConfig(_Section):
    """Objects, event filters and the ordered preselection cuts (safe expressions).

    ``triggers``: HLT branches of which at least one must be true (``HLT_IsoMu24``);
    ``flags``: event-filter branches that must all be true (``Flag_goodVertices``). Each is a
    counted cutflow step before the cuts. Cuts are safe expressions over the derived columns
    (features, object counts) and event-level input branches (``nMuon == 2``, ``PV_npvs > 0``).
    """

    objects: ObjectSelection = Field(default_factory=ObjectSelection)
    triggers: list[str] = Field(default_factory=list, description="HLT_* branches, OR: an event passes if any is true")
    flags: list[str] = Field(default_factory=list, description="Flag_* (event filter) branches, AND: all must be true")
    cuts: dict[str, str] = Field(default_factory=dict, description="name -> cut expression, applied in order")

    @field_validator("triggers", "flags")
    @classmethod
    def _branch_names(cls, names: list[str], info) -> list[str]:
        _check_names(names, info.field_name)
        if len(set(names)) != len(names):
            raise ValueError(f"a branch is listed twice: {names}")
        return names


class FeaturesConfig(_Section):
    """The classifier's inputs: a feature set, or features chosen by name, plus expressions.

    ``names`` (instead of ``set``) lists the features of the store in order: any derived
    column (the thesis and Baldi features, object counts), an event-level input branch or a
    name of ``expressions``, which defines new features as safe expressions over those columns
    (``pt_ratio: "lep2_pt / lep1_pt"``). Without ``names`` the store holds ``set`` followed by
    the ``expressions``.
    """

    set: Literal["thesis", "baldi", "all"] = "thesis"
    names: list[str] | None = Field(default=None, min_length=1, description="features by name (replaces set)")
    expressions: dict[str, str] = Field(default_factory=dict, description="name -> safe expression: new features")

    @field_validator("names")
    @classmethod
    def _unique_names(cls, names: list[str] | None) -> list[str] | None:
        if names is not None:
            _check_names(names, "feature names")
            repeated = sorted({name for name in names if names.count(name) > 1})
            if repeated:
                raise ValueError(f"feature(s) listed twice: {repeated}")
        return names

    @field_validator("expressions")
    @classmethod
    def _expression_names(cls, expressions: dict[str, str]) -> dict[str, str]:
        _check_names(list(expressions), "expression names")
        return expressions


class ControlHistogram(_Section):
    """One control histogram: a column (``variable``, default: the histogram's name) or a safe
    ``expression``, ``bins`` regular bins over ``range``, optionally with log axes."""

    variable: str | None = Field(default=None, description="the column filled; default: the histogram's name")
    expression: str | None = Field(default=None, description="a safe expression filled instead of a column")
    bins: StrictInt = Field(default=30, gt=0, le=10_000)
    range: tuple[float, float]
    label: str | None = Field(default=None, max_length=200, description="the axis label (default: the variable)")
    log_x: bool = Field(default=False, description="bins regular in log(x) (range low > 0)")
    log_y: bool = Field(default=False, description="log scale for the event counts")

    @model_validator(mode="after")
    def _valid(self) -> ControlHistogram:
        low, high = self.range
        if not low < high:
            raise ValueError(f"range [{low:g}, {high:g}] is empty: the low edge must be below the high edge")
        if self.log_x and low <= 0:
            raise ValueError(f"log_x needs a range above 0 (got low edge {low:g})")
        if self.variable is not None and self.expression is not None:
            raise ValueError("give a variable or an expression, not both")
        if self.variable is not None:
            _check_names([self.variable], "variable")
        return self

    def column(self, name: str) -> str:
        """The column this histogram fills (its expression is registered under ``name``)."""
        return self.variable or name


class ControlConfig(_Section):
    """Control histograms filled after the preselection, for every dataset (data and simulation).

    ``histograms`` maps a histogram name to its definition; left out, a default set fitting
    the objects in use is filled (:func:`control_histograms`). ``normalise_mc_to_data``: scale
    the simulation stack to the data yield in the data/MC figures (a shape comparison).
    """

    histograms: dict[str, ControlHistogram] | None = Field(
        default=None, description="name -> histogram; null: the defaults (m_ll, lepton pT, MET)")
    normalise_mc_to_data: bool = False

    @field_validator("histograms")
    @classmethod
    def _names(cls, histograms: dict | None) -> dict | None:
        if histograms is not None:
            _check_names(list(histograms), "control histogram names")
        return histograms
