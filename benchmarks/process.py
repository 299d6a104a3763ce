"""Benchmark of the selection stage (``python benchmarks/process.py``).

Generates (once; cached afterwards) 2 million WW background events in files of 100k events,
then measures side by side, interleaved over ``--repeats`` rounds, and prints medians:

- a bare uproot read of the same branches into awkward arrays (one process);
- the full stage (objects, weights, preselection, features, feature-store Parquet parts)
  on the iterative executor;
- the same on Dask with 2 workers (a ``distributed.LocalCluster``, one thread each);

and the ratios full/bare and Dask/iterative, plus the peak resident memory of each Dask
worker and of the iterative process (100k-event chunks).
Targets (issue 3): full stage >= 0.5x the bare read rate; Dask on 2 workers >= 1.6x iterative;
peak memory per worker < 1.5 GB.
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

import uproot

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.core.config import config_from_dict, default_config  # noqa: E402
from analysis.core.fileset import load_fileset, required_branches  # noqa: E402
from analysis.stages.process import run_processing  # noqa: E402
from jobs.generate import generate_samples  # noqa: E402


def benchmark_config(n_events: int, chunksize: int):
    data = default_config().model_dump(mode="json")
    # pt_bias_power 4 fills the MET tail most (throughput is what is measured here).
    data["samples"].update(signal_grid=[], backgrounds=["WW"], background_events=n_events, events_per_job=chunksize,
                           pt_bias_power=4.0)
    data["executor"]["chunksize"] = chunksize
    return config_from_dict(data, source="benchmark")


def bare_read(fileset: dict, branches: list[str]) -> float:
    """Seconds to read ``branches`` of every file into awkward arrays with uproot."""
    start = time.perf_counter()
    for entry in fileset.values():
        for path, tree in entry["files"].items():
            with uproot.open(path) as file:
                file[tree].arrays(branches)
    return time.perf_counter() - start


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--chunksize", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--generate-only", action="store_true")
    args = parser.parse_args()

    config = benchmark_config(args.events, args.chunksize)
    start = time.perf_counter()
    manifest = generate_samples(config, show_progress=None)
    print(f"sample: {args.events} WW events in {args.events // args.chunksize} files ({time.perf_counter() - start:.0f} s to generate or find)")
    if args.generate_only:
        return
    fileset = load_fileset(manifest)
    n_events = sum(entry["metadata"]["nevents"] for entry in fileset.values())
    branches = required_branches(config, is_data=False)

    from distributed import Client, LocalCluster

    timings = {"bare read": [], "iterative": [], "dask (2 workers)": []}
    worker_peaks = []
    from analysis.core.executors import worker_settings

    with worker_settings(), LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, Client(cluster) as client:
        client.run(lambda: None)  # workers up before timing
        for _ in range(args.repeats):
            timings["bare read"].append(bare_read(fileset, branches))
            for label, options in (("iterative", {"executor": "iterative"}), ("dask (2 workers)", {"executor": "dask", "client": client})):
                store = Path(tempfile.mkdtemp(prefix="bsmscan-bench-store-"))
                start = time.perf_counter()
                result = run_processing(config, store, fileset=fileset, **options)
                timings[label].append(time.perf_counter() - start)
                assert sum(result.n_processed.values()) == n_events
                shutil.rmtree(store)
            worker_peaks.append(max(client.run(_peak_rss_mb).values()))
    iterative_peak = _peak_rss_mb()

    rates = {label: n_events / statistics.median(times) for label, times in timings.items()}
    print(f"{n_events} events, chunks of {args.chunksize}, medians of {args.repeats} interleaved rounds:")
    for label, rate in rates.items():
        spread = max(timings[label]) / min(timings[label])
        print(f"  {label:<18} {rate:>12,.0f} events/s   (max/min time {spread:.2f})")
    print(f"  full stage / bare read (iterative): {rates['iterative'] / rates['bare read']:.2f}   (target >= 0.5)")
    print(f"  dask 2 workers / iterative:         {rates['dask (2 workers)'] / rates['iterative']:.2f}   (target >= 1.6)")
    print(f"  peak RSS per Dask worker: {max(worker_peaks):.0f} MB; iterative driver process: {iterative_peak:.0f} MB   (target < 1500 MB)")


if __name__ == "__main__":
    main()
