"""The scoring processor: selected events -> classifier scores -> weighted ``hist`` histograms.

For each chunk: the same objects, weights and preselection as the selection stage, then the
trained model's score of every selected event at every signal grid point (a parametrised
network is evaluated at each point), filled into

- ``score``: split (train / validation / test) x process x grid point x score (``score_bins``
  bins on [0, 1]), ``Weight()`` storage;
- ``control``: for the config's control histograms (``control`` section), process x grid point x
  test x score x variable, where ``test`` says whether the event is in the test split. The same single pass therefore gives
  the control distributions after the preselection (sum over test and score) and above any
  score threshold of the test split (:func:`analysis.results.control.control_at_thresholds`),
  so the scan needs no second scoring pass. The process axis grows: a chunk holds only its
  own process, which keeps the per-chunk histograms small.

On the process axis, signal events are labelled by their grid point (``slepton_200_40``), so
that the scan of a point counts only its own signal; backgrounds by their process. Collision
data (``is_data``) are scored too, into a histogram of their own,

- ``observed``: data process x grid point x score (the same bins), one entry per selected event,

so that the scan and the ROC curves, which read ``score``, use simulation only, while the
likelihood fits take their observed counts from ``observed``. The data's control distributions
come from the selection stage (:mod:`processors.control`).

Every histogram merges with ``+``. The processor returns each chunk's histograms under the
chunk's key and :func:`merge_chunks` adds them in sorted key order, so the results of every
executor are bit-identical. The model is loaded once per worker process (not per chunk) and
scored with a jitted function on whole chunks.
"""

from __future__ import annotations

import os

import hist
import numpy as np
from coffea import processor

from analysis.core.config import AnalysisConfig
from analysis.core.names import point_name

from .columns import AnalysisColumns, ChunkColumns
from .control import ControlSpec, control_specs
from .objects import select_objects
from .processor import (
    chunk_key,
    chunk_weights,
    process_label,
    selected_event_numbers,
    selected_features,
)
from .selection import Preselection, apply_cuts

SPLITS = ("train", "validation", "test")

_MODELS: dict[tuple, object] = {}


def cached_model(loader, directory: str):
    """``loader(directory)``, called once per process and reused for every chunk (reloaded when
    the folder's ``model.json`` changes, e.g. after retraining in the same session)."""
    stamp = os.stat(os.path.join(directory, "model.json")).st_mtime_ns if os.path.isdir(directory) else None
    key = (getattr(loader, "__module__", None), getattr(loader, "__qualname__", repr(loader)), directory, stamp)
    if key not in _MODELS:
        _MODELS[key] = loader(directory)
    return _MODELS[key]


def _labels(fileset: dict, is_data: bool) -> list[str]:
    return sorted({process_label(name, entry.get("metadata", {})) for name, entry in fileset.items()
                   if bool(entry.get("metadata", {}).get("is_data", False)) == is_data})


def data_process_labels(fileset: dict) -> list[str]:
    """Sorted process labels of the collision-data datasets of a (normalised) fileset (the
    ``observed`` histogram's processes)."""
    return _labels(fileset, is_data=True)


def process_labels(fileset: dict) -> list[str]:
    """Sorted process labels of the simulated datasets of a (normalised) fileset (the ``score``
    histogram's processes)."""
    return _labels(fileset, is_data=False)


def score_histogram(processes: list[str], points: list[str], n_bins: int) -> hist.Hist:
    """An empty split x process x point x score histogram."""
    return hist.Hist(
        hist.axis.StrCategory(list(SPLITS), name="split"),
        hist.axis.StrCategory(processes, name="process"),
        hist.axis.StrCategory(points, name="point"),
        hist.axis.Regular(n_bins, 0.0, 1.0, name="score", label="classifier score"),
        storage=hist.storage.Weight(),
    )


def observed_histogram(data_processes: list[str], points: list[str], n_bins: int) -> hist.Hist:
    """An empty data process x point x score histogram (unweighted counts of collision data)."""
    return hist.Hist(
        hist.axis.StrCategory(data_processes, name="process"),
        hist.axis.StrCategory(points, name="point"),
        hist.axis.Regular(n_bins, 0.0, 1.0, name="score", label="classifier score"),
        storage=hist.storage.Weight(),
    )


def control_histogram(spec: ControlSpec, points: list[str], n_score_bins: int) -> hist.Hist:
    """An empty process (growing) x point x test x score x variable histogram."""
    return hist.Hist(
        hist.axis.StrCategory([], name="process", growth=True),
        hist.axis.StrCategory(points, name="point"),
        hist.axis.Boolean(name="test"),
        hist.axis.Regular(n_score_bins, 0.0, 1.0, name="score", label="classifier score"),
        spec.axis(),
        storage=hist.storage.Weight(),
    )


class ScoringProcessor(processor.ProcessorABC):
    """Score selected events and fill weighted histograms.

    ``model_dir``: the trained model artifact (a path every worker can read).
    ``points``: the grid points (m_slepton, dm) to evaluate at.
    ``processes``: every simulated process label that will be filled (see :func:`process_labels`);
    ``data_processes``: those of the collision data (:func:`data_process_labels`).
    ``model_loader``: a function of the model folder returning an object with ``score_events``
    (``nn.artifact.load_model``; passed in by the scoring stage so that the columnar layer does
    not depend on the network's), called once per worker process.
    """

    def __init__(self, config: AnalysisConfig, model_dir: str, points, processes: list[str], model_loader,
                 data_processes: list[str] = ()):
        self.objects = config.selection.objects
        self.columns = AnalysisColumns.from_config(config)
        self.preselection = Preselection.from_config(config.selection)
        self.feature_names = self.columns.feature_names
        self.control = control_specs(config)
        self.luminosity_fb = config.luminosity_fb
        self.score_bins = config.scan.score_bins
        self.model_dir = str(model_dir)
        self.points = [(float(m), float(d)) for m, d in points]
        self.labels = [point_name(m, d) for m, d in self.points]
        self.processes = list(processes)
        self.data_processes = list(data_processes)
        self.model_loader = model_loader

    def empty_output(self) -> dict:
        """The accumulator of a chunk without selected events."""
        return {
            "score": score_histogram(self.processes, self.labels, self.score_bins),
            "observed": observed_histogram(self.data_processes, self.labels, self.score_bins),
            "control": {spec.name: control_histogram(spec, self.labels, self.score_bins) for spec in self.control},
            "n_events": {},
            "n_scored": {},
        }

    def process(self, events):
        metadata = dict(events.metadata)
        return {chunk_key(metadata): self._process_chunk(events, metadata)}

    def _process_chunk(self, events, metadata: dict) -> dict:
        dataset = metadata["dataset"]
        process_name = process_label(dataset, metadata)
        output = self.empty_output()
        output["n_events"][dataset] = len(events)

        weights = chunk_weights(events, metadata, self.luminosity_fb)
        objects = select_objects(events, self.objects)
        columns = ChunkColumns(events, objects, self.columns, self.preselection.btag_pt_min)
        selection = apply_cuts(self.preselection, columns, weights, events)
        rows = selection.rows
        output["n_scored"][dataset] = len(rows)
        if len(rows) == 0:
            return output

        model = cached_model(self.model_loader, self.model_dir)
        features = selected_features(selection, self.feature_names)
        names = list(features)
        matrix = np.stack([features[name] for name in names], axis=1).astype(np.float32)
        event_numbers = selected_event_numbers(events, metadata, rows)
        # scores (points, events); a cross-trained model scores each event with the network of its fold
        scores, split_codes = model.score_events(matrix, self.points, names, dataset, event_numbers)
        if metadata.get("is_data", False):  # observed counts only (see the module docstring)
            for label, point_scores in zip(self.labels, scores):
                output["observed"].fill(process=process_name, point=label, score=np.clip(point_scores, 0.0, 1.0 - 1e-7))
            return output
        selected_weights = weights[rows]
        is_test = split_codes == SPLITS.index("test")
        # one fill per split with the split's name as a scalar: filling a string array costs 25x more
        # (each bin gets the same entries in the same order either way)
        splits = [(name, split_codes == code) for code, name in enumerate(SPLITS)]
        splits = [(name, mask, selected_weights[mask]) for name, mask in splits if mask.any()]

        control_values = {spec.name: np.asarray(selection.column(spec.column), dtype=np.float64) for spec in self.control}
        for label, point_scores in zip(self.labels, scores):
            clipped = np.clip(point_scores, 0.0, 1.0 - 1e-7)
            for split, mask, split_weights in splits:
                output["score"].fill(split=split, process=process_name, point=label, score=clipped[mask],
                                     weight=split_weights)
            for name, histogram in output["control"].items():
                histogram.fill(process=process_name, point=label, test=is_test, score=clipped,
                               **{name: control_values[name]}, weight=selected_weights)
        return output

    def postprocess(self, accumulator):
        return accumulator


def merge_chunks(chunks: dict) -> dict:
    """Add the per-chunk outputs in sorted chunk order (identical on every executor)."""
    merged = None
    for key in sorted(chunks):
        chunk = chunks[key]
        if merged is None:
            merged = {"score": chunk["score"].copy(), "observed": chunk["observed"].copy(),
                      "control": {k: h.copy() for k, h in chunk["control"].items()},
                      "n_events": dict(chunk["n_events"]), "n_scored": dict(chunk["n_scored"])}
            continue
        merged["score"] += chunk["score"]
        merged["observed"] += chunk["observed"]
        for name, histogram in chunk["control"].items():
            merged["control"][name] += histogram
        for counter in ("n_events", "n_scored"):
            for dataset, count in chunk[counter].items():
                merged[counter][dataset] = merged[counter].get(dataset, 0) + count
    return merged
