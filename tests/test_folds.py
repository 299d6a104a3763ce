"""Cross-training (``training.folds``): the fold splits (nn/split.py), the k networks of a
training and their scoring (nn/folds.py, nn/train.py)."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.core.config import ConfigError, config_from_dict, default_config
from nn.artifact import load_model
from nn.data import read_feature_store
from nn.folds import FoldSet
from nn.split import TEST, TRAIN, VALIDATION, assign_split, event_fold
from nn.train import train_from_store
from tests.synthetic import write_synthetic_store

GRID = ((100.0, 10.0), (300.0, 75.0))


def config_with(folds: int, fractions=(0.6, 0.2, 0.2), **training):
    data = default_config().model_dump(mode="json")
    data["model"].update(hidden_layers=[16])
    data["training"].update(folds=folds, split_fractions=list(fractions), batch_size=256, max_epochs=3, patience=3,
                            learning_rate=3e-3, **training)
    return config_from_dict(data)


@pytest.mark.parametrize("fractions", [(0.6, 0.2, 0.2), (0.5, 0.25, 0.25), (0.4, 0.1, 0.5)])
def test_every_event_is_in_the_test_split_of_exactly_one_fold(fractions):
    events = np.arange(100_000, dtype=np.uint64)
    folds = round(1 / fractions[2])
    codes = np.stack([assign_split("WW", events, fractions, seed=7, fold=j) for j in range(folds)])
    np.testing.assert_array_equal(np.sum(codes == TEST, axis=0), 1)
    fold = event_fold("WW", events, folds, seed=7)
    for j in range(folds):
        np.testing.assert_array_equal(codes[j] == TEST, fold == j)
        # each fold's network has the configured train / validation / test fractions (binomial 4 sigma)
        for code, expected in zip((TRAIN, VALIDATION, TEST), fractions):
            assert abs(np.mean(codes[j] == code) - expected) < 4 * np.sqrt(expected * (1 - expected) / events.size)
    # the test events of fold j are the training events of some other fold: the folds' train sets differ
    assert np.mean(codes[0] != codes[-1]) > 0.3
    with pytest.raises(ValueError, match="fold 5 is not one of the 5 folds"):
        assign_split("WW", events, (0.6, 0.2, 0.2), fold=5)
    with pytest.raises(ValueError, match="test fraction of 1/k"):
        assign_split("WW", events, (0.5, 0.2, 0.3), fold=0)


def test_folds_need_a_test_fraction_of_one_over_k_and_one_network_per_fold():
    with pytest.raises(ConfigError, match=r"training.folds = 3 needs a test fraction of 1/3 = 0.333333"):
        config_with(3)
    with pytest.raises(ConfigError, match=r"training.per_point cannot be combined with cross-training \(training.folds = 5"):
        config_with(5, per_point=True)
    assert config_with(5).training.scored_fraction == 1.0 and config_with(1).training.scored_fraction == 0.2


@pytest.fixture(scope="module")
def cross_trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("folds")
    store = write_synthetic_store(folder / "store", n_signal=600, n_background=1_500, grid=GRID, seed=3)
    results = train_from_store(store, folder / "model", config_with(4, (0.5, 0.25, 0.25)), verbose=False)
    return folder, read_feature_store(store), results


def test_each_event_is_scored_by_the_network_it_was_held_out_from(cross_trained):
    folder, table, results = cross_trained
    model = load_model(folder / "model")
    assert isinstance(model, FoldSet) and model.folds == 4 and len(results) == 4
    assert model.metadata["cross_training"]["members"] == ["folds/0", "folds/1", "folds/2"]
    points = model.signal_points
    scores, codes = model.score_events(table.features, points, table.feature_names, table.dataset, table.event,
                                       dataset_names=table.dataset_names)
    np.testing.assert_array_equal(codes, TEST)
    fold = model.event_folds(table.dataset, table.event, dataset_names=table.dataset_names)
    assert sorted(np.unique(fold)) == [0, 1, 2, 3]
    for j, network in enumerate(model.models.values()):
        rows = np.flatnonzero(fold == j)
        # the network that scores these rows had them in its test split, never in training or validation
        own = network.assign_split(table.dataset[rows], table.event[rows], dataset_names=table.dataset_names)
        np.testing.assert_array_equal(own, TEST)
        direct = network.score_points(table.features[rows], points, feature_names=table.feature_names)
        np.testing.assert_array_equal(scores[:, rows], direct)
    # the networks differ (own training data and seed): the same rows get other scores from another fold
    other = model.models["fold_1"].score_points(table.features[fold == 0], points, feature_names=table.feature_names)
    assert np.max(np.abs(other - scores[:, fold == 0])) > 1e-3
    # each fold's network reports the AUC of its own test split; the last one's is the artifact's
    assert model.metadata["cross_training"]["test_auc"] == [r.metrics["test"]["auc"] for r in results]
    with pytest.raises(TypeError, match="score_events"):
        model.score_points(table.features, points)
