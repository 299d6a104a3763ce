"""Benchmark of the hyperparameter search (``python benchmarks/search.py [--trials N]``).

Prints, measured in one run on this machine:

1. compile sharing: trials per minute of the same random search over learning rate, dropout
   rate and L2 constant (two widths, so two compiled setups), run inline twice: once with every
   compiled function thrown away before each trial (:func:`nn.trainer.clear_compiled_caches`:
   what every trial paid when those values were compile-time constants) and once as the search
   runs now (trials of one architecture share one compiled step); and whether both runs gave
   the same objectives (they must);
2. search throughput (trials per minute) of a random search of ``--trials`` trials on a Dask
   LocalCluster of 1 and of 2 single-threaded workers, each pinned to its own core
   (:func:`nn.search.search_client`; each worker has loaded the store in a warm-up search
   before the timed search); target (issue 7): 2 workers >= 1.7 x one;
3. for the same budget of ``--trials`` configurations, the best objective (``--objective``,
   default the validation Asimov Z averaged over the grid) found by random search, Hyperband
   (successive halving on epochs, which trains some configurations more than once), the
   genetic algorithm and the Bayesian (Optuna TPE) search, with the number of trainings, the
   total epochs and the wall time.

A synthetic store (``tests/synthetic.py``) is written to a temporary directory. Nothing here
asserts on timings.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.core.config import config_from_dict, default_config  # noqa: E402
from nn.search import run_search, run_trial, search_client  # noqa: E402
from nn.trainer import clear_compiled_caches  # noqa: E402
from tests.synthetic import write_synthetic_store  # noqa: E402

SPACE = {
    "layers": {"type": "int", "low": 1, "high": 3},
    "width": {"type": "choice", "values": [32, 64]},
    "activation": {"type": "choice", "values": ["relu", "tanh"]},
    "dropout": {"type": "float", "low": 0.0, "high": 0.2},
    "learning_rate": {"type": "float", "low": 3e-4, "high": 3e-2, "log": True},
    "optimizer": {"type": "choice", "values": ["adam", "rmsprop"]},
}

#: The compile-sharing search: the values that used to be compile-time constants, two widths.
RATES_SPACE = {
    "width": {"type": "choice", "values": [32, 64]},
    "dropout": {"type": "float", "low": 0.05, "high": 0.3},
    "learning_rate": {"type": "float", "low": 3e-4, "high": 3e-2, "log": True},
    "l2": {"type": "float", "low": 1e-6, "high": 1e-3, "log": True},
}


def benchmark_config(epochs: int, objective: str, seed: int = 1, space=None):
    """The default analysis with a small search space and ``epochs`` per trial."""
    data = default_config().model_dump(mode="json")
    data["training"].update(max_epochs=epochs, batch_size=512, patience=epochs)
    data["model"].update(ensemble_members=1)  # one network per trial (the default averages five)
    data["search"].update(space=space or SPACE, seed=seed, objective=objective, epochs=epochs,
                          min_epochs=1, max_epochs=9, eta=3, population=6, parents=3, mutation_probability=0.25)
    return config_from_dict(data, source="benchmark")


def recompiling_trial(store, config_data, trial):
    """:func:`nn.search.run_trial` after forgetting every compiled function (the old cost)."""
    clear_compiled_caches()
    return run_trial(store, config_data, trial)


def compile_sharing(store: Path, work: Path, trials: int, epochs: int) -> None:
    """Print trials/min of the rates search with and without shared compiled steps."""
    config = benchmark_config(epochs, "auc", space=RATES_SPACE)
    results = {}
    for label, trial_fn in (("recompiling every trial", recompiling_trial), ("shared compiled steps", run_trial)):
        clear_compiled_caches()
        started = time.perf_counter()
        result = run_search(config, store, work / label.split()[0], trials=trials, trial_fn=trial_fn, plots=False)
        seconds = time.perf_counter() - started
        results[label] = result
        print(f"  {label:>24s}: {result.executed / seconds * 60:5.1f} trials/min ({result.executed} trials x {epochs} epochs, "
              f"{seconds:.0f} s, inline)")
    first, second = results.values()
    same = [a["objective"] for a in first.records] == [b["objective"] for b in second.records]
    print(f"  identical objectives in both runs: {same}")


def throughput(store: Path, work: Path, workers: int, trials: int, epochs: int) -> float:
    """Trials per minute of a random search on ``workers`` local Dask workers (warm workers)."""
    config = benchmark_config(epochs, "auc")
    with search_client(workers=workers) as client:
        warm = config.model_copy(update={"search": config.search.model_copy(update={"seed": 999})})
        run_search(warm, store, work / f"warm{workers}", trials=2 * workers * 2, client=client, plots=False)
        started = time.perf_counter()
        result = run_search(config, store, work / f"timed{workers}", trials=trials, client=client, plots=False)
        seconds = time.perf_counter() - started
    return result.executed / seconds * 60.0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=10, help="epochs per trial (random, genetic, bayesian)")
    parser.add_argument("--signal", type=int, default=8000, help="synthetic events per grid point")
    parser.add_argument("--background", type=int, default=25000, help="synthetic events per background process")
    parser.add_argument("--objective", default="asimov", choices=["auc", "loss", "asimov"])
    parser.add_argument("--skip", nargs="*", default=[], choices=["compile", "workers", "strategies"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("optuna").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        store = write_synthetic_store(work / "store", n_signal=args.signal, n_background=args.background,
                                      grid=((100.0, 10.0), (200.0, 40.0), (300.0, 75.0)), separation=0.6, seed=5)
        print(f"synthetic store: {3 * args.signal} signal + {3 * args.background} background events")
        if "compile" not in args.skip:
            print(f"\ncompile sharing: random search over learning rate, dropout rate and L2 (widths 32, 64), {args.trials} trials")
            compile_sharing(store, work / "compile", args.trials, args.epochs)
        if "workers" not in args.skip:
            print()
            rates = {}
            for workers in (1, 2):
                rates[workers] = throughput(store, work, workers, args.trials, args.epochs)
                print(f"throughput, {workers} worker(s): {rates[workers]:.1f} trials/min ({args.trials} trials x {args.epochs} epochs)")
            print(f"speed-up 2 vs 1 worker: {rates[2] / rates[1]:.2f}x (target >= 1.7x)")
        if "strategies" not in args.skip:
            config = benchmark_config(args.epochs, args.objective)
            print(f"\nbest validation {args.objective} for a budget of {args.trials} configurations (2 workers):")
            with search_client(workers=2) as client:
                for strategy in ("random", "hyperband", "genetic", "bayesian"):
                    started = time.perf_counter()
                    result = run_search(config, store, work / f"strategy_{strategy}", strategy=strategy, trials=args.trials,
                                        client=client, plots=False)
                    seconds = time.perf_counter() - started
                    epochs = sum(r["epochs"] for r in result.records)
                    best = result.best
                    print(f"  {strategy:>9s}: best {best['objective']:.4f} (trial {best['index']}, {best['epochs']} epochs)  "
                          f"{len(result.records)} trainings, {epochs} epochs in total, {seconds:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
