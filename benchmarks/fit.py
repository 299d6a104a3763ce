"""Benchmark of the fit stage (``python benchmarks/fit.py [--points N] [--no-jax]``).

Prints, measured in one run on this machine, for synthetic but realistic score histograms
(the five default backgrounds with their relative sizes, 100 score bins, weighted events with
an effective sample size of a few thousand per process, a signal that rises with the score):

1. grid-point fits per second over the full 66-point thesis grid (``--points`` fewer), on a
   Dask LocalCluster of 1 and of 2 single-threaded worker processes (workers warmed up
   first); every fit is the whole per-point result (binning, workspace, expected discovery Z,
   CLs at mu = 1, the limit with its four bands, Z at each projected luminosity);
2. the wall time of the fit stage (``run_fit``) for the default 9 points, inline and on the
   2-worker cluster;
3. the same 9 points inline with pyhf's JAX backend (``fit.backend: jax``) against NumPy, and
   whether both gave the same numbers.

Nothing here asserts on timings.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from distributed import Client

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.core.config import default_config, full_signal_grid
from analysis.core.executors import local_cluster
from analysis.core.names import point_name
from analysis.stages.fit import run_fit
from processors.scoring import score_histogram

#: process -> (weighted events per split, mean weight, beta-distribution shape of its score)
BACKGROUNDS = {
    "WW": (4000, 0.08, (1.0, 5.0)),
    "WZ": (3000, 0.03, (1.0, 6.0)),
    "ZZ": (3000, 0.01, (1.0, 7.0)),
    "ttbar": (3000, 0.15, (1.0, 4.0)),
    "Ztautau": (1000, 0.3, (1.0, 9.0)),
}


def synthetic_histogram(points: list[tuple[float, float]], seed: int = 1):
    """A split x process x point x score histogram with the shape of the scoring stage's."""
    rng = np.random.default_rng(seed)
    labels = [point_name(m, dm) for m, dm in points]
    histogram = score_histogram([*BACKGROUNDS, *labels], labels, 100)
    for label, (m, dm) in zip(labels, points):
        for split in ("train", "validation", "test"):
            for process, (n, weight, shape) in BACKGROUNDS.items():
                histogram.fill(split=split, process=process, point=label,
                               score=np.clip(rng.beta(*shape, size=n), 0, 1 - 1e-7),
                               weight=weight * rng.uniform(0.5, 1.5, n))
            n = 1500
            histogram.fill(split=split, process=label, point=label,
                           score=np.clip(rng.beta(2.0 + dm / 25, 1.3, size=n), 0, 1 - 1e-7),
                           weight=np.full(n, 0.05 * (100.0 / m) ** 4))
    return histogram


def _client(workers: int):
    cluster = local_cluster(workers)  # single-threaded worker processes, 127.0.0.1, no dashboard
    client = Client(cluster)
    client.run(lambda: __import__("pyhf") and None)  # import pyhf on every worker before timing
    return cluster, client


def _timed(config, histogram, points, outdir, client=None):
    start = time.perf_counter()
    summary = run_fit(config, histogram, points, outdir, client=client)
    return time.perf_counter() - start, summary


def _worker_cpu(client) -> float:
    """CPU seconds the workers' processes have used so far (summed)."""
    return sum(client.run(time.process_time).values())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=66, help="grid points of the throughput runs (<= 66)")
    parser.add_argument("--no-jax", action="store_true", help="skip the JAX backend comparison")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    config = default_config()
    grid = [(p.m_slepton, p.dm) for p in full_signal_grid()][: args.points]
    default_points = [(p.m_slepton, p.dm) for p in config.samples.signal_grid]
    grid_histogram = synthetic_histogram(grid)
    default_histogram = synthetic_histogram(default_points, seed=2)
    print(f"fit settings: max_bins {config.fit.max_bins}, min_background_ess {config.fit.min_background_ess:g}, "
          f"background uncertainty {config.fit.background_uncertainty} "
          f"{config.scan.relative_background_uncertainty:g}, luminosities {config.scan.luminosities_fb}")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rates = {}
        for workers in (1, 2):
            cluster, client = _client(workers)
            try:
                cpu = _worker_cpu(client)
                seconds, summary = _timed(config, grid_histogram, grid, tmp / f"grid{workers}", client)
                cpu = _worker_cpu(client) - cpu
                rates[workers] = len(grid) / seconds
                print(f"{len(grid)}-point grid on {workers} worker(s): {seconds:.1f} s, "
                      f"{rates[workers]:.2f} fits/s ({len(summary.failures)} failed); worker CPU "
                      f"{cpu / len(grid):.2f} s per fit (machine load average {os.getloadavg()[0]:.1f})")
                if workers == 2:
                    stage_cluster, _ = _timed(config, default_histogram, default_points, tmp / "stage2", client)
            finally:
                client.close()
                cluster.close()
        print(f"2 workers / 1 worker: {rates[2] / rates[1]:.2f}x")
        stage_inline, numpy_summary = _timed(config, default_histogram, default_points, tmp / "stage_inline")
        print(f"fit stage, default {len(default_points)} points: {stage_inline:.1f} s inline, "
              f"{stage_cluster:.1f} s on 2 workers")
        z = [p.expected_z for p in numpy_summary.points if p.ok]
        print(f"  expected Z {min(z):.2f} .. {max(z):.2f}; median expected mu_up "
              f"{min(p.median_limit for p in numpy_summary.points if p.ok):.3g} .. "
              f"{max(p.median_limit for p in numpy_summary.points if p.ok):.3g}")
        if not args.no_jax:
            jax_config = config.model_copy(deep=True)
            jax_config.fit.backend = "jax"
            stage_jax, jax_summary = _timed(jax_config, default_histogram, default_points, tmp / "stage_jax")
            difference = max(abs(a.expected_z - b.expected_z) / b.expected_z
                             for a, b in zip(jax_summary.points, numpy_summary.points) if a.ok and b.ok)
            limit_difference = max(abs(a.median_limit - b.median_limit) / b.median_limit
                                   for a, b in zip(jax_summary.points, numpy_summary.points) if a.ok and b.ok)
            print(f"JAX backend, same {len(default_points)} points inline: {stage_jax:.1f} s "
                  f"({stage_inline / stage_jax:.2f}x NumPy); largest relative difference: Z {difference:.1e}, "
                  f"median limit {limit_difference:.1e}")


if __name__ == "__main__":
    main()
