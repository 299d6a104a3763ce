"""Benchmark of the selection stage (``python benchmarks/process.py``).

Generates (once; cached afterwards) 2 million WW background events in files of 100k events
(``--events``; or ``--fileset`` names samples already made; ``--replicate`` lists each file
several times, for more chunks without more generation), then measures side by side,
interleaved over ``--repeats`` rounds, and prints medians:

- a bare uproot read of the same branches into awkward arrays (one process);
- the full stage (objects, weights, preselection, features, feature-store Parquet parts,
  control histograms) on the iterative executor;
- the peer: the same selection written the way a coffea user writes it
  (:mod:`benchmarks.peer_coffea`: NanoEvents, candidate behaviours, ``PackedSelection``,
  ``hist``, ``ak.to_parquet``), on the same iterative executor; its cutflow must equal
  bsmscan's;
- the full stage on Dask with 2 workers (a ``distributed.LocalCluster``, one thread each,
  started once), with the driver's CPU time during the run;

and the ratios full/bare, bsmscan/peer and Dask/iterative (from the medians, and from the
fastest round, which on a shared machine is the one least disturbed by other processes), the
CPU seconds of the single-process runs (bare read, iterative, peer: a measure that other
load on the machine barely changes), plus the peak resident memory of each Dask worker and of
the iterative process, and the machine's own parallel capacity (two CPU-bound tasks on the
two workers against one: the ceiling of the Dask speed-up at that moment). One untimed round on the first file comes first (imports, the
compiled kernels loaded in every process). Chunks: ``executor.chunksize: auto`` unless
``--chunksize`` is given (the size used is printed).
Targets (issue 17): full stage >= 0.5x the bare read rate; bsmscan >= the peer; Dask on 2
workers >= 1.8x iterative; peak memory per worker < 1.5 GB.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import uproot

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.core.chunking import chunk_size
from analysis.core.config import config_from_dict, default_config, plain_production
from analysis.core.fileset import load_fileset, required_branches
from analysis.stages.process import run_processing
from benchmarks.peer_coffea import CUTS, GeneratedNanoAODSchema, PeerProcessor
from jobs.generate import generate_samples
from processors import WORKER_MODULES


def benchmark_config(n_events: int, chunksize: int | None, events_per_file: int = 100_000):
    data = default_config().model_dump(mode="json")
    # The plain production (no generator filter: fast to make) with pt_bias_power 4, which fills
    # the MET tail most (throughput is what is measured here, as in issue 17's figures).
    data["samples"].update(signal_grid=[], backgrounds=["WW"], background_events=n_events, events_per_job=events_per_file,
                           **plain_production(data["samples"]), pt_bias_power=4.0)
    data["executor"]["chunksize"] = chunksize
    return config_from_dict(data, source="benchmark")


def bare_read(fileset: dict, branches: list[str]) -> None:
    """Read ``branches`` of every file into awkward arrays with uproot."""
    for entry in fileset.values():
        for path, tree in entry["files"].items():
            with uproot.open(path) as file:
                file[tree].arrays(branches)


def run_peer(config, fileset: dict, chunksize: int, outdir: Path) -> dict:
    """The coffea-style peer on the iterative executor (features written to ``outdir``)."""
    from coffea import processor

    runner = processor.Runner(executor=processor.IterativeExecutor(), chunksize=chunksize,
                              schema=GeneratedNanoAODSchema, metadata_cache={})
    return runner(fileset, PeerProcessor(config.luminosity_fb, str(outdir)))


def replicated(fileset: dict, times: int, directory: Path) -> dict:
    """``fileset`` with every file listed ``times`` times, as symbolic links in ``directory``."""
    out = {}
    for name, entry in fileset.items():
        files = {}
        for copy in range(times):
            for index, (path, tree) in enumerate(entry["files"].items()):
                link = directory / f"{copy}_{index}_{Path(path).name}"
                link.symlink_to(Path(path).resolve())
                files[str(link)] = tree
        metadata = {**entry["metadata"], "nevents": entry["metadata"]["nevents"] * times}
        if metadata.get("sum_genweight") is not None:
            metadata["sum_genweight"] *= times
        out[name] = {**entry, "files": files, "metadata": metadata}
    return out


def _cpu_task() -> float:
    values = np.random.default_rng(0).random(2_000_000)
    start = time.perf_counter()
    for _ in range(25):
        np.sort(values)
    return time.perf_counter() - start


def parallel_capacity(client) -> float:
    """How much faster two CPU-bound tasks run on the two workers at once than one alone."""
    workers = sorted(client.scheduler_info()["workers"])[:2]
    client.submit(_cpu_task, workers=workers[:1], pure=False).result()
    start = time.perf_counter()
    client.submit(_cpu_task, workers=workers[:1], pure=False).result()
    one = time.perf_counter() - start
    start = time.perf_counter()
    client.gather([client.submit(_cpu_task, workers=[worker], pure=False) for worker in workers])
    return 2 * one / (time.perf_counter() - start)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--chunksize", type=int, default=None, help="events per chunk (default: executor.chunksize auto)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fileset", type=Path, help="a fileset JSON of WW samples already made (skips generation)")
    parser.add_argument("--replicate", type=int, default=1,
                        help="process every file this many times (symbolic links under other names): more chunks "
                             "per worker without generating more events")
    parser.add_argument("--generate-only", action="store_true")
    args = parser.parse_args()

    config = benchmark_config(args.events, args.chunksize)
    if args.fileset is not None:
        fileset = load_fileset(args.fileset)
        print(f"sample: {args.fileset}")
    else:
        start = time.perf_counter()
        manifest = generate_samples(config, show_progress=None)
        print(f"sample: {args.events} WW events in {args.events // 100_000} files ({time.perf_counter() - start:.0f} s to generate or find)")
        if args.generate_only:
            return
        fileset = load_fileset(manifest)
    links = tempfile.TemporaryDirectory(prefix="bsmscan-bench-links-")
    if args.replicate > 1:
        fileset = replicated(fileset, args.replicate, Path(links.name))
        print(f"every file {args.replicate} times (symbolic links)")
    n_events = sum(entry["metadata"]["nevents"] for entry in fileset.values())
    branches = required_branches(config, is_data=False)
    chunksize = chunk_size(config, n_events, "dask", 2)

    from distributed import Client, LocalCluster

    from analysis.core.executors import worker_settings

    labels = ("bare read", "iterative", "peer (coffea style)", "dask (2 workers)")
    timings: dict[str, list[float]] = {label: [] for label in labels}
    cpu: dict[str, list[float]] = {label: [] for label in labels}
    worker_peaks, results = [], {}

    def timed(label: str, function):
        start, cpu_start = time.perf_counter(), time.process_time()
        value = function()
        timings[label].append(time.perf_counter() - start)
        cpu[label].append(time.process_time() - cpu_start)
        return value

    with worker_settings(WORKER_MODULES), LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, Client(cluster) as client:
        client.run(lambda: None)  # workers up before timing
        # one untimed round on the first file: imports and the compiled kernels' loading in every process
        first = {name: {**entry, "files": dict(list(entry["files"].items())[:1])} for name, entry in list(fileset.items())[:1]}
        with tempfile.TemporaryDirectory(prefix="bsmscan-bench-warmup-") as warm:
            for options in ({"executor": "iterative"}, {"executor": "dask", "client": client}):
                run_processing(config, Path(warm) / options["executor"], fileset=first, describe=False, **options)
            run_peer(config, first, chunksize, Path(warm))
        for _ in range(args.repeats):
            timed("bare read", lambda: bare_read(fileset, branches))
            for label, options in (("iterative", {"executor": "iterative", "workers": 2}),
                                   ("dask (2 workers)", {"executor": "dask", "client": client, "workers": 2})):
                store = Path(tempfile.mkdtemp(prefix="bsmscan-bench-store-"))
                results[label] = timed(label, lambda store=store, options=options: run_processing(
                    config, store, fileset=fileset, describe=False, **options))
                assert sum(results[label].n_processed.values()) == n_events
                shutil.rmtree(store)
            outdir = Path(tempfile.mkdtemp(prefix="bsmscan-bench-peer-"))
            peer = timed("peer (coffea style)", lambda outdir=outdir: run_peer(config, fileset, chunksize, outdir))
            shutil.rmtree(outdir)
            worker_peaks.append(max(client.run(_peak_rss_mb).values()))
        capacity = parallel_capacity(client)
    iterative_peak = _peak_rss_mb()
    links.cleanup()

    ours = results["iterative"]
    assert results["dask (2 workers)"].cutflow == ours.cutflow  # bit-identical on both executors
    raw = np.asarray(ours.cutflow["WW"]["raw"])[[ours.steps.index("all events"), *(ours.steps.index(c) for c in CUTS)]]
    same = np.array_equal(raw, peer["cutflow"]["WW"])
    rates = {label: n_events / statistics.median(times) for label, times in timings.items()}
    best = {label: n_events / min(times) for label, times in timings.items()}
    print(f"{n_events} events, chunks of {chunksize} (executor.chunksize "
          f"{'auto' if args.chunksize is None else args.chunksize}), medians of {args.repeats} interleaved rounds:")
    for label, rate in rates.items():
        spread = max(timings[label]) / min(timings[label])
        cpu_rate = "" if label.startswith("dask") else f"; {n_events / statistics.median(cpu[label]):>10,.0f} events per CPU s"
        print(f"  {label:<20} {rate:>12,.0f} events/s   (fastest round {best[label]:>10,.0f}; max/min time {spread:.2f}{cpu_rate})")

    def ratio(a: str, b: str) -> str:
        return (f"{rates[a] / rates[b]:.2f} (fastest rounds {best[a] / best[b]:.2f}; "
                f"CPU time {statistics.median(cpu[b]) / statistics.median(cpu[a]):.2f})")

    print(f"  full stage / bare read (iterative): {ratio('iterative', 'bare read')}   (target >= 0.5)")
    print(f"  bsmscan / peer (iterative):         {ratio('iterative', 'peer (coffea style)')}   (target >= 1; "
          f"cutflows {'identical' if same else 'DIFFER: ' + str(raw.tolist()) + ' vs ' + str(peer['cutflow']['WW'].tolist())})")
    dask_wall = statistics.median(timings['dask (2 workers)'])
    print(f"  dask 2 workers / iterative:         {rates['dask (2 workers)'] / rates['iterative']:.2f} (fastest rounds "
          f"{best['dask (2 workers)'] / best['iterative']:.2f})   (target >= 1.8; driver CPU "
          f"{statistics.median(cpu['dask (2 workers)']):.2f} s of {dask_wall:.2f} s wall)")
    print(f"  machine: two CPU-bound tasks at once on the 2 workers run {capacity:.2f}x as fast as one (the ceiling "
          "of any 2-worker speed-up here, now)")
    print(f"  peak RSS per Dask worker: {max(worker_peaks):.0f} MB; iterative driver process: {iterative_peak:.0f} MB   (target < 1500 MB)")


if __name__ == "__main__":
    main()
