"""``python -m nn.search`` (``bsmscan search``): the hyperparameter search from the command line."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from pathlib import Path
from typing import Iterator, Sequence

from analysis.core.cli import (
    add_config_option,
    config_from_args,
    positive_int,
    run_command,
)
from analysis.core.config import SEARCH_OBJECTIVES
from nn.data import FeatureStoreError
from nn.search.run import run_search
from nn.search.strategies import STRATEGIES
from nn.search.workers import search_client

__all__ = ["main", "quiet_logs"]


@contextlib.contextmanager
def quiet_logs(enabled: bool, names: Sequence[str] = ("nn", "optuna")) -> Iterator[None]:
    """Within this block (if ``enabled``), the ``names`` loggers show warnings and errors only."""
    loggers = [logging.getLogger(name) for name in names] if enabled else []
    before = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, before):
            logger.setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (``python -m nn.search``); returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m nn.search", description="Hyperparameter search for the classifier.")
    add_config_option(parser)
    parser.add_argument("--store", required=True, help="feature-store directory")
    parser.add_argument("--out", required=True, help="output directory (rerun with the same one to resume)")
    parser.add_argument("--strategy", choices=sorted(STRATEGIES), help="default: search.strategy")
    parser.add_argument("--trials", type=positive_int, help="default: search.trials")
    parser.add_argument("--objective", choices=SEARCH_OBJECTIVES, help="default: search.objective")
    parser.add_argument("--executor", choices=["iterative", "dask", "condor"], default="dask")
    parser.add_argument("--workers", type=positive_int, help="local Dask workers (default: one per core)")
    parser.add_argument("--scheduler", help="address of a running Dask scheduler")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args(argv)

    def body() -> int:
        config = config_from_args(args)
        if args.objective:
            config = config.model_copy(update={"search": config.search.model_copy(update={"objective": args.objective})})
        if not Path(args.store, "schema.json").is_file():
            raise FeatureStoreError(f"{args.store} is not a feature store (no schema.json)")
        kwargs = dict(strategy=args.strategy, trials=args.trials, plots=not args.no_plots)
        with quiet_logs(args.quiet):
            if args.executor == "iterative":
                result = run_search(config, args.store, args.out, **kwargs)
            else:
                cluster = config.cluster if args.executor == "condor" else None
                with search_client(args.workers, args.scheduler, cluster_config=cluster) as client:
                    result = run_search(config, args.store, args.out, client=client, **kwargs)
        if result.best is None:
            print("error: every trial failed; see trials.jsonl", file=sys.stderr)
            return 1
        print(f"best trial {result.best['index']}: {config.search.objective} = {result.best['objective']:.5f} "
              f"with {json.dumps(result.best['params'])}; model in {result.files.get('best_model')}")
        return 0

    return run_command(body, verbose=args.verbose, name="nn.search")
