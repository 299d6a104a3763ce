"""nn.train / nn.trainer / nn.artifact: training quality, early stopping, determinism, artifacts, CLI."""

from __future__ import annotations

import json

import flax.linen as linen
import jax
import numpy as np
import pytest
import yaml

import analysis.core.config as config_module
from analysis.core.config import config_from_dict, default_config
from nn.artifact import (
    ArtifactError,
    FeatureMismatchError,
    ModelSet,
    TrainedModel,
    load_model,
)
from nn.data import read_feature_store
from nn.losses import LossSpec, make_loss
from nn.model import ACTIVATION_FUNCTIONS, Dropout
from nn.optimizers import OPTIMIZERS, SCHEDULES
from nn.presets import PRESETS, apply_preset
from nn.train import loss_spec, main, train_classifier
from nn.trainer import (
    OptimizerSpec,
    Regularisation,
    clear_compiled_caches,
    compiled_apply,
    compiled_training,
    predict_logits,
)
from tests.synthetic import write_synthetic_store

GRID = ((100.0, 10.0), (200.0, 40.0), (300.0, 75.0))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return write_synthetic_store(
        tmp_path_factory.mktemp("train") / "store", n_signal=800, n_background=2_000, grid=GRID, seed=1
    )


@pytest.fixture(scope="module")
def table(store):
    return read_feature_store(store)


def scores(model, table):
    """Scores ``(points, events)`` of every event of a feature table, its features checked by name."""
    return model.score_points(table.features, feature_names=table.feature_names)


def small_config(model=None, **training):
    """The default analysis with a small, fast network."""
    data = default_config().model_dump(mode="json")
    data["model"].update(hidden_layers=[16, 16], **(model or {}))
    data["training"].update(batch_size=256, max_epochs=8, learning_rate=3e-3, patience=3)
    data["training"].update(training)
    return config_from_dict(data)


@pytest.fixture(scope="module")
def trained(table):
    return train_classifier(table, small_config(), verbose=False)


def test_network_separates_signal_from_background(trained):
    # pinned on seed 12345 (the analysis default): 0.907 on the test split, 0.935 on validation
    metrics = trained.metrics
    assert metrics["test"]["auc"] > 0.89
    assert metrics["val"]["auc"] > 0.91
    assert min(metrics["test"]["auc_per_point"].values()) > 0.8
    history = trained.fit.history
    assert [entry["epoch"] for entry in history] == list(range(1, len(history) + 1))
    for entry in history:
        for split in ("train", "val"):
            assert set(entry[split]) == {"loss", "auc", "precision", "accuracy"}
    assert history[-1]["train"]["loss"] < history[0]["train"]["loss"]


def test_early_stopping_stops_and_restores_the_best_weights(tmp_path):
    noise = read_feature_store(
        write_synthetic_store(tmp_path / "noise", n_signal=300, n_background=900, grid=GRID[:1], separation=0.0, seed=2)
    )
    config = small_config(max_epochs=40, patience=2, learning_rate=1e-2)
    result = train_classifier(noise, config, verbose=False)
    assert result.fit.epochs_run < 40
    assert result.fit.stop_reason.startswith("early stopping")
    val_losses = [entry["val"]["loss"] for entry in result.fit.history]
    assert result.fit.best_epoch == int(np.argmin(val_losses)) + 1
    assert result.fit.epochs_run == result.fit.best_epoch + 2
    assert result.metrics["val"]["loss"] == pytest.approx(min(val_losses), rel=1e-5)


def test_same_seed_gives_identical_weights_and_another_seed_does_not(table, trained):
    again = train_classifier(table, small_config(), verbose=False)
    same = jax.tree.leaves(jax.tree.map(lambda a, b: bool(np.array_equal(a, b)), trained.params, again.params))
    assert all(same)
    other = train_classifier(table, small_config(seed=99), verbose=False)
    differs = jax.tree.leaves(jax.tree.map(lambda a, b: not np.array_equal(a, b), trained.params, other.params))
    assert all(differs)


def test_artifact_round_trip_gives_identical_predictions(trained, table, tmp_path):
    trained.save(tmp_path / "model")
    assert not list(tmp_path.glob("model/*.pkl")) and sorted(p.name for p in (tmp_path / "model").iterdir()) == [
        "model.json", "weights.msgpack"
    ]
    loaded = load_model(tmp_path / "model")
    assert isinstance(loaded, TrainedModel) and loaded.parametrised
    assert loaded.feature_names == table.feature_names
    in_memory = TrainedModel(trained.params, trained.metadata)
    np.testing.assert_array_equal(scores(loaded, table), scores(in_memory, table))
    # the scorer standardises raw features like training did
    test = trained.data.splits["test"]
    logits = predict_logits(compiled_apply(trained.network), trained.params, test.x)
    expected = 1.0 / (1.0 + np.exp(-logits[:, 0]))
    raw = table.features[test.rows]
    points = trained.data.signal_points
    m, dm = np.array(points)[test.point].T
    np.testing.assert_allclose(loaded.score(raw, m, dm, feature_names=table.feature_names), expected, rtol=1e-5, atol=1e-6)
    metadata = json.loads((tmp_path / "model" / "model.json").read_text())
    assert metadata["scaler"] == trained.data.scaler.to_dict()
    assert metadata["metrics"]["test"]["auc"] == pytest.approx(trained.metrics["test"]["auc"])
    assert len(metadata["history"]) == trained.fit.epochs_run
    # the scoring stage reproduces the split from the artifact
    split = loaded.assign_split(table.dataset, table.event, table.dataset_names)
    assert np.all(split[trained.data.splits["train"].rows] == 0)


def test_feature_mismatch_is_refused_with_the_feature_named(trained, table):
    model = TrainedModel(trained.params, trained.metadata)
    without_mll = [name for name in table.feature_names if name != "mll"]
    columns = [table.feature_names.index(name) for name in without_mll]
    with pytest.raises(FeatureMismatchError, match=r"missing feature\(s\) \['mll'\]"):
        model.score_points(table.features[:, columns], feature_names=without_mll)
    extra = np.c_[table.features, np.zeros(len(table), np.float32)]
    with pytest.raises(FeatureMismatchError, match=r"extra feature\(s\) \['bogus'\]"):
        model.score_points(extra, feature_names=[*table.feature_names, "bogus"])
    reversed_names = list(table.feature_names)[::-1]
    np.testing.assert_array_equal(
        model.score_points(table.features[:, ::-1], feature_names=reversed_names), scores(model, table)
    )
    with pytest.raises(ValueError, match="parametrised: give m_slepton and dm"):
        model.score(table.features)


def test_corrupt_weights_are_refused(trained, tmp_path):
    directory = trained.save(tmp_path / "model")
    weights = directory / "weights.msgpack"
    weights.write_bytes(weights.read_bytes()[:-10] + b"0123456789")
    with pytest.raises(ArtifactError, match="do not match the SHA-256"):
        load_model(directory)
    with pytest.raises(ArtifactError, match="not a model artifact"):
        load_model(tmp_path)


def test_multiclass_asimov_and_focal_variants_train(table):
    multiclass = train_classifier(table, small_config(model={"output": "multiclass"}, max_epochs=3), verbose=False)
    assert multiclass.data.classes == ("signal", "WW", "ZZ", "ttbar")
    assert multiclass.metrics["test"]["auc"] > 0.85
    values = scores(TrainedModel(multiclass.params, multiclass.metadata), table)
    assert values.shape == (3, len(table)) and np.all((values >= 0) & (values <= 1))
    asimov = train_classifier(table, small_config(loss="asimov", max_epochs=3), verbose=False)
    losses = [entry["val"]["loss"] for entry in asimov.fit.history]
    assert np.isfinite(losses).all() and losses[-1] < losses[0]  # 1 / Z falls: the significance grows
    assert asimov.metrics["test"]["auc"] > 0.7
    focal = train_classifier(table, small_config(loss="focal", label_smoothing=0.05, max_epochs=3, model=None), verbose=False)
    assert focal.metrics["test"]["auc"] > 0.85


def test_per_point_training_and_cli(store, table, tmp_path, capsys):
    config = small_config(
        max_epochs=2, per_point=True, folds=1, signal_points=[{"m_slepton": 100, "dm": 10}, {"m_slepton": 300, "dm": 75}]
    )
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    assert main(["--store", str(store), "--out", str(tmp_path / "points"), "--config", str(path)]) == 0
    output = capsys.readouterr()
    assert "epoch   1/2" in output.err and "test weighted AUC" in output.out  # progress is logged (stderr)
    models = load_model(tmp_path / "points")
    assert isinstance(models, ModelSet) and models.signal_points == [(100.0, 10.0), (300.0, 75.0)]
    assert scores(models, table).shape == (2, len(table))
    with pytest.raises(FeatureMismatchError, match="missing feature"):
        models.score_points(table.features[:, 1:], feature_names=table.feature_names[1:])
    assert main(["--store", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x")]) == 2
    assert "cannot read feature-store schema" in capsys.readouterr().err


def test_presets_are_selectable_by_name(table, tmp_path):
    susy = apply_preset(default_config(), "susy_3x128")
    assert susy.model.hidden_layers == [128, 128, 128] and susy.model.dropout == 0.025
    assert (susy.training.optimizer, susy.training.batch_size, susy.training.max_epochs) == ("rmsprop", 512, 20)
    baldi = apply_preset(default_config(), "baldi_5x300")
    assert baldi.model.hidden_layers == [300] * 5 and baldi.model.activation == "tanh"
    # the default averages five networks; a preset is the one network of its study
    assert default_config().model.ensemble_members == 5
    assert susy.model.ensemble_members == baldi.model.ensemble_members == 1
    assert set(PRESETS) == {"susy_3x128", "baldi_5x300"}
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        apply_preset(default_config(), "huge")


def test_non_parametrised_model_scores_without_grid_point(table):
    result = train_classifier(table, small_config(model={"parametrised": False}, max_epochs=2), verbose=False)
    model = TrainedModel(result.params, result.metadata)
    assert model.input_names == table.feature_names
    single = model.score(table.features, feature_names=table.feature_names)
    np.testing.assert_array_equal(scores(model, table)[1], single)


def test_option_names_have_one_definition():
    # the config validates the names; nn maps each name to its function: both sides agree
    assert set(ACTIVATION_FUNCTIONS) == set(config_module.ACTIVATIONS)
    assert set(OPTIMIZERS) == set(config_module.OPTIMIZERS)
    assert set(SCHEDULES) == set(config_module.SCHEDULES)
    for kind in config_module.LOSSES:
        assert callable(make_loss(LossSpec(kind=kind)))
    with pytest.raises(ValueError, match="unknown loss"):
        make_loss(LossSpec(kind="hinge"))
    parameters = config_module.SEARCH_PARAMETERS
    assert (parameters["activation"], parameters["optimizer"], parameters["loss"]) == (
        config_module.ACTIVATIONS, config_module.OPTIMIZERS, config_module.LOSSES
    )


def test_rates_are_runtime_values_so_trainings_share_one_compiled_step(table):
    # learning rate, dropout rate and L2 constant differ; the shape, optimiser and penalties on do not
    first = small_config(model={"dropout": 0.1, "l2": 1e-4}, max_epochs=2, learning_rate=3e-3)
    second = small_config(model={"dropout": 0.3, "l2": 1e-3}, max_epochs=2, learning_rate=1e-2)
    clear_compiled_caches()
    a = train_classifier(table, first, verbose=False)
    b = train_classifier(table, second, verbose=False)
    info = compiled_training.cache_info()
    assert (info.misses, info.hits) == (1, 1)  # one setup compiled, reused by the second training
    steps = -(-len(a.data.splits["train"]) // 256)
    _, train_epoch = compiled_training(a.network, loss_spec(first), OptimizerSpec.from_training(first.training), steps, 256, False, True)
    assert train_epoch._cache_size() == 1  # one XLA executable for both trainings
    assert [e["learning_rate"] for e in b.fit.history] == [pytest.approx(1e-2)] * 2
    # the values really are the run's own: the first config, compiled afresh, gives the same weights
    clear_compiled_caches()
    again = train_classifier(table, first, verbose=False)
    assert all(jax.tree.leaves(jax.tree.map(np.array_equal, a.params, again.params)))
    assert not any(jax.tree.leaves(jax.tree.map(np.array_equal, a.params, b.params)))


def test_dropout_module_draws_flax_dropout_masks():
    # the runtime-rate dropout keeps flax's rng stream and arithmetic (same seed, same masks and values)
    x = jax.random.normal(jax.random.key(0), (64, 8))
    rngs = {"dropout": jax.random.key(1)}

    class Flax(linen.Module):
        @linen.compact
        def __call__(self, x):
            return linen.Dropout(0.3, deterministic=False)(x)

    class Runtime(linen.Module):
        @linen.compact
        def __call__(self, x, keep_prob):
            return Dropout()(x, keep_prob)

    expected = jax.jit(lambda x: Flax().apply({}, x, rngs=rngs))(x)
    found = jax.jit(lambda x, p: Runtime().apply({}, x, p, rngs=rngs))(x, Regularisation.of(0.3).keep_prob)
    np.testing.assert_array_equal(np.asarray(found), np.asarray(expected))
    assert 0.55 < float(np.mean(np.asarray(found) != 0)) < 0.85  # about 70 % kept
