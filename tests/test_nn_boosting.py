"""Boosting on errors: each round multiplies the training weights of the previous round's
misclassified events by the factor, leaves every other weight and the validation/test splits
alone, and records every round's AUC."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.core.config import ConfigError, config_from_dict, default_config
from nn.boosting import boost_on_errors, misclassified
from nn.data import read_feature_store
from tests.synthetic import write_synthetic_store


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    store = write_synthetic_store(tmp_path_factory.mktemp("boost") / "store", n_signal=1_500, n_background=3_000,
                                  grid=((100.0, 10.0), (200.0, 40.0)), negative_fraction=0.0, seed=7, separation=0.8)
    return read_feature_store(store)


def _config(**training):
    data = default_config().model_dump(mode="json")
    data["model"].update(hidden_layers=[16], dropout=0.0)
    data["training"].update(max_epochs=3, patience=10, **training)
    return config_from_dict(data)


def test_rounds_raise_the_weights_of_misclassified_events_by_the_factor(table):
    factor = 3.0
    result = boost_on_errors(table, _config(), rounds=3, factor=factor, threshold=0.5)
    assert len(result.rounds) == len(result.history) == 3
    first, second, third = (r.data.splits["train"] for r in result.rounds)
    wrong_first = misclassified(result.rounds[0], 0.5)
    wrong_second = misclassified(result.rounds[1], 0.5)
    assert 0 < wrong_first.sum() < len(wrong_first)
    np.testing.assert_allclose(second.weight, first.weight * np.where(wrong_first, factor, 1.0), rtol=1e-6)
    multiplier = np.where(wrong_first, factor, 1.0) * np.where(wrong_second, factor, 1.0)
    np.testing.assert_allclose(third.weight, first.weight * multiplier, rtol=1e-6)
    assert result.history[2]["max_weight_multiplier"] == pytest.approx(multiplier.max())
    for split in ("val", "test"):  # never reweighted
        np.testing.assert_array_equal(result.rounds[2].data.splits[split].weight,
                                      result.rounds[0].data.splits[split].weight)
    aucs = [entry["val_auc"] for entry in result.history]
    assert all(0.5 < auc <= 1.0 for auc in aucs)
    assert [entry["misclassified"] for entry in result.history][:2] == [int(wrong_first.sum()), int(wrong_second.sum())]
    assert result.final.metadata["boosting"]["history"] == result.history


def test_a_factor_that_is_not_positive_is_refused_by_the_config():
    data = default_config().model_dump(mode="json")
    data["training"]["boost_factor"] = 0
    with pytest.raises(ConfigError, match="training.boost_factor"):
        config_from_dict(data)
