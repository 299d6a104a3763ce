"""nn.losses against hand computations and against analysis.core.statistics (the scans' Z)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from analysis.core.statistics import asimov_significance as reference_z
from nn.losses import (
    LossSpec,
    asimov_loss,
    asimov_significance,
    cross_entropy,
    focal_loss,
    make_loss,
)

LOGITS = np.array([[2.0], [-1.0], [0.5]], np.float32)
LABELS = np.array([1, 0, 0], np.int32)
WEIGHTS = np.array([1.0, 2.0, 0.5], np.float32)


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def _hand_bce(targets) -> float:
    """sum_i w_i * -(t_i log p_i + (1 - t_i) log(1 - p_i)) / n, written out term by term."""
    total = 0.0
    for z, t, w in zip(LOGITS[:, 0], targets, WEIGHTS):
        p = _sigmoid(float(z))
        total += float(w) * -(t * math.log(p) + (1 - t) * math.log(1 - p))
    return total / 3


def test_weighted_bce_on_three_events():
    # by hand: (1 * ln(1 + e^-2) + 2 * ln(1 + e^-1) + 0.5 * ln(1 + e^0.5)) / 3 = 0.4134967
    assert float(cross_entropy(LOGITS, LABELS, WEIGHTS, 3.0)) == pytest.approx(0.4134967, rel=1e-6)
    assert float(cross_entropy(LOGITS, LABELS, WEIGHTS, 3.0)) == pytest.approx(_hand_bce([1, 0, 0]), rel=1e-6)


def test_label_smoothing_moves_targets_to_alpha_over_two():
    value = float(cross_entropy(LOGITS, LABELS, WEIGHTS, 3.0, label_smoothing=0.2))
    assert value == pytest.approx(_hand_bce([0.9, 0.1, 0.1]), rel=1e-6)


def test_focal_with_gamma_zero_is_bce_and_gamma_two_by_hand():
    assert float(focal_loss(LOGITS, LABELS, WEIGHTS, 3.0, gamma=0.0)) == pytest.approx(
        float(cross_entropy(LOGITS, LABELS, WEIGHTS, 3.0)), rel=1e-6
    )
    p = [_sigmoid(float(z)) for z in LOGITS[:, 0]]
    hand = (
        1.0 * -((1 - p[0]) ** 2) * math.log(p[0])
        + 2.0 * -(p[1] ** 2) * math.log(1 - p[1])
        + 0.5 * -(p[2] ** 2) * math.log(1 - p[2])
    ) / 3
    assert float(focal_loss(LOGITS, LABELS, WEIGHTS, 3.0, gamma=2.0)) == pytest.approx(hand, rel=1e-5)


def test_categorical_cross_entropy_by_hand():
    logits = np.array([[1.0, 2.0, 0.5], [0.0, 0.0, 3.0]], np.float32)
    target = np.array([1, 0], np.int32)
    weight = np.array([1.0, 3.0], np.float32)

    def neg_log_softmax(row, k):
        return math.log(sum(math.exp(v) for v in row)) - row[k]

    hand = (1.0 * neg_log_softmax([1.0, 2.0, 0.5], 1) + 3.0 * neg_log_softmax([0.0, 0.0, 3.0], 0)) / 2
    assert float(cross_entropy(logits, target, weight, 2.0)) == pytest.approx(hand, rel=1e-6)


def test_padding_rows_with_zero_weight_do_not_count():
    padded_logits = np.concatenate([LOGITS, [[5.0], [-3.0]]]).astype(np.float32)
    padded = float(cross_entropy(padded_logits, np.r_[LABELS, 0, 1], np.r_[WEIGHTS, 0, 0], 3.0))
    assert padded == pytest.approx(float(cross_entropy(LOGITS, LABELS, WEIGHTS, 3.0)), rel=1e-7)


def test_jax_significance_equals_the_numpy_reference_in_float32():
    rng = np.random.default_rng(7)
    n = 50_000
    s = (10 ** rng.uniform(-2, 4, n)).astype(np.float32)
    b = (10 ** rng.uniform(-1, 6, n)).astype(np.float32)
    relative = np.where(rng.random(n) < 0.2, 0.0, 10 ** rng.uniform(-3, 1, n)).astype(np.float32)
    sigma = (relative * b).astype(np.float32)
    expected = reference_z(s.astype(np.float64), b.astype(np.float64), sigma.astype(np.float64))
    got = np.asarray(jax.jit(asimov_significance)(s, b, sigma), dtype=np.float64)
    np.testing.assert_allclose(got, expected, rtol=2e-6, atol=0)


def test_jax_significance_edge_cases_and_finite_gradients():
    z = jax.jit(asimov_significance)
    assert float(z(0.0, 5.0, 1.0)) == 0.0
    bad = np.array([(1.0, 0.0, 0.0), (-1.0, 5.0, 0.0), (1.0, 5.0, -1.0), (np.nan, 5.0, 0.0)], np.float32).T
    assert np.all(np.isnan(np.asarray(z(*bad))))
    gradient = jax.jit(jax.vmap(jax.grad(asimov_significance, argnums=(0, 1, 2))))
    cases = np.array([(3.0, 10.0, 0.0), (0.0, 10.0, 3.0), (5.0, 100.0, 1e4), (1e-3, 1e5, 10.0), (3.0, 10.0, 2.0)], np.float32).T
    derivatives = np.asarray(gradient(*cases))
    assert np.all(np.isfinite(derivatives))
    assert derivatives[0, -1] > 0  # more signal, more significance


def test_asimov_loss_is_one_over_reference_z_plus_eps():
    logits = np.array([[1.5], [0.2], [-0.7], [-2.0], [0.9]], np.float32)
    target = np.array([1, 1, 0, 0, 0], np.int32)
    weight = np.array([0.5, 0.8, 20.0, 35.0, 10.0], np.float32)
    p = 1.0 / (1.0 + np.exp(-logits[:, 0].astype(np.float64)))
    scale, relative, eps = 4.0, 0.3, 1e-3
    s = scale * np.sum(weight[:2] * p[:2])
    b = scale * np.sum(weight[2:] * p[2:])
    expected = 1.0 / (reference_z(s, b, relative * b) + eps)
    assert float(jax.jit(asimov_loss, static_argnums=(4, 5))(logits, target, weight, scale, relative, eps)) == pytest.approx(expected, rel=1e-5)
    loss = jax.jit(make_loss(LossSpec(kind="asimov", relative_uncertainty=relative, asimov_eps=eps)))
    assert float(loss(logits, target, weight, 5.0, scale)) == pytest.approx(expected, rel=1e-5)
    gradient = np.asarray(jax.jit(jax.grad(lambda z: asimov_loss(z, target, weight, scale, relative, eps)))(jnp.asarray(logits)))
    assert np.all(np.isfinite(gradient))
    assert np.all(gradient[:2] < 0) and np.all(gradient[2:] > 0)  # raise signal scores, lower background


def test_asimov_loss_on_multiclass_uses_the_signal_softmax():
    logits = np.array([[1.0, 0.0, -1.0], [0.0, 2.0, 0.0], [-1.0, 0.5, 1.0]], np.float32)
    target = np.array([0, 1, 2], np.int32)
    weight = np.array([1.0, 10.0, 10.0], np.float32)
    e = np.exp(logits.astype(np.float64))
    p = e[:, 0] / e.sum(axis=1)
    s, b = p[0], 10 * (p[1] + p[2])
    expected = 1.0 / (reference_z(s, b, 0.2 * b) + 1e-3)
    assert float(jax.jit(asimov_loss, static_argnums=(4, 5))(logits, target, weight, 1.0, 0.2, 1e-3)) == pytest.approx(expected, rel=1e-5)


def test_unknown_loss_is_refused():
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        make_loss(LossSpec(kind="hinge"))
