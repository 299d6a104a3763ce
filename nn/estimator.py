"""A scikit-learn estimator around the Flax MLP, with ``partial_fit`` for dask-ml.

:class:`FlaxMLPClassifier` is the network of :mod:`nn.model` trained with the training step of
:mod:`nn.trainer` (weighted cross entropy, an :mod:`nn.optimizers` optimiser, dropout and L2)
behind the scikit-learn interface: ``fit``, ``partial_fit``, ``predict_proba``, ``predict``,
``decision_function`` and ``score`` (the weighted ROC AUC).  ``partial_fit(X, y)`` makes one
pass of mini-batches over the rows it is given, so ``dask_ml.wrappers.Incremental`` can train
it block by block over a dask array much larger than memory, each block on a worker
(:mod:`nn.table_dask`).  All randomness (initialisation, dropout, shuffling) comes from
``seed`` and the number of ``partial_fit`` calls so far: the same blocks in the same order give
the same parameters on any worker.

``Incremental`` passes the same keyword arguments to every block, so per-row weights travel as
a column of ``X``: ``weight_column=k`` takes column ``k`` as the event weight and the other
columns as the features.  :meth:`FlaxMLPClassifier.save` writes a normal model artifact
(:mod:`nn.artifact`), scored by ``python -m nn.score`` and the scoring stage like any other.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from nn.artifact import save_artifact
from nn.losses import LossSpec
from nn.metrics import weighted_roc_auc
from nn.model import build_model, init_params, signal_probability_numpy
from nn.optimizers import OptimizerSpec, make_optimizer
from nn.scaler import Standardizer
from nn.trainer import (
    Regularisation,
    TrainState,
    compiled_apply,
    make_train_step,
    predict_logits,
)

__all__ = ["FlaxMLPClassifier"]


@functools.lru_cache(maxsize=16)
def _compiled_step(hidden_layers: tuple[int, ...], activation: str, dropout: bool, optimizer: str, learning_rate: float,
                   l2: bool):
    """``(network, optimiser, jitted train step)`` of one estimator setup, cached per process:
    a worker that receives the estimator for block after block compiles its step once."""
    network = build_model(hidden_layers, activation, 0.5 if dropout else 0.0, 1)
    tx = make_optimizer(OptimizerSpec(optimizer=optimizer), 1, learning_rate=learning_rate)
    return network, tx, jax.jit(make_train_step(network, LossSpec(kind="bce"), tx, False, l2))


class FlaxMLPClassifier(ClassifierMixin, BaseEstimator):
    """Binary Flax MLP classifier with the scikit-learn interface (see the module doc).

    Parameters: ``hidden_layers``, ``activation``, ``dropout`` (rate), ``l2`` (penalty),
    ``optimizer`` (adam, adamw, rmsprop, sgd), ``learning_rate``, ``batch_size``, ``epochs``
    (passes of :meth:`fit`), ``seed``, ``weight_column`` (index of the weight column in ``X``,
    or None).  Inputs should be standardised (e.g. ``dask_ml.preprocessing.StandardScaler``).
    """

    def __init__(self, hidden_layers: Sequence[int] = (64, 64), activation: str = "relu", dropout: float = 0.0,
                 l2: float = 0.0, optimizer: str = "adam", learning_rate: float = 1e-3, batch_size: int = 256,
                 epochs: int = 10, seed: int = 0, weight_column: int | None = None):
        self.hidden_layers = hidden_layers
        self.activation = activation
        self.dropout = dropout
        self.l2 = l2
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.epochs = epochs
        self.seed = seed
        self.weight_column = weight_column

    # ---------------------------------------------------------------- compiled pieces (not pickled)

    def _network(self):
        return build_model(self.hidden_layers, self.activation, self.dropout, 1)

    def _compiled(self):
        return _compiled_step(tuple(int(w) for w in self.hidden_layers), self.activation, float(self.dropout) > 0,
                              self.optimizer, float(self.learning_rate), float(self.l2) > 0)

    # ---------------------------------------------------------------- fitting

    def _split_weight(self, X, sample_weight) -> tuple[np.ndarray, np.ndarray]:
        X = np.asarray(X, dtype=np.float32)
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D (rows, columns), got shape {X.shape}")
        if self.weight_column is not None:
            column = self.weight_column % X.shape[1]
            weight = X[:, column].astype(np.float64)
            X = np.delete(X, column, axis=1)
        else:
            weight = np.ones(X.shape[0]) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        if weight.shape != (X.shape[0],) or not np.all(np.isfinite(weight)) or np.any(weight < 0):
            raise ValueError("sample weights must be finite, >= 0 and one per row")
        return np.ascontiguousarray(X), weight

    def partial_fit(self, X, y, classes=None, sample_weight=None) -> FlaxMLPClassifier:
        """One pass of shuffled mini-batches over the rows of ``X`` (labels ``y`` in {0, 1})."""
        X, weight = self._split_weight(X, sample_weight)
        y = np.asarray(y).astype(np.int32).ravel()
        if y.shape != (X.shape[0],) or not np.all((y == 0) | (y == 1)):
            raise ValueError("y must hold one label per row, each 0 or 1")
        network, tx, step = self._compiled()
        if not hasattr(self, "params_"):
            self.classes_ = np.array([0, 1])
            self.n_features_in_ = X.shape[1]
            params = init_params(network, X.shape[1], jax.random.key(self.seed))
            self.params_ = jax.device_get(params)
            self.opt_state_ = jax.device_get(tx.init(params))
            self.n_calls_ = 0
        elif X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} feature columns; this estimator was started with {self.n_features_in_}")
        self.n_calls_ += 1
        if X.shape[0] == 0:
            return self
        key = jax.random.fold_in(jax.random.key(self.seed), self.n_calls_)
        order = np.asarray(jax.random.permutation(jax.random.fold_in(key, 0), X.shape[0]))
        batch = int(self.batch_size)
        n_batches = math.ceil(X.shape[0] / batch)
        slots = np.arange(n_batches * batch)
        rows = order[slots % X.shape[0]].reshape(n_batches, batch)
        valid = (slots < X.shape[0]).reshape(n_batches, batch)
        mean_weight = weight.mean() if weight.mean() > 0 else 1.0
        hyper = Regularisation.of(self.dropout, 0.0, self.l2)
        state = TrainState(step=jnp.zeros((), jnp.int32), params=self.params_, opt_state=self.opt_state_)
        for index in range(n_batches):
            ok = valid[index]
            w = np.where(ok, weight[rows[index]] / mean_weight, 0.0).astype(np.float32)
            state, _, _ = step(state, X[rows[index]], y[rows[index]], w, np.float32(ok.sum()), np.float32(1.0),
                               jax.random.fold_in(key, index + 1), hyper)
        self.params_ = jax.device_get(state.params)
        self.opt_state_ = jax.device_get(state.opt_state)
        return self

    def fit(self, X, y, sample_weight=None) -> FlaxMLPClassifier:
        """Start afresh and make ``epochs`` passes of :meth:`partial_fit` over all rows."""
        for name in ("params_", "opt_state_", "n_calls_", "classes_", "n_features_in_"):
            self.__dict__.pop(name, None)
        for _ in range(int(self.epochs)):
            self.partial_fit(X, y, sample_weight=sample_weight)
        return self

    # ---------------------------------------------------------------- prediction

    def predict_proba(self, X) -> np.ndarray:
        """``(n, 2)`` class probabilities (background, signal)."""
        if not hasattr(self, "params_"):
            raise ValueError("this FlaxMLPClassifier is not fitted yet: call fit or partial_fit first")
        X, _ = self._split_weight(X, None) if self.weight_column is not None else (np.asarray(X, np.float32), None)
        logits = predict_logits(compiled_apply(self._network()), self.params_, np.ascontiguousarray(X))
        p = signal_probability_numpy(logits)
        return np.stack([1.0 - p, p], axis=1)

    def decision_function(self, X) -> np.ndarray:
        """P(signal) per row."""
        return self.predict_proba(X)[:, 1]

    def predict(self, X) -> np.ndarray:
        """Class 1 where P(signal) >= 0.5, else 0."""
        return (self.decision_function(X) >= 0.5).astype(np.int64)

    def score(self, X, y, sample_weight=None) -> float:
        """Weighted ROC AUC of P(signal) against ``y`` (weights from ``weight_column`` or ``sample_weight``)."""
        _, weight = self._split_weight(X, sample_weight)
        return weighted_roc_auc(self.decision_function(X), np.asarray(y).ravel(), weight)

    def save(self, directory: str | Path, feature_names: Sequence[str], scaler: Standardizer,
             metadata: dict[str, Any] | None = None) -> Path:
        """Write a model artifact (:mod:`nn.artifact`) whose inputs are the raw features
        standardised by ``scaler`` (the statistics this estimator's inputs were scaled with)."""
        if not hasattr(self, "params_"):
            raise ValueError("this FlaxMLPClassifier is not fitted yet: nothing to save")
        record = {
            "network": {"hidden_layers": list(self.hidden_layers), "activation": self.activation, "dropout": self.dropout,
                        "n_outputs": 1, "output": "binary"},
            "feature_names": list(feature_names), "input_names": list(feature_names), "parametrised": False,
            "classes": ["background", "signal"], "signal_points": [], "scaler": scaler.to_dict(),
            "estimator": {**self.get_params(), "hidden_layers": list(self.hidden_layers), "partial_fit_calls": self.n_calls_},
            **(metadata or {}),
        }
        return save_artifact(directory, self.params_, record)
