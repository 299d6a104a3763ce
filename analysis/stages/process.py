"""The selection stage: ``python -m analysis.stages.process``.

Runs :class:`processors.processor.SelectionProcessor` over a fileset with coffea's ``Runner``
on the chosen executor, writes the feature store and returns the weighted cutflow per
dataset. The input is the config's ``samples.fileset`` if set, else the generated samples
(generated first if the cache lacks them).

Examples::

    python -m analysis.stages.process --executor dask --store results/store
    python -m analysis.stages.process --executor dask --scheduler tcp://host:8786
    python -m analysis.stages.process --config my.yaml --executor futures --workers 4 --skip-bad-files
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from analysis.core.atomic import write_json_atomic
from analysis.core.chunking import chunk_size
from analysis.core.config import AnalysisConfig
from analysis.core.executors import client_for, run_chunks
from analysis.core.fileset import check_all_events, inspect_fileset, preload_branches
from analysis.core.statistics import effective_sample_size
from analysis.core.store import clear_store, write_schema
from analysis.stages.control import (
    ControlHistograms,
    dataset_kinds,
    log_selection,
    merge_control,
    merge_object_cutflow,
    save_control,
)
from analysis.stages.generate import resolve_fileset
from processors import WORKER_MODULES
from processors.processor import SelectionProcessor

log = logging.getLogger(__name__)


@dataclass
class ProcessingResult:
    """What the selection stage did: the cutflow per dataset, counts, skipped files, the store."""

    steps: list[str]
    cutflow: dict[str, dict[str, list]]  # dataset -> raw / sumw / sumw2 / negative / ess, one entry per step
    n_input: dict[str, int]
    n_processed: dict[str, int]
    n_selected: dict[str, int]
    skipped_files: list[dict]
    store: str | None
    executor: str
    losses: dict[str, dict] = field(default_factory=dict)  # datasets with skipped files (DatasetLoss.to_json)
    object_cutflow: dict[str, dict] = field(default_factory=dict)  # dataset -> collection -> requirement -> objects
    datasets: dict[str, dict] = field(default_factory=dict)  # dataset -> process, is_data, is_signal
    control: ControlHistograms | None = field(default=None, repr=False)  # written to <store>/control.json

    def to_json(self) -> dict:
        """A JSON-serialisable summary (the control histograms are written apart)."""
        return asdict(replace(self, control=None))

    @property
    def signal_selected(self) -> int:
        """Selected events of signal datasets (0: nothing to train on or to scan)."""
        return sum(self.n_selected.get(name, 0) for name, kind in self.datasets.items() if kind["is_signal"])


def _combine_chunks(chunks: dict, steps: list[str]) -> tuple[dict, dict, dict]:
    """Sum chunk cutflows per dataset, in sorted chunk order (identical on every executor)."""
    cutflow, processed, selected = {}, defaultdict(int), defaultdict(int)
    for key in sorted(chunks):
        chunk = chunks[key]
        dataset = chunk["dataset"]
        processed[dataset] += chunk["n_events"]
        selected[dataset] += chunk["n_selected"]
        row = cutflow.setdefault(dataset, {k: np.zeros(len(steps), dtype=np.float64 if k.startswith("sumw") else np.int64)
                                           for k in ("raw", "sumw", "sumw2", "negative")})
        for k in row:
            row[k] += np.asarray(chunk[k], dtype=row[k].dtype)
    for row in cutflow.values():
        # Effective sample size (sum w)^2 / sum w^2 after each step: what the weighted yield is worth.
        row["ess"] = effective_sample_size(row["sumw"], row["sumw2"])
    cutflow = {dataset: {k: v.tolist() for k, v in row.items()} for dataset, row in sorted(cutflow.items())}
    return cutflow, dict(processed), dict(selected)


def run_processing(
    config: AnalysisConfig,
    store: str | Path | None,
    *,
    executor: str | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    client=None,
    fileset: dict | None = None,
    skip_bad_files: bool = False,
    schema: str = "base",
    show_progress: bool = False,
    describe: bool = True,
) -> ProcessingResult:
    """Run the selection stage and return its :class:`ProcessingResult`.

    ``executor`` defaults to the config's (``executor.name``); ``client`` (a
    ``distributed.Client``) is used as is by the dask executor, for interactive sessions.
    ``store=None`` computes cutflows without writing features. Raises
    :class:`~analysis.core.fileset.BadInputFileError` for a bad file or a missing branch that the
    objects, filters, cuts, features or control histograms read (unless ``skip_bad_files``), and
    :class:`LostEventsError` if any input event was not processed. ``describe``: log the
    selection in force first (the Pipeline logs it once for the whole run).
    """
    executor = executor or config.executor.name
    workers = workers or config.executor.workers
    scheduler = scheduler or config.executor.scheduler
    processor_instance = SelectionProcessor(config, None if store is None else str(Path(store).resolve()))
    if describe:
        log_selection(config, processor_instance)
    inspected = inspect_fileset(fileset if fileset is not None else resolve_fileset(config), config, skip_bad_files,
                                extra_branches=processor_instance.columns.required_branches())
    if store is not None:
        clear_store(store)

    datasets = {**inspected.root, **inspected.parquet}
    chunksize = chunk_size(config, sum(inspected.n_input.values()), executor, workers)
    branches = preload_branches(config, datasets, processor_instance.columns.required_branches())
    log.info("selection: %d events in chunks of up to %d", sum(inspected.n_input.values()), chunksize)
    with client_for(executor, workers, scheduler, client, cluster_config=config.cluster, preload=WORKER_MODULES) as dask:
        chunks = run_chunks(inspected, processor_instance, executor=executor, chunksize=chunksize,
                            workers=workers, client=dask, schema=schema, show_progress=show_progress, branches=branches)

    return merge_processing(config, chunks, inspected.n_input, datasets, inspected.skipped, store, executor,
                            losses={name: loss.to_json() for name, loss in inspected.losses.items()},
                            processor_instance=processor_instance)


def merge_processing(config: AnalysisConfig, chunks: dict, n_input: dict[str, int], datasets: dict,
                     skipped_files: list[dict], store: str | Path | None, executor: str, *,
                     processor_instance: SelectionProcessor | None = None,
                     losses: dict[str, dict] | None = None) -> ProcessingResult:
    """Sum the chunks' cutflows (sorted chunk order, so every executor agrees bit for bit),
    check that every input event was processed, and write ``schema.json`` and ``cutflow.json``.

    Called by :func:`run_processing` and by the batch job's merge step alike.
    """
    processor_instance = processor_instance or SelectionProcessor(config, None)
    steps = list(processor_instance.preselection.steps)
    cutflow, processed, selected = _combine_chunks(chunks, steps)
    check_all_events(n_input, processed, "processed")
    kinds = dataset_kinds(datasets)
    control = merge_control(config, chunks, kinds)
    if store is not None:
        (Path(store) / "parts").mkdir(parents=True, exist_ok=True)  # an empty store when nothing is selected
        write_schema(
            store,
            list(processor_instance.feature_names),
            processor_instance.feature_set,
            {name: _dataset_schema(name, entry["metadata"]) for name, entry in sorted(datasets.items())},
        )
        save_control(store, control)
    result = ProcessingResult(
        steps=steps,
        cutflow=cutflow,
        n_input=dict(sorted(n_input.items())),
        n_processed=dict(sorted(processed.items())),
        n_selected=dict(sorted(selected.items())),
        skipped_files=skipped_files,
        store=None if store is None else str(store),
        executor=executor,
        losses=dict(sorted((losses or {}).items())),
        object_cutflow=merge_object_cutflow(chunks),
        datasets=kinds,
        control=control,
    )
    if store is not None:
        write_json_atomic(Path(store) / "cutflow.json", result.to_json(), indent=2)
    _log_outcome(result)
    return result


def _log_outcome(result: ProcessingResult) -> None:
    """Say plainly when the selection kept nothing (the store is empty, the cutflow complete)."""
    total = sum(result.n_processed.values())
    kept = sum(result.n_selected.values())
    for dataset, row in result.cutflow.items():
        if row["raw"][-1] == 0 and row["raw"][0] > 0:
            emptied = next(step for step, raw in zip(result.steps, row["raw"]) if raw == 0)
            log.warning("dataset %s: the selection kept none of its %d events (the last ones were dropped by step "
                        "%r; see the cutflow)", dataset, row["raw"][0], emptied)
    if total and not kept:
        where = f": the feature store {result.store} is empty" if result.store else ""
        log.warning("the selection kept none of the %d events%s; the cutflow is complete", total, where)


def _dataset_schema(name: str, metadata: dict) -> dict:
    is_signal = bool(metadata.get("is_signal", False))
    return {
        "process": metadata.get("process", name),
        "is_signal": is_signal,
        "is_data": bool(metadata.get("is_data", False)),
        "m_slepton": metadata.get("m_slepton") if is_signal else None,
        "dm": metadata.get("dm") if is_signal else None,
    }


def format_cutflow(result: ProcessingResult) -> str:
    """A text table of the weighted cutflow per dataset: events, sum of weights and the effective
    sample size (sum w)^2 / sum w^2 after every step."""
    lines = []
    for dataset, row in result.cutflow.items():
        lines.append(f"{dataset}: {result.n_processed[dataset]} of {result.n_input[dataset]} input events processed")
        lines.append(f"  {'step':<24} {'events':>10} {'sum of weights':>14} {'ESS':>10}")
        ess = row.get("ess") or effective_sample_size(row["sumw"], row["sumw2"]).tolist()
        for step, raw, sumw, negative, n_eff in zip(result.steps, row["raw"], row["sumw"], row["negative"], ess):
            note = f"  ({negative} with w < 0)" if negative else ""
            lines.append(f"  {step:<24} {raw:>10d} {sumw:>14.5g} {n_eff:>10.1f}{note}")
        for collection, counts in result.object_cutflow.get(dataset, {}).items():
            lines.append(f"  objects {collection}: " + ", ".join(f"{step} {count}" for step, count in counts.items()))
    for skipped in result.skipped_files:
        held = "unknown" if skipped["n_events"] is None else skipped["n_events"]
        lines.append(f"skipped {skipped['file']} ({skipped['dataset']}, {held} events): {skipped['reason']}")
    for loss in result.losses.values():
        lines.append(loss["summary"])
    return "\n".join(lines)
