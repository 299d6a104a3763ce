"""The piecewise-linear input encoding and the ensemble of :mod:`nn.model`, and the ensemble's
per-member training loss (:mod:`nn.trainer`)."""

from __future__ import annotations

import statistics

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from analysis.core.config import config_from_dict, default_config
from nn.losses import LossSpec, make_loss
from nn.model import (
    _normal_quantile_edges,
    apply_unrolled,
    build_model,
    build_model_from_record,
    combine_member_logits,
    init_params,
    piecewise_linear_encoding,
)
from nn.optimizers import make_optimizer
from nn.trainer import Regularisation, TrainState, make_train_step


@pytest.mark.parametrize("bins", [1, 4, 8])
def test_the_encoding_reconstructs_its_input_and_its_bins_are_equal_normal_quantiles(bins):
    edges = _normal_quantile_edges(bins)
    probabilities = np.diff([statistics.NormalDist().cdf(e) for e in edges[1:-1]])
    np.testing.assert_allclose(probabilities, 1.0 / bins, atol=1e-6)  # inner bins: 1/bins of N(0, 1) each
    x = np.linspace(-6.0, 6.0, 241, dtype=np.float32)[:, None]  # beyond the outer edges on both sides
    encoded = np.asarray(piecewise_linear_encoding(jnp.asarray(x), bins))
    assert encoded.shape == (241, bins)
    # closure: the lower edge plus the filled fraction of every bin times its width is the input
    np.testing.assert_allclose(edges[0] + encoded @ np.diff(edges), x[:, 0], atol=1e-5)
    if bins > 1:
        assert np.all((encoded[:, 1:-1] >= 0) & (encoded[:, 1:-1] <= 1))
        # inside the outer edges a value is in one bin: every bin below it full, every bin above it empty
        inside = np.abs(x[:, 0]) <= edges[-1]
        assert np.all((encoded[inside] >= 0) & (encoded[inside] <= 1)) and np.all(np.diff(encoded[inside], axis=1) <= 1e-6)


def test_member_logits_combine_to_the_mean_probability():
    rng = np.random.default_rng(1)
    binary = jnp.asarray(rng.normal(scale=3.0, size=(5, 100, 1)), jnp.float32)
    combined = combine_member_logits(binary)
    np.testing.assert_allclose(jax.nn.sigmoid(combined[:, 0]), jax.nn.sigmoid(binary[..., 0]).mean(axis=0), atol=1e-6)
    classes = jnp.asarray(rng.normal(scale=3.0, size=(3, 100, 4)), jnp.float32)
    np.testing.assert_allclose(jax.nn.softmax(combine_member_logits(classes)), jax.nn.softmax(classes).mean(axis=0), atol=1e-6)
    extreme = combine_member_logits(jnp.asarray([[[80.0]], [[-80.0]]]))  # p = 1 and p = 0: the mean is 1/2
    assert float(extreme[0, 0]) == pytest.approx(0.0, abs=1e-5)


def test_an_ensemble_is_its_members_averaged_and_a_single_network_keeps_its_parameter_names():
    single = build_model([8, 8], "selu", 0.3, 1)
    assert single == build_model_from_record({"hidden_layers": [8, 8], "activation": "selu", "dropout": 0.3, "n_outputs": 1})
    assert set(init_params(single, 5, jax.random.key(0))) == {"hidden_0", "hidden_1", "output"}
    ensemble = build_model([8, 8], "selu", 0.3, 1, encoding_bins=4, members=3)
    params = init_params(ensemble, 5, jax.random.key(0))
    assert params["members"]["hidden_0"]["kernel"].shape == (3, 5 * 4, 8)
    kernels = params["members"]["hidden_0"]["kernel"]
    assert not np.allclose(kernels[0], kernels[1])  # each member its own initialisation
    x = jnp.asarray(np.random.default_rng(2).normal(size=(50, 5)), jnp.float32)
    member_logits = ensemble.apply({"params": params}, x, per_member=True)
    member = ensemble.clone(members=1)
    for i in range(3):
        alone = member.apply({"params": jax.tree.map(lambda leaf: leaf[i], params["members"])}, x)
        np.testing.assert_allclose(member_logits[i], alone, atol=1e-6)
    np.testing.assert_allclose(ensemble.apply({"params": params}, x), apply_unrolled(ensemble, params, x), atol=1e-6)
    with pytest.raises(ValueError, match="members >= 1"):
        build_model([8], "relu", 0.0, 1, members=0)


def test_each_member_trains_on_its_own_loss():
    """The step's loss is the mean of the members' losses, not the loss of their mean
    (which would train the members as one wide network)."""
    ensemble = build_model([16], "tanh", 0.0, 1, members=2)
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.normal(size=(64, 3)), jnp.float32)
    target = jnp.asarray(rng.integers(0, 2, 64), jnp.int32)
    weight = jnp.ones(64, jnp.float32)
    spec = LossSpec(kind="bce")
    tx = make_optimizer(default_config().training, steps_per_epoch=1)
    params = init_params(ensemble, 3, jax.random.key(4))
    state = TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params))
    step = make_train_step(ensemble, spec, tx)
    _, loss, logits = step(state, x, target, weight, 64.0, 1.0, jax.random.key(5), Regularisation.of())
    loss_fn = make_loss(spec)
    member_logits = ensemble.apply({"params": params}, x, per_member=True)
    member_losses = [float(loss_fn(member_logits[i], target, weight, 64.0, 1.0)) for i in range(2)]
    assert float(loss) == pytest.approx(np.mean(member_losses), rel=1e-6)
    assert float(loss) != pytest.approx(float(loss_fn(logits, target, weight, 64.0, 1.0)), rel=1e-4)
    np.testing.assert_allclose(logits, combine_member_logits(member_logits), atol=1e-6)


@pytest.mark.parametrize("n_outputs, bins", [(1, 4), (3, 0)])
def test_shared_members_are_scaled_inputs_through_one_set_of_hidden_layers(n_outputs, bins):
    """TabM-mini: one set of hidden layers; each member its own +-1 input scales and output layer.
    Each member's logits, computed by hand in numpy, equal the model's; the unrolled form
    (what the ONNX export traces) equals the vmapped one."""
    ensemble = build_model([8, 6], "tanh", 0.3, n_outputs, encoding_bins=bins, members=5, shared_members=True)
    assert ensemble == build_model_from_record({"hidden_layers": [8, 6], "activation": "tanh", "dropout": 0.3,
                                                "n_outputs": n_outputs, "encoding_bins": bins, "members": 5,
                                                "shared_members": True})
    params = init_params(ensemble, 4, jax.random.key(7))
    shared = params["shared"]
    width = 4 * max(bins, 1)
    assert shared["hidden_0"]["kernel"].shape == (width, 8)  # no member axis: shared
    scales = np.asarray(shared["input_scales"])
    assert scales.shape == (5, width) and set(np.unique(scales)) == {-1.0, 1.0}
    assert not np.array_equal(scales[0], scales[1])
    x = np.random.default_rng(8).normal(size=(40, 4)).astype(np.float32)
    encoded = np.asarray(piecewise_linear_encoding(jnp.asarray(x), bins)) if bins else x
    member_logits = np.asarray(ensemble.apply({"params": params}, jnp.asarray(x), per_member=True))
    assert member_logits.shape == (5, 40, n_outputs)
    for i in range(5):
        h = encoded * scales[i]
        for layer in ("hidden_0", "hidden_1"):
            h = np.tanh(h @ np.asarray(shared[layer]["kernel"]) + np.asarray(shared[layer]["bias"]))
        by_hand = h @ np.asarray(shared["output_kernel"][i]) + np.asarray(shared["output_bias"][i])
        np.testing.assert_allclose(member_logits[i], by_hand, atol=1e-5)
    combined = ensemble.apply({"params": params}, jnp.asarray(x))
    np.testing.assert_allclose(combined, combine_member_logits(jnp.asarray(member_logits)), atol=1e-6)
    np.testing.assert_allclose(combined, apply_unrolled(ensemble, params, jnp.asarray(x)), atol=1e-5)
    # dropout: each member its own mask
    dropped = ensemble.apply({"params": params}, jnp.asarray(x), train=True, keep_prob=0.5, per_member=True,
                             rngs={"dropout": jax.random.key(9)})
    assert not np.allclose(dropped[0], dropped[1])


def test_shared_members_need_an_ensemble():
    data = default_config().model_dump(mode="json")
    data["model"].update(ensemble_shared=True, ensemble_members=1)
    with pytest.raises(ValueError, match="ensemble_shared: true needs ensemble_members >= 2"):
        config_from_dict(data)
