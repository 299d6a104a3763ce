"""Optimisers and learning-rate schedules by name (``training.optimizer`` / ``training.schedule``).

:data:`OPTIMIZERS` and :data:`SCHEDULES` map the names of
:data:`analysis.core.config.OPTIMIZERS` / :data:`~analysis.core.config.SCHEDULES` to optax
(a test checks that both agree). :func:`make_optimizer` injects the learning rate as a
hyperparameter (``optax.inject_hyperparams``): it lives in the optimiser state, so one compiled
update serves every learning rate (:func:`set_learning_rate`). :class:`OptimizerSpec` is the
hashable rest of the settings, the key of the compiled-step cache of :mod:`nn.trainer`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Callable

import jax.numpy as jnp
import optax

__all__ = ["OPTIMIZERS", "OptimizerSpec", "SCHEDULES", "make_optimizer", "make_schedule", "set_learning_rate"]


@dataclass(frozen=True)
class OptimizerSpec:
    """The optimiser settings of ``training`` that fix the compiled update (hashable, so
    compiled steps can be reused); the learning rate is not one of them."""

    optimizer: str = "rmsprop"
    schedule: str = "constant"
    warmup_epochs: int = 0
    decay_rate: float = 0.9
    momentum: float = 0.9
    weight_decay: float = 1e-4
    max_epochs: int = 20

    @classmethod
    def from_training(cls, training) -> "OptimizerSpec":
        """The spec of a :class:`~analysis.core.config.TrainingConfig`; settings the chosen optimiser
        and schedule do not use are left at their defaults (more reuse of compiled steps)."""
        values = {f.name: getattr(training, f.name) for f in fields(cls)}
        unused = {
            "momentum": values["optimizer"] != "sgd",
            "weight_decay": values["optimizer"] != "adamw",
            "max_epochs": values["schedule"] not in ("cosine", "warmup_cosine"),
            "warmup_epochs": values["schedule"] != "warmup_cosine",
            "decay_rate": values["schedule"] != "exponential",
        }
        return cls(**{name: value for name, value in values.items() if not unused.get(name, False)})


def _warmup_cosine(lr, settings, steps_per_epoch: int, total: int) -> optax.Schedule:
    # optax.warmup_cosine_decay_schedule, written out: it tests ``peak_value == 0`` in Python,
    # which a traced learning rate cannot answer (end value 0, so alpha = 0)
    warmup = min(settings.warmup_epochs * steps_per_epoch, total - 1)
    return optax.join_schedules(
        [optax.linear_schedule(0.0, lr, warmup), optax.cosine_decay_schedule(lr, decay_steps=total - warmup)], [warmup]
    )


#: Learning-rate schedule of each ``training.schedule`` name:
#: ``(learning_rate, settings, steps_per_epoch, total_steps) -> schedule``.
SCHEDULES: dict[str, Callable[..., optax.Schedule]] = {
    "constant": lambda lr, settings, steps, total: optax.constant_schedule(lr),
    "cosine": lambda lr, settings, steps, total: optax.cosine_decay_schedule(lr, decay_steps=total),
    "exponential": lambda lr, settings, steps, total: optax.exponential_decay(lr, transition_steps=steps, decay_rate=settings.decay_rate),
    "warmup_cosine": _warmup_cosine,
}

#: Optimiser of each ``training.optimizer`` name: ``(schedule, settings) -> optax transformation``.
#: rmsprop follows Keras (decay 0.9, eps 1e-7 outside the square root), the reference studies'
#: framework; sgd uses ``momentum``; adamw ``weight_decay``.
OPTIMIZERS: dict[str, Callable[..., optax.GradientTransformation]] = {
    "adam": lambda schedule, settings: optax.adam(schedule),
    "adamw": lambda schedule, settings: optax.adamw(schedule, weight_decay=settings.weight_decay),
    "rmsprop": lambda schedule, settings: optax.rmsprop(schedule, decay=0.9, eps=1e-7, eps_in_sqrt=False),
    "sgd": lambda schedule, settings: optax.sgd(schedule, momentum=settings.momentum or None),
}


def make_schedule(training, steps_per_epoch: int, learning_rate=None) -> optax.Schedule:
    """The learning rate as a function of the step, from ``training.schedule``; the peak rate is
    ``learning_rate`` (a float or a traced value), default ``training.learning_rate``."""
    if training.schedule not in SCHEDULES:
        raise ValueError(f"unknown learning-rate schedule {training.schedule!r}; known: {sorted(SCHEDULES)}")
    lr = training.learning_rate if learning_rate is None else learning_rate
    return SCHEDULES[training.schedule](lr, training, steps_per_epoch, max(1, training.max_epochs * steps_per_epoch))


def make_optimizer(training, steps_per_epoch: int, learning_rate: float | None = None) -> optax.GradientTransformation:
    """The optax optimiser of ``training.optimizer`` with its schedule, the learning rate
    injected as a hyperparameter (``opt_state.hyperparams["learning_rate"]``, a runtime value:
    :func:`set_learning_rate`). Its initial value: ``learning_rate``, else ``training.learning_rate``."""
    if training.optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {training.optimizer!r}; known: {sorted(OPTIMIZERS)}")
    build = OPTIMIZERS[training.optimizer]

    def factory(learning_rate):
        # the schedule is a closure over the injected (traced) rate; its own step count lives
        # in the inner optimiser state, as it did without injection
        return build(make_schedule(training, steps_per_epoch, learning_rate), training)

    initial = learning_rate if learning_rate is not None else getattr(training, "learning_rate", 1e-3)
    return optax.inject_hyperparams(factory)(learning_rate=float(initial))


def set_learning_rate(opt_state, learning_rate: float):
    """``opt_state`` of :func:`make_optimizer` with another (peak) learning rate."""
    rate = jnp.asarray(learning_rate, opt_state.hyperparams["learning_rate"].dtype)
    return opt_state._replace(hyperparams={**opt_state.hyperparams, "learning_rate": rate})
