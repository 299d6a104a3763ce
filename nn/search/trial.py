"""One trial: train a network with a trial's hyperparameters and score it (the Dask task).

A *trial* is a dict ``{"index", "params", "seed", "epochs", "tags"}`` (and, for the Bayesian
strategy, ``_optuna``: what its pruner needs, :mod:`nn.search.pruning`). Its *record* adds
``key`` (:func:`~nn.search.space.trial_key`), ``status`` (``ok``, ``pruned`` or ``failed``),
``seconds`` and, when ``ok``, ``objective``, ``score`` and ``metrics``
(:func:`~nn.search.objectives.trial_objective`). A trial that raises or ends with a non-finite
loss is ``failed`` with its error: a result, not the end of the search.
"""

from __future__ import annotations

import functools
import time
import traceback
from typing import Any

import jax

from analysis.core.config import config_from_dict
from nn.data import read_feature_store
from nn.search.objectives import trial_objective
from nn.search.pruning import Pruned, PruningReporter
from nn.search.space import apply_hyperparameters, trial_key
from nn.train import TrainingResult, train_classifier

__all__ = ["run_trial", "train_trial"]


@functools.lru_cache(maxsize=2)
def _cached_table(store: str):
    """The feature store, read once per worker process."""
    return read_feature_store(store)


def train_trial(store: str, config_data: dict, trial: dict) -> tuple[dict[str, Any], TrainingResult | None, Any]:
    """Train and score one trial: ``(record, result, config)``; ``result`` is None when the trial
    failed or was pruned (see the module doc for the record)."""
    started = time.perf_counter()
    record = {k: v for k, v in trial.items() if k != "_optuna"}
    record["key"] = trial_key(trial["params"], trial["seed"], trial["epochs"])
    result, config, reporter = None, None, None
    try:
        config = apply_hyperparameters(config_from_dict(config_data, "search trial"), trial["params"], trial["seed"], trial["epochs"])
        reporter = PruningReporter(trial["_optuna"], config) if "_optuna" in trial else None
        result = train_classifier(_cached_table(str(store)), config, verbose=False, on_epoch=reporter)
        record.update(status="ok", **trial_objective(result, config))
    except Pruned as pruned:
        record.update(status="pruned", pruned_at=pruned.epoch, error=str(pruned))
        result = None
    except Exception as error:  # a failing trial is a result, not the end of the search
        record.update(status="failed", error=f"{type(error).__name__}: {error}", traceback=traceback.format_exc(limit=3))
        result = None
    if reporter is not None:
        record.update(reporter.outcome())
    record["seconds"] = time.perf_counter() - started
    return record, result, config


def run_trial(store: str, config_data: dict, trial: dict) -> dict[str, Any]:
    """Train and score one trial; the task each Dask worker runs (also the iterative path).

    ``config_data`` is the analysis config as a JSON dict. Returns the trial's record; an
    ``ok`` one carries under ``_artifact`` the parameters and metadata of the trained network
    (not written to the results table).
    """
    record, result, _ = train_trial(store, config_data, trial)
    if result is not None:
        record["_artifact"] = {"params": jax.device_get(result.params), "metadata": result.metadata}
    return record
