"""Hyperparameter search on the Dask cluster: random, Hyperband, genetic, Bayesian (Optuna), grid.

Command line::

    python -m nn.search --config FILE --store DIR --out DIR --strategy random|hyperband|genetic|bayesian|grid
                        --trials N [--executor iterative|dask|condor] [--workers N] [--scheduler ADDR]

Each *trial* trains one network (:func:`nn.train.train_classifier`) with a configuration from
the config's ``search.space`` and its own seed, :func:`~nn.search.space.trial_seed` (search
seed, trial index), and scores it with the ``search.objective``. Trials are Dask tasks (one per
worker at a time) or run one after the other (``--executor iterative``); both give the same
numbers. Trials of the same architecture share one compiled training step (the learning rate,
dropout rate and penalty constants are runtime values, :mod:`nn.trainer`).

Modules: :mod:`~nn.search.run` (:func:`run_search`, the output folder),
:mod:`~nn.search.strategies` and :mod:`~nn.search.bayesian` (how trials are chosen),
:mod:`~nn.search.trial` (one trial, the Dask task), :mod:`~nn.search.objectives`,
:mod:`~nn.search.pruning`, :mod:`~nn.search.runner`, :mod:`~nn.search.table`,
:mod:`~nn.search.space`, :mod:`~nn.search.genetic`, :mod:`~nn.search.plots`,
:mod:`~nn.search.workers` (pinned single-threaded local workers), :mod:`~nn.search.cli` and
:mod:`~nn.search.regularisation` (the L1 / L2 study, ``python -m nn.search.regularisation``).
"""

from nn.search.cli import main
from nn.search.objectives import asimov_objective, trial_objective
from nn.search.run import SearchError, SearchResult, best_model_directory, run_search
from nn.search.strategies import STRATEGIES, hyperband_brackets
from nn.search.table import ResultsTable, format_leaderboard, leaderboard
from nn.search.trial import run_trial
from nn.search.workers import pin_workers, search_client, single_threaded_workers

__all__ = [
    "STRATEGIES",
    "ResultsTable",
    "SearchError",
    "SearchResult",
    "asimov_objective",
    "best_model_directory",
    "format_leaderboard",
    "hyperband_brackets",
    "leaderboard",
    "main",
    "pin_workers",
    "run_search",
    "run_trial",
    "search_client",
    "single_threaded_workers",
    "trial_objective",
]
