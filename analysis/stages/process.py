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

from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from analysis.core.atomic import write_json_atomic
from analysis.core.config import AnalysisConfig
from analysis.core.executors import client_for, run_chunks
from analysis.core.fileset import check_all_events, inspect_fileset
from analysis.core.store import clear_store, write_schema
from analysis.stages.generate import resolve_fileset
from processors.processor import SelectionProcessor


@dataclass
class ProcessingResult:
    """What the selection stage did: the cutflow per dataset, counts, skipped files, the store."""

    steps: list[str]
    cutflow: dict[str, dict[str, list]]  # dataset -> raw / sumw / sumw2 / negative, one entry per step
    n_input: dict[str, int]
    n_processed: dict[str, int]
    n_selected: dict[str, int]
    skipped_files: list[dict]
    store: str | None
    executor: str

    def to_json(self) -> dict:
        """A JSON-serialisable summary."""
        return asdict(self)


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
) -> ProcessingResult:
    """Run the selection stage and return its :class:`ProcessingResult`.

    ``executor`` defaults to the config's (``executor.name``); ``client`` (a
    ``distributed.Client``) is used as is by the dask executor, for interactive sessions.
    ``store=None`` computes cutflows without writing features. Raises
    :class:`~analysis.core.fileset.BadInputFileError` for a bad file (unless ``skip_bad_files``) and
    :class:`LostEventsError` if any input event was not processed.
    """
    executor = executor or config.executor.name
    workers = workers or config.executor.workers
    scheduler = scheduler or config.executor.scheduler
    processor_instance = SelectionProcessor(config, None if store is None else str(Path(store).resolve()))
    inspected = inspect_fileset(fileset if fileset is not None else resolve_fileset(config), config, skip_bad_files)
    if store is not None:
        clear_store(store)

    with client_for(executor, workers, scheduler, client, cluster_config=config.cluster) as dask:
        chunks = run_chunks(inspected, processor_instance, executor=executor, chunksize=config.executor.chunksize,
                            workers=workers, client=dask, schema=schema, show_progress=show_progress)

    datasets = {**inspected.root, **inspected.parquet}
    return merge_processing(config, chunks, inspected.n_input, datasets, inspected.skipped, store, executor,
                            processor_instance=processor_instance)


def merge_processing(config: AnalysisConfig, chunks: dict, n_input: dict[str, int], datasets: dict,
                     skipped_files: list[dict], store: str | Path | None, executor: str, *,
                     processor_instance: SelectionProcessor | None = None) -> ProcessingResult:
    """Sum the chunks' cutflows (sorted chunk order, so every executor agrees bit for bit),
    check that every input event was processed, and write ``schema.json`` and ``cutflow.json``.

    Called by :func:`run_processing` and by the batch job's merge step alike.
    """
    processor_instance = processor_instance or SelectionProcessor(config, None)
    steps = list(processor_instance.preselection.steps)
    cutflow, processed, selected = _combine_chunks(chunks, steps)
    check_all_events(n_input, processed, "processed")
    if store is not None:
        write_schema(
            store,
            list(processor_instance.feature_names),
            config.features.set,
            {name: _dataset_schema(name, entry["metadata"]) for name, entry in sorted(datasets.items())},
        )
    result = ProcessingResult(
        steps=steps,
        cutflow=cutflow,
        n_input=dict(sorted(n_input.items())),
        n_processed=dict(sorted(processed.items())),
        n_selected=dict(sorted(selected.items())),
        skipped_files=skipped_files,
        store=None if store is None else str(store),
        executor=executor,
    )
    if store is not None:
        write_json_atomic(Path(store) / "cutflow.json", result.to_json(), indent=2)
    return result


def _dataset_schema(name: str, metadata: dict) -> dict:
    is_signal = bool(metadata.get("is_signal", False))
    return {
        "process": metadata.get("process", name),
        "is_signal": is_signal,
        "m_slepton": metadata.get("m_slepton") if is_signal else None,
        "dm": metadata.get("dm") if is_signal else None,
    }


def format_cutflow(result: ProcessingResult) -> str:
    """A text table of the weighted cutflow per dataset (events, sum of weights)."""
    lines = []
    for dataset, row in result.cutflow.items():
        lines.append(f"{dataset}: {result.n_processed[dataset]} of {result.n_input[dataset]} input events processed")
        for step, raw, sumw, negative in zip(result.steps, row["raw"], row["sumw"], row["negative"]):
            note = f"  ({negative} with w < 0)" if negative else ""
            lines.append(f"  {step:<24} {raw:>10d} {sumw:>14.5g}{note}")
    for skipped in result.skipped_files:
        held = "unknown" if skipped["n_events"] is None else skipped["n_events"]
        lines.append(f"skipped {skipped['file']} ({skipped['dataset']}, {held} events): {skipped['reason']}")
    return "\n".join(lines)
