"""Entry points of the batch jobs: ``python -m jobs.batch <step> --config FILE --outdir DIR ...``.

Each step is one node of the DAG written by ``python -m jobs.submit`` (``jobs/dag.py``) and
runs as an HTCondor job or as a local process; none needs a Dask scheduler. Every step reads
its inputs from, and writes its outputs into, the results directory ``--outdir`` (the same
layout as ``python -m analysis.run``), which all jobs must reach (a shared filesystem)::

    generate --job STEM        one (sample x chunk) generation job -> <sample cache>/<STEM>.root/.json
    merge-samples              the sample manifest <sample cache>/fileset.json
    plan                       inspect the fileset; the chunk plan batch/plan.json; clear old outputs
    process --slot I --slots N selection of every N-th chunk -> store/parts/*.parquet, batch/process/*.json
    merge-process --slots N    store/cutflow.json and store/schema.json
    train                      model/ (request_gpus on the pool when configured)
    score --slot I --slots N   score histograms per chunk -> batch/score/*.json
    merge-score --slots N      histograms.json
    scan                       scan.json
    control --slot I --slots N control histograms after each point's optimal threshold -> batch/control/*.json
    merge-control --slots N    control_histograms.json
    report                     summary.json, plots, index.html

Partial outputs are JSON (histograms with uhi's serialisation) or Parquet, written under a
temporary name and renamed when complete; nothing is pickled. Merges add the chunks in
sorted key order exactly like ``run_processing`` / ``run_scoring``, so the results equal a
Dask run's bit for bit, and refuse a missing, duplicated or unknown chunk, naming it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from analysis.core.config import AnalysisConfig, ConfigError, load_config
from analysis.core.errors import UserError
from analysis.core.layout import ResultsLayout

from .plan import (
    PlanError,
    build_plan,
    chunk_events,
    clear_partials,
    collect_partials,
    read_plan,
    write_json_atomic,
    write_partial,
    write_plan,
)

STEPS = ("generate", "merge-samples", "plan", "process", "merge-process", "train", "score", "merge-score", "scan",
         "control", "merge-control", "report")
#: Steps that take ``--slot`` / ``--slots`` (the chunk nodes) and their merges (``--slots``).
CHUNK_STEPS = ("process", "score", "control")
MERGE_STEPS = ("merge-process", "merge-score", "merge-control")


class BatchError(UserError, RuntimeError):
    """A batch step cannot run: a missing input, an unknown job; the message says which."""


@dataclass(frozen=True)
class BatchPaths(ResultsLayout):
    """Where the batch steps read and write: the pipeline's results layout plus a work area."""

    @property
    def work(self) -> Path:
        return self.outdir / "batch"

    @property
    def plan(self) -> Path:
        return self.work / "plan.json"

    def partials(self, step: str) -> Path:
        """The directory of the chunk outputs of ``process``, ``score`` or ``control``."""
        return self.work / step


def chunk_node_name(step: str, slot: int) -> str:
    """The DAG node name of chunk node ``slot`` of ``step`` (``process_0003``)."""
    return f"{step}_{slot:04d}"


# -- generation -----------------------------------------------------------------------------
def run_generate(config: AnalysisConfig, job_stem: str) -> Path:
    """Run one generation job (skipped when its outputs exist); returns its ROOT file."""
    from .generate import output_directory
    from .pythia_job import run_generation_job
    from .samples import jobs_from_config

    jobs = {job.stem: job for job in jobs_from_config(config)}
    if job_stem not in jobs:
        raise BatchError(f"no generation job {job_stem!r} in this config; jobs are {', '.join(sorted(jobs))}")
    outdir = output_directory(config)
    outdir.mkdir(parents=True, exist_ok=True)
    done = (outdir / f"{job_stem}.json").exists() and (outdir / f"{job_stem}.root").exists()
    if not done:
        run_generation_job(jobs[job_stem], outdir)
    return outdir / f"{job_stem}.root"


def run_merge_samples(config: AnalysisConfig) -> Path:
    """Write the sample manifest from every generation job's bookkeeping file (as ``jobs.generate``)."""
    from collections import defaultdict

    from .generate import MANIFEST_NAME, output_directory
    from .manifest import sample_entry, write_manifest
    from .samples import jobs_from_config, samples_from_config

    outdir = output_directory(config)
    missing = [job.stem for job in jobs_from_config(config) if not (outdir / f"{job.stem}.json").exists()
               or not (outdir / f"{job.stem}.root").exists()]
    if missing:
        raise BatchError(f"{len(missing)} generation job(s) have no output in {outdir}: {', '.join(missing[:10])}"
                         f"{' ...' if len(missing) > 10 else ''} (node generate_<job> did not finish)")
    payloads = defaultdict(list)
    for job in jobs_from_config(config):
        payload = json.loads((outdir / f"{job.stem}.json").read_text())
        if payload.get("job_index") != job.index:
            raise BatchError(f"{outdir / (job.stem + '.json')} is the output of job {payload.get('job_index')}, "
                             f"not of job {job.index}")
        payloads[job.sample.name].append(payload)
    (outdir / "generation_config.json").write_text(
        json.dumps({"seed": config.seed, "samples": config.samples.model_dump(mode="json")}, indent=2)
    )
    fileset = {sample.name: sample_entry(sample, outdir, payloads[sample.name]) for sample in samples_from_config(config)}
    manifest = outdir / MANIFEST_NAME
    write_manifest(manifest, fileset)
    return manifest


# -- selection ------------------------------------------------------------------------------
def analysis_fileset(config: AnalysisConfig) -> dict:
    """The fileset the batch run analyses: the user's ``samples.fileset`` or the generated manifest."""
    from analysis.core.fileset import load_fileset

    from .generate import MANIFEST_NAME, output_directory

    if config.samples.fileset is not None:
        return load_fileset(config.samples.fileset)
    manifest = output_directory(config) / MANIFEST_NAME
    if not manifest.exists():
        raise BatchError(f"no sample manifest {manifest}: run the generate stage first")
    return load_fileset(manifest)


def run_plan(config: AnalysisConfig, paths: BatchPaths, schema: str = "base", skip_bad_files: bool = False):
    """Inspect the fileset, write the chunk plan, and clear the outputs of an earlier run."""
    from analysis.core.fileset import inspect_fileset
    from analysis.core.store import clear_store

    inspected = inspect_fileset(analysis_fileset(config), config, skip_bad_files)
    plan = build_plan(inspected, config.executor.chunksize, schema)
    clear_store(paths.store)
    for step in CHUNK_STEPS:
        clear_partials(paths.partials(step))
    write_plan(paths.plan, plan)
    return plan


def run_process(config: AnalysisConfig, paths: BatchPaths, slot: int, slots: int) -> int:
    """Selection of this node's chunks: feature-store parts and one cutflow JSON per chunk."""
    from processors.processor import SelectionProcessor

    plan = read_plan(paths.plan)
    processor_instance = SelectionProcessor(config, str(paths.store.resolve()))
    chunks = plan.for_slot(slot, slots)
    for chunk in chunks:
        with chunk_events(plan, chunk) as events:
            output = processor_instance.process(events)
        write_partial(paths.partials("process"), chunk, _single_result(output, chunk))
    return len(chunks)


def _single_result(output: dict, chunk) -> dict:
    if list(output) != [chunk.key]:
        raise PlanError(f"the processor returned chunk(s) {sorted(output)} for chunk {chunk.describe()}")
    return output[chunk.key]


def run_merge_process(config: AnalysisConfig, paths: BatchPaths, slots: int | None = None):
    """The cutflow of every chunk, summed as ``run_processing`` does; writes cutflow.json and schema.json."""
    from analysis.core.fileset import check_all_events
    from analysis.core.store import write_schema
    from analysis.stages.process import (
        ProcessingResult,
        _combine_chunks,
        _dataset_schema,
    )
    from processors.processor import SelectionProcessor

    plan = read_plan(paths.plan)
    chunks = collect_partials(paths.partials("process"), plan, node_name=_slot_namer(plan, "process", slots))
    processor_instance = SelectionProcessor(config, None)
    steps = list(processor_instance.preselection.steps)
    cutflow, processed, selected = _combine_chunks(chunks, steps)
    check_all_events(plan.n_input, processed, "processed")
    write_schema(paths.store, list(processor_instance.feature_names), config.features.set,
                 {name: _dataset_schema(name, entry["metadata"]) for name, entry in sorted(plan.all_datasets().items())})
    result = ProcessingResult(steps=steps, cutflow=cutflow, n_input=dict(plan.n_input),
                              n_processed=dict(sorted(processed.items())), n_selected=dict(sorted(selected.items())),
                              skipped_files=plan.skipped, store=str(paths.store), executor="condor-dag")
    write_json_atomic(paths.store / "cutflow.json", result.to_json(), indent=2)
    return result


def _slot_namer(plan, step: str, slots: int | None):
    if not slots:
        return None
    index = {chunk.key: i for i, chunk in enumerate(plan.chunks)}
    return lambda chunk: chunk_node_name(step, index[chunk.key] % slots)


# -- training -------------------------------------------------------------------------------
def run_train(config: AnalysisConfig, paths: BatchPaths) -> Path:
    """Train the classifier on the merged feature store (as ``Pipeline.train``)."""
    from nn.train import train_from_store

    train_from_store(paths.store, paths.model_dir, config, log=print)
    return paths.model_dir


# -- scoring --------------------------------------------------------------------------------
def model_points(paths: BatchPaths) -> list[tuple[float, float]]:
    """The signal grid points the model is evaluated at (as ``Pipeline.points``)."""
    from nn.artifact import load_model

    return [(float(m), float(d)) for m, d in load_model(paths.model_dir).signal_points]


def scan_thresholds(paths: BatchPaths) -> dict[str, float]:
    """Each grid point's optimal threshold from scan.json (points without one are left out)."""
    try:
        scan = json.loads(paths.scan.read_text())
    except FileNotFoundError:
        raise BatchError(f"no {paths.scan}: the scan node has not run") from None
    return {p["label"]: p["best_threshold"] for p in scan["points"] if p["best_threshold"] == p["best_threshold"]}


def run_score(config: AnalysisConfig, paths: BatchPaths, slot: int, slots: int, control: bool = False) -> int:
    """Score this node's chunks and write their histograms (``control``: with the scan's thresholds)."""
    import uhi.io.json as uhi_json

    from processors.scoring import ScoringProcessor, process_labels

    plan = read_plan(paths.plan)
    thresholds = scan_thresholds(paths) if control else None
    scorer = ScoringProcessor(config, str(paths.model_dir.resolve()), model_points(paths),
                              process_labels(plan.all_datasets()), thresholds)
    chunks = plan.for_slot(slot, slots)
    for chunk in chunks:
        with chunk_events(plan, chunk) as events:
            output = scorer.process(events)
        write_partial(paths.partials("control" if control else "score"), chunk, _single_result(output, chunk),
                      default=uhi_json.default)
    return len(chunks)


def run_merge_score(config: AnalysisConfig, paths: BatchPaths, slots: int | None = None, control: bool = False):
    """Add the chunks' histograms in sorted order (as ``run_scoring``); writes histograms.json."""
    import hist
    import uhi.io.json as uhi_json

    from analysis.core.fileset import check_all_events
    from analysis.stages.score import ScoringResult, save_histograms
    from processors.scoring import ScoringProcessor, merge_chunks, process_labels

    step = "control" if control else "score"
    plan = read_plan(paths.plan)
    raw = collect_partials(paths.partials(step), plan, node_name=_slot_namer(plan, step, slots),
                           object_hook=uhi_json.object_hook)
    chunks = {key: {"score": hist.Hist(value["score"]),
                    "control": {name: hist.Hist(h) for name, h in value["control"].items()},
                    "n_events": value["n_events"], "n_scored": value["n_scored"]} for key, value in raw.items()}
    if chunks:
        merged = merge_chunks(chunks)
    else:  # an empty fileset: empty histograms, as run_scoring gives
        labels = process_labels(plan.all_datasets())
        merged = ScoringProcessor(config, str(paths.model_dir), model_points(paths), labels).empty_output()
    check_all_events(plan.n_input, merged["n_events"], "scored")
    result = ScoringResult(merged["score"], merged["control"], dict(sorted(merged["n_events"].items())),
                           dict(sorted(merged["n_scored"].items())))
    save_histograms(paths.control_histograms if control else paths.histograms, result)
    return result


# -- scan and report ------------------------------------------------------------------------
def run_scan(config: AnalysisConfig, paths: BatchPaths):
    """Threshold scans of every grid point from histograms.json; writes scan.json (as ``Pipeline.scan``)."""
    from analysis.core.names import point_name
    from analysis.results.scan import scan_points
    from analysis.stages.score import load_histograms

    scores = load_histograms(paths.histograms)
    points = model_points(paths)
    labels = [point_name(m, d) for m, d in points]
    background = [p for p in scores.score.axes["process"] if p not in labels]
    grid = [(label, m, d) for label, (m, d) in zip(labels, points)]
    summary = scan_points(scores.score, grid, background, config.scan, config.luminosity_fb,
                          split="test", split_fraction=config.training.split_fractions[2])
    write_json_atomic(paths.scan, summary.to_json(), indent=1)
    return summary


def run_report(config: AnalysisConfig, paths: BatchPaths) -> Path:
    """Plots, summary.json and index.html from the results directory (``Pipeline.report``)."""
    from analysis.pipeline import Pipeline

    return Pipeline(config, paths.outdir, executor="condor-dag").report()  # reads the results; runs nothing


# -- command line ---------------------------------------------------------------------------
def run_step(step: str, config: AnalysisConfig, outdir: Path, *, job: str | None = None, slot: int | None = None,
             slots: int | None = None) -> str:
    """Run one step; returns a one-line summary of what it did."""
    paths = BatchPaths(Path(outdir))
    if step == "generate":
        if not job:
            raise BatchError("generate needs --job (a job stem such as WW_0003)")
        return f"generated {run_generate(config, job)}"
    if step == "merge-samples":
        return f"sample manifest {run_merge_samples(config)}"
    if step == "plan":
        plan = run_plan(config, paths)
        return f"chunk plan {paths.plan}: {len(plan.chunks)} chunk(s) of {sum(plan.n_input.values())} events"
    if step in CHUNK_STEPS:
        if slot is None or not slots:
            raise BatchError(f"{step} needs --slot and --slots")
        if step == "process":
            count = run_process(config, paths, slot, slots)
        else:
            count = run_score(config, paths, slot, slots, control=step == "control")
        return f"{step} node {slot} of {slots}: {count} chunk(s)"
    if step == "merge-process":
        result = run_merge_process(config, paths, slots)
        return f"cutflow {paths.store / 'cutflow.json'}: {sum(result.n_selected.values())} selected events"
    if step in ("merge-score", "merge-control"):
        run_merge_score(config, paths, slots, control=step == "merge-control")
        return f"histograms {paths.control_histograms if step == 'merge-control' else paths.histograms}"
    if step == "train":
        return f"model {run_train(config, paths)}"
    if step == "scan":
        run_scan(config, paths)
        return f"scan {paths.scan}"
    if step == "report":
        return f"report {run_report(config, paths)}"
    raise BatchError(f"unknown step {step!r}; steps are {', '.join(STEPS)}")


def _named_errors() -> tuple[type, ...]:
    """Errors whose message names the problem, reported without a traceback."""
    from analysis.core.fileset import BadInputFileError, LostEventsError

    named = (ConfigError, BatchError, PlanError, BadInputFileError, LostEventsError)
    data = sys.modules.get("nn.data")  # only if loaded: importing it would import JAX
    return named + ((data.FeatureStoreError,) if data is not None else ())


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit code (2 for a clear, named failure)."""
    parser = argparse.ArgumentParser(prog="python -m jobs.batch", description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=STEPS)
    parser.add_argument("--config", type=Path, required=True, help="the analysis config YAML of the run")
    parser.add_argument("--outdir", type=Path, required=True, help="the results directory (shared by all jobs)")
    parser.add_argument("--job", help="generate: the job stem, e.g. WW_0003")
    parser.add_argument("--slot", type=int, help="chunk nodes: this node's index")
    parser.add_argument("--slots", type=int, help="chunk nodes and merges: the number of chunk nodes")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        config = load_config(args.config)
        message = run_step(args.step, config, args.outdir, job=args.job, slot=args.slot, slots=args.slots)
    except Exception as error:
        if not isinstance(error, _named_errors()):
            raise  # unexpected: the traceback goes to the job's error log
        print(f"error: {args.step}: {error}", file=sys.stderr)
        return 2
    print(f"{message} ({time.perf_counter() - start:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
