"""The training loop: optax optimisers, one jitted pure ``train_step``, early stopping.

* :func:`make_optimizer` -- adam, adamw, rmsprop (Keras conventions) or sgd with momentum,
  with a constant, cosine, exponential or warm-up + cosine learning-rate schedule; the
  learning rate is a runtime value in the optimiser state (``optax.inject_hyperparams``).
* :func:`make_train_step` -- ``(state, x, target, weight, n_events, yield_scale, key, hyper) ->
  (state, data_loss, logits)``: forward with dropout, weighted loss (an ensemble's: the mean of
  its members' losses) + L1/L2 penalty,
  gradient, optimiser update.  Pure: the state is passed in and returned.  The dropout keep
  probability and the L1/L2 constants come in ``hyper`` (:class:`Regularisation`), runtime
  values too.
* :func:`make_train_epoch` -- one epoch as a jitted ``lax.scan`` of ``train_step`` over the
  batches of a seeded permutation; the data stay put (each batch is a gather of its rows),
  the last batch is padded with zero-weight rows so every step has the same shape.
* :func:`fit` -- the epoch loop with per-epoch history (weighted loss, ROC AUC, precision and
  accuracy on train and validation) and early stopping on the validation loss that restores
  the best weights.

All randomness (initialisation, dropout, shuffling) comes from one integer seed.

Compiled steps are cached by what fixes the computation -- the network's shape and
activation, whether it has dropout and which penalties are on, the loss, the optimiser and
schedule kinds, batch size and batches per epoch -- so trainings that differ only in learning
rate, dropout rate or penalty constants (a hyperparameter search's trials, a regularisation
sweep, several seeds) share one compilation (:func:`compiled_training`,
:func:`clear_compiled_caches`).
"""

from __future__ import annotations

import functools
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from nn.losses import LossSpec, make_loss
from nn.metrics import (
    binary_metrics,
    weighted_accuracy,
    weighted_precision,
    weighted_roc_auc,
)
from nn.model import (
    MLP,
    _jitted_init,
    combine_member_logits,
    init_params,
    signal_probability_numpy,
    weight_penalty,
)
from nn.optimizers import (
    OPTIMIZERS,
    SCHEDULES,
    OptimizerSpec,
    make_optimizer,
    make_schedule,
    set_learning_rate,
)
from nn.prepare import PreparedData, SplitData

__all__ = [
    "FitResult",
    "OPTIMIZERS",
    "OptimizerSpec",
    "Regularisation",
    "SCHEDULES",
    "TrainState",
    "clear_compiled_caches",
    "compiled_apply",
    "compiled_loss",
    "compiled_training",
    "evaluate_split",
    "fit",
    "make_optimizer",
    "make_schedule",
    "make_train_epoch",
    "make_train_step",
    "predict_logits",
    "set_learning_rate",
    "split_metrics",
]

log = logging.getLogger(__name__)


class TrainState(struct.PyTreeNode):
    """Optimisation state: step counter, network parameters and optimiser state."""

    step: jax.Array
    params: Any
    opt_state: Any


class Regularisation(struct.PyTreeNode):
    """Runtime regularisation values of a training step: the dropout keep probability
    (1 - rate) and the L1 / L2 constants. Arrays, not compile-time constants."""

    keep_prob: jax.Array
    l1: jax.Array
    l2: jax.Array

    @classmethod
    def of(cls, dropout: float = 0.0, l1: float = 0.0, l2: float = 0.0) -> "Regularisation":
        """From a dropout rate and the penalty constants (``1 - rate`` is taken in float64
        before the cast, as ``flax.linen.Dropout`` does)."""
        return cls(keep_prob=jnp.float32(1.0 - float(dropout)), l1=jnp.float32(l1), l2=jnp.float32(l2))


def make_train_step(model: MLP, loss_spec: LossSpec, tx: optax.GradientTransformation, l1: bool = False, l2: bool = False) -> Callable:
    """A pure training step (not yet jitted; :func:`make_train_epoch` scans it, callers may jit it).

    ``train_step(state, x, target, weight, n_events, yield_scale, key, hyper)`` returns the new
    state, the weighted data loss of the batch (without the penalty) and the batch logits.
    ``hyper`` is a :class:`Regularisation`; ``l1`` / ``l2`` say whether those penalties are on
    at all (their constants come from ``hyper``).
    """
    loss_fn = make_loss(loss_spec)

    def train_step(state: TrainState, x, target, weight, n_events, yield_scale, key, hyper: Regularisation):
        def objective(params):
            if model.members == 1:
                logits = model.apply({"params": params}, x, train=True, keep_prob=hyper.keep_prob, rngs={"dropout": key})
                data_loss = loss_fn(logits, target, weight, n_events, yield_scale)
            else:  # an ensemble: each member on its own loss, the batch's logits those of the ensemble
                member_logits = model.apply({"params": params}, x, train=True, keep_prob=hyper.keep_prob, per_member=True,
                                            rngs={"dropout": key})
                member_loss = jax.vmap(loss_fn, in_axes=(0, None, None, None, None))(member_logits, target, weight, n_events, yield_scale)
                data_loss, logits = jnp.mean(member_loss), combine_member_logits(member_logits)
            penalty = weight_penalty(params, hyper.l1 if l1 else None, hyper.l2 if l2 else None)
            return data_loss + penalty, (data_loss, logits)

        grads, (data_loss, logits) = jax.grad(objective, has_aux=True)(state.params)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return TrainState(step=state.step + 1, params=params, opt_state=opt_state), data_loss, logits

    return train_step


def make_train_epoch(train_step: Callable, batch_size: int) -> Callable:
    """A jitted epoch: ``(state, x, target, weight, shuffle_key, dropout_key, total_rows, hyper) ->
    (state, mean batch loss, logits per row in the original row order)``."""

    def train_epoch(state, x, target, weight, shuffle_key, dropout_key, total_rows, hyper):
        n = x.shape[0]
        n_batches = -(-n // batch_size)
        permutation = jax.random.permutation(shuffle_key, n)
        slots = jnp.arange(n_batches * batch_size)
        order = permutation[slots % n].reshape(n_batches, batch_size)
        valid = (slots < n).reshape(n_batches, batch_size)

        def body(state, inputs):
            rows, ok, index = inputs
            n_events = jnp.sum(ok).astype(jnp.float32)
            batch_weight = jnp.where(ok, weight[rows], 0.0)
            key = jax.random.fold_in(dropout_key, index)
            state, loss, logits = train_step(state, x[rows], target[rows], batch_weight, n_events, total_rows / n_events, key, hyper)
            return state, (loss * n_events, logits)

        state, (losses, logits) = jax.lax.scan(body, state, (order, valid, jnp.arange(n_batches)))
        logits = logits.reshape(n_batches * batch_size, -1)[:n]
        by_row = jnp.zeros_like(logits).at[permutation].set(logits)
        return state, jnp.sum(losses) / n, by_row

    return jax.jit(train_epoch)


@functools.lru_cache(maxsize=32)
def compiled_apply(model: MLP) -> Callable:
    """Jitted inference ``apply(params, x) -> logits`` of ``model`` (cached per network shape)."""
    return jax.jit(lambda params, x: model.apply({"params": params}, x, train=False))


@functools.lru_cache(maxsize=32)
def compiled_loss(spec: LossSpec) -> Callable:
    """Jitted loss of ``spec`` (cached)."""
    return jax.jit(make_loss(spec))


@functools.lru_cache(maxsize=32)
def compiled_training(model: MLP, loss_spec: LossSpec, optimizer: OptimizerSpec, steps_per_epoch: int, batch_size: int,
                      l1: bool = False, l2: bool = False):
    """``(tx, train_epoch)``: the optimiser (:func:`make_optimizer`, learning rate set per
    training with :func:`set_learning_rate`) and the jitted epoch of one setup, cached: trainings
    that differ only in learning rate, dropout rate, penalty constants or seed compile once."""
    tx = make_optimizer(optimizer, steps_per_epoch, learning_rate=1.0)
    return tx, make_train_epoch(make_train_step(model, loss_spec, tx, l1, l2), batch_size)


def clear_compiled_caches() -> None:
    """Forget every cached compiled function (steps, inference, loss, initialisation), so the
    next training compiles afresh (what each trial of a search paid before the learning rate
    and dropout rate became runtime values; ``benchmarks/search.py`` measures the difference)."""
    for cached in (compiled_training, compiled_apply, compiled_loss, _jitted_init):
        cached.cache_clear()


def _chunk_size(n: int, limit: int) -> int:
    return max(1, min(limit, 1 << max(0, math.ceil(math.log2(max(n, 1))))))


def predict_logits(apply: Callable, params, x: np.ndarray, batch_size: int = 65_536) -> np.ndarray:
    """Logits ``(n, k)`` of ``x`` with a jitted ``apply(params, x)``, in fixed-size padded chunks."""
    n = x.shape[0]
    chunk = _chunk_size(n, batch_size)
    outputs = []
    for start in range(0, n, chunk):
        block = x[start : start + chunk]
        if block.shape[0] < chunk:
            block = np.concatenate([block, np.zeros((chunk - block.shape[0],) + block.shape[1:], block.dtype)])
        outputs.append(np.asarray(apply(params, block)))
    return np.concatenate(outputs)[:n] if outputs else np.zeros((0, 1), np.float32)


def split_metrics(logits: np.ndarray, data: SplitData) -> dict[str, float]:
    """Weighted ROC AUC (P(signal) vs the rest), precision and accuracy of a split's logits."""
    probability = signal_probability_numpy(logits)
    if logits.shape[-1] == 1:
        return binary_metrics(probability, data.is_signal, data.weight)
    predicted = np.argmax(logits, axis=-1)
    return {
        "auc": weighted_roc_auc(probability, data.is_signal, data.weight),
        "precision": weighted_precision(predicted == 0, data.is_signal, data.weight),
        "accuracy": weighted_accuracy(predicted, data.target, data.weight),
    }


def evaluate_split(apply, loss_eval, params, data: SplitData, loss_spec: LossSpec, total_rows: int, batch_size: int) -> tuple[dict[str, float], np.ndarray]:
    """Weighted loss and :func:`split_metrics` of one split; also returns the logits."""
    logits = predict_logits(apply, params, data.x, batch_size)
    weight = data.physics_weight if loss_spec.kind == "asimov" else data.weight
    n = len(data)
    loss = float(loss_eval(jnp.asarray(logits), jnp.asarray(data.target), jnp.asarray(weight), float(n), total_rows / n))
    return {"loss": loss, **split_metrics(logits, data)}, logits


@dataclass
class FitResult:
    """Outcome of :func:`fit`: the best parameters and the per-epoch history."""

    params: Any
    history: list[dict[str, Any]]
    best_epoch: int
    epochs_run: int
    stop_reason: str
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)


def fit(
    model: MLP,
    data: PreparedData,
    training,
    loss_spec: LossSpec,
    seed: int,
    l1: float = 0.0,
    l2: float = 0.0,
    dropout: float = 0.0,
    verbose: bool = True,
    on_epoch: Callable[[Any, dict], None] | None = None,
) -> FitResult:
    """Train ``model`` on ``data.splits['train']``, early-stopping on ``data.splits['val']``.

    ``l1``, ``l2``: penalty constants; ``dropout``: the dropout rate (used if ``model`` has
    dropout). Stops after ``training.max_epochs`` epochs, or after ``training.patience`` epochs
    in a row whose validation loss did not improve on the best by more than
    ``training.min_delta`` (Keras convention; patience 0 acts as 1), or when the training loss
    becomes non-finite; the parameters of the best validation epoch are returned. One line per
    epoch is logged (INFO, DEBUG when not ``verbose``); ``on_epoch(params, entry)`` is called
    after each epoch with its history entry (an exception it raises ends the training).
    """
    train, val = data.splits["train"], data.splits["val"]
    steps_per_epoch = -(-len(train) // training.batch_size)
    optimizer = OptimizerSpec.from_training(training)
    tx, train_epoch = compiled_training(model, loss_spec, optimizer, steps_per_epoch, training.batch_size, l1 > 0, l2 > 0)
    hyper = Regularisation.of(dropout if model.dropout else 0.0, l1, l2)
    schedule = make_schedule(training, steps_per_epoch)
    init_key, shuffle_key, dropout_key = jax.random.split(jax.random.key(seed), 3)
    params = init_params(model, train.x.shape[1], init_key)
    opt_state = set_learning_rate(tx.init(params), training.learning_rate)
    state = TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=opt_state)
    level = logging.INFO if verbose else logging.DEBUG
    apply, loss_eval = compiled_apply(model), compiled_loss(loss_spec)

    x = jnp.asarray(train.x)
    target = jnp.asarray(train.target)
    weight = jnp.asarray(train.physics_weight if loss_spec.kind == "asimov" else train.weight)
    history: list[dict[str, Any]] = []
    best_loss, best_params, best_epoch, waited = math.inf, state.params, 0, 0
    stop_reason = f"reached max_epochs = {training.max_epochs}"
    started = time.perf_counter()
    train_seconds = 0.0
    for epoch in range(1, training.max_epochs + 1):
        tick = time.perf_counter()
        state, train_loss, logits = train_epoch(
            state, x, target, weight, jax.random.fold_in(shuffle_key, epoch), jax.random.fold_in(dropout_key, epoch),
            float(data.total_rows), hyper,
        )
        train_loss = float(train_loss)
        train_seconds += time.perf_counter() - tick
        if not math.isfinite(train_loss):
            stop_reason = f"non-finite training loss at epoch {epoch}"
            if epoch == 1:
                raise FloatingPointError(f"training diverged: {stop_reason} (try a lower learning_rate)")
            break
        train_row = {"loss": train_loss, **split_metrics(np.asarray(logits), train)}
        val_row, _ = evaluate_split(apply, loss_eval, state.params, val, loss_spec, data.total_rows, training.eval_batch_size)
        entry = {
            "epoch": epoch,
            "learning_rate": float(schedule(int(state.step) - 1)),
            "seconds": time.perf_counter() - tick,
            "train": train_row,
            "val": val_row,
        }
        history.append(entry)
        if log.isEnabledFor(level):
            log.log(
                level,
                f"epoch {epoch:3d}/{training.max_epochs}  loss {train_loss:.5f}  auc {train_row['auc']:.4f}  "
                f"| val loss {val_row['loss']:.5f}  auc {val_row['auc']:.4f}  acc {val_row['accuracy']:.4f}  "
                f"({entry['seconds']:.1f} s)"
            )
        if on_epoch is not None:
            on_epoch(state.params, entry)
        if val_row["loss"] < best_loss - training.min_delta:
            best_loss, best_params, best_epoch, waited = val_row["loss"], state.params, epoch, 0
        else:
            waited += 1
            if waited >= max(1, training.patience):
                stop_reason = f"early stopping: no validation-loss improvement for {waited} epoch(s) after epoch {best_epoch}"
                break
    if best_epoch == 0:
        best_params, best_epoch = state.params, len(history)
    return FitResult(
        params=best_params,
        history=history,
        best_epoch=best_epoch,
        epochs_run=len(history),
        stop_reason=stop_reason,
        seconds=time.perf_counter() - started,
        timings={"train_seconds": train_seconds, "train_samples_per_second": len(train) * len(history) / max(train_seconds, 1e-9)},
    )
