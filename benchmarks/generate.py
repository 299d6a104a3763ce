"""Benchmark of sample production (``python benchmarks/generate.py``).

Prints, measured in one run on this machine:

1. generated events per second on one core for the signal (m = 200, dm = 40) and for WW with
   the default fast settings, split into Pythia's own event loop, copying the particles out
   and the fast detector + ROOT writing; the median over ``--repeats`` jobs (each with a new
   seed) and the slowest-to-fastest ratio;
2. the wall time of a cold default ``python -m jobs.generate`` (into an empty cache) on all
   cores, and of the warm re-run that finds everything cached.

Target (issue 2): at least 500 events/s per core for signal and WW.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.core.config import default_config  # noqa: E402
from jobs.detector import reconstruct_events  # noqa: E402
from jobs.pythia_job import generate_particles, make_pythia, write_events  # noqa: E402
from jobs.samples import GenerationJob, jobs_from_config  # noqa: E402


def time_one_job(job: GenerationJob, workdir: Path) -> dict:
    """Seconds spent in initialisation, Pythia's event loop (+ particle copy), detector and writing."""
    start = time.perf_counter()
    pythia = make_pythia(job, workdir)
    after_init = time.perf_counter()
    for _ in range(job.n_events):
        pythia.next()
    after_pythia_only = time.perf_counter()
    particles, b_quarks, weights = generate_particles(pythia, job.n_events)
    after_generate = time.perf_counter()
    reco = reconstruct_events(particles, b_quarks, np.random.default_rng(job.seed))
    write_events(workdir / "bench.root", reco, weights.astype(np.float32), np.arange(job.n_events, dtype=np.uint64))
    after_detector = time.perf_counter()
    return {
        "init": after_init - start,
        "pythia_only": after_pythia_only - after_init,
        "generate_with_copy": after_generate - after_pythia_only,
        "detector_and_write": after_detector - after_generate,
    }


def per_core_rates(sample_name: str, n_events: int, repeats: int) -> None:
    config = default_config()
    template = next(j for j in jobs_from_config(config) if j.sample.name == sample_name)
    timings = []
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(repeats):
            job = GenerationJob(template.sample, repeat, n_events, 0, template.seed + repeat, template.common_settings)
            timings.append(time_one_job(job, Path(tmp)))
    steady = [n_events / (t["generate_with_copy"] + t["detector_and_write"]) for t in timings]
    with_init = [n_events / (t["init"] + t["generate_with_copy"] + t["detector_and_write"]) for t in timings]
    pythia_only = [n_events / t["pythia_only"] for t in timings]
    print(f"{sample_name:>16}: {statistics.median(steady):7.0f} ev/s/core "
          f"(incl. init {statistics.median(with_init):6.0f}; Pythia loop alone {statistics.median(pythia_only):6.0f}; "
          f"detector+write share {statistics.median(t['detector_and_write'] / (t['generate_with_copy'] + t['detector_and_write']) for t in timings):.0%}; "
          f"max/min over {repeats} jobs {max(steady) / min(steady):.2f}; init {statistics.median(t['init'] for t in timings):.2f} s)")


def cold_and_warm_default_run() -> None:
    with tempfile.TemporaryDirectory() as cache:
        command = [sys.executable, "-m", "jobs.generate", "--cache-dir", cache, "--no-progress"]
        root = Path(__file__).resolve().parents[1]
        env = {**os.environ, "PYTHONPATH": str(root)}
        for label in ("cold", "warm"):
            start = time.perf_counter()
            subprocess.run(command, check=True, cwd=root, env=env, stdout=subprocess.DEVNULL)
            print(f"{label} default python -m jobs.generate on {os.cpu_count()} cores: {time.perf_counter() - start:6.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=2000, help="events per timed job")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-default-run", action="store_true")
    args = parser.parse_args()
    config = default_config()
    print(f"events per job {args.events}; hadronisation={config.samples.hadronisation}, MPI={config.samples.mpi}, "
          f"pT-hat bias power {config.samples.pt_bias_power}")
    for sample in ("slepton_200_40", "WW", "ZZ", "WZ", "ttbar", "Ztautau"):
        per_core_rates(sample, args.events, args.repeats)
    if not args.skip_default_run:
        cold_and_warm_default_run()


if __name__ == "__main__":
    main()
