"""The columns that cuts, features and control histograms name, and how a chunk provides them.

A name in a cut (``selection.cuts``), a feature list (``features.names``), a feature
expression (``features.expressions``) or a control histogram (``control.histograms``) is one of

- a **derived column** (:data:`DERIVED_COLUMNS`): the thesis and Baldi features and the object
  counts ``n_electron``, ``n_muon``, ``n_jet30``, ``ht``, built from the selected objects;
- a **feature expression**: ``features.expressions`` defines new columns as safe expressions
  (:mod:`processors.expressions`) over the other columns (they may use each other, without cycles);
- otherwise an **event-level input branch** (``nMuon``, ``HLT_IsoMu24``, ``PV_npvs``), read from the
  files (:func:`processors.inputs.event_branch`). :attr:`AnalysisColumns.branches` lists them with
  the setting that names them; the fileset inspection checks that every file has them before
  anything runs, so a typo is an error naming the file, the branch and the setting.

:class:`ChunkColumns` gives a chunk's columns lazily, as a mapping over a set of rows: the
cheap columns (counts, MET, HT) and input branches for every event, the derived columns,
Baldi features and expressions only when first needed, and then only for the rows still
selected (rows only shrink through the cutflow, so later requests index into the first).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import awkward as ak
import numpy as np

from analysis.core.config import AnalysisConfig, control_histograms
from analysis.core.errors import UserError

from .expressions import CutExpression, parse_cut
from .features import BALDI_FEATURES, FEATURE_SETS, THESIS_FEATURES, compute_features
from .features.kinematics import flat_field
from .inputs import event_branch
from .kernels import counts_from_mask, event_sums

__all__ = ["CHEAP_COLUMNS", "DERIVED_COLUMNS", "EXTRA_COLUMNS", "AnalysisColumns", "ChunkColumns",
           "ColumnConfigError", "cheap_column", "cheap_columns"]

#: Columns available besides the features (object counts, HT).
EXTRA_COLUMNS = ("n_electron", "n_muon", "n_jet30", "ht")
#: Columns computed for every event of a chunk (no pairings): cuts on them cost least.
CHEAP_COLUMNS = ("n_lepton", "n_electron", "n_muon", "n_jet", "n_jet30", "met", "ht")
#: Every column built from the selected objects.
DERIVED_COLUMNS = (*THESIS_FEATURES, *EXTRA_COLUMNS, *BALDI_FEATURES)
_THESIS_GROUP = frozenset(THESIS_FEATURES) | frozenset(EXTRA_COLUMNS)
_BALDI_GROUP = frozenset(BALDI_FEATURES)


class ColumnConfigError(UserError, ValueError):
    """A cut, feature or control histogram that cannot be built; the message names the setting."""


def cheap_column(objects, name: str) -> np.ndarray:
    """One of :data:`CHEAP_COLUMNS` for every event of a chunk (float64), from the flat contents
    and offsets of the collections (:func:`flat_field`); HT adds the jets' pT in order in their
    dtype, as ``ak.sum`` does."""
    if name == "met":
        return np.asarray(objects.met_pt, dtype=np.float64)
    if name in ("n_jet", "n_jet30", "ht"):
        offsets, pt = flat_field(objects.jets, "pt")
        values = {"n_jet": lambda: np.diff(offsets), "n_jet30": lambda: counts_from_mask(offsets, pt > 30.0),
                  "ht": lambda: event_sums(offsets, pt)}[name]()
    else:
        offsets, flavour = flat_field(objects.leptons, "flavour")
        values = {"n_lepton": lambda: np.diff(offsets), "n_electron": lambda: counts_from_mask(offsets, flavour == 11),
                  "n_muon": lambda: counts_from_mask(offsets, flavour == 13)}[name]()
    return np.asarray(values).astype(np.float64)


def cheap_columns(objects) -> dict[str, np.ndarray]:
    """Columns computed for every event of a chunk: object counts, MET, HT (no pairings)."""
    return {name: cheap_column(objects, name) for name in CHEAP_COLUMNS}


def take_events(collection: ak.Array, rows: np.ndarray) -> ak.Array:
    """``collection[rows]`` (a jagged record array, ``rows`` sorted event indices) as a packed
    list array, so that the features read it from flat contents (:func:`flat_field`)."""
    fields = ak.fields(collection)
    offsets, _ = flat_field(collection, fields[0])
    counts = np.diff(offsets)[rows]
    taken = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(counts, out=taken[1:])
    index = np.repeat(offsets[:-1][rows] - taken[:-1], counts) + np.arange(taken[-1])
    contents = [ak.contents.NumpyArray(flat_field(collection, field)[1][index]) for field in fields]
    record = ak.contents.RecordArray(contents, fields, length=int(taken[-1]))
    return ak.Array(ak.contents.ListOffsetArray(ak.index.Index64(taken), record))


def _parse(text: str, setting: str) -> CutExpression:
    try:
        return parse_cut(text)
    except UserError as error:
        raise ColumnConfigError(f"{setting}: {error}") from None
    except TypeError as error:
        raise ColumnConfigError(f"{setting}: {error}") from None


def _hint(name: str) -> str:
    close = difflib.get_close_matches(name, DERIVED_COLUMNS, n=3, cutoff=0.75)
    return f"; did you mean {' or '.join(map(repr, close))}?" if close else ""


@dataclass(frozen=True)
class AnalysisColumns:
    """Which names are derived columns, expressions and input branches, from the whole config.

    ``expressions``: name -> parsed expression (feature expressions under their name; a control
    histogram's expression under ``control:<histogram>``); ``branches``: input branch -> the
    setting(s) that read it; ``feature_names``: the store's features in order.
    """

    expressions: Mapping[str, CutExpression]
    branches: Mapping[str, str]
    feature_names: tuple[str, ...]

    def required_branches(self) -> dict[str, str]:
        """``branches`` with a hint where a name is close to a derived column (a typo?), for the
        fileset inspection's missing-branch error: ``(needed by selection.cuts.x; did you mean 'met'?)``."""
        return {name: setting + _hint(name) for name, setting in self.branches.items()}

    @classmethod
    def from_config(cls, config: AnalysisConfig) -> AnalysisColumns:
        """Parse every expression once and sort every name; :class:`ColumnConfigError` for a
        syntax error, an expression that shadows a derived column, or a cycle of expressions."""
        features = config.features
        expressions: dict[str, CutExpression] = {}
        for name, text in features.expressions.items():
            if name in DERIVED_COLUMNS:
                raise ColumnConfigError(f"features.expressions.{name}: {name!r} is a derived column already; "
                                        "give the expression another name")
            expressions[name] = _parse(text, f"features.expressions.{name}")
        _check_cycles(expressions)
        users: dict[str, list[str]] = {}

        def use(names, setting: str) -> None:
            for name in sorted(names):
                if name not in DERIVED_COLUMNS and name not in expressions:
                    users.setdefault(name, []).append(setting)

        for name, expression in expressions.items():
            use(expression.columns, f"features.expressions.{name}")
        for name, text in config.selection.cuts.items():
            use(_parse(text, f"selection.cuts.{name}").columns, f"selection.cuts.{name}")
        for name, spec in control_histograms(config).items():
            if spec.expression is not None:
                key = f"control:{name}"
                expressions[key] = _parse(spec.expression, f"control.histograms.{name}.expression")
                use(expressions[key].columns, f"control.histograms.{name}.expression")
            else:
                use([spec.column(name)], f"control.histograms.{name}" + ("" if spec.variable else " (its name is the variable)"))
        if features.names is not None:
            feature_names = tuple(features.names)
        else:
            feature_names = (*FEATURE_SETS[features.set], *features.expressions)
        use(feature_names, "features.names")
        branches = {name: "; ".join(settings) for name, settings in users.items()}
        return cls(expressions, branches, feature_names)


def _check_cycles(expressions: Mapping[str, CutExpression]) -> None:
    state: dict[str, int] = {}  # 1: being visited, 2: done

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = " -> ".join([*path[path.index(name):], name])
            raise ColumnConfigError(f"features.expressions: the expressions refer to each other in a cycle ({cycle})")
        state[name] = 1
        for other in sorted(expressions[name].columns & expressions.keys()):
            visit(other, [*path, name])
        state[name] = 2

    for name in expressions:
        visit(name, [])


class ChunkColumns:
    """The columns of one chunk, computed when first asked for (see the module docstring).

    ``get(name, rows)`` gives a column at ``rows`` (sorted event indices of the chunk); every
    later request must be for a subset of the rows of the first request of that column's group,
    which holds for the shrinking selections of a cutflow.
    """

    def __init__(self, events, objects, columns: AnalysisColumns, btag_pt_min: float):
        self.events, self.objects, self.columns, self.btag_pt_min = events, objects, columns, btag_pt_min
        self._cache: dict[str, tuple[np.ndarray | None, np.ndarray]] = {}  # name -> (rows or None: all, values)

    def __contains__(self, name: str) -> bool:
        return name in DERIVED_COLUMNS or name in self.columns.expressions or name in self.columns.branches

    def names(self) -> list[str]:
        """Every column this chunk can give."""
        return [*DERIVED_COLUMNS, *self.columns.expressions, *self.columns.branches]

    def get(self, name: str, rows: np.ndarray) -> np.ndarray:
        """Column ``name`` at ``rows``."""
        if name not in self._cache:
            self._compute(name, rows)
        cached_rows, values = self._cache[name]
        if cached_rows is None:
            return values[rows]
        if cached_rows is rows:  # the rows it was computed for (the features of the selected events)
            return values
        position = np.searchsorted(cached_rows, rows)
        if len(rows) and (position[-1] >= len(cached_rows) or not np.array_equal(cached_rows[position], rows)):
            raise RuntimeError(f"column {name!r} asked for rows it was not computed for")
        return values[position]

    def view(self, rows: np.ndarray) -> RowView:
        """A read-only mapping name -> column at ``rows`` (what expressions evaluate on)."""
        return RowView(self, rows)

    def _compute(self, name: str, rows: np.ndarray) -> None:
        if name in CHEAP_COLUMNS:
            self._cache[name] = (None, cheap_column(self.objects, name))
        elif name in _THESIS_GROUP or name in _BALDI_GROUP:
            group = "thesis" if name in _THESIS_GROUP else "baldi"
            o = self.objects
            subset = (take_events(o.leptons, rows), take_events(o.jets, rows), o.met_pt[rows], o.met_phi[rows])
            values = compute_features(*subset, group, self.btag_pt_min)
            for key, column in values.items():
                if key not in CHEAP_COLUMNS:  # those are cached for every event, when first asked for
                    self._cache.setdefault(key, (rows, column))
        elif name in self.columns.expressions:
            values = self.columns.expressions[name].values(self.view(rows))
            self._cache[name] = (rows, np.broadcast_to(values, rows.shape).copy() if values.ndim == 0 else values)
        elif name in self.columns.branches:
            self._cache[name] = (None, event_branch(self.events, name, self.columns.branches[name]))
        else:
            raise KeyError(name)


class RowView(Mapping):
    """The columns of a :class:`ChunkColumns` at fixed rows, as a mapping (lazy)."""

    def __init__(self, columns: ChunkColumns, rows: np.ndarray):
        self.columns, self.rows = columns, rows

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.columns:
            raise KeyError(name)
        return self.columns.get(name, self.rows)

    def __contains__(self, name) -> bool:
        return isinstance(name, str) and name in self.columns

    def __iter__(self) -> Iterator[str]:
        return iter(self.columns.names())

    def __len__(self) -> int:
        return len(self.columns.names())
