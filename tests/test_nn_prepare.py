"""nn.prepare: split, weights, parametrised inputs and train-only standardisation."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.core.config import config_from_dict, default_config
from nn.data import read_feature_store
from nn.parametrise import PARAMETER_NAMES
from nn.prepare import prepare_training_data
from nn.split import TRAIN, assign_split
from tests.synthetic import take_rows, write_synthetic_store

GRID = ((100.0, 10.0), (200.0, 40.0), (300.0, 75.0))


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    store = write_synthetic_store(
        tmp_path_factory.mktemp("prep") / "store", n_signal=2_000, n_background=4_000, grid=GRID,
        negative_fraction=0.1, seed=11,
    )
    return read_feature_store(store)


def _config(**training):
    data = default_config().model_dump(mode="json")
    data["training"].update(training)
    return config_from_dict(data)


def _prepare(table, **training):
    config = _config(**training)
    return prepare_training_data(table, config.model, config.training, seed=5)


def test_scaler_uses_the_training_split_only(table):
    data = _prepare(table)
    train = data.splits["train"]
    d = len(table.feature_names)
    raw_train = table.features[train.rows].astype(np.float64)
    np.testing.assert_allclose(data.scaler.mean[:d], raw_train.mean(axis=0), rtol=1e-6, atol=1e-9)
    constant = list(table.feature_names).index("n_lepton")
    expected_std = np.where(np.arange(d) == constant, 1.0, raw_train.std(axis=0))
    np.testing.assert_allclose(data.scaler.std[:d], expected_std, rtol=1e-5)
    every_row = np.concatenate([data.splits[s].rows for s in ("train", "val", "test")])
    assert np.max(np.abs(table.features[every_row].mean(axis=0) - data.scaler.mean[:d])) > 1e-4
    # the training inputs are standardised, the other splits with the same statistics
    np.testing.assert_allclose(train.x.mean(axis=0), 0.0, atol=1e-4)
    val = data.splits["val"]
    np.testing.assert_allclose(val.x[:, :d], (table.features[val.rows] - data.scaler.mean[:d]) / data.scaler.std[:d], rtol=1e-4, atol=1e-4)


def test_rows_land_in_their_hash_split(table):
    data = _prepare(table)
    train_rows = data.splits["train"].rows
    codes = assign_split(table.dataset[train_rows], table.event[train_rows], (0.6, 0.2, 0.2), dataset_names=table.dataset_names)
    assert np.all(codes == TRAIN)
    assert sum(len(s) for s in data.splits.values()) == len(table)


@pytest.mark.parametrize("output", ["binary", "multiclass"])
def test_class_balancing_gives_equal_class_totals(table, output):
    config = _config()
    config.model.output = output
    data = prepare_training_data(table, config.model, config.training, seed=5)
    for split in data.splits.values():
        totals = np.bincount(split.target, weights=split.weight.astype(np.float64))
        np.testing.assert_allclose(totals, totals[0], rtol=1e-5)
        assert split.weight.mean() == pytest.approx(1.0, rel=1e-5)
    if output == "multiclass":
        assert data.classes == ("signal", "WW", "ZZ", "ttbar") and data.n_outputs == 4


def test_signal_points_get_equal_weight_inside_the_signal(table):
    train = _prepare(table).splits["train"]
    totals = np.bincount(train.point[train.is_signal], weights=train.weight[train.is_signal].astype(np.float64))
    np.testing.assert_allclose(totals, totals.mean(), rtol=1e-5)


@pytest.mark.parametrize("policy", ["keep", "zero", "abs"])
def test_negative_weight_policy_reaches_the_training_weights(table, policy):
    data = _prepare(table, negative_weights=policy)
    train = data.splits["train"]
    raw = table.weight[train.rows]
    expected = {"keep": raw, "zero": np.clip(raw, 0, None), "abs": np.abs(raw)}[policy]
    np.testing.assert_allclose(train.physics_weight, expected, rtol=1e-6)
    assert (train.weight < 0).any() == (policy == "keep")
    ess = data.summary["effective_sample_size"]["train"]["background"]
    assert 0 < ess["ess_physics"] < ess["events"]
    assert data.summary["negative_weight_fraction"] == pytest.approx(np.mean(table.weight < 0))


def test_background_parameters_are_drawn_from_the_signal_points(table):
    data = _prepare(table)
    assert data.input_names[-2:] == PARAMETER_NAMES
    train = data.splits["train"]
    d = len(table.feature_names)
    raw = train.x[:, d:] * data.scaler.std[d:] + data.scaler.mean[d:]
    background = ~train.is_signal
    grid = np.array(GRID)
    distance = np.abs(raw[background][:, None, :] - grid[None, :, :]).sum(axis=2)
    assert np.all(distance.min(axis=1) < 1e-2)  # every background event sits on a grid point
    np.testing.assert_allclose(raw[~background], np.c_[table.m_slepton, table.dm][train.rows[~background]], atol=1e-2)
    share = np.bincount(train.point[background], minlength=3) / background.sum()
    np.testing.assert_allclose(share, 1 / 3, atol=0.02)  # equal-weight points: uniform draw


def test_background_parameters_follow_point_weights_when_points_are_not_equalised(table):
    data = _prepare(table, balance_signal_points=False)
    # cross section falls as m^-4: the 100 GeV point dominates the signal weight
    assert data.point_probabilities[0] > 0.9
    train = data.splits["train"]
    share = np.bincount(train.point[~train.is_signal], minlength=3) / np.sum(~train.is_signal)
    np.testing.assert_allclose(share, data.point_probabilities, atol=0.02)


def test_background_draw_does_not_depend_on_row_order(table):
    shuffled = take_rows(table, np.random.default_rng(3).permutation(len(table)))
    first, second = _prepare(table).splits["train"], _prepare(shuffled).splits["train"]

    def mapping(source, split):
        keys = [f"{source.dataset_names[c]}:{e}" for c, e in zip(source.dataset[split.rows], source.event[split.rows])]
        return dict(zip(keys, split.point.tolist()))

    assert mapping(table, first) == mapping(shuffled, second)


def test_subset_of_points_and_unknown_point(table):
    data = _prepare(table, signal_points=[{"m_slepton": 300, "dm": 75}])
    for split in data.splits.values():
        assert np.all(table.m_slepton[split.rows[split.is_signal]] == 300)
    with pytest.raises(ValueError, match=r"signal point\(s\) \['slepton_250_10'\] are not in the feature store"):
        _prepare(table, signal_points=[{"m_slepton": 250, "dm": 10}])


def test_undersampling_equalises_training_counts_only(table):
    data = _prepare(table, resample="undersample")
    counts = np.bincount(data.splits["train"].target)
    assert counts[0] == counts[1]
    val_counts = np.bincount(data.splits["val"].target)
    assert val_counts[0] != val_counts[1]
