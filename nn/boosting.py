"""Boosting on errors (the hard-scattering study, section 4).

Train the network; raise the weight of every *misclassified* training event (signal scored
below ``training.boost_threshold``, background at or above it) by ``training.boost_factor``;
train again from scratch with the new weights; repeat for ``training.boost_rounds`` rounds.
The factors multiply: an event misclassified in two rounds weighs ``factor**2`` times its
original training weight. Validation and test events are never reweighted, so the AUC of every
round is measured on the same events with the same weights, and recorded (the study found the
network got worse each round; ``benchmarks/boosting.py`` shows what bsmscan finds).

The prepared data of every round are identical (the same seed, split and resampling), so
"the same training event" is the same position in the training split in every round.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from nn.data import FeatureTable
from nn.model import signal_probability_numpy
from nn.prepare import PreparedData, prepare_training_data
from nn.train import TrainingResult, train_classifier
from nn.trainer import compiled_apply, predict_logits

log = logging.getLogger(__name__)


@dataclass
class BoostingResult:
    """Every round's training and what it did to the weights."""

    rounds: list[TrainingResult]
    history: list[dict] = field(default_factory=list)  # one entry per round: AUCs, misclassified events

    @property
    def final(self) -> TrainingResult:
        """The last round's network (what the train stage saves)."""
        return self.rounds[-1]


def misclassified(result: TrainingResult, threshold: float) -> np.ndarray:
    """Boolean mask of the training events ``result``'s network puts on the wrong side of ``threshold``."""
    train = result.data.splits["train"]
    logits = predict_logits(compiled_apply(result.network), result.params, train.x)
    probability = signal_probability_numpy(logits)
    return (probability >= threshold) != train.is_signal


def boost_on_errors(table: FeatureTable, config, *, rounds: int | None = None, factor: float | None = None,
                    threshold: float | None = None, verbose: bool = False, **train_options) -> BoostingResult:
    """Train ``rounds`` networks, each with the misclassified training events of the previous
    one weighted up by ``factor`` (defaults: ``training.boost_rounds`` / ``boost_factor`` /
    ``boost_threshold``). ``train_options`` go to :func:`nn.train.train_classifier`."""
    rounds = config.training.boost_rounds if rounds is None else rounds
    factor = config.training.boost_factor if factor is None else factor
    threshold = config.training.boost_threshold if threshold is None else threshold
    if rounds < 1 or not factor > 0:
        raise ValueError(f"boosting needs rounds >= 1 and factor > 0 (got rounds={rounds}, factor={factor})")
    multiplier: np.ndarray | None = None

    def prepare(*args, **kwargs) -> PreparedData:
        data = prepare_training_data(*args, **kwargs)
        if multiplier is not None:
            train = data.splits["train"]
            if len(train) != len(multiplier):  # cannot happen with fixed seeds; guards the assumption
                raise RuntimeError(f"the training split changed between boosting rounds ({len(multiplier)} -> {len(train)})")
            train.weight = (train.weight * multiplier).astype(np.float32)
        return data

    result = BoostingResult(rounds=[])
    for index in range(rounds):
        trained = train_classifier(table, config, verbose=verbose, prepare=prepare, **train_options)
        wrong = misclassified(trained, threshold)
        train = trained.data.splits["train"]
        if multiplier is None:
            multiplier = np.ones(len(train), dtype=np.float64)
        entry = {
            "round": index,
            "val_auc": trained.metrics.get("val", {}).get("auc"),
            "test_auc": trained.metrics.get("test", {}).get("auc"),
            "misclassified": int(wrong.sum()),
            "misclassified_weight_fraction": float(train.weight[wrong].sum() / train.weight.sum()),
            "max_weight_multiplier": float(multiplier.max()),
        }
        result.rounds.append(trained)
        result.history.append(entry)
        log.info("boosting round %d: val AUC %.4f, test AUC %.4f, %d misclassified training events (%.1f%% of the weight)",
                 index, entry["val_auc"] or float("nan"), entry["test_auc"] or float("nan"), entry["misclassified"],
                 100 * entry["misclassified_weight_fraction"])
        multiplier[wrong] *= factor
    result.final.metadata["boosting"] = {"rounds": rounds, "factor": factor, "threshold": threshold,
                                         "history": result.history}
    return result
