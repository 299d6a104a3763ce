"""Monte Carlo sample production: ``python -m jobs.generate``.

Splits every sample of the config into (sample x chunk) jobs, runs the missing ones in
parallel on local processes or a Dask cluster, and writes the fileset manifest. Output goes
to ``<samples.cache_dir>/<hash>/``, where the hash covers the specification of every job
(Pythia settings, spectrum, seed, event range, detector model): a changed config never
reuses stale files, an unchanged one reuses the cache at once, and a job that another config
already generated (the same backgrounds with a new signal grid point, say) is linked, not
generated again.

Examples::

    python -m jobs.generate                       # the built-in default analysis
    python -m jobs.generate --config my.yaml --workers 4
    python -m jobs.generate --executor dask --scheduler tcp://host:8786
    python -m jobs.generate --full-grid           # the 66-point thesis grid
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

from tqdm import tqdm

from analysis.core.atomic import remove_stale_temporaries
from analysis.core.cli import positive_int
from analysis.core.config import (
    AnalysisConfig,
    default_config,
    full_signal_grid,
    load_config,
)
from analysis.core.errors import UserError
from analysis.core.executors import local_cluster  # noqa: F401 (re-exported for --executor dask)
from analysis.core.lock import folder_lock

from .manifest import sample_entry, write_manifest
from .pythia_job import job_is_done, run_generation_job
from .samples import GenerationJob, jobs_from_config, samples_from_config

MANIFEST_NAME = "fileset.json"


def output_directory(config: AnalysisConfig) -> Path:
    """Where the samples of ``config`` live: ``<cache_dir>/<hash of its jobs' specifications>``.

    Only what changes the events enters the hash (see :attr:`GenerationJob.spec_hash`), so
    e.g. the cache location or the number of signal events of a config without signal do not;
    plus each sample's normalisation, which changes the manifest (not the events, which are
    hard-linked from the other folder). Samples all at LO keep the hash of the stems alone.
    """
    stems = sorted(job.stem for job in jobs_from_config(config))
    normalisations = sorted(repr(s.normalisation) for s in samples_from_config(config) if s.normalisation.mode != "lo")
    digest = hashlib.sha256(json.dumps(stems + normalisations if normalisations else stems).encode()).hexdigest()[:16]
    return config.samples.resolved_cache_dir() / digest


def _reuse_from_cache(job: GenerationJob, outdir: Path) -> bool:
    """Hard-link (or copy) the outputs of an identical job found elsewhere in the cache."""
    for json_path in outdir.parent.glob(f"*/{job.stem}.json"):
        root_path = json_path.with_suffix(".root")
        if json_path.parent == outdir or not root_path.exists():
            continue
        for source in (root_path, json_path):  # the JSON (completion marker) last
            target = outdir / source.name
            tmp = outdir / f".{source.name}.tmp-{os.getpid()}"
            try:
                os.link(source, tmp)
            except OSError:
                shutil.copyfile(source, tmp)
            os.replace(tmp, target)
        return True
    return False


def _run_local(jobs: list[GenerationJob], outdir: Path, workers: int, progress: tqdm) -> list[dict]:
    if workers == 1:
        results = []
        for job in jobs:
            results.append(run_generation_job(job, outdir))
            progress.update(job.n_events)
        return results
    results = []
    # "spawn": a fresh interpreter per worker, safe next to threaded libraries in the parent.
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(run_generation_job, job, outdir): job for job in jobs}
        for future in as_completed(futures):
            results.append(future.result())
            progress.update(futures[future].n_events)
    return results


def _run_dask(jobs: list[GenerationJob], outdir: Path, client, progress: tqdm) -> list[dict]:
    from distributed import as_completed as dask_as_completed  # --executor dask only

    futures = [client.submit(run_generation_job, job, str(outdir), pure=False, key=f"generate-{job.stem}") for job in jobs]
    by_key = {future.key: job for future, job in zip(futures, jobs)}
    results = []
    for future in dask_as_completed(futures):
        results.append(future.result())
        progress.update(by_key[future.key].n_events)
    return results


def generate_samples(
    config: AnalysisConfig,
    *,
    workers: int | None = None,
    client=None,
    show_progress: bool | None = None,
) -> Path:
    """Generate every missing job of ``config`` and (re)write the manifest; return its path.

    ``client``: a ``distributed.Client`` to run the jobs on a Dask cluster; otherwise they run
    on ``workers`` local processes (default: the number of cores). Jobs whose output already
    exists are not run again. ``show_progress=None`` shows a bar only on a terminal.
    """
    samples = samples_from_config(config)  # validates every sample before any generation starts
    jobs = jobs_from_config(config)
    outdir = output_directory(config)
    with folder_lock(outdir, "sample cache"):  # one writer at a time; a second run names this one's PID
        outdir.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(outdir)  # left by generation jobs that were killed
        (outdir / "generation_config.json").write_text(
            json.dumps({"seed": config.seed, "samples": config.samples.model_dump(mode="json")}, indent=2)
        )

        pending = [job for job in jobs if not job_is_done(outdir, job.stem)]
        pending = [job for job in pending if not _reuse_from_cache(job, outdir)]
        pending.sort(key=lambda job: -job.n_events)  # big jobs first: better balance across workers
        total_events = sum(job.n_events for job in pending)
        with tqdm(total=total_events, unit="ev", desc="generate", disable=None if show_progress is None else not show_progress) as progress:
            if client is not None:
                _run_dask(pending, outdir, client, progress)
            else:
                _run_local(pending, outdir, workers or os.cpu_count() or 1, progress)

        payloads = defaultdict(list)
        for job in jobs:
            payloads[job.sample.name].append(json.loads((outdir / f"{job.stem}.json").read_text()))
        fileset = {sample.name: sample_entry(sample, outdir, payloads[sample.name]) for sample in samples}
        manifest = outdir / MANIFEST_NAME
        write_manifest(manifest, fileset)
        return manifest


def ensure_samples(config: AnalysisConfig, **kwargs) -> Path:
    """The manifest of ``config``'s samples, generating them first if the cache lacks any."""
    manifest = output_directory(config) / MANIFEST_NAME
    if manifest.exists():
        return manifest
    return generate_samples(config, **kwargs)


def _summary(manifest: Path) -> str:
    fileset = json.loads(manifest.read_text())
    header = (f"{'sample':<20} {'events':>8} {'xsec [pb]':>12} {'rel. err':>9} {'LO [pb]':>12} {'K':>6} "
              f"{'norm.':>8} {'files':>5}")
    lines = [header]
    for name, entry in fileset.items():
        meta = entry["metadata"]
        lines.append(
            f"{name:<20} {meta['nevents']:>8d} {meta['xsec_pb']:>12.5g} "
            f"{meta['xsec_err_pb'] / meta['xsec_pb']:>9.2%} {meta.get('xsec_lo_pb', meta['xsec_pb']):>12.5g} "
            f"{meta.get('k_factor', 1.0):>6.3f} {meta.get('xsec_normalisation', 'lo'):>8} {meta['n_files']:>5d}"
        )
    lines.append(f"manifest: {manifest}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m jobs.generate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, help="analysis config YAML (default: the built-in analysis)")
    parser.add_argument("--cache-dir", type=Path, help="override samples.cache_dir")
    parser.add_argument("--executor", choices=("processes", "dask"), default="processes")
    parser.add_argument("--workers", type=positive_int, help="local worker processes (default: number of cores)")
    parser.add_argument("--scheduler", help="address of a running Dask scheduler (with --executor dask)")
    parser.add_argument("--dashboard", type=int, metavar="PORT",
                        help="--executor dask: serve the Dask dashboard on 127.0.0.1:PORT (default: no dashboard)")
    parser.add_argument("--full-grid", action="store_true", help="generate the full 66-point thesis signal grid")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    try:
        config = load_config(args.config) if args.config else default_config()
        updates = {}
        if args.cache_dir:
            updates["cache_dir"] = args.cache_dir
        if args.full_grid:
            updates["signal_grid"] = full_signal_grid()
        if updates:
            config = config.model_copy(update={"samples": config.samples.model_copy(update=updates)})
        samples_from_config(config)  # e.g. a grid point outside the reference cross-section table
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    client = cluster = None
    if args.executor == "dask":
        from distributed import Client  # only with --executor dask

        if args.scheduler:
            client = Client(args.scheduler)
        else:
            cluster = local_cluster(args.workers, args.dashboard)
            client = Client(cluster)
    try:
        manifest = generate_samples(
            config, workers=args.workers, client=client, show_progress=False if args.no_progress else None
        )
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    print(_summary(manifest))
    return 0


if __name__ == "__main__":
    sys.exit(main())
