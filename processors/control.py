"""Control histograms: the config's ``control`` section as ``hist`` axes, filled per chunk.

The selection stage fills every control histogram after the preselection, for every dataset
(collision data and simulation alike, no classifier needed): process (growing) x variable,
``Weight()`` storage (data events weigh 1). The scoring stage fills the same variables with a
score axis (:mod:`processors.scoring`) so that the scan's thresholds can slice them. A variable
is any column of :mod:`processors.columns` or a safe expression; bins, range and log axes come
from the config (:func:`analysis.core.config.control_histograms`).
"""

from __future__ import annotations

from dataclasses import dataclass

import hist
import numpy as np

from analysis.core.config import AnalysisConfig, control_histograms

from .columns import ColumnConfigError

__all__ = ["RESERVED_AXES", "ControlSpec", "control_specs", "fill_control", "selection_histograms"]

#: Axis names the control histograms use themselves; a control histogram may not take them.
RESERVED_AXES = ("process", "point", "test", "score", "step", "split")


@dataclass(frozen=True)
class ControlSpec:
    """One control histogram: ``name`` (its axis name), the ``column`` it fills, its binning."""

    name: str
    column: str
    bins: int
    low: float
    high: float
    label: str
    log_x: bool = False
    log_y: bool = False
    expression: str | None = None

    def axis(self) -> hist.axis.Regular:
        """The variable axis (regular in log(x) with ``log_x``)."""
        transform = hist.axis.transform.log if self.log_x else None
        return hist.axis.Regular(self.bins, self.low, self.high, name=self.name, label=self.label, transform=transform)

    def to_json(self) -> dict:
        """The binning as plain JSON (recorded next to the histograms)."""
        return {"column": self.column, "expression": self.expression, "bins": self.bins, "range": [self.low, self.high], "label": self.label,
                "log_x": self.log_x, "log_y": self.log_y}

    def describe(self) -> str:
        """One line for the log."""
        axes = ", ".join(word for word, on in (("log x", self.log_x), ("log y", self.log_y)) if on)
        source = f"expression {self.expression!r}" if self.expression is not None else self.column
        return (f"{self.name}: {source}, {self.bins} bins in [{self.low:g}, {self.high:g}]"
                + (f" ({axes})" if axes else ""))


def control_specs(config: AnalysisConfig) -> tuple[ControlSpec, ...]:
    """The control histograms of ``config`` (a histogram's expression is the column
    ``control:<name>`` of :class:`~processors.columns.AnalysisColumns`)."""
    specs = []
    for name, histogram in control_histograms(config).items():
        if name in RESERVED_AXES:
            raise ColumnConfigError(f"control.histograms.{name}: the name {name!r} is reserved for an axis "
                                    f"({', '.join(RESERVED_AXES)}); choose another")
        column = f"control:{name}" if histogram.expression is not None else histogram.column(name)
        label = histogram.label or (histogram.expression if histogram.expression is not None else column)
        low, high = histogram.range
        specs.append(ControlSpec(name, column, histogram.bins, float(low), float(high), label,
                                 histogram.log_x, histogram.log_y, histogram.expression))
    return tuple(specs)


def selection_histograms(specs, processes=()) -> dict[str, hist.Hist]:
    """Empty process (growing, starting with ``processes``) x variable histograms, one per spec."""
    return {spec.name: hist.Hist(hist.axis.StrCategory(list(processes), name="process", growth=True), spec.axis(),
                                 storage=hist.storage.Weight()) for spec in specs}


def fill_control(histograms: dict[str, hist.Hist], specs, process: str, columns, rows: np.ndarray,
                 weights: np.ndarray) -> None:
    """Fill the selected ``rows`` (their ``weights``) of one process into every histogram;
    ``columns``: a :class:`~processors.columns.ChunkColumns`. Values outside the range go to
    the flow bins (kept in the histogram, not drawn)."""
    if len(rows) == 0:
        return
    for spec in specs:
        values = np.asarray(columns.get(spec.column, rows), dtype=np.float64)
        histograms[spec.name].fill(process=process, **{spec.name: values}, weight=weights)
