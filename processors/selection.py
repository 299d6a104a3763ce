"""The event preselection and its weighted cutflow.

Cuts are the config's ``selection.cuts``: an ordered mapping of name -> safe expression
(``processors/expressions.py``) over *cut columns*: the thesis features (defined for every
event, whatever its lepton count) plus a few counts that only cuts use (:data:`EXTRA_COLUMNS`).
Applying them in order gives the cutflow: after each cut, the raw event count, the sum of
weights, the sum of squared weights and the number of events with a negative weight.
"""

from __future__ import annotations

from dataclasses import dataclass

import awkward as ak
import numpy as np

from analysis.core.config import SelectionConfig
from analysis.core.errors import UserError

from .expressions import CutExpression, parse_cut
from .features import THESIS_FEATURES, compute_features
from .objects import Objects

#: Columns available to cuts besides the thesis features.
EXTRA_COLUMNS = ("n_electron", "n_muon", "n_jet30", "ht")
CUT_COLUMNS = (*THESIS_FEATURES, *EXTRA_COLUMNS)
INITIAL_STEP = "all events"


class SelectionConfigError(UserError, ValueError):
    """A cut that cannot be applied (unknown column); the message names the cut."""


@dataclass(frozen=True)
class Preselection:
    """Parsed, validated preselection cuts in application order."""

    names: tuple[str, ...]
    expressions: tuple[CutExpression, ...]
    btag_pt_min: float

    @classmethod
    def from_config(cls, selection: SelectionConfig) -> "Preselection":
        """Parse every cut once; refuse a cut over a column that does not exist."""
        names, expressions = [], []
        for name, text in selection.cuts.items():
            expression = parse_cut(text)
            unknown = sorted(expression.columns - set(CUT_COLUMNS))
            if unknown:
                raise SelectionConfigError(
                    f"selection.cuts.{name}: {text!r} uses unknown column(s) {unknown}; "
                    f"available: {', '.join(CUT_COLUMNS)}"
                )
            names.append(name)
            expressions.append(expression)
        return cls(tuple(names), tuple(expressions), selection.objects.bjet_pt_min)

    @property
    def steps(self) -> tuple[str, ...]:
        """Cutflow row names: the initial count, then one row per cut."""
        return (INITIAL_STEP, *self.names)


def cheap_columns(objects: Objects) -> dict[str, np.ndarray]:
    """Columns computed for every event of a chunk: object counts, MET, HT (no pairings)."""
    flavour = objects.leptons.flavour
    jets = objects.jets

    def count(values) -> np.ndarray:
        return ak.to_numpy(values).astype(np.float64)

    return {
        "n_lepton": count(ak.num(flavour, axis=1)),
        "n_electron": count(ak.sum(flavour == 11, axis=1)),
        "n_muon": count(ak.sum(flavour == 13, axis=1)),
        "n_jet": count(ak.num(jets.pt, axis=1)),
        "n_jet30": count(ak.sum(jets.pt > 30.0, axis=1)),
        "met": np.asarray(objects.met_pt, dtype=np.float64),
        "ht": count(ak.sum(jets.pt, axis=1)),
    }


def cut_columns(objects: Objects, btag_pt_min: float) -> dict[str, np.ndarray]:
    """Every column a cut may use (the thesis features and :data:`EXTRA_COLUMNS`), per event."""
    columns = compute_features(objects.leptons, objects.jets, objects.met_pt, objects.met_phi, "thesis", btag_pt_min)
    columns.update(cheap_columns(objects))
    return columns


def _subset(objects: Objects, rows: np.ndarray) -> Objects:
    return Objects(objects.leptons[rows], objects.jets[rows], objects.met_pt[rows], objects.met_phi[rows])


@dataclass
class Selection:
    """The outcome of the preselection on one chunk."""

    rows: np.ndarray  # indices of the selected events in the chunk
    cutflow: dict[str, np.ndarray]  # raw / sumw / sumw2 / negative, one entry per step
    columns: dict[str, np.ndarray]  # every cut column, for the selected events only


def apply_cuts(preselection: Preselection, objects: Objects, weights: np.ndarray) -> Selection:
    """Apply the cuts in order and record the cutflow of this chunk.

    Columns are computed lazily: :func:`cheap_columns` for every event, the full set of cut
    columns only when a cut first needs one, and then only for the events still selected at
    that point (after a MET or lepton-count cut, a few per cent of the chunk). The cutflow
    has one entry per step (:attr:`Preselection.steps`): ``raw`` (events), ``sumw``, ``sumw2``
    and ``negative`` (events with weight < 0).
    """
    cheap = cheap_columns(objects)
    alive = np.arange(len(weights))
    steps = [alive]
    full, full_rows = None, None
    for expression in preselection.expressions:
        if full is None and not expression.columns <= cheap.keys():
            full_rows = alive
            full = cut_columns(_subset(objects, alive), preselection.btag_pt_min)
        if full is None:
            columns = {name: cheap[name][alive] for name in expression.columns}
        else:
            position = np.searchsorted(full_rows, alive)
            columns = {name: full[name][position] for name in expression.columns}
        alive = alive[expression.evaluate(columns)]
        steps.append(alive)

    if full is None:
        full_rows, full = alive, cut_columns(_subset(objects, alive), preselection.btag_pt_min)
    position = np.searchsorted(full_rows, alive)
    selected_columns = {name: values[position] for name, values in full.items()}
    cutflow = {
        "raw": np.array([len(rows) for rows in steps], dtype=np.int64),
        "sumw": np.array([np.sum(weights[rows]) for rows in steps]),
        "sumw2": np.array([np.sum(weights[rows] ** 2) for rows in steps]),
        "negative": np.array([np.count_nonzero(weights[rows] < 0) for rows in steps], dtype=np.int64),
    }
    return Selection(alive, cutflow, selected_columns)
