"""The event preselection and its weighted cutflow.

Cuts are the config's ``selection.cuts``: an ordered mapping of name -> safe expression
(``processors/expressions.py``) over *cut columns*: the thesis features (computed for every
event, whatever its lepton count) plus a few counts that only cuts use (:data:`EXTRA_COLUMNS`).
Applying them in order gives the cutflow: after each cut, the raw event count, the sum of
weights, the sum of squared weights and the number of events with a negative weight.
"""

from __future__ import annotations

from dataclasses import dataclass

import awkward as ak
import numpy as np

from analysis.config import SelectionConfig

from .expressions import CutExpression, parse_cut
from .features import THESIS_FEATURES, compute_features
from .objects import Objects

#: Columns available to cuts besides the thesis features.
EXTRA_COLUMNS = ("n_electron", "n_muon", "n_jet30", "ht")
CUT_COLUMNS = (*THESIS_FEATURES, *EXTRA_COLUMNS)
INITIAL_STEP = "all events"


class SelectionConfigError(ValueError):
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


def cut_columns(objects: Objects, btag_pt_min: float) -> dict[str, np.ndarray]:
    """Every column a cut may use, for every event of the chunk."""
    columns = compute_features(objects.leptons, objects.jets, objects.met_pt, objects.met_phi, "thesis", btag_pt_min)
    flavour = objects.leptons.flavour
    columns["n_electron"] = ak.to_numpy(ak.sum(flavour == 11, axis=1)).astype(np.float64)
    columns["n_muon"] = ak.to_numpy(ak.sum(flavour == 13, axis=1)).astype(np.float64)
    columns["n_jet30"] = ak.to_numpy(ak.sum(objects.jets.pt > 30.0, axis=1)).astype(np.float64)
    columns["ht"] = ak.to_numpy(ak.sum(objects.jets.pt, axis=1)).astype(np.float64)
    return columns


def apply_cuts(preselection: Preselection, columns: dict[str, np.ndarray], weights: np.ndarray):
    """Apply the cuts in order; return the final event mask and the cutflow of this chunk.

    The cutflow is a dict of arrays with one entry per step (:attr:`Preselection.steps`):
    ``raw`` (events), ``sumw``, ``sumw2`` and ``negative`` (events with weight < 0).
    """
    mask = np.ones(len(weights), dtype=bool)
    rows = [mask.copy()]
    for expression in preselection.expressions:
        mask &= expression.evaluate(columns)
        rows.append(mask.copy())
    passed = np.stack(rows)  # (steps, events)
    cutflow = {
        "raw": passed.sum(axis=1).astype(np.int64),
        "sumw": passed @ weights,
        "sumw2": passed @ (weights * weights),
        "negative": (passed & (weights < 0)).sum(axis=1).astype(np.int64),
    }
    return mask, cutflow
