"""The classifier: a Flax (linen) multilayer perceptron, and its weight penalties.

:class:`MLP` maps standardised inputs ``(n, d)`` to logits ``(n, n_outputs)``: one logit
(sigmoid -> signal probability) for a binary classifier, or one per class (softmax over the
signal and each background process, signal first) for a multi-class one.  Hidden layers are
Dense -> activation -> dropout; the weights start Glorot-uniform (the Keras default of the
reference studies), the biases at zero.
"""

from __future__ import annotations

import functools
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "ACTIVATIONS",
    "MLP",
    "build_model",
    "init_params",
    "signal_probability",
    "signal_probability_numpy",
    "weight_penalty",
]

#: Activation functions selectable by name from ``model.activation``.
ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": nn.relu,
    "tanh": jnp.tanh,
    "sigmoid": nn.sigmoid,
    "elu": nn.elu,
    "gelu": nn.gelu,
    "selu": nn.selu,
    "leaky_relu": nn.leaky_relu,
}


class MLP(nn.Module):
    """Dense feed-forward network returning logits of shape ``(n, n_outputs)``.

    Attributes:
        hidden_layers: widths of the hidden layers.
        activation: a key of :data:`ACTIVATIONS`.
        dropout: dropout rate after every hidden layer (training only).
        n_outputs: 1 (binary, sigmoid) or the number of classes (softmax).
    """

    hidden_layers: tuple[int, ...]
    activation: str = "relu"
    dropout: float = 0.0
    n_outputs: int = 1

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        """Logits for inputs ``x``; ``train=True`` applies dropout (needs a ``dropout`` rng)."""
        act = ACTIVATIONS[self.activation]
        init = nn.initializers.glorot_uniform()
        for i, width in enumerate(self.hidden_layers):
            x = act(nn.Dense(width, kernel_init=init, name=f"hidden_{i}")(x))
            if self.dropout > 0:
                x = nn.Dropout(rate=self.dropout, deterministic=not train)(x)
        return nn.Dense(self.n_outputs, kernel_init=init, name="output")(x)


def build_model(hidden_layers, activation: str, dropout: float, n_outputs: int) -> MLP:
    """An :class:`MLP` from config values (``model.hidden_layers`` etc.)."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; known: {sorted(ACTIVATIONS)}")
    return MLP(hidden_layers=tuple(int(w) for w in hidden_layers), activation=activation, dropout=float(dropout), n_outputs=int(n_outputs))


def init_params(model: MLP, n_inputs: int, key: jax.Array) -> dict:
    """Initial parameters of ``model`` for ``n_inputs`` input columns, from the PRNG ``key``."""
    return _jitted_init(model, n_inputs)(key)


@functools.lru_cache(maxsize=32)
def _jitted_init(model: MLP, n_inputs: int) -> Callable:
    return jax.jit(lambda key: model.init({"params": key}, jnp.zeros((1, n_inputs), jnp.float32), train=False)["params"])


def weight_penalty(params, l1: float, l2: float) -> jax.Array:
    """``l1 * sum |W| + l2 * sum W^2`` over all weight matrices (``kernel``; biases are not penalised)."""
    kernels = [leaf for path, leaf in jax.tree_util.tree_leaves_with_path(params) if path[-1].key == "kernel"]
    penalty = jnp.zeros((), jnp.float32)
    if l1:
        penalty += l1 * sum(jnp.sum(jnp.abs(k)) for k in kernels)
    if l2:
        penalty += l2 * sum(jnp.sum(k * k) for k in kernels)
    return penalty


def signal_probability(logits: jax.Array) -> jax.Array:
    """P(signal) from logits ``(n, k)``: sigmoid of the one logit, or softmax's first class."""
    if logits.shape[-1] == 1:
        return jax.nn.sigmoid(logits[..., 0])
    return jax.nn.softmax(logits, axis=-1)[..., 0]


def signal_probability_numpy(logits: np.ndarray) -> np.ndarray:
    """:func:`signal_probability` in numpy (float64), for host-side metrics."""
    logits = np.asarray(logits, dtype=np.float64)
    if logits.shape[-1] == 1:
        return 0.5 * (1.0 + np.tanh(0.5 * logits[..., 0]))
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp[..., 0] / exp.sum(axis=-1)
