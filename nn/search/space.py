"""The hyperparameter search space: sampling, seeds, trial keys and applying a trial to a config.

A *trial configuration* is a plain dict ``{hyperparameter: value}`` over the names of the
config's ``search.space`` (:class:`analysis.core.config.SearchConfig`); :func:`apply_hyperparameters`
turns it into a full analysis config (``layers`` x ``width`` become ``model.hidden_layers``).
Every random choice takes a :class:`numpy.random.Generator`, so a search is reproducible.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from typing import Any, Mapping

import numpy as np

__all__ = [
    "apply_hyperparameters",
    "grid_configurations",
    "sample_configuration",
    "sample_value",
    "trial_key",
    "trial_seed",
]

_MODEL_FIELDS = {"activation", "dropout", "l1", "l2"}
_TRAINING_FIELDS = {"learning_rate", "optimizer", "batch_size", "loss"}


def sample_value(dimension, rng: np.random.Generator) -> Any:
    """One value of a :class:`~analysis.core.config.SearchDimension` (JSON-ready Python scalar)."""
    if dimension.type == "choice":
        return dimension.values[int(rng.integers(len(dimension.values)))]
    low, high = float(dimension.low), float(dimension.high)
    if dimension.type == "int":
        if dimension.log:
            value = math.exp(rng.uniform(math.log(low), math.log(high + 1.0)))
            return int(min(max(math.floor(value), low), high))
        return int(rng.integers(int(low), int(high) + 1))
    if dimension.log:
        return float(math.exp(rng.uniform(math.log(low), math.log(high))))
    return float(rng.uniform(low, high))


def sample_configuration(space: Mapping[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """A random configuration: one value per hyperparameter of ``space`` (in its order)."""
    return {name: sample_value(dimension, rng) for name, dimension in space.items()}


def grid_configurations(space: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every combination of the ``choice`` values and ``int`` ranges of ``space`` (the first
    hyperparameter varies slowest); a ``float`` range has no grid (ValueError naming it)."""
    axes = []
    for name, dimension in space.items():
        if dimension.type == "choice":
            axes.append(list(dimension.values))
        elif dimension.type == "int":
            axes.append(list(range(int(dimension.low), int(dimension.high) + 1)))
        else:
            raise ValueError(f"search.space.{name}: a grid search needs a choice or an int range, not a float range")
    return [dict(zip(space, values)) for values in itertools.product(*axes)]


def trial_seed(search_seed: int, index: int) -> int:
    """The training seed of trial ``index`` of a search seeded ``search_seed`` (stable, < 2**31)."""
    digest = hashlib.blake2b(f"{int(search_seed)}:{int(index)}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") % (2**31 - 1)


def trial_key(params: Mapping[str, Any], seed: int, epochs: int) -> str:
    """A short hash of (hyperparameters, seed, epochs): the identity of a trial in the results table."""
    text = json.dumps({"params": dict(params), "seed": int(seed), "epochs": int(epochs)}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def apply_hyperparameters(config, params: Mapping[str, Any], seed: int, epochs: int):
    """``config`` with the trial's hyperparameters, training ``seed`` and ``max_epochs = epochs``.

    ``layers`` and ``width`` replace ``model.hidden_layers`` (missing ones keep the config's
    depth / first width); the others set the ``model`` or ``training`` field of that name.
    """
    model_update = {name: params[name] for name in _MODEL_FIELDS if name in params}
    training_update = {name: params[name] for name in _TRAINING_FIELDS if name in params}
    if "layers" in params or "width" in params:
        hidden = list(config.model.hidden_layers)
        layers = int(params.get("layers", len(hidden)))
        width = int(params.get("width", hidden[0]))
        model_update["hidden_layers"] = [width] * layers
    training_update.update(seed=int(seed), max_epochs=int(epochs))
    model = config.model.model_copy(update=model_update)
    training = config.training.model_copy(update=training_update)
    # model_copy skips validation: re-validate so that a bad value fails here, naming the field
    model = type(config.model).model_validate(model.model_dump())
    training = type(config.training).model_validate(training.model_dump())
    return config.model_copy(update={"model": model, "training": training})
