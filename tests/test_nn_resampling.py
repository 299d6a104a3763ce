"""Class-imbalance methods (imbalanced-learn): SMOTE and the sampling strategies keep each
class's total weight, touch only the training split, and refuse impossible settings."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.core.config import ConfigError, config_from_dict, default_config
from nn.data import read_feature_store
from nn.prepare import prepare_training_data
from nn.resampling import ResamplingError, resample_training_split
from tests.synthetic import write_synthetic_store

GRID = ((100.0, 10.0), (200.0, 40.0))


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    store = write_synthetic_store(tmp_path_factory.mktemp("resample") / "store", n_signal=600, n_background=3_000,
                                  grid=GRID, negative_fraction=0.0, seed=3)
    return read_feature_store(store)


def _prepare(table, parametrised=False, **training):
    data = default_config().model_dump(mode="json")
    data["training"].update(training)
    data["model"]["parametrised"] = parametrised
    config = config_from_dict(data)
    return prepare_training_data(table, config.model, config.training, seed=5)


def _class_totals(split, field):
    return {k: float(getattr(split, field)[split.target == k].sum()) for k in (0, 1)}


@pytest.mark.parametrize("method, strategy", [("smote", "auto"), ("smote", "minority"), ("oversample", "not majority"),
                                              ("oversample", "all"), ("undersample", "not minority"),
                                              ("undersample", "all")])
def test_resampling_preserves_class_weight_totals_and_leaves_validation_and_test_alone(table, method, strategy):
    plain = _prepare(table)
    resampled = _prepare(table, resample=method, sampling_strategy=strategy)
    train, before = resampled.splits["train"], plain.splits["train"]
    for field in ("weight", "physics_weight"):
        for k, total in _class_totals(before, field).items():
            assert _class_totals(train, field)[k] == pytest.approx(total, rel=1e-5), (field, k)
    counts = np.bincount(train.target)
    if strategy in ("auto", "minority", "not majority", "not minority"):
        assert counts[0] == counts[1]  # equalised
    for split in ("val", "test"):  # never resampled
        np.testing.assert_array_equal(resampled.splits[split].rows, plain.splits[split].rows)
        np.testing.assert_array_equal(resampled.splits[split].weight, plain.splits[split].weight)


def test_smote_events_are_synthetic_and_lie_between_real_neighbours(table):
    plain, smote = _prepare(table), _prepare(table, resample="smote")
    train, original = smote.splits["train"], plain.splits["train"]
    synthetic = train.rows == -1
    n_signal, n_background = int(original.is_signal.sum()), int((~original.is_signal).sum())
    assert synthetic.sum() == n_background - n_signal  # the signal is filled up to the background count
    assert np.all(train.is_signal[synthetic])
    # inside the bounding box of the real signal events, and not copies of them
    real = original.x[original.is_signal]
    assert np.all(train.x[synthetic] >= real.min(axis=0) - 1e-6) and np.all(train.x[synthetic] <= real.max(axis=0) + 1e-6)
    assert not np.any(np.all(np.isin(train.x[synthetic], real), axis=1))
    assert smote.summary["resampling"]["synthetic"] == int(synthetic.sum())


def test_impossible_settings_are_named_errors(table):
    with pytest.raises(ResamplingError, match="smote_k_neighbors.*class 1 has 3"):
        resample_training_split(np.random.default_rng(0).normal(size=(23, 2)), np.array([0] * 20 + [1] * 3),
                                {}, {}, "smote", "auto", 5, seed=1)
    with pytest.raises(ResamplingError, match="two classes"):
        resample_training_split(np.zeros((5, 2)), np.zeros(5, dtype=np.int32), {}, {}, "oversample", "auto", 5, seed=1)
    with pytest.raises(ResamplingError, match="'minority' would undersample"):
        _prepare(table, resample="undersample", sampling_strategy="minority")
    with pytest.raises(ResamplingError, match="parametrised"):
        _prepare(table, parametrised=True, resample="smote")
    data = default_config().model_dump(mode="json")
    data["training"]["sampling_strategy"] = "majority please"
    with pytest.raises(ConfigError, match="training.sampling_strategy"):
        config_from_dict(data)
