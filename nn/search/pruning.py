"""Optuna pruners, and the worker's side of pruning: per-epoch reports to a study snapshot.

The driver (:mod:`nn.search.bayesian`) sends each trial of a batch the study's trials as they
stood when the batch was asked (``trial["_optuna"]``). The worker rebuilds that study in memory
(:class:`PruningReporter`), reports the trial's score after every epoch
(:func:`~nn.search.objectives.epoch_score`) and asks the pruner whether to go on; if not, the
training stops with :class:`Pruned`. The reported values and the pruner's bookkeeping go back in
the trial's record and the driver writes them into the real study. So a pruning decision depends
only on the trials finished before the batch, never on how fast the other workers are: the
same config prunes the same trials inline and on any cluster.
"""

from __future__ import annotations

import contextlib
import logging
import math
from typing import Any, Iterator

import optuna

from nn.search.objectives import epoch_score

__all__ = ["Pruned", "PruningReporter", "make_pruner"]

#: System attributes of a trial that the pruners write (successive-halving rungs).
_PRUNER_ATTRIBUTE = "completed_rung_"


class Pruned(Exception):
    """The pruner stopped the trial after ``epoch`` (its score then: ``value``)."""

    def __init__(self, epoch: int, value: float):
        super().__init__(f"pruned after epoch {epoch} (score {value:.5g})")
        self.epoch, self.value = epoch, value


def make_pruner(settings: dict[str, Any]) -> optuna.pruners.BasePruner:
    """The Optuna pruner of ``settings`` (``{"pruner", "startup_trials", "min_epochs",
    "max_epochs", "eta"}``): ``none``; ``median`` (stop a trial whose score is below the median
    of the finished trials' at the same epoch, after ``startup_trials`` finished trials and from
    epoch ``min_epochs`` on); ``hyperband`` (Optuna's HyperbandPruner on epochs from
    ``min_epochs`` to ``max_epochs``, reduction factor ``eta``)."""
    name = settings["pruner"]
    if name == "none":
        return optuna.pruners.NopPruner()
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=settings["startup_trials"], n_warmup_steps=settings["min_epochs"] - 1)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=settings["min_epochs"], max_resource=max(settings["max_epochs"], settings["min_epochs"]),
            reduction_factor=settings["eta"],
        )
    raise ValueError(f"search.pruner: unknown pruner {name!r}; use none, median or hyperband")


@contextlib.contextmanager
def _quiet(name: str) -> Iterator[None]:
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


class PruningReporter:
    """The ``on_epoch`` callback of a Bayesian trial: report, ask the pruner, stop if told.

    ``payload`` is the trial's ``_optuna`` entry: ``study_name``, ``pruner`` (settings of
    :func:`make_pruner`), ``trials`` (the study's frozen trials when the batch was asked, this
    one among them, running) and ``number`` (this trial's number).
    """

    def __init__(self, payload: dict[str, Any], config):
        self.config = config
        self.active = payload["pruner"]["pruner"] != "none"
        self.intermediate: dict[int, float] = {}
        storage = optuna.storages.InMemoryStorage()
        with _quiet(optuna.storages.InMemoryStorage.__module__):  # not a log line per trial
            storage.create_new_study([optuna.study.StudyDirection.MAXIMIZE], study_name=payload["study_name"])
        self.study = optuna.Study(payload["study_name"], storage, pruner=make_pruner(payload["pruner"]))
        for frozen in payload["trials"]:
            self.study.add_trial(frozen)  # numbers 0, 1, ... as in the real study
        own = self.study.get_trials(deepcopy=False)[payload["number"]]
        self.trial = optuna.trial.Trial(self.study, own._trial_id)  # optuna's own pruners use _trial_id too

    def __call__(self, network, params, data, entry: dict) -> None:
        """Report the epoch's score; raise :class:`Pruned` when the pruner says stop."""
        if not self.active:
            return
        epoch = int(entry["epoch"])
        value = epoch_score(network, params, data, entry, self.config)
        self.intermediate[epoch] = value
        self.trial.report(value, epoch)
        if self.trial.should_prune():
            raise Pruned(epoch, value)

    def outcome(self) -> dict[str, Any]:
        """What goes into the record: the reported values (``{"epoch": value}``, NaN as None)
        and the pruner's attributes of this trial."""
        attributes = self.study.get_trials(deepcopy=False)[self.trial.number].system_attrs
        return {
            "intermediate": {str(k): (None if math.isnan(v) else v) for k, v in self.intermediate.items()},
            "pruner_attrs": {k: v for k, v in attributes.items() if k.startswith(_PRUNER_ATTRIBUTE)},
        }
