"""The scoring stage: the trained model on every selected event, into weighted histograms.

Runs :class:`processors.scoring.ScoringProcessor` with coffea's Runner on the chosen executor
and adds the chunks' histograms in a fixed order (:func:`merge_scoring`, also the batch
jobs' merge). One pass fills the score histograms and the control histograms (with a score
axis, so the scan's thresholds slice them later). Histograms are saved as JSON with uhi's
serialisation (no pickle) and read back with :func:`load_histograms`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import hist
import uhi.io.json as uhi_json

from analysis.core.atomic import write_text_atomic
from analysis.core.chunking import chunk_size
from analysis.core.config import AnalysisConfig
from analysis.core.executors import client_for, run_chunks
from analysis.core.fileset import check_all_events, inspect_fileset, preload_branches
from nn.artifact import load_model
from processors import WORKER_MODULES
from processors.columns import AnalysisColumns
from processors.scoring import (
    ScoringProcessor,
    data_process_labels,
    merge_chunks,
    process_labels,
)


@dataclass
class ScoringResult:
    """The score and control histograms of the simulation, the observed (collision data) score
    histogram, and the events read and scored per dataset. ``observed`` is None in the
    histograms of an earlier version that did not score data."""

    score: hist.Hist
    control: dict[str, hist.Hist]
    n_events: dict[str, int]
    n_scored: dict[str, int]
    observed: hist.Hist | None = None


def run_scoring(
    config: AnalysisConfig,
    model_dir: str | Path,
    fileset: dict,
    points: list[tuple[float, float]],
    *,
    executor: str | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    client=None,
    schema: str = "base",
    skip_bad_files: bool = False,
    show_progress: bool = False,
) -> ScoringResult:
    """Score every selected event of ``fileset`` at each grid point of ``points``."""
    executor = executor or config.executor.name
    extra = AnalysisColumns.from_config(config).required_branches()
    inspected = inspect_fileset(fileset, config, skip_bad_files, extra_branches=extra)
    datasets = {**inspected.root, **inspected.parquet}
    scorer = scoring_processor(config, model_dir, points, datasets)
    workers = workers or config.executor.workers
    chunksize = chunk_size(config, sum(inspected.n_input.values()), executor, workers)
    with client_for(executor, workers, scheduler or config.executor.scheduler, client,
                    cluster_config=config.cluster, preload=WORKER_MODULES) as dask:
        chunks = run_chunks(inspected, scorer, executor=executor, chunksize=chunksize, workers=workers, client=dask,
                            schema=schema, show_progress=show_progress,
                            branches=preload_branches(config, datasets, extra))
    return merge_scoring(scorer, chunks, inspected.n_input)


def scoring_processor(config: AnalysisConfig, model_dir: str | Path, points: list[tuple[float, float]],
                      datasets: dict) -> ScoringProcessor:
    """The scoring processor of ``model_dir`` for the datasets of a (normalised) fileset."""
    return ScoringProcessor(config, str(Path(model_dir).resolve()), points, process_labels(datasets), load_model,
                            data_process_labels(datasets))


def merge_scoring(scorer: ScoringProcessor, chunks: dict, n_input: dict[str, int]) -> ScoringResult:
    """Add the chunks' histograms in sorted chunk order and check that every input event was
    scored (called by :func:`run_scoring` and by the batch job's merge step alike)."""
    merged = merge_chunks(chunks) if chunks else scorer.empty_output()
    check_all_events(n_input, merged["n_events"], "scored")
    return ScoringResult(merged["score"], merged["control"], dict(sorted(merged["n_events"].items())),
                         dict(sorted(merged["n_scored"].items())), merged["observed"])


def save_histograms(path: str | Path, result: ScoringResult) -> Path:
    """Write the histograms and counts as JSON (uhi serialisation), atomically."""
    path = Path(path)
    payload = {"score": result.score, "control": result.control, "n_events": result.n_events, "n_scored": result.n_scored}
    if result.observed is not None:
        payload["observed"] = result.observed
    return write_text_atomic(path, json.dumps(payload, default=uhi_json.default))


def load_histograms(path: str | Path) -> ScoringResult:
    """Read histograms written by :func:`save_histograms` (plain JSON; nothing is unpickled)."""
    payload = json.loads(Path(path).read_text(), object_hook=uhi_json.object_hook)
    return ScoringResult(
        score=hist.Hist(payload["score"]),
        control={name: hist.Hist(h) for name, h in payload["control"].items()},
        n_events=payload["n_events"],
        n_scored=payload["n_scored"],
        observed=hist.Hist(payload["observed"]) if "observed" in payload else None,
    )
