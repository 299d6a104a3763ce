"""What the selection stage adds to the cutflow: control histograms, the object cutflow, the
kinds of datasets, and the description of the selection every run logs first.

The selection processor fills, per chunk, the control histograms after the preselection
(process x variable, :mod:`processors.control`) and counts the objects passing each object
requirement (:mod:`processors.identification`). :func:`merge_control` and
:func:`merge_object_cutflow` add the chunks in sorted chunk order (identical on every
executor); :func:`save_control` writes ``<store>/control.json`` (uhi's JSON serialisation of
the histograms, the binning and which processes are collision data, simulation and signal;
nothing pickled), which the report reads back with :func:`load_control`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import hist
import uhi.io.json as uhi_json

from analysis.core.atomic import write_text_atomic
from analysis.core.config import AnalysisConfig
from processors.control import control_specs, selection_histograms
from processors.identification import describe_objects
from processors.processor import SelectionProcessor, process_label

log = logging.getLogger(__name__)

#: The file of the selection stage's control histograms, in the feature-store folder.
CONTROL_FILE = "control.json"


@dataclass
class ControlHistograms:
    """Control histograms after the preselection and what their processes are.

    ``histograms``: name -> process x variable ``hist.Hist``; ``specs``: name -> binning (JSON);
    ``data``, ``simulation``, ``signal``: process labels of each kind (signal is simulation too).
    """

    histograms: dict[str, hist.Hist] = field(default_factory=dict)
    specs: dict[str, dict] = field(default_factory=dict)
    data: list[str] = field(default_factory=list)
    simulation: list[str] = field(default_factory=list)
    signal: list[str] = field(default_factory=list)


def dataset_kinds(datasets: dict) -> dict[str, dict]:
    """Per dataset of a (normalised) fileset: its process label, ``is_data`` and ``is_signal``."""
    kinds = {}
    for name, entry in sorted(datasets.items()):
        metadata = entry.get("metadata", {})
        kinds[name] = {"process": process_label(name, metadata), "is_data": bool(metadata.get("is_data", False)),
                       "is_signal": bool(metadata.get("is_signal", False))}
    return kinds


def merge_control(config: AnalysisConfig, chunks: dict, kinds: dict[str, dict]) -> ControlHistograms:
    """Add the chunks' control histograms in sorted chunk order; every process of the fileset is
    on the axis (a dataset without selected events shows as empty, not missing)."""
    specs = control_specs(config)
    merged = selection_histograms(specs, sorted({kind["process"] for kind in kinds.values()}))
    for key in sorted(chunks):
        for name, histogram in (chunks[key].get("control") or {}).items():
            merged[name] += histogram
    data = sorted({k["process"] for k in kinds.values() if k["is_data"]})
    simulation = sorted({k["process"] for k in kinds.values() if not k["is_data"]})
    signal = sorted({k["process"] for k in kinds.values() if k["is_signal"]})
    return ControlHistograms(merged, {spec.name: spec.to_json() for spec in specs}, data, simulation, signal)


def merge_object_cutflow(chunks: dict) -> dict[str, dict[str, dict[str, int]]]:
    """dataset -> collection -> {requirement: objects passing it and every one before}."""
    merged: dict[str, dict[str, dict[str, int]]] = {}
    for key in sorted(chunks):
        chunk = chunks[key]
        per_dataset = merged.setdefault(chunk["dataset"], {})
        for collection, counts in (chunk.get("objects") or {}).items():
            row = per_dataset.setdefault(collection, {})
            for step, count in counts.items():
                row[step] = row.get(step, 0) + int(count)
    return dict(sorted(merged.items()))


def save_control(store: str | Path, control: ControlHistograms) -> Path:
    """Write ``<store>/control.json`` atomically (uhi JSON; no pickle)."""
    payload = {"histograms": control.histograms, "specs": control.specs, "data": control.data,
               "simulation": control.simulation, "signal": control.signal}
    return write_text_atomic(Path(store) / CONTROL_FILE, json.dumps(payload, default=uhi_json.default))


def load_control(path: str | Path) -> ControlHistograms | None:
    """The control histograms written by :func:`save_control` (None when the file is absent)."""
    path = Path(path)
    if not path.exists():
        return None
    payload = json.loads(path.read_text(), object_hook=uhi_json.object_hook)
    return ControlHistograms({name: hist.Hist(h) for name, h in payload["histograms"].items()}, payload["specs"],
                             payload["data"], payload["simulation"], payload["signal"])


def no_signal_reason(processing: dict) -> str | None:
    """Why the signal stages (train, score, scan) have nothing to do, from a ``cutflow.json``
    dict of the selection stage: no signal dataset, or no selected signal event; None when
    there is signal (or the record is too old to say)."""
    kinds = processing.get("datasets")
    if kinds is None:
        return None
    if not any(kind.get("is_signal") for kind in kinds.values()):
        return "no signal dataset in the inputs"
    selected = processing.get("n_selected", {})
    if not sum(selected.get(name, 0) for name, kind in kinds.items() if kind.get("is_signal")):
        return "the selection kept no signal event"
    return None


def describe_selection(config: AnalysisConfig, processor: SelectionProcessor | None = None) -> list[str]:
    """The object definitions, event filters, cuts, features, control histograms and input
    branches in force, one line each: what every run logs before it starts."""
    processor = processor or SelectionProcessor(config, None)
    lines = [f"objects: {line}" for line in describe_objects(config.selection.objects)]
    if "objects" not in config.selection.model_fields_set:
        lines.append("objects: selection.objects is not in the config: the default object definitions above apply")
    lines += [f"selection: {line}" for line in processor.preselection.describe()]
    how = "by name" if config.features.names is not None else f"set {config.features.set!r}"
    lines.append(f"features ({how}, {len(processor.feature_names)}): {', '.join(processor.feature_names)}")
    for name, expression in config.features.expressions.items():
        lines.append(f"feature expression {name}: {expression}")
    given = "" if config.control.histograms is not None else " (defaults)"
    lines += [f"control histogram{given}: {spec.describe()}" for spec in processor.control]
    for branch, setting in processor.columns.branches.items():
        lines.append(f"input branch {branch}: read by {setting}")
    return lines


def log_selection(config: AnalysisConfig, processor: SelectionProcessor | None = None) -> None:
    """Log :func:`describe_selection` at INFO level."""
    for line in describe_selection(config, processor):
        log.info("%s", line)
