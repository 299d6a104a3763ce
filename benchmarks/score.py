"""Benchmark of the scoring stage (``python benchmarks/score.py``).

Generates (once; cached afterwards) WW background and one signal point, selects them with a
loose dilepton + MET selection (so that most events are scored), trains a parametrised
``susy_3x128`` network for one epoch, then measures side by side, interleaved over
``--repeats`` rounds, medians:

- the scoring stage (``run_scoring`` on the iterative executor: reading, objects, selection,
  features, the network at every grid point of the 9-point demo grid, and the score and
  control histograms filled);
- the bare jitted forward pass of the same network on the same selected events at the same
  9 points (``TrainedModel.score_points`` on the feature matrix already in memory);

and prints both in scored events per second (each event scored at every point) and their
ratio. Target (issue 17): the stage >= 0.5x the bare forward pass. Nothing here asserts on
timings.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.core.config import config_from_dict, default_config, plain_production
from analysis.core.fileset import load_fileset
from analysis.stages.process import run_processing
from analysis.stages.score import run_scoring
from benchmarks.process import replicated
from jobs.generate import generate_samples
from nn.artifact import load_model
from nn.data import read_feature_store
from nn.train import train_from_store


def benchmark_config(n_background: int, chunksize: int, n_signal: int | None = None, with_background: bool = True):
    data = default_config().model_dump(mode="json")
    grid = data["samples"]["signal_grid"]
    data["samples"].update(signal_grid=[{"m_slepton": 200, "dm": 40}], backgrounds=["WW"] if with_background else [],
                           background_events=n_background, signal_events=n_signal or chunksize, events_per_job=chunksize,
                           # the plain production (fast to make): throughput is what is measured here
                           **plain_production(data["samples"]), pt_bias_power=4.0)
    data["selection"]["cuts"] = {"two_leptons": "n_lepton == 2", "met": "met > 50"}
    data["executor"]["chunksize"] = chunksize
    data["training"].update(max_epochs=1)
    data["model"].update(ensemble_members=1)  # one network, as the README's scoring figures (the default averages five)
    return config_from_dict(data, source="benchmark"), [(p["m_slepton"], p["dm"]) for p in grid]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=400_000, help="WW events")
    parser.add_argument("--chunksize", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--background-fileset", type=Path,
                        help="a fileset JSON of WW samples already made (e.g. benchmarks/process.py's); only the signal "
                             "is generated then")
    parser.add_argument("--signal-events", type=int, help="signal events (default: --chunksize)")
    parser.add_argument("--replicate", type=int, default=1,
                        help="score every file this many times (symbolic links under other names): the stage's fixed "
                             "start (fileset inspection, the runner) spread over more events, without generating more")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    config, points = benchmark_config(args.events, args.chunksize, args.signal_events or args.chunksize,
                                      with_background=args.background_fileset is None)
    start = time.perf_counter()
    fileset = load_fileset(generate_samples(config, show_progress=None))
    if args.background_fileset is not None:
        fileset.update(load_fileset(args.background_fileset))
    links = tempfile.TemporaryDirectory(prefix="bsmscan-bench-links-")
    if args.replicate > 1:
        fileset = replicated(fileset, args.replicate, Path(links.name))
        print(f"every file {args.replicate} times (symbolic links)")
    n_background = sum(e["metadata"]["nevents"] for e in fileset.values() if not e["metadata"].get("is_signal"))
    n_signal = sum(e["metadata"]["nevents"] for e in fileset.values() if e["metadata"].get("is_signal"))
    print(f"samples: {n_background} WW + {n_signal} signal events ({time.perf_counter() - start:.0f} s to generate or find)")
    with tempfile.TemporaryDirectory(prefix="bsmscan-bench-score-") as tmp:
        store, model_dir = Path(tmp) / "store", Path(tmp) / "model"
        processing = run_processing(config, store, executor="iterative", fileset=fileset)
        train_from_store(store, model_dir, config, verbose=False)
        model = load_model(model_dir)
        table = read_feature_store(store)
        columns = [table.feature_names.index(name) for name in model.feature_names]
        matrix = np.ascontiguousarray(table.features[:, columns])
        n_input, n_scored = sum(processing.n_input.values()), len(matrix)
        model.score_points(matrix[:1024], points)  # compile before timing

        stage, bare = [], []
        for _ in range(args.repeats):
            begin = time.perf_counter()
            result = run_scoring(config, model_dir, fileset, points, executor="iterative")
            stage.append(time.perf_counter() - begin)
            assert sum(result.n_scored.values()) == n_scored
            begin = time.perf_counter()
            model.score_points(matrix, points)
            bare.append(time.perf_counter() - begin)

    stage_rate, bare_rate = n_scored / statistics.median(stage), n_scored / statistics.median(bare)
    print(f"{n_input} input events, {n_scored} selected and scored at {len(points)} grid points, "
          f"medians of {args.repeats} interleaved rounds:")
    print(f"  scoring stage (iterative, histograms filled) {stage_rate:>12,.0f} scored events/s "
          f"({n_input / statistics.median(stage):,.0f} input events/s)")
    print(f"  bare jitted forward pass                     {bare_rate:>12,.0f} scored events/s")
    print(f"  stage / bare forward pass: {stage_rate / bare_rate:.2f}   (target >= 0.5)")


if __name__ == "__main__":
    main()
