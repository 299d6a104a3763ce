"""The event preselection and its weighted cutflow.

The steps, in order: every event of the chunk; the triggers (``selection.triggers``: at least
one ``HLT_*`` branch true) and the event flags (``selection.flags``: every ``Flag_*`` branch
true), each a step only when configured; then the config's ``selection.cuts``, an ordered
mapping of name -> safe expression (``processors/expressions.py``) over the columns of
:mod:`processors.columns`: derived columns (thesis and Baldi features, object counts), feature
expressions and event-level input branches (``nMuon == 2``). After each step the cutflow
records the raw event count, the sum of weights, the sum of squared weights and the number of
events with a negative weight, so every event dropped is counted at the step that dropped it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis.core.config import SelectionConfig

from .columns import (
    CHEAP_COLUMNS,
    DERIVED_COLUMNS,
    EXTRA_COLUMNS,
    ChunkColumns,
    ColumnConfigError,
    cheap_columns,
)
from .columns import _parse as _parse_setting
from .expressions import CutExpression
from .inputs import flag_mask, trigger_mask

__all__ = ["CHEAP_COLUMNS", "CUT_COLUMNS", "EXTRA_COLUMNS", "FLAGS_STEP", "INITIAL_STEP", "TRIGGER_STEP", "Preselection", "Selection",
           "SelectionConfigError", "apply_cuts", "cheap_columns"]

#: Derived columns a cut may use (besides feature expressions and input branches).
CUT_COLUMNS = DERIVED_COLUMNS
INITIAL_STEP = "all events"
TRIGGER_STEP = "trigger"
FLAGS_STEP = "event flags"

#: A cut that cannot be applied; the message names the cut.
SelectionConfigError = ColumnConfigError


@dataclass(frozen=True)
class Preselection:
    """Parsed preselection: event filters and cuts in application order."""

    names: tuple[str, ...]
    expressions: tuple[CutExpression, ...]
    btag_pt_min: float
    triggers: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, selection: SelectionConfig) -> Preselection:
        """Parse every cut once (a syntax error names the cut). A name that is neither a derived
        column nor a feature expression is an input branch
        (:attr:`processors.columns.AnalysisColumns.branches`), checked in every file."""
        names, expressions = [], []
        for name, text in selection.cuts.items():
            names.append(name)
            expressions.append(_parse_setting(text, f"selection.cuts.{name}"))
        return cls(tuple(names), tuple(expressions), selection.objects.bjet_pt_min, tuple(selection.triggers),
                   tuple(selection.flags))

    @property
    def steps(self) -> tuple[str, ...]:
        """Cutflow row names: the initial count, the event filters in use, then one row per cut."""
        filters = ((TRIGGER_STEP,) if self.triggers else ()) + ((FLAGS_STEP,) if self.flags else ())
        return (INITIAL_STEP, *filters, *self.names)

    def describe(self) -> list[str]:
        """The event filters and cuts in force, one line each (logged at the start of a run)."""
        lines = []
        if self.triggers:
            lines.append(f"trigger: {' or '.join(self.triggers)}")
        if self.flags:
            lines.append(f"event flags: {' and '.join(self.flags)}")
        lines += [f"cut {name}: {expression.text}" for name, expression in zip(self.names, self.expressions)]
        return lines or ["no event selection: every event is kept"]


@dataclass
class Selection:
    """The outcome of the preselection on one chunk."""

    rows: np.ndarray  # indices of the selected events in the chunk
    cutflow: dict[str, np.ndarray]  # raw / sumw / sumw2 / negative, one entry per step
    columns: ChunkColumns  # every column, lazily; ``columns.get(name, rows)``

    def column(self, name: str) -> np.ndarray:
        """Column ``name`` of the selected events."""
        return self.columns.get(name, self.rows)


def apply_cuts(preselection: Preselection, columns: ChunkColumns, weights: np.ndarray, events=None) -> Selection:
    """Apply the event filters (on ``events``) and the cuts in order; record the chunk's cutflow.

    Columns come from ``columns`` (:class:`~processors.columns.ChunkColumns`): the cheap ones and
    input branches for every event, the others only once a cut needs them, for the events still
    selected then (after a MET or lepton-count cut, a few per cent of the chunk). The cutflow has
    one entry per step (:attr:`Preselection.steps`): ``raw`` (events), ``sumw``, ``sumw2`` and
    ``negative`` (events with weight < 0).
    """
    alive = np.arange(len(weights))
    steps = [alive]
    if preselection.triggers:
        alive = alive[trigger_mask(events, preselection.triggers)[alive]]
        steps.append(alive)
    if preselection.flags:
        alive = alive[flag_mask(events, preselection.flags)[alive]]
        steps.append(alive)
    for expression in preselection.expressions:
        mask = np.broadcast_to(expression.evaluate(columns.view(alive)), alive.shape)
        alive = alive[mask]
        steps.append(alive)
    cutflow = {
        "raw": np.array([len(rows) for rows in steps], dtype=np.int64),
        "sumw": np.array([np.sum(weights[rows]) for rows in steps]),
        "sumw2": np.array([np.sum(weights[rows] ** 2) for rows in steps]),
        "negative": np.array([np.count_nonzero(weights[rows] < 0) for rows in steps], dtype=np.int64),
    }
    return Selection(alive, cutflow, columns)

