"""The generation steps: ``generate`` (one sample x chunk job) and ``merge-samples`` (the manifest)."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from analysis.core.config import AnalysisConfig

from ..generate import MANIFEST_NAME, output_directory
from ..manifest import sample_entry, write_manifest
from ..pythia_job import job_is_done, run_generation_job
from ..samples import jobs_from_config, samples_from_config
from .common import BatchError, BatchPaths


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


def run_step(step: str, config: AnalysisConfig, paths: BatchPaths, *, job: str | None = None, **_) -> str:
    """Run ``generate`` or ``merge-samples``; returns the one-line summary."""
    if step == "generate":
        if not job:
            raise BatchError("generate needs --job (a job stem such as WW_0003)")
        return f"generated {run_generate(config, job)}"
    return f"sample manifest {run_merge_samples(config)}"
