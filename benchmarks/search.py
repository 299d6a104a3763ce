"""Benchmark of the hyperparameter search (``python benchmarks/search.py [--trials N]``).

Prints, measured in one run on this machine:

1. search throughput (trials per minute) of a random search of ``--trials`` trials on a Dask
   LocalCluster of 1 and of 2 single-threaded workers, each pinned to its own core
   (:func:`nn.search.search_client`; each
   worker has loaded the store in a warm-up search before the timed search; every trial still
   compiles its network, as learning rate and dropout are compile-time constants of
   :mod:`nn.trainer`); target (issue 7): 2 workers >= 1.7 x one;
2. for the same budget of ``--trials`` configurations, the best objective (``--objective``,
   default the validation Asimov Z averaged over the grid) found by random search, Hyperband
   (successive halving on epochs, which trains some configurations more than once) and the
   genetic algorithm, with the number of trainings, the total epochs and the wall time.

A synthetic store (:mod:`nn.synthetic`) is written to a temporary directory. Nothing here
asserts on timings.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.core.config import config_from_dict, default_config  # noqa: E402
from nn.search import run_search, search_client  # noqa: E402
from tests.synthetic import write_synthetic_store  # noqa: E402

SPACE = {
    "layers": {"type": "int", "low": 1, "high": 3},
    "width": {"type": "choice", "values": [32, 64]},
    "activation": {"type": "choice", "values": ["relu", "tanh"]},
    "dropout": {"type": "float", "low": 0.0, "high": 0.2},
    "learning_rate": {"type": "float", "low": 3e-4, "high": 3e-2, "log": True},
    "optimizer": {"type": "choice", "values": ["adam", "rmsprop"]},
}


def benchmark_config(epochs: int, objective: str, seed: int = 1):
    """The default analysis with a small search space and ``epochs`` per trial."""
    data = default_config().model_dump(mode="json")
    data["training"].update(max_epochs=epochs, batch_size=512, patience=epochs)
    data["search"].update(space=SPACE, seed=seed, objective=objective, epochs=epochs,
                          min_epochs=1, max_epochs=9, eta=3, population=6, parents=3, mutation_probability=0.25)
    return config_from_dict(data, source="benchmark")


def throughput(store: Path, work: Path, workers: int, trials: int, epochs: int) -> float:
    """Trials per minute of a random search on ``workers`` local Dask workers (warm workers)."""
    config = benchmark_config(epochs, "auc")
    with search_client(workers=workers) as client:
        warm = config.model_copy(update={"search": config.search.model_copy(update={"seed": 999})})
        run_search(warm, store, work / f"warm{workers}", trials=2 * workers * 2, client=client, plots=False, log=None)
        started = time.perf_counter()
        result = run_search(config, store, work / f"timed{workers}", trials=trials, client=client, plots=False, log=None)
        seconds = time.perf_counter() - started
    return result.executed / seconds * 60.0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=10, help="epochs per trial (random, genetic)")
    parser.add_argument("--signal", type=int, default=8000, help="synthetic events per grid point")
    parser.add_argument("--background", type=int, default=25000, help="synthetic events per background process")
    parser.add_argument("--objective", default="asimov", choices=["auc", "loss", "asimov"])
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        store = write_synthetic_store(work / "store", n_signal=args.signal, n_background=args.background,
                                      grid=((100.0, 10.0), (200.0, 40.0), (300.0, 75.0)), separation=0.6, seed=5)
        print(f"synthetic store: {3 * args.signal} signal + {3 * args.background} background events")
        rates = {}
        for workers in (1, 2):
            rates[workers] = throughput(store, work, workers, args.trials, args.epochs)
            print(f"throughput, {workers} worker(s): {rates[workers]:.1f} trials/min ({args.trials} trials x {args.epochs} epochs)")
        print(f"speed-up 2 vs 1 worker: {rates[2] / rates[1]:.2f}x (target >= 1.7x)")

        config = benchmark_config(args.epochs, args.objective)
        print(f"\nbest validation {args.objective} for a budget of {args.trials} configurations (2 workers):")
        with search_client(workers=2) as client:
            for strategy in ("random", "hyperband", "genetic"):
                started = time.perf_counter()
                result = run_search(config, store, work / f"strategy_{strategy}", strategy=strategy, trials=args.trials,
                                    client=client, plots=False, log=None)
                seconds = time.perf_counter() - started
                epochs = sum(r["epochs"] for r in result.records)
                best = result.best
                print(f"  {strategy:>9s}: best {best['objective']:.4f} (trial {best['index']}, {best['epochs']} epochs)  "
                      f"{len(result.records)} trainings, {epochs} epochs in total, {seconds:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
