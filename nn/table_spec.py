"""Table formats: the UCI SUSY / HIGGS layouts with their published column names, and
:class:`TableSpec`, how a table is read (stored in the model artifact so that scoring reads a
table the way training did).

The UCI names are those of the UCI Machine Learning Repository pages of the SUSY and HIGGS data
sets (Baldi, Sadowski and Whiteson, Nature Commun. 5 (2014) 4308): SUSY has 8 low-level and 10
high-level features, HIGGS 21 low-level and 7 high-level ones, each file the class label first
and no header.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from analysis.core.errors import UserError

__all__ = ["TABLE_FORMATS", "UCI_FEATURES", "UCI_FEATURE_GROUPS", "UCI_LABEL", "TableError", "TableSpec"]

TABLE_FORMATS = ("csv", "parquet", "uci-susy", "uci-higgs")
#: The name given to the UCI tables' first column (the class label, 1 signal, 0 background).
UCI_LABEL = "label"
_SUSY_LOW = ("lepton 1 pT", "lepton 1 eta", "lepton 1 phi", "lepton 2 pT", "lepton 2 eta", "lepton 2 phi",
             "missing energy magnitude", "missing energy phi")
_SUSY_HIGH = ("MET_rel", "axial MET", "M_R", "M_TR_2", "R", "MT2", "S_R", "M_Delta_R", "dPhi_r_b", "cos(theta_r1)")
_HIGGS_LOW = ("lepton pT", "lepton eta", "lepton phi", "missing energy magnitude", "missing energy phi") + tuple(
    f"jet {j} {what}" for j in (1, 2, 3, 4) for what in ("pt", "eta", "phi", "b-tag")
)
_HIGGS_HIGH = ("m_jj", "m_jjj", "m_lv", "m_jlv", "m_bb", "m_wbb", "m_wwbb")
#: Published feature names of the UCI tables, in file order (after the label).
UCI_FEATURES = {"uci-susy": _SUSY_LOW + _SUSY_HIGH, "uci-higgs": _HIGGS_LOW + _HIGGS_HIGH}
#: Baldi et al.'s feature groups: the detector-level ("low-level") and derived ("high-level") ones.
UCI_FEATURE_GROUPS = {
    "uci-susy": {"low-level": _SUSY_LOW, "high-level": _SUSY_HIGH},
    "uci-higgs": {"low-level": _HIGGS_LOW, "high-level": _HIGGS_HIGH},
}


class TableError(UserError, ValueError):
    """A table is missing, unreadable or has bad cells; the message names the file and the column."""


@dataclass(frozen=True)
class TableSpec:
    """How to read a table (JSON-ready with :meth:`to_dict`; stored in the model artifact).

    ``label`` defaults to ``"label"`` for the UCI formats; ``features`` to every column but the
    label and the weight (for UCI: ``low-level`` / ``high-level`` name a published group).
    ``signal_classes`` / ``background_classes``: label values (as text) of each class, for a
    label that is not 0/1.  ``nonfinite``: ``refuse`` NaN/inf/missing feature cells, or
    ``drop`` their rows (counted and reported).
    """

    format: str = "csv"
    label: str | None = None
    weight: str | None = None
    features: tuple[str, ...] | None = None
    signal_classes: tuple[str, ...] = ()
    background_classes: tuple[str, ...] = ()
    nonfinite: Literal["refuse", "drop"] = "refuse"
    delimiter: str = ","

    def __post_init__(self) -> None:
        if self.format not in TABLE_FORMATS:
            raise TableError(f"unknown table format {self.format!r}; known: {list(TABLE_FORMATS)}")
        if self.nonfinite not in ("refuse", "drop"):
            raise TableError(f"nonfinite must be 'refuse' or 'drop', got {self.nonfinite!r}")
        if bool(self.signal_classes) != bool(self.background_classes):
            raise TableError("give both the signal and the background class values of the label (or neither: 0/1)")
        overlap = sorted(set(self.signal_classes) & set(self.background_classes))
        if overlap:
            raise TableError(f"label value(s) {overlap} are given as both signal and background")
        if len(self.delimiter) != 1:
            raise TableError(f"the CSV delimiter must be one character, got {self.delimiter!r}")
        if self.features is not None:
            object.__setattr__(self, "features", tuple(self.features))
            if len(set(self.features)) != len(self.features):
                raise TableError(f"the feature list names a column twice: {list(self.features)}")
        if self.label is None and self.format.startswith("uci-"):
            object.__setattr__(self, "label", UCI_LABEL)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        data = dataclasses.asdict(self)
        return {key: list(value) if isinstance(value, tuple) else value for key, value in data.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TableSpec:
        """Inverse of :meth:`to_dict` (unknown keys are ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {key: tuple(value) if isinstance(value, list) else value for key, value in data.items() if key in names}
        return cls(**values)

    def replace(self, **changes) -> TableSpec:
        """A copy with ``changes`` (``None`` values are ignored)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})
