"""The classifier: a Flax (linen) multilayer perceptron, and its weight penalties.

:class:`MLP` maps standardised inputs ``(n, d)`` to logits ``(n, n_outputs)``: one logit
(sigmoid -> signal probability) for a binary classifier, or one per class (softmax over the
signal and each background process, signal first) for a multi-class one.  Hidden layers are
Dense -> activation -> dropout; the weights start Glorot-uniform (the Keras default of the
reference studies), the biases at zero.

Two options for small tables (``model.input_encoding_bins``, ``model.ensemble_members``):

* a **piecewise-linear encoding** of every input (Gorishniy, Rubachev and Babenko, "On
  Embeddings for Numerical Features in Tabular Deep Learning", NeurIPS 2022): each input
  becomes ``bins`` numbers, the fraction of each bin that lies below it.  The bin edges are the
  equal-probability quantiles of N(0, 1) (fixed, nothing to store): the right bins for
  Gaussian-rank inputs (the ``quantile`` input transform of :mod:`nn.table_transform`), whose
  standardised values are close to N(0, 1) on the training rows.  The first and last bins are
  open (linear beyond the outer edges).
* an **ensemble** of ``members`` networks of the same shape, trained side by side on the same
  batches (each with its own initialisation and dropout masks, each on its own loss:
  :func:`nn.trainer.make_train_step` averages the members' losses) and evaluated as one: the
  logits of the members' mean probability (:func:`combine_member_logits`).  So everything
  downstream (scoring, export, metrics) sees one network.  Its parameters carry a leading
  member axis under ``members/``.  With ``shared_members`` (``model.ensemble_shared``) the
  members share their hidden layers instead (TabM-mini of Gorishniy, Kotelnikov and Babenko,
  "TabM: Advancing Tabular Deep Learning with Parameter-Efficient Ensembling", ICLR 2025):
  member i multiplies the inputs by its own vector of scales (initialised to random +-1), runs
  the shared layers with its own dropout masks, and has its own output layer; parameters
  under ``shared/``.  Many members then cost little more memory than one network.

The dropout *rate* is not part of the network: it is an argument of the call (as ``keep_prob``,
one minus the rate), so that networks of the same shape with different rates share one
compiled training step (:mod:`nn.trainer`).  The names of the activations are
:data:`analysis.core.config.ACTIVATIONS`; :data:`ACTIVATION_FUNCTIONS` maps each to its function.
"""

from __future__ import annotations

import functools
import statistics
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "ACTIVATION_FUNCTIONS",
    "Dropout",
    "MLP",
    "apply_unrolled",
    "build_model",
    "build_model_from_record",
    "combine_member_logits",
    "init_params",
    "piecewise_linear_encoding",
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


def piecewise_linear_encoding(x: jax.Array, bins: int) -> jax.Array:
    """Inputs ``(n, d)`` -> ``(n, d * bins)``: for each input, the fraction of each of ``bins``
    bins (edges: the equal-probability quantiles of N(0, 1), outer edges at +-3.72) below it;
    the first bin is open below and the last above (module doc)."""
    edges = _normal_quantile_edges(bins)
    low, width = edges[:-1], np.diff(edges)
    fraction = (x[..., None] - low) / width
    if bins > 1:
        fraction = jnp.concatenate([jnp.minimum(fraction[..., :1], 1.0), jnp.clip(fraction[..., 1:-1], 0.0, 1.0),
                                    jnp.maximum(fraction[..., -1:], 0.0)], axis=-1)
    return fraction.reshape(*x.shape[:-1], x.shape[-1] * bins)


@functools.lru_cache(maxsize=16)
def _normal_quantile_edges(bins: int) -> np.ndarray:
    inner = [statistics.NormalDist().inv_cdf(q) for q in np.linspace(0.0, 1.0, bins + 1)[1:-1]]
    return np.asarray([-_OUTER_EDGE, *inner, _OUTER_EDGE], dtype=np.float32)


#: The outer bin edges of :func:`piecewise_linear_encoding`: |z| of the quantile transform's clip.
_OUTER_EDGE = 3.72


def combine_member_logits(member_logits: jax.Array) -> jax.Array:
    """Logits ``(n, k)`` of the mean probability of ensemble members' logits ``(members, n, k)``:
    for one sigmoid output ``log(mean p) - log(mean (1 - p))``, for a softmax
    ``log(mean softmax)`` (both in log space, stable for large logits)."""
    members = member_logits.shape[0]
    if member_logits.shape[-1] == 1:
        log_p = jax.nn.logsumexp(-jax.nn.softplus(-member_logits), axis=0)
        log_q = jax.nn.logsumexp(-jax.nn.softplus(member_logits), axis=0)
        return log_p - log_q
    return jax.nn.logsumexp(jax.nn.log_softmax(member_logits, axis=-1), axis=0) - jnp.log(float(members))


def _dense_stack(x: jax.Array, hidden_layers, activation: str, dropout: bool, n_outputs: int, train: bool, keep_prob) -> jax.Array:
    """Hidden layers (Dense -> activation -> dropout) and the output layer, created in the
    calling module (so one network's parameters are ``hidden_0 ... output`` at its top level)."""
    x = _hidden_stack(x, hidden_layers, activation, dropout, train, keep_prob)
    return nn.Dense(n_outputs, kernel_init=nn.initializers.glorot_uniform(), name="output")(x)


def _hidden_stack(x: jax.Array, hidden_layers, activation: str, dropout: bool, train: bool, keep_prob) -> jax.Array:
    """The hidden layers (Dense ``hidden_i`` -> activation -> dropout), created in the calling module."""
    act = ACTIVATION_FUNCTIONS[activation]
    init = nn.initializers.glorot_uniform()
    for i, width in enumerate(hidden_layers):
        x = act(nn.Dense(width, kernel_init=init, name=f"hidden_{i}")(x))
        if dropout and train:
            x = Dropout()(x, keep_prob)
    return x


class _Member(nn.Module):
    """One ensemble member: the dense stack (vmapped over members in :class:`MLP`)."""

    hidden_layers: tuple[int, ...]
    activation: str
    dropout: bool
    n_outputs: int
    train: bool

    @nn.compact
    def __call__(self, x: jax.Array, keep_prob: jax.Array | float) -> jax.Array:
        return _dense_stack(x, self.hidden_layers, self.activation, self.dropout, self.n_outputs, self.train, keep_prob)


def _random_signs(key, shape, dtype=jnp.float32):
    return jnp.where(jax.random.bernoulli(key, 0.5, shape), 1.0, -1.0).astype(dtype)


class _SharedEnsemble(nn.Module):
    """``members`` networks sharing their hidden layers (TabM-mini; module doc): member
    i sees the inputs times its own vector of +-1 initialised scales, then the shared hidden
    layers (own dropout masks), then its own output layer.  Returns ``(members, n, n_outputs)``."""

    hidden_layers: tuple[int, ...]
    activation: str
    dropout: bool
    n_outputs: int
    members: int

    @nn.compact
    def __call__(self, x: jax.Array, train: bool, keep_prob) -> jax.Array:
        scales = self.param("input_scales", _random_signs, (self.members, x.shape[-1]))
        # (members, n, inputs) through the shared layers: each member its own dropout mask
        h = _hidden_stack(x[None] * scales[:, None, :], self.hidden_layers, self.activation, self.dropout, train, keep_prob)
        kernel = self.param("output_kernel", nn.initializers.glorot_uniform(batch_axis=(0,)),
                            (self.members, h.shape[-1], self.n_outputs))
        bias = self.param("output_bias", nn.initializers.zeros, (self.members, self.n_outputs))
        return jnp.einsum("mnh,mho->mno", h, kernel) + bias[:, None, :]


class MLP(nn.Module):
    """Dense feed-forward network returning logits of shape ``(n, n_outputs)``.

    Attributes:
        hidden_layers: widths of the hidden layers.
        activation: a key of :data:`ACTIVATION_FUNCTIONS`.
        dropout: whether every hidden layer is followed by dropout in training (the rate is
            the call's ``keep_prob``).
        n_outputs: 1 (binary, sigmoid) or the number of classes (softmax).
        encoding_bins: 0, or the bins of the piecewise-linear input encoding (module doc).
        members: networks in the ensemble (1: a single network; module doc).
        shared_members: the members share their hidden layers (TabM-mini; module doc).
    """

    hidden_layers: tuple[int, ...]
    activation: str = "relu"
    dropout: bool = False
    n_outputs: int = 1
    encoding_bins: int = 0
    members: int = 1
    shared_members: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False, keep_prob: jax.Array | float = 1.0,
                 per_member: bool = False) -> jax.Array:
        """Logits for inputs ``x``; ``train=True`` applies dropout with keep probability
        ``keep_prob`` = 1 - rate (needs a ``dropout`` rng).  For an ensemble, ``per_member=True``
        returns each member's logits ``(members, n, n_outputs)`` (what training needs)."""
        if self.encoding_bins:
            x = piecewise_linear_encoding(x, self.encoding_bins)
        if self.shared_members and self.members > 1:
            member_logits = _SharedEnsemble(self.hidden_layers, self.activation, self.dropout, self.n_outputs, self.members,
                                            name="shared")(x, train, keep_prob)
            return member_logits if per_member else combine_member_logits(member_logits)
        if self.members == 1:
            logits = _dense_stack(x, self.hidden_layers, self.activation, self.dropout, self.n_outputs, train, keep_prob)
            return logits[None] if per_member else logits
        ensemble = nn.vmap(_Member, variable_axes={"params": 0}, split_rngs={"params": True, "dropout": True},
                           in_axes=None, out_axes=0, axis_size=self.members)
        member_logits = ensemble(self.hidden_layers, self.activation, self.dropout, self.n_outputs, train, name="members")(x, keep_prob)
        return member_logits if per_member else combine_member_logits(member_logits)


def apply_unrolled(model: MLP, params, x: jax.Array) -> jax.Array:
    """``model.apply`` (inference) with an ensemble's members applied one after the other
    instead of vmapped: the same logits, for exporters that cannot batch a Dense layer."""
    if model.members == 1:
        return model.apply({"params": params}, x, train=False)
    single = model.clone(members=1, shared_members=False)
    if model.shared_members:  # member i: its input scales, the shared hidden layers, its output layer
        shared = params["shared"]
        hidden = {name: layer for name, layer in shared.items() if name.startswith("hidden_")}
        encoded = piecewise_linear_encoding(x, model.encoding_bins) if model.encoding_bins else x
        single = single.clone(encoding_bins=0)
        member_logits = [single.apply({"params": {**hidden, "output": {"kernel": shared["output_kernel"][i],
                                                                        "bias": shared["output_bias"][i]}}},
                                      encoded * shared["input_scales"][i], train=False)
                         for i in range(model.members)]
    else:
        member_logits = [single.apply({"params": jax.tree.map(lambda leaf: leaf[i], params["members"])}, x, train=False)
                         for i in range(model.members)]
    return combine_member_logits(jnp.stack(member_logits))


def build_model(hidden_layers, activation: str, dropout: float, n_outputs: int, encoding_bins: int = 0, members: int = 1,
                shared_members: bool = False) -> MLP:
    """An :class:`MLP` from config values (``model.hidden_layers`` etc.); ``dropout`` is the
    rate: only whether it is > 0 is part of the network."""
    if activation not in ACTIVATION_FUNCTIONS:
        raise ValueError(f"unknown activation {activation!r}; known: {sorted(ACTIVATION_FUNCTIONS)}")
    if int(encoding_bins) < 0 or int(members) < 1:
        raise ValueError(f"encoding_bins must be >= 0 and members >= 1, got {encoding_bins} and {members}")
    return MLP(hidden_layers=tuple(int(w) for w in hidden_layers), activation=activation, dropout=float(dropout) > 0,
               n_outputs=int(n_outputs), encoding_bins=int(encoding_bins), members=int(members),
               shared_members=bool(shared_members))


def build_model_from_record(network: dict) -> MLP:
    """The :class:`MLP` of a ``model.json`` ``network`` record (artifacts written before the
    encoding and the ensemble existed have neither)."""
    return build_model(network["hidden_layers"], network["activation"], network["dropout"], network["n_outputs"],
                       network.get("encoding_bins", 0), network.get("members", 1), network.get("shared_members", False))


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
