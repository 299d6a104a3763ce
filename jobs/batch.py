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
    scan                       scan.json (from the histograms only)
    report                     summary.json, plots, index.html

Every step calls the same stage function as the Dask pipeline (:mod:`analysis.stages`):
chunk nodes run the stage's processor on their chunks, merges call the stage's ``merge_*``.
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
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import hist
import uhi.io.json as uhi_json

from analysis.core.chunking import chunk_size
from analysis.core.cli import non_negative_int, positive_int, run_command
from analysis.core.config import AnalysisConfig, load_config
from analysis.core.errors import UserError
from analysis.core.fileset import inspect_fileset, load_fileset
from analysis.core.layout import ResultsLayout
from analysis.core.store import clear_store
from analysis.stages.control import log_selection, no_signal_reason
from analysis.stages.fit import fit_inputs_from_fileset, run_fit
from analysis.stages.generate import log_inputs
from analysis.stages.process import merge_processing
from analysis.stages.report import run_report
from analysis.stages.scan import run_scan
from analysis.stages.score import (
    load_histograms,
    merge_scoring,
    save_histograms,
    scoring_processor,
)
from analysis.stages.train import model_points, run_training
from processors.processor import SelectionProcessor

from .generate import MANIFEST_NAME, output_directory
from .manifest import sample_entry, write_manifest
from .plan import (
    PlanError,
    build_plan,
    chunk_events,
    clear_partials,
    collect_partials,
    read_plan,
    write_partial,
    write_plan,
)
from .pythia_job import job_is_done, run_generation_job
from .samples import jobs_from_config, samples_from_config

STEPS = ("generate", "merge-samples", "plan", "process", "merge-process", "train", "score", "merge-score", "scan",
         "fit", "report")
#: Steps that take ``--slot`` / ``--slots`` (the chunk nodes) and their merges (``--slots``).
CHUNK_STEPS = ("process", "score")
MERGE_STEPS = ("merge-process", "merge-score")


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
        """The directory of the chunk outputs of ``process`` or ``score``."""
        return self.work / step


def chunk_node_name(step: str, slot: int) -> str:
    """The DAG node name of chunk node ``slot`` of ``step`` (``process_0003``)."""
    return f"{step}_{slot:04d}"


# -- generation -----------------------------------------------------------------------------
def run_generate(config: AnalysisConfig, job_stem: str) -> Path:
    """Run one generation job (skipped when its outputs exist); returns its ROOT file."""
    jobs = {job.stem: job for job in jobs_from_config(config)}
    if job_stem not in jobs:
        raise BatchError(f"no generation job {job_stem!r} in this config; jobs are {', '.join(sorted(jobs))}")
    outdir = output_directory(config)
    outdir.mkdir(parents=True, exist_ok=True)
    if not job_is_done(outdir, job_stem):
        run_generation_job(jobs[job_stem], outdir)
    return outdir / f"{job_stem}.root"


def run_merge_samples(config: AnalysisConfig) -> Path:
    """Write the sample manifest from every generation job's bookkeeping file (as ``jobs.generate``)."""
    outdir = output_directory(config)
    missing = [job.stem for job in jobs_from_config(config) if not job_is_done(outdir, job.stem)]
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
    """The fileset the batch run analyses: the user's ``samples.fileset`` (``jobs.submit --fileset``
    sets it in the frozen config every job reads) or the generated manifest."""
    if config.samples.fileset is not None:
        return load_fileset(config.samples.fileset)
    manifest = output_directory(config) / MANIFEST_NAME
    if not manifest.exists():
        raise BatchError(f"no sample manifest {manifest}: run the generate stage first")
    return load_fileset(manifest)


def run_plan(config: AnalysisConfig, paths: BatchPaths, schema: str = "base", skip_bad_files: bool = False):
    """Inspect the fileset, write the chunk plan, and clear the outputs of an earlier run.

    Logs what the run analyses and the selection in force, as the Dask pipeline does."""
    log_inputs(config)
    selection = SelectionProcessor(config, None)
    log_selection(config, selection)
    inspected = inspect_fileset(analysis_fileset(config), config, skip_bad_files,
                                extra_branches=selection.columns.required_branches())
    plan = build_plan(inspected, chunk_size(config, sum(inspected.n_input.values()), "condor"), schema)
    clear_store(paths.store)
    for step in CHUNK_STEPS:
        clear_partials(paths.partials(step))
    write_plan(paths.plan, plan)
    return plan


def _run_chunks(processor_instance, plan, slot: int, slots: int, partials: Path, **write_options) -> int:
    """Run ``processor_instance`` on this node's chunks, one partial output per chunk."""
    chunks = plan.for_slot(slot, slots)
    for chunk in chunks:
        with chunk_events(plan, chunk) as events:
            output = processor_instance.process(events)
        write_partial(partials, chunk, _single_result(output, chunk), **write_options)
    return len(chunks)


def run_process(config: AnalysisConfig, paths: BatchPaths, slot: int, slots: int) -> int:
    """Selection of this node's chunks: feature-store parts and one cutflow JSON per chunk."""
    plan = read_plan(paths.plan)
    return _run_chunks(SelectionProcessor(config, str(paths.store.resolve())), plan, slot, slots,
                       paths.partials("process"), default=uhi_json.default)  # control histograms: uhi JSON


def _single_result(output: dict, chunk) -> dict:
    if list(output) != [chunk.key]:
        raise PlanError(f"the processor returned chunk(s) {sorted(output)} for chunk {chunk.describe()}")
    return output[chunk.key]


def run_merge_process(config: AnalysisConfig, paths: BatchPaths, slots: int | None = None):
    """The stage's :func:`~analysis.stages.process.merge_processing` over the chunk nodes' outputs."""
    plan = read_plan(paths.plan)
    chunks = collect_partials(paths.partials("process"), plan, node_name=_slot_namer(plan, "process", slots),
                              object_hook=uhi_json.object_hook)
    for chunk in chunks.values():
        chunk["control"] = {name: hist.Hist(h) for name, h in (chunk.get("control") or {}).items()}
    return merge_processing(config, chunks, plan.n_input, plan.all_datasets(), plan.skipped, paths.store, "condor-dag")


def _slot_namer(plan, step: str, slots: int | None):
    if not slots:
        return None
    index = {chunk.key: i for i, chunk in enumerate(plan.chunks)}
    return lambda chunk: chunk_node_name(step, index[chunk.key] % slots)


# -- training, scoring, scan and report --------------------------------------------------------
def run_score(config: AnalysisConfig, paths: BatchPaths, slot: int, slots: int) -> int:
    """Score this node's chunks and write their histograms."""
    plan = read_plan(paths.plan)
    scorer = scoring_processor(config, paths.model_dir, model_points(paths.model_dir), plan.all_datasets())
    return _run_chunks(scorer, plan, slot, slots, paths.partials("score"), default=uhi_json.default)


def run_merge_score(config: AnalysisConfig, paths: BatchPaths, slots: int | None = None):
    """The stage's :func:`~analysis.stages.score.merge_scoring` over the chunk nodes' outputs;
    writes histograms.json."""
    plan = read_plan(paths.plan)
    raw = collect_partials(paths.partials("score"), plan, node_name=_slot_namer(plan, "score", slots),
                           object_hook=uhi_json.object_hook)
    chunks = {key: {"score": hist.Hist(value["score"]), "observed": hist.Hist(value["observed"]),
                    "control": {name: hist.Hist(h) for name, h in value["control"].items()},
                    "n_events": value["n_events"], "n_scored": value["n_scored"]} for key, value in raw.items()}
    scorer = scoring_processor(config, paths.model_dir, model_points(paths.model_dir), plan.all_datasets())
    result = merge_scoring(scorer, chunks, plan.n_input)
    save_histograms(paths.histograms, result)
    return result


def run_batch_fit(config: AnalysisConfig, paths: BatchPaths):
    """The fit stage on histograms.json, every grid point in this one job (as the Pipeline's
    ``fit`` without a Dask cluster); writes the workspaces and fit.json."""
    data, xsec_uncertainties = fit_inputs_from_fileset(analysis_fileset(config))
    scores = load_histograms(paths.histograms)
    return run_fit(config, scores.score, model_points(paths.model_dir), paths.outdir, data_processes=data,
                   signal_xsec_uncertainties=xsec_uncertainties, observed=scores.observed)


def run_batch_scan(config: AnalysisConfig, paths: BatchPaths):
    """The scan stage on histograms.json; writes scan.json."""
    return run_scan(config, load_histograms(paths.histograms).score, model_points(paths.model_dir), paths.scan)


# -- command line ---------------------------------------------------------------------------
#: Steps that need signal: they do nothing (and say why) when the selection has none.
SIGNAL_STEPS = ("train", "score", "merge-score", "scan", "fit")


def signal_missing(paths: BatchPaths) -> str | None:
    """Why the signal steps have nothing to do (no signal dataset, no selected signal event),
    from the merged ``store/cutflow.json``; None when there is signal or no cutflow yet."""
    cutflow = paths.store / "cutflow.json"
    return no_signal_reason(json.loads(cutflow.read_text())) if cutflow.exists() else None


def run_step(step: str, config: AnalysisConfig, outdir: Path, *, job: str | None = None, slot: int | None = None,
             slots: int | None = None) -> str:
    """Run one step; returns a one-line summary of what it did (a signal step without signal
    does nothing and says so: the report then shows the selection and control histograms)."""
    paths = BatchPaths(Path(outdir))
    if step in SIGNAL_STEPS:
        reason = signal_missing(paths)
        if reason:
            return f"{step} skipped: {reason}"
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
        count = (run_process if step == "process" else run_score)(config, paths, slot, slots)
        return f"{step} node {slot} of {slots}: {count} chunk(s)"
    if step == "merge-process":
        result = run_merge_process(config, paths, slots)
        return f"cutflow {paths.store / 'cutflow.json'}: {sum(result.n_selected.values())} selected events"
    if step == "merge-score":
        run_merge_score(config, paths, slots)
        return f"histograms {paths.histograms}"
    if step == "train":
        return f"model {run_training(config, paths)}"
    if step == "scan":
        run_batch_scan(config, paths)
        return f"scan {paths.scan}"
    if step == "fit":
        summary = run_batch_fit(config, paths)
        return f"fit {paths.outdir / 'fit.json'}" if summary is not None else "fit: disabled (fit.enabled: false)"
    if step == "report":
        return f"report {run_report(config, paths, executor='condor-dag')}"
    raise BatchError(f"unknown step {step!r}; steps are {', '.join(STEPS)}")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit code (2 for a clear, named failure)."""
    parser = argparse.ArgumentParser(prog="python -m jobs.batch", description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=STEPS)
    parser.add_argument("--config", type=Path, required=True, help="the analysis config YAML of the run")
    parser.add_argument("--outdir", type=Path, required=True, help="the results directory (shared by all jobs)")
    parser.add_argument("--job", help="generate: the job stem, e.g. WW_0003")
    parser.add_argument("--slot", type=non_negative_int, help="chunk nodes: this node's index")
    parser.add_argument("--slots", type=positive_int, help="chunk nodes and merges: the number of chunk nodes")
    args = parser.parse_args(argv)
    start = time.perf_counter()

    def body() -> int:
        message = run_step(args.step, load_config(args.config), args.outdir, job=args.job, slot=args.slot,
                           slots=args.slots)
        print(f"{message} ({time.perf_counter() - start:.1f} s)")
        return 0

    return run_command(body, name=f"jobs.batch {args.step}")

if __name__ == "__main__":
    sys.exit(main())
