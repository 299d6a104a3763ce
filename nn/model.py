"""The classifier: a Flax (linen) multilayer perceptron, and its weight penalties.

:class:`MLP` maps standardised inputs ``(n, d)`` to logits ``(n, n_outputs)``: one logit
(sigmoid -> signal probability) for a binary classifier, or one per class (softmax over the
signal and each background process, signal first) for a multi-class one.  Hidden layers are
Dense -> activation -> dropout; the weights start Glorot-uniform (the Keras default of the
reference studies), the biases at zero.

The dropout *rate* is not part of the network: it is an argument of the call (as ``keep_prob``,
one minus the rate), so that networks of the same shape with different rates share one
compiled training step (:mod:`nn.trainer`).  The names of the activations are
:data:`analysis.core.config.ACTIVATIONS`; :data:`ACTIVATION_FUNCTIONS` maps each to its function.
"""

from __future__ import annotations

import functools
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "ACTIVATION_FUNCTIONS",
    "Dropout",
    "MLP",
    "build_model",
    "init_params",
    "signal_probability",
    "signal_probability_numpy",
    "weight_penalty",
]

#: The function of each activation name of ``model.activation`` (the names are
#: :data:`analysis.core.config.ACTIVATIONS`; a test checks that both agree).
ACTIVATION_FUNCTIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": nn.relu,
    "tanh": jnp.tanh,
    "sigmoid": nn.sigmoid,
    "elu": nn.elu,
    "gelu": nn.gelu,
    "selu": nn.selu,
    "leaky_relu": nn.leaky_relu,
}


class Dropout(nn.Module):
    """Inverted dropout whose keep probability is a (traced) call argument.

    The same computation as ``flax.linen.Dropout`` (a Bernoulli mask from the ``dropout`` rng,
    kept inputs scaled by ``1 / keep_prob``), and the same module name, so the same seed draws
    the same masks; but the rate is a runtime value, not a compile-time constant.
    """

    @nn.compact
    def __call__(self, x: jax.Array, keep_prob: jax.Array | float) -> jax.Array:
        """``x`` with each element zeroed with probability ``1 - keep_prob``, the rest scaled up."""
        mask = jax.random.bernoulli(self.make_rng("dropout"), p=keep_prob, shape=x.shape)
        # times the reciprocal: what XLA makes of flax's ``x / rate`` with a constant rate
        return jax.lax.select(mask, x * (1.0 / keep_prob), jnp.zeros_like(x))


class MLP(nn.Module):
    """Dense feed-forward network returning logits of shape ``(n, n_outputs)``.

    Attributes:
        hidden_layers: widths of the hidden layers.
        activation: a key of :data:`ACTIVATION_FUNCTIONS`.
        dropout: whether every hidden layer is followed by dropout in training (the rate is
            the call's ``keep_prob``).
        n_outputs: 1 (binary, sigmoid) or the number of classes (softmax).
    """

    hidden_layers: tuple[int, ...]
    activation: str = "relu"
    dropout: bool = False
    n_outputs: int = 1

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False, keep_prob: jax.Array | float = 1.0) -> jax.Array:
        """Logits for inputs ``x``; ``train=True`` applies dropout with keep probability
        ``keep_prob`` = 1 - rate (needs a ``dropout`` rng)."""
        act = ACTIVATION_FUNCTIONS[self.activation]
        init = nn.initializers.glorot_uniform()
        for i, width in enumerate(self.hidden_layers):
            x = act(nn.Dense(width, kernel_init=init, name=f"hidden_{i}")(x))
            if self.dropout and train:
                x = Dropout()(x, keep_prob)
        return nn.Dense(self.n_outputs, kernel_init=init, name="output")(x)


def build_model(hidden_layers, activation: str, dropout: float, n_outputs: int) -> MLP:
    """An :class:`MLP` from config values (``model.hidden_layers`` etc.); ``dropout`` is the
    rate: only whether it is > 0 is part of the network."""
    if activation not in ACTIVATION_FUNCTIONS:
        raise ValueError(f"unknown activation {activation!r}; known: {sorted(ACTIVATION_FUNCTIONS)}")
    return MLP(hidden_layers=tuple(int(w) for w in hidden_layers), activation=activation, dropout=float(dropout) > 0,
               n_outputs=int(n_outputs))


def init_params(model: MLP, n_inputs: int, key: jax.Array) -> dict:
    """Initial parameters of ``model`` for ``n_inputs`` input columns, from the PRNG ``key``."""
    return _jitted_init(model, n_inputs)(key)


@functools.lru_cache(maxsize=32)
def _jitted_init(model: MLP, n_inputs: int) -> Callable:
    return jax.jit(lambda key: model.init({"params": key}, jnp.zeros((1, n_inputs), jnp.float32), train=False)["params"])


def weight_penalty(params, l1, l2) -> jax.Array:
    """``l1 * sum |W| + l2 * sum W^2`` over all weight matrices (``kernel``; biases are not penalised).

    ``l1`` and ``l2`` may be traced values (one compiled step for every constant); a Python
    ``0`` or ``None`` leaves its term out of the computation.
    """
    kernels = [leaf for path, leaf in jax.tree_util.tree_leaves_with_path(params) if path[-1].key == "kernel"]
    penalty = jnp.zeros((), jnp.float32)
    if not _absent(l1):
        penalty += l1 * sum(jnp.sum(jnp.abs(k)) for k in kernels)
    if not _absent(l2):
        penalty += l2 * sum(jnp.sum(k * k) for k in kernels)
    return penalty


def _absent(value) -> bool:
    return value is None or (isinstance(value, (int, float)) and value == 0)


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
