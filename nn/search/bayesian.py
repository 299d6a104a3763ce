"""The ``bayesian`` strategy: Optuna samplers (TPE by default) proposing trials, run on the cluster.

The study lives next to ``trials.jsonl`` in ``OUT/study.journal`` (Optuna's JournalStorage, a
file) and a rerun into the same folder resumes it. Trials are *asked* ``search.ask_batch`` at a
time (TPE with the constant-liar rule, so a batch spreads out), run in parallel as Dask tasks
(or one after the other), and *told* in trial order once the whole batch is back. Each ask
uses a sampler seeded from (search seed, trial number). The sequence of trials is therefore
a function of the config alone -- the same inline, on 2 workers or on 200, and after an
interruption: trials asked but not finished then (still ``RUNNING`` in the journal) run again
with the same hyperparameters and seed, and those already in ``trials.jsonl`` are not retrained.

Pruning (``search.pruner``: ``median`` or ``hyperband``) happens inside the trials from
per-epoch scores, against the study as it stood when the batch was asked
(:mod:`nn.search.pruning`). A pruned trial has ``status: pruned`` in the table; the leaderboard
holds the finished ones only.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import (
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from nn.search.pruning import make_pruner
from nn.search.runner import Runner, make_trial
from nn.search.space import trial_key, trial_seed

__all__ = ["STUDY_FILE", "STUDY_NAME", "bayesian", "distributions", "make_sampler", "open_study"]

log = logging.getLogger(__name__)

STUDY_FILE = "study.journal"
STUDY_NAME = "bsmscan-search"


def distributions(space) -> dict[str, Any]:
    """The Optuna distribution of each ``search.space`` dimension (choice -> categorical,
    int / float ranges with their log flag)."""
    result = {}
    for name, dimension in space.items():
        if dimension.type == "choice":
            result[name] = CategoricalDistribution(list(dimension.values))
        elif dimension.type == "int":
            result[name] = IntDistribution(int(dimension.low), int(dimension.high), log=dimension.log)
        else:
            result[name] = FloatDistribution(float(dimension.low), float(dimension.high), log=dimension.log)
    return result


def make_sampler(search, seed: int) -> optuna.samplers.BaseSampler:
    """The ``search.sampler`` (tpe, random or cmaes) seeded with ``seed``; TPE and CMA-ES start
    with ``search.startup_trials`` random trials."""
    if search.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=search.startup_trials, constant_liar=True)
    if search.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if search.sampler == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=search.startup_trials, warn_independent_sampling=False)
    raise ValueError(f"search.sampler: unknown sampler {search.sampler!r}; use tpe, random or cmaes")


def pruner_settings(search, epochs: int) -> dict[str, Any]:
    """The settings of :func:`nn.search.pruning.make_pruner` (plain values, sent to the workers)."""
    return {"pruner": search.pruner, "startup_trials": search.startup_trials, "min_epochs": min(search.min_epochs, epochs),
            "max_epochs": epochs, "eta": search.eta}


def open_study(out: Path, search, epochs: int) -> tuple[optuna.Study, JournalStorage]:
    """The study in ``out/study.journal`` (created, or loaded to resume)."""
    storage = JournalStorage(JournalFileBackend(str(Path(out) / STUDY_FILE)))
    study = optuna.create_study(
        storage=storage, study_name=STUDY_NAME, direction="maximize", load_if_exists=True,
        pruner=make_pruner(pruner_settings(search, epochs)),
    )
    return study, storage


def _tell(study: optuna.Study, storage: JournalStorage, trial: optuna.trial.FrozenTrial, record: dict) -> None:
    """Write a finished trial's per-epoch reports and pruner attributes, then tell its outcome."""
    trial_id = trial._trial_id  # optuna's own pruners address trials by this id too
    for step, value in sorted(record.get("intermediate", {}).items(), key=lambda item: int(item[0])):
        storage.set_trial_intermediate_value(trial_id, int(step), math.nan if value is None else float(value))
    for key, value in record.get("pruner_attrs", {}).items():
        storage.set_trial_system_attr(trial_id, key, value)
    if record.get("status") == "ok":
        study.tell(trial.number, record["score"])
    else:
        study.tell(trial.number, state=TrialState.PRUNED if record.get("status") == "pruned" else TrialState.FAIL)


def bayesian(runner: Runner, search, seed: int, trials: int, epochs: int) -> list[dict]:
    """Run (or resume) the Optuna study up to ``trials`` trials; returns the records in trial order."""
    study, storage = open_study(runner.out, search, epochs)
    space = distributions(search.space)
    settings = pruner_settings(search, epochs)
    while True:
        existing = study.get_trials(deepcopy=False)
        numbers = [t.number for t in existing if t.state == TrialState.RUNNING]  # an interrupted batch
        if numbers:
            log.info("resuming the study: trial(s) %s were not finished", numbers)
        else:
            for _ in range(min(search.ask_batch, trials - len(existing))):
                number = len(existing) + len(numbers)
                study.sampler = make_sampler(search, trial_seed(seed, -1 - number))
                numbers.append(study.ask(space).number)
        if not numbers:
            break
        snapshot = study.get_trials(deepcopy=True)
        batch = []
        for number in numbers:
            trial = make_trial(number, dict(snapshot[number].params), seed, epochs, strategy="bayesian", sampler=search.sampler)
            trial["_optuna"] = {"study_name": STUDY_NAME, "pruner": settings, "trials": snapshot, "number": number}
            batch.append(trial)
        for number, record in zip(numbers, runner.run(batch)):
            _tell(study, storage, snapshot[number], record)
    records = []
    for trial in study.get_trials(deepcopy=False):
        key = trial_key(trial.params, trial_seed(seed, trial.number), epochs)
        if key in runner.table:
            records.append(runner.table.records[key])
    return records
