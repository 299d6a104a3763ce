"""Benchmark of sample production (``python benchmarks/generate.py``).

Prints, measured in one run on this machine:

1. per sample (default settings: targeted production, see README "Targeted production"),
   for one job of ``--events`` generated (kept) events on one core: events per CPU-second,
   split into Pythia's event loop with the filters and copying the particles out vs the fast
   detector + ROOT writing; the events passing the thesis preselection per job, their effective
   sample size ESS = (sum w)^2 / sum w^2 and **ESS per core-second**, the figure to raise (the
   selected events of ``--repeats`` jobs with new seeds pooled);
2. with ``--baseline``, the same for the settings before targeted production (no generator
   filter, natural tau decays, random b-tagging, pT-hat bias power 2) and the gain per sample;
3. the wall time of a cold default ``python -m jobs.generate`` (into an empty cache) on all
   cores, and of the warm re-run that finds everything cached (skip with ``--skip-default-run``);
4. the peak resident memory of one generation process (a fresh interpreter running one WW job,
   ``jobs.pythia_job.run_generation_job``) for jobs of ``--memory-events`` events: events are
   generated, reconstructed and written in batches of ``jobs.samples.WRITE_BATCH_EVENTS``, so the
   peak must not grow with the job size (target, issue 17: < 500 MB at any job size; skip with
   ``--memory-events ''``).

CPU seconds (``time.process_time``) are used for the per-core figures, so that other programs
on the machine do not enter them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import awkward as ak
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.core.config import config_from_dict, default_config
from analysis.core.statistics import effective_sample_size
from jobs.detector import reconstruct_events
from jobs.pythia_job import (
    generate_particles,
    leptonic_tau_fraction,
    make_pythia,
    write_events,
)
from jobs.samples import GenerationJob, jobs_from_config

SAMPLES = ("slepton_100_10", "slepton_200_40", "slepton_300_75", "WW", "WZ", "ZZ", "ttbar", "Ztautau")


def baseline_config():
    """The default analysis with the production settings before targeted production."""
    data = default_config().model_dump(mode="json")
    data["samples"].update(truth_met_filter={"enabled": False}, leptonic_taus=[], btag_veto_weights=[],
                           pt_bias_power=2.0, pt_bias_power_per_process={}, signal_pt_bias_power=0.0)
    return config_from_dict(data, source="baseline")


def preselected_sums(path: Path, config) -> tuple[int, float, float]:
    """Events of ``path`` that pass the config's preselection, their sum of weights and of squared weights."""
    from coffea.nanoevents import BaseSchema, NanoEventsFactory

    from processors.columns import AnalysisColumns, ChunkColumns
    from processors.objects import select_objects
    from processors.selection import Preselection, apply_cuts

    preselection = Preselection.from_config(config.selection)
    events = NanoEventsFactory.from_root({str(path): "Events"}, schemaclass=BaseSchema, mode="eager").events()
    objects = select_objects(events, config.selection.objects)
    columns = ChunkColumns(events, objects, AnalysisColumns.from_config(config), preselection.btag_pt_min)
    weights = ak.to_numpy(events.genWeight).astype(np.float64)
    rows = apply_cuts(preselection, columns, weights, events).rows
    selected = weights[rows]
    return len(rows), float(selected.sum()), float(np.square(selected).sum())


def time_one_job(job: GenerationJob, workdir: Path, config) -> dict:
    """CPU seconds of initialisation, Pythia's loop (+ filters, particle copy), detector and writing;
    the preselected events of the job and their sums of weights (normalised to the job's cross
    section x filter efficiency, so that jobs can be pooled)."""
    start = time.process_time()
    pythia = make_pythia(job, workdir)
    after_init = time.process_time()
    tau_fraction = leptonic_tau_fraction(pythia) if job.sample.leptonic_taus else None
    particles, b_quarks, weights = generate_particles(pythia, job.n_events, None, tau_fraction, {})
    after_generate = time.process_time()
    sigma = pythia.infoPython().sigmaGen()  # (its filters' counted acceptance included)
    reco = reconstruct_events(particles, b_quarks, np.random.default_rng(job.seed),
                              btag_veto_weights=job.sample.btag_veto_weights)
    weights = weights * reco["btag_veto_weight"]
    write_events(workdir / "bench.root", reco, weights.astype(np.float32), np.arange(job.n_events, dtype=np.uint64))
    after_detector = time.process_time()
    selected, sumw, sumw2 = preselected_sums(workdir / "bench.root", config)
    scale = sigma / float(np.sum(weights))  # the job's events stand for its cross section
    return {"init": after_init - start, "generate": after_generate - after_init,
            "detector_and_write": after_detector - after_generate, "selected": selected,
            "sumw": sumw * scale, "sumw2": sumw2 * scale**2}


def rates(sample_name: str, n_events: int, repeats: int, config) -> dict:
    """Rates over ``repeats`` jobs of one sample: medians of the speeds; the ESS of all the jobs'
    selected events pooled, per total core-second (a median of per-job ESS would hide the rare
    heavy events that dominate weighted samples)."""
    template = next(j for j in jobs_from_config(config) if j.sample.name == sample_name)
    timings = []
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(repeats):
            job = replace(template, index=repeat, n_events=n_events, first_event=0, seed=template.seed + repeat)
            timings.append(time_one_job(job, Path(tmp), config))
    cpu = [t["init"] + t["generate"] + t["detector_and_write"] for t in timings]
    return {
        "events_per_s": statistics.median(n_events / (t["generate"] + t["detector_and_write"]) for t in timings),
        "detector_share": statistics.median(t["detector_and_write"] / (t["generate"] + t["detector_and_write"])
                                            for t in timings),
        "selected": sum(t["selected"] for t in timings) / repeats,
        "ess": float(effective_sample_size(sum(t["sumw"] for t in timings), sum(t["sumw2"] for t in timings))) / repeats,
        "ess_per_core_s": float(effective_sample_size(sum(t["sumw"] for t in timings),
                                                      sum(t["sumw2"] for t in timings))) / sum(cpu),
        "spread": max(cpu) / min(cpu),
    }


def cold_and_warm_default_run() -> None:
    with tempfile.TemporaryDirectory() as cache:
        command = [sys.executable, "-m", "jobs.generate", "--cache-dir", cache, "--no-progress"]
        root = Path(__file__).resolve().parents[1]
        env = {**os.environ, "PYTHONPATH": str(root)}
        for label in ("cold", "warm"):
            start = time.perf_counter()
            subprocess.run(command, check=True, cwd=root, env=env, stdout=subprocess.DEVNULL)
            print(f"{label} default python -m jobs.generate on {os.cpu_count()} cores: {time.perf_counter() - start:6.1f} s")


_MEMORY_JOB = """
import resource, sys, tempfile
from analysis.core.config import default_config
from jobs.pythia_job import run_generation_job
from jobs.samples import GenerationJob, jobs_from_config
template = next(j for j in jobs_from_config(default_config()) if j.sample.name == sys.argv[1])
job = GenerationJob(template.sample, 0, int(sys.argv[2]), 0, template.seed, template.common_settings)
with tempfile.TemporaryDirectory() as outdir:
    run_generation_job(job, outdir)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)
"""


def peak_memory(sample: str, sizes: list[int]) -> None:
    """Peak RSS of a fresh process running one ``sample`` job of each size in ``sizes``."""
    from jobs.samples import WRITE_BATCH_EVENTS

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    peaks = []
    for n_events in sizes:
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", _MEMORY_JOB, sample, str(n_events)], check=True, cwd=root, env=env,
                             capture_output=True, text=True).stdout
        peaks.append(float(out.split()[-1]))
        print(f"  {sample} job of {n_events:>7} events: peak RSS {peaks[-1]:6.0f} MB   ({time.perf_counter() - start:.0f} s)",
              flush=True)
    print(f"  largest / smallest job peak: {max(peaks) / min(peaks):.2f} (written in batches of {WRITE_BATCH_EVENTS}; "
          "target < 500 MB at any job size)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1000, help="generated (kept) events per timed job")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--samples", default=",".join(SAMPLES), help="comma-separated sample names")
    parser.add_argument("--baseline", action="store_true", help="also measure the settings before targeted production")
    parser.add_argument("--skip-default-run", action="store_true")
    parser.add_argument("--memory-events", default="2000,20000",
                        help="job sizes (comma-separated) whose peak memory is measured; '' to skip")
    args = parser.parse_args()
    config = default_config()
    filter_ = config.samples.truth_met_filter
    print(f"events per job {args.events}; hadronisation={config.samples.hadronisation}, MPI={config.samples.mpi}; "
          f"truth-MET filter >= {filter_.min_gev:g} GeV at {filter_.veto_scale_gev:g} GeV, dilepton pT >= "
          f"{filter_.dilepton_pt_min_gev:g} GeV; leptonic taus {config.samples.leptonic_taus}; truth tagging "
          f"{config.samples.btag_veto_weights}")
    print(f"{'sample':>16} {'ev/core-s':>10} {'det.+write':>10} {'selected':>9} {'ESS':>8} {'ESS/core-s':>11}"
          + (f" {'baseline':>10} {'gain':>6}" if args.baseline else ""))
    for sample in args.samples.split(","):
        targeted = rates(sample, args.events, args.repeats, config)
        line = (f"{sample:>16} {targeted['events_per_s']:>10.0f} {targeted['detector_share']:>10.0%} "
                f"{targeted['selected']:>9.0f} {targeted['ess']:>8.1f} {targeted['ess_per_core_s']:>11.2f}")
        if args.baseline:
            # The unfiltered baseline needs more events for a measurable ESS.
            base = rates(sample, 10 * args.events, args.repeats, baseline_config())
            gain = targeted["ess_per_core_s"] / base["ess_per_core_s"] if base["ess_per_core_s"] > 0 else float("inf")
            line += f" {base['ess_per_core_s']:>10.2f} {gain:>6.1f}"
        print(line, flush=True)
    if args.memory_events:
        print("peak memory of one generation process:")
        peak_memory("WW", [int(n) for n in args.memory_events.split(",")])
    if not args.skip_default_run:
        cold_and_warm_default_run()


if __name__ == "__main__":
    main()
