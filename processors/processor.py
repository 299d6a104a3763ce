"""The coffea processor of the selection stage: objects -> weights -> cuts -> features -> store.

``SelectionProcessor.process(events)`` handles one chunk and returns a mergeable dict keyed by
the chunk (dataset, file, entry range) with its cutflow, object cutflow, control histograms
(after the preselection, every dataset: data and simulation) and counts. Keeping chunks apart
lets the driver add them up in a fixed order, so every executor gives bit-identical
cutflows, whatever order the chunks finished in. The features written to the store are the
config's (``features.set``, or ``features.names`` and ``features.expressions``).
"""

from __future__ import annotations

import numpy as np
from coffea import processor

from analysis.core.config import AnalysisConfig
from analysis.core.errors import UserError
from analysis.core.names import point_name
from analysis.core.store import part_name, write_part

from .columns import AnalysisColumns, ChunkColumns
from .control import control_specs, fill_control, selection_histograms
from .objects import MissingBranchError, Objects, non_finite_counts, select_objects
from .selection import Preselection, Selection, apply_cuts
from .weights import event_weights


class InputDataError(UserError, ValueError):
    """The content of an input file is unusable (non-finite values, missing metadata)."""


def check_finite_inputs(events, objects, source: str) -> None:
    """Raise :class:`InputDataError` naming the file, each branch and its count of NaN/inf values
    (object kinematics, b-tag, MET) in a chunk: such values would fail every cut silently."""
    counts = non_finite_counts(events, objects)
    if counts:
        details = ", ".join(f"{branch}: {count}" for branch, count in counts.items())
        entries = ""
        metadata = getattr(events, "metadata", None) or {}
        if "entrystart" in metadata:
            entries = f" (entries {metadata['entrystart']}-{metadata['entrystop']})"
        raise InputDataError(f"non-finite values in {source}{entries}: {details} (NaN or inf; fix or leave out the file)")


def chunk_key(metadata: dict) -> str:
    """A unique, sortable key of one chunk: dataset, file and entry range."""
    return f"{metadata['dataset']}|{metadata['filename']}|{metadata['entrystart']:012d}|{metadata['entrystop']:012d}"


def chunk_weights(events, metadata: dict, luminosity_fb: float) -> np.ndarray:
    """Per-event weights of a chunk from the dataset metadata (``is_data`` -> 1)."""
    if metadata.get("is_data", False):
        return np.ones(len(events))
    missing = [key for key in ("xsec_pb", "sum_genweight") if metadata.get(key) is None]
    if missing:
        raise InputDataError(
            f"dataset {metadata['dataset']!r} has no {' or '.join(missing)} in its fileset metadata "
            "(simulation needs them for event weights; set is_data: true for collision data)"
        )
    if "genWeight" not in events.fields:
        raise MissingBranchError(f"branch 'genWeight' is missing in {metadata['filename']}")
    gen_weight = np.asarray(events["genWeight"], dtype=np.float64)
    return event_weights(gen_weight, metadata["xsec_pb"], luminosity_fb, metadata["sum_genweight"])


def selected_features(selection: Selection, feature_names) -> dict[str, np.ndarray]:
    """The features ``feature_names`` of the selected events, as float64 (from the selection's
    lazy columns: what the cuts computed already is reused)."""
    return {name: np.asarray(selection.column(name), dtype=np.float64) for name in feature_names}


def process_label(dataset: str, metadata: dict) -> str:
    """Process axis label: the grid point for signal, the process (else the dataset) otherwise."""
    if metadata.get("is_signal", False):
        return point_name(metadata["m_slepton"], metadata["dm"])
    return metadata.get("process", dataset)


def feature_set_name(config: AnalysisConfig) -> str:
    """What ``schema.json`` records as the feature set: ``set`` (``+expressions``), or ``names``."""
    features = config.features
    if features.names is not None:
        return "names"
    return features.set + ("+expressions" if features.expressions else "")


def selected_event_numbers(events, metadata: dict, rows: np.ndarray) -> np.ndarray:
    """Event numbers of the selected rows (the entry number when the input has no ``event``)."""
    if "event" in events.fields:
        return np.asarray(events["event"], dtype=np.uint64)[rows]
    return np.arange(metadata["entrystart"], metadata["entrystop"], dtype=np.uint64)[rows]


class SelectionProcessor(processor.ProcessorABC):
    """Preselection, features, weights, cutflow and feature-store parts for each chunk.

    ``store``: the feature-store directory the parts are written to (a path every worker
    can reach), or ``None`` to compute cutflows only.
    """

    def __init__(self, config: AnalysisConfig, store: str | None):
        self.objects = config.selection.objects
        self.columns = AnalysisColumns.from_config(config)
        self.preselection = Preselection.from_config(config.selection)
        self.feature_set = feature_set_name(config)
        self.feature_names = self.columns.feature_names
        self.control = control_specs(config)
        self.luminosity_fb = config.luminosity_fb
        self.store = None if store is None else str(store)

    def process(self, events):
        metadata = dict(events.metadata)
        source = metadata["filename"]
        weights = chunk_weights(events, metadata, self.luminosity_fb)
        check_finite_inputs(events, self.objects, source)
        objects = select_objects(events, self.objects)
        bad = ~np.isfinite(weights)
        if bad.any():
            raise InputDataError(f"{int(bad.sum())} event(s) with non-finite weight in {source}")

        columns = ChunkColumns(events, objects, self.columns, self.preselection.btag_pt_min)
        selection = apply_cuts(self.preselection, columns, weights, events)
        n_selected = len(selection.rows)
        part = None
        if self.store is not None and n_selected > 0:
            part = self._write_part(events, metadata, objects, selection, weights)
        control = selection_histograms(self.control)
        fill_control(control, self.control, process_label(metadata["dataset"], metadata), columns, selection.rows,
                     weights[selection.rows])

        result = {
            "dataset": metadata["dataset"],
            "n_events": len(events),
            "n_selected": n_selected,
            "part": part,
            **{key: values.tolist() for key, values in selection.cutflow.items()},
            "objects": objects.cutflow,
            "control": control,
        }
        return {chunk_key(metadata): result}

    def _write_part(self, events, metadata, objects: Objects, selection: Selection, weights) -> str:
        features = selected_features(selection, self.feature_names)
        for name, values in features.items():
            bad = ~np.isfinite(values)
            if bad.any():
                raise InputDataError(f"feature {name!r} is non-finite for {int(bad.sum())} selected event(s) in {metadata['filename']}")
        n_selected = len(selection.rows)
        is_signal = bool(metadata.get("is_signal", False))
        grid = {key: np.full(n_selected, metadata.get(key) if is_signal else np.nan, dtype=np.float32) for key in ("m_slepton", "dm")}
        payload = {
            "weight": weights[selection.rows],
            "label": np.full(n_selected, 1 if is_signal else 0, dtype=np.int8),
            "dataset": np.full(n_selected, metadata["dataset"], dtype=object),
            "process": np.full(n_selected, metadata.get("process", metadata["dataset"]), dtype=object),
            **grid,
            "event": selected_event_numbers(events, metadata, selection.rows),
        }
        name = part_name(metadata["dataset"], metadata["filename"], metadata["entrystart"], metadata["entrystop"])
        write_part(self.store, name, features, payload)
        return name

    def postprocess(self, accumulator):
        return accumulator
