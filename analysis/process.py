"""The selection stage: ``python -m analysis.process``.

Runs :class:`processors.processor.SelectionProcessor` over a fileset with coffea's ``Runner``
on the chosen executor, writes the feature store and returns the weighted cutflow per
dataset. The input is the config's ``samples.fileset`` if set, else the generated samples
(generated first if the cache lacks them).

Examples::

    python -m analysis.process --executor dask --store results/store
    python -m analysis.process --executor dask --scheduler tcp://host:8786
    python -m analysis.process --config my.yaml --executor futures --workers 4 --skip-bad-files
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from analysis.config import AnalysisConfig, ConfigError, default_config, load_config
from analysis.executors import EXECUTORS, SCHEMAS, client_for, run_chunks
from analysis.fileset import BadInputFileError, LostEventsError, check_all_events, inspect_fileset, load_fileset
from processors.feature_store import clear_store, write_schema
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


def resolve_fileset(config: AnalysisConfig, **generate_options) -> dict:
    """The fileset of the analysis: the user's ``samples.fileset`` or the generated samples."""
    if config.samples.fileset is not None:
        return load_fileset(config.samples.fileset)
    from jobs.generate import ensure_samples

    return load_fileset(ensure_samples(config, **generate_options))


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
    :class:`~analysis.fileset.BadInputFileError` for a bad file (unless ``skip_bad_files``) and
    :class:`LostEventsError` if any input event was not processed.
    """
    executor = executor or config.executor.name
    workers = workers or config.executor.workers
    scheduler = scheduler or config.executor.scheduler
    processor_instance = SelectionProcessor(config, None if store is None else str(Path(store).resolve()))
    steps = list(processor_instance.preselection.steps)
    inspected = inspect_fileset(fileset if fileset is not None else resolve_fileset(config), config, skip_bad_files)
    if store is not None:
        clear_store(store)

    with client_for(executor, workers, scheduler, client, cluster_config=config.cluster) as dask:
        chunks = run_chunks(inspected, processor_instance, executor=executor, chunksize=config.executor.chunksize,
                            workers=workers, client=dask, schema=schema, show_progress=show_progress)

    cutflow, processed, selected = _combine_chunks(chunks, steps)
    check_all_events(inspected.n_input, processed, "processed")

    if store is not None:
        datasets = {**inspected.root, **inspected.parquet}
        write_schema(
            store,
            list(processor_instance.feature_names),
            config.features.set,
            {name: _dataset_schema(name, entry["metadata"]) for name, entry in sorted(datasets.items())},
        )
    result = ProcessingResult(
        steps=steps,
        cutflow=cutflow,
        n_input=dict(sorted(inspected.n_input.items())),
        n_processed=dict(sorted(processed.items())),
        n_selected=dict(sorted(selected.items())),
        skipped_files=inspected.skipped,
        store=None if store is None else str(store),
        executor=executor,
    )
    if store is not None:
        (Path(store) / "cutflow.json").write_text(json.dumps(result.to_json(), indent=2))
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


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m analysis.process", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, help="analysis config YAML (default: the built-in analysis)")
    parser.add_argument("--executor", choices=EXECUTORS, help="default: the config's executor.name")
    parser.add_argument("--workers", type=int)
    parser.add_argument("--scheduler", help="address of a running Dask scheduler, tcp://host:port")
    parser.add_argument("--fileset", type=Path, help="a coffea fileset JSON (overrides samples.fileset)")
    parser.add_argument("--schema", choices=sorted(SCHEMAS), default="base", help="coffea NanoEvents schema")
    parser.add_argument("--store", type=Path, default=Path("results/store"), help="feature store directory")
    parser.add_argument("--skip-bad-files", action="store_true", help="leave out unreadable files and list them")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config) if args.config else default_config()
        fileset = load_fileset(args.fileset) if args.fileset else None
        result = run_processing(
            config, args.store, executor=args.executor, workers=args.workers, scheduler=args.scheduler,
            fileset=fileset, skip_bad_files=args.skip_bad_files, schema=args.schema, show_progress=sys.stderr.isatty(),
        )
    except (ConfigError, BadInputFileError, LostEventsError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(format_cutflow(result))
    print(f"feature store: {result.store}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
