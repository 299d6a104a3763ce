"""nn.weights and nn.metrics: balancing, negative weights, ESS, weighted AUC/precision/accuracy."""

from __future__ import annotations

import numpy as np
import pytest

from nn.metrics import (
    binary_metrics,
    weighted_accuracy,
    weighted_precision,
    weighted_roc_auc,
)
from nn.weights import (
    apply_negative_weight_policy,
    effective_sample_size,
    equalise_totals,
    normalise_mean,
)


def test_negative_weight_policies():
    weight = np.array([1.0, -0.5, 2.0, -3.0])
    np.testing.assert_array_equal(apply_negative_weight_policy(weight, "keep"), weight)
    np.testing.assert_array_equal(apply_negative_weight_policy(weight, "zero"), [1.0, 0.0, 2.0, 0.0])
    np.testing.assert_array_equal(apply_negative_weight_policy(weight, "abs"), [1.0, 0.5, 2.0, 3.0])
    with pytest.raises(ValueError, match="unknown negative-weight policy 'flip'"):
        apply_negative_weight_policy(weight, "flip")


def test_equalised_classes_have_equal_totals_and_keep_relative_weights():
    weight = np.array([1.0, 3.0, 0.1, 0.2, 0.3, -0.1])
    classes = np.array([1, 1, 0, 0, 0, 0])
    balanced = equalise_totals(weight, classes)
    assert balanced[classes == 1].sum() == pytest.approx(1.0)
    assert balanced[classes == 0].sum() == pytest.approx(1.0)
    assert balanced[1] / balanced[0] == pytest.approx(3.0)
    assert normalise_mean(balanced).mean() == pytest.approx(1.0)


def test_class_without_positive_total_cannot_be_balanced():
    with pytest.raises(ValueError, match="class/group 'signal' has total weight"):
        equalise_totals(np.array([1.0, -2.0, 1.0]), np.array([0, 1, 1]), names=["background", "signal"])


def test_effective_sample_size():
    assert effective_sample_size(np.ones(50)) == pytest.approx(50.0)
    assert effective_sample_size(np.array([1.0, 1.0, 2.0])) == pytest.approx(16.0 / 6.0)
    # negative weights cost statistical power: (1 - 1 + 1)^2 / 3
    assert effective_sample_size(np.array([1.0, -1.0, 1.0])) == pytest.approx(1.0 / 3.0)
    assert effective_sample_size(np.zeros(3)) == 0.0


def test_weighted_auc_by_hand_and_as_duplicated_events():
    scores = np.array([0.9, 0.8, 0.7, 0.3, 0.2])
    labels = np.array([1, 0, 1, 0, 0])
    # signal-background pairs ranked correctly: (0.9 > all 3) + (0.7 > 2 of 3) = 5 of 6
    assert weighted_roc_auc(scores, labels) == pytest.approx(5 / 6)
    weights = np.array([2.0, 1.0, 1.0, 3.0, 1.0])
    duplicated = np.repeat(np.arange(5), [2, 1, 1, 3, 1])
    assert weighted_roc_auc(scores, labels, weights) == pytest.approx(weighted_roc_auc(scores[duplicated], labels[duplicated]))
    # ties count one half
    assert weighted_roc_auc(np.array([0.5, 0.5]), np.array([1, 0])) == pytest.approx(0.5)
    assert np.isnan(weighted_roc_auc(scores, np.zeros(5)))


def test_weighted_precision_and_accuracy_by_hand():
    predicted = np.array([1, 1, 0, 0])
    labels = np.array([1, 0, 1, 0])
    weights = np.array([3.0, 1.0, 2.0, 4.0])
    assert weighted_precision(predicted, labels, weights) == pytest.approx(3 / 4)
    assert weighted_accuracy(predicted, labels, weights) == pytest.approx(7 / 10)
    metrics = binary_metrics(np.array([0.9, 0.6, 0.4, 0.1]), labels, weights)
    assert metrics["precision"] == pytest.approx(3 / 4) and metrics["accuracy"] == pytest.approx(7 / 10)
