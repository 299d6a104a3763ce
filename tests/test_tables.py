"""Plain tables (nn/table*.py), scoring (nn/score.py), the tree baseline (nn/baseline.py) and the
dask-ml path (nn/table_dask.py, nn/estimator.py)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy.special import ndtri

import nn.table as table_module
from analysis.core.config import config_from_dict, default_config
from analysis.results.baseline_plots import make_baseline_plots
from nn.artifact import FeatureMismatchError, load_model
from nn.baseline import load_baseline, train_baselines
from nn.estimator import FlaxMLPClassifier
from nn.metrics import weighted_roc_auc
from nn.score import main as score_main
from nn.score import score_table
from nn.split import SPLIT_NAMES
from nn.table import (
    UCI_FEATURE_GROUPS,
    UCI_FEATURES,
    TableError,
    TableSpec,
    iter_table_chunks,
    read_table,
)
from nn.table_prepare import prepare_table_data, table_split
from nn.table_transform import InputTransform
from nn.train import main as train_main
from nn.train import train_from_store, train_from_table
from tests.synthetic import write_synthetic_store

FEATURES = ("a", "b", "c", "d")


def small_config(**training):
    data = default_config().model_dump(mode="json")
    data["model"].update(hidden_layers=[16], dropout=0.0, parametrised=False)
    data["training"].update({"max_epochs": 4, "batch_size": 128, "patience": 4, **training})
    return config_from_dict(data)


def write_csv(path, columns: dict, header: bool = True, delimiter: str = ","):
    names = list(columns)
    rows = zip(*[columns[name] for name in names])
    lines = ([delimiter.join(names)] if header else []) + [delimiter.join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def separable(n: int = 2000, seed: int = 0, shift: float = 4.0) -> dict:
    """Signal and background 4 sigma apart in two of four features, positive weights."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, n)
    x = rng.normal(size=(n, 4))
    x[:, 0] += shift * label
    x[:, 1] -= shift * label
    columns = {name: np.round(x[:, j], 6) for j, name in enumerate(FEATURES)}
    columns.update(label=label, w=np.round(rng.uniform(0.5, 2.0, n), 6))
    return columns


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A network and its tree baseline trained on a separable CSV table: quantile inputs, encoded
    piecewise-linearly, into an ensemble of members sharing their hidden layers (``table_small``
    in small), so that the artifact and the scoring of such a network are what is tested."""
    folder = tmp_path_factory.mktemp("tables")
    path = write_csv(folder / "sep.csv", separable())
    spec = TableSpec(label="label", weight="w")
    data = small_config().model_dump(mode="json")
    data["model"].update(input_encoding_bins=4, ensemble_members=3, ensemble_shared=True)
    made = train_from_table(path, folder / "model", spec, config_from_dict(data), baseline="xgboost",
                            input_transform="quantile", verbose=False)
    return folder, path, spec, made


# ----------------------------------------------------------------------------- formats


def test_uci_layouts_have_the_published_column_names(tmp_path):
    susy, higgs = UCI_FEATURES["uci-susy"], UCI_FEATURES["uci-higgs"]
    assert len(susy) == 18 and len(higgs) == 28
    assert susy[:4] == ("lepton 1 pT", "lepton 1 eta", "lepton 1 phi", "lepton 2 pT")
    assert susy[6:] == ("missing energy magnitude", "missing energy phi", "MET_rel", "axial MET", "M_R", "M_TR_2", "R",
                        "MT2", "S_R", "M_Delta_R", "dPhi_r_b", "cos(theta_r1)")
    assert higgs[:6] == ("lepton pT", "lepton eta", "lepton phi", "missing energy magnitude", "missing energy phi", "jet 1 pt")
    assert higgs[8] == "jet 1 b-tag" and higgs[20] == "jet 4 b-tag"
    assert higgs[21:] == ("m_jj", "m_jjj", "m_lv", "m_jlv", "m_bb", "m_wbb", "m_wwbb")
    assert len(UCI_FEATURE_GROUPS["uci-susy"]["low-level"]) == 8 and len(UCI_FEATURE_GROUPS["uci-higgs"]["high-level"]) == 7
    # the first SUSY.csv line of the UCI file, label first, no header
    line = ("0.000000000000000000e+00,9.728614687919616699e-01,6.538545489311218262e-01,1.176224589347839355e+00,"
            "1.157156467437744141e+00,-1.739873170852661133e+00,-8.743090629577636719e-01,5.677649974822998047e-01,"
            "-1.750000417232513428e-01,8.100607395172119141e-01,-2.525521218776702881e-01,1.921887040138244629e+00,"
            "8.896374106407165527e-01,4.107718467712402344e-01,1.145620822906494141e+00,1.932632088661193848e+00,"
            "9.944640994071960449e-01,1.367815494537353516e+00,4.071449860930442810e-02")
    path = tmp_path / "SUSY.csv"
    path.write_text(line + "\n" + line.replace("0.000000000000000000e+00,", "1.000000000000000000e+00,", 1) + "\n")
    table = read_table(path, TableSpec(format="uci-susy"))
    assert table.feature_names == susy and table.label.tolist() == [0, 1]
    assert table.features[0, 0] == np.float32(0.9728614687919616699) and table.features[0, -1] == np.float32(0.0407144986)
    high = read_table(path, TableSpec(format="uci-susy", features=("high-level",)))
    assert high.feature_names == UCI_FEATURE_GROUPS["uci-susy"]["high-level"]
    assert high.features[0, 0] == np.float32(0.8100607395172119141)  # MET_rel


def test_csv_and_parquet_read_the_same_rows_in_order_chunk_by_chunk(tmp_path, monkeypatch):
    columns = separable(3000, seed=3)
    csv = write_csv(tmp_path / "t.csv", columns)
    folder = tmp_path / "parts"
    folder.mkdir()
    for k, (start, stop) in enumerate(((0, 1200), (1200, 3000))):
        part = pa.table({name: np.asarray(values)[start:stop] for name, values in columns.items()})
        pq.write_table(part, folder / f"part-{k}.parquet", row_group_size=500)
    monkeypatch.setattr(table_module, "_BLOCK_BYTES", 4096)  # many CSV record batches
    monkeypatch.setattr(table_module, "_BATCH_ROWS", 256)
    spec = TableSpec(label="label", weight="w")
    chunks = list(iter_table_chunks(csv, spec))
    assert len(chunks) > 10
    from_csv = read_table(csv, spec)
    from_parquet = read_table(folder, TableSpec(format="parquet", label="label", weight="w"))
    expected = np.stack([columns[name] for name in FEATURES], axis=1).astype(np.float32)
    for table in (from_csv, from_parquet):
        assert table.feature_names == FEATURES
        np.testing.assert_array_equal(table.features, expected)
        np.testing.assert_array_equal(table.label, columns["label"])
        np.testing.assert_array_equal(table.weight, columns["w"])
        np.testing.assert_array_equal(table.row, np.arange(3000))


def test_string_labels_map_to_the_given_classes(tmp_path):
    path = write_csv(tmp_path / "k.csv", {"x": [1, 2, 3], "Label": ["s", "b", "s"]})
    table = read_table(path, TableSpec(label="Label", signal_classes=("s",), background_classes=("b",)))
    assert table.label.tolist() == [1, 0, 1]


# --------------------------------------------------------------------------- bad input


def _error(path, spec, *match):
    with pytest.raises(TableError) as caught:
        read_table(path, spec)
    text = str(caught.value)
    for part in (str(path), *match):
        assert part in text, text
    return text


def test_each_bad_table_gets_its_message(tmp_path):
    good = {"a": [1.0, 2.0, 3.0, 4.0], "b": [0.5, 0.1, 0.2, 0.3], "label": [0, 1, 0, 1], "w": [1, 1, 2, 1]}
    path = write_csv(tmp_path / "good.csv", good)
    _error(path, TableSpec(label="target"), "no label column 'target'", "['a', 'b', 'label', 'w']")
    _error(path, TableSpec(label="label", features=("a", "zz")), "feature column(s) ['zz']")
    _error(path, TableSpec(label="label", weight="weight"), "no weight column 'weight'")
    _error(write_csv(tmp_path / "text.csv", {**good, "b": [0.5, "high", 0.2, 0.3]}), TableSpec(label="label"),
           "column 'b' is not numeric (type string)")
    pq.write_table(pa.table({"a": [1.0, 2.0], "b": ["x", "y"], "label": [0, 1]}), tmp_path / "text.parquet")
    _error(tmp_path / "text.parquet", TableSpec(format="parquet", label="label"), "column 'b' is not numeric", "string")
    nan_table = write_csv(tmp_path / "nan.csv", {**good, "a": [1.0, "nan", 3.0, "inf"], "b": [0.5, 0.1, "", 0.3]})
    _error(nan_table, TableSpec(label="label"), "'a': 2 (first at row 1)", "'b': 1 (first at row 2)", "--nonfinite drop")
    _error(write_csv(tmp_path / "lab.csv", {**good, "label": [0, 2, 1, -1]}), TableSpec(label="label"),
           "2 row(s) of label column 'label' that are not 0 or 1", "first at row 1")
    _error(write_csv(tmp_path / "cls.csv", {**good, "label": ["s", "b", "t", "s"]}),
           TableSpec(label="label", signal_classes=("s",), background_classes=("b",)),
           "1 row(s) of label column 'label' with a value that is neither a signal class ['s']", "'t'")
    _error(write_csv(tmp_path / "strlab.csv", {**good, "label": ["s", "b", "b", "s"]}), TableSpec(label="label"),
           "label column 'label' is not numeric", "--signal-class")
    _error(write_csv(tmp_path / "wt.csv", {**good, "w": [1, -2, "nan", 1]}), TableSpec(label="label", weight="w"),
           "1 row(s) of weight column 'w' that are NaN, inf or missing, first at row 2",
           "1 row(s) of weight column 'w' that are negative (e.g. -2.0), first at row 1")


def test_nonfinite_rows_are_dropped_counted_and_recorded(tmp_path):
    columns = separable(1500, seed=5)
    columns["a"] = columns["a"].astype(object)
    columns["a"][[3, 10]] = "nan"
    columns["c"] = columns["c"].astype(object)
    columns["c"][[10, 20, 30]] = "inf"
    path = write_csv(tmp_path / "holes.csv", columns)
    table = read_table(path, TableSpec(label="label", nonfinite="drop"))
    assert (table.n_input_rows, table.n_dropped, table.dropped) == (1500, 4, {"a": 2, "c": 3})
    assert set(range(1500)) - set(table.row.tolist()) == {3, 10, 20, 30}
    made = train_from_table(path, tmp_path / "model", TableSpec(label="label", nonfinite="drop"), small_config(), plots=False,
                            verbose=False)
    record = json.loads((tmp_path / "model" / "model.json").read_text())["table"]
    assert (record["rows"], record["dropped_rows"], record["dropped_cells"]) == (1500, 4, {"a": 2, "c": 3})
    assert made.network.data.summary["table"]["dropped_rows"] == 4
    # scoring: refused by default (counted), or the rows kept with an empty score
    spec = TableSpec(label="label")
    with pytest.raises(TableError, match=r"'a': 2 \(first at row 3\), 'c': 3 \(first at row 10\)"):
        score_table(tmp_path / "model", path, tmp_path / "s.parquet", spec)
    assert not (tmp_path / "s.parquet").exists()
    summary = score_table(tmp_path / "model", path, tmp_path / "s.parquet", TableSpec(label="label", nonfinite="drop"))
    scores = pq.read_table(tmp_path / "s.parquet")
    assert (summary["rows"], summary["not_scored"], scores.num_rows) == (1500, 4, 1500)
    assert np.flatnonzero(scores.column("score").is_null().to_numpy(zero_copy_only=False)).tolist() == [3, 10, 20, 30]


# ------------------------------------------------------------------- training and scoring


def test_table_training_uses_the_hash_split_and_no_grid_points(trained):
    made = trained[3]
    data = made.network.data
    assert not data.parametrised and data.signal_points == [] and data.input_names == FEATURES
    split = table_split(np.arange(2000), (0.6, 0.2, 0.2), 0)
    for code, name in enumerate(SPLIT_NAMES):
        assert len(data.splits[name]) == int(np.sum(split == code))
        assert np.all(split[made.table.row[data.splits[name].rows]] == code)
    record = made.network.metadata
    assert record["table"]["label"] == "label" and record["table"]["weight"] == "w"
    assert record["input_transform"]["kind"] == "quantile" and record["store"] is None
    assert record["network"]["members"] == 3 and record["network"]["shared_members"] is True
    assert set(made.plots) and all(p.exists() for p in made.plots.values())


def test_scores_in_input_order_equal_the_models_direct_scores(trained, tmp_path):
    folder, path, spec, made = trained
    out = tmp_path / "scores.parquet"
    summary = score_table(folder / "model", path, out)
    scores = pq.read_table(out)
    table = read_table(path, spec)
    model, trees = load_model(folder / "model"), load_baseline(folder / "model")
    assert summary["rows"] == scores.num_rows == 2000
    np.testing.assert_array_equal(scores.column("row").to_numpy(), np.arange(2000))
    np.testing.assert_array_equal(scores.column("score").to_numpy(), model.score(table.features, feature_names=FEATURES))
    np.testing.assert_array_equal(scores.column("score_xgboost").to_numpy(), trees.score(table.features, feature_names=FEATURES))
    np.testing.assert_array_equal(scores.column("label").to_numpy(), table.label)
    split = np.array(SPLIT_NAMES)[table_split(np.arange(2000), model.split_fractions, model.split_seed)]
    assert scores.column("split").to_pylist() == split.tolist()
    # the artifact applies the quantile transform itself: raw features in, the training's scores out
    test = made.network.data.splits["test"]
    direct = model.score(table.features[test.rows])
    assert weighted_roc_auc(direct, test.is_signal, test.weight) == pytest.approx(made.network.metrics["test"]["auc"], abs=1e-6)


def test_the_baseline_separates_a_separable_table_on_the_same_test_rows(trained, tmp_path):
    folder, path, spec, made = trained
    metrics = made.baseline.metrics
    assert metrics["test"]["auc"] > 0.99 and metrics["val"]["auc"] > 0.99
    # the same test rows as the network: the AUC of the scored table's test rows, with the weight column
    score_table(folder / "model", path, tmp_path / "s.parquet")
    scores = pq.read_table(tmp_path / "s.parquet")
    table = read_table(path, spec)
    test = np.asarray(scores.column("split").to_pylist()) == "test"
    auc = weighted_roc_auc(scores.column("score_xgboost").to_numpy()[test], table.label[test], table.weight[test])
    assert auc == pytest.approx(metrics["test"]["auc"], abs=1e-6)
    comparison = made.baseline.metadata["comparison"]["classifiers"]
    assert comparison["xgboost"]["auc"] == pytest.approx(metrics["test"]["auc"], abs=1e-9)
    assert comparison["network"]["auc"] == pytest.approx(made.network.metrics["test"]["auc"], abs=1e-6)
    saved = json.loads((folder / "model" / "baseline" / "baseline.json").read_text())
    assert saved["kind"] == "xgboost" and (folder / "model" / "baseline" / "xgboost.json").read_text().startswith("{")


def test_a_model_scored_on_a_table_with_other_features_is_refused(trained, tmp_path):
    folder, path, _, _ = trained
    other = write_csv(tmp_path / "other.csv", {"a": [1.0], "b": [2.0], "x": [3.0], "label": [1]})
    with pytest.raises(FeatureMismatchError) as caught:
        score_table(folder / "model", other, tmp_path / "o.parquet")
    assert str(other) in str(caught.value) and "['c', 'd']" in str(caught.value)
    with pytest.raises(FeatureMismatchError, match=r"--features \['a', 'b'\] differ"):
        score_table(folder / "model", path, tmp_path / "o.parquet", features=["a", "b"])


def test_command_lines_train_score_and_refuse_bad_input(trained, tmp_path, capsys):
    path = trained[1]
    code = train_main(["--table", str(path), "--label", "label", "--features", "a", "b", "--out", str(tmp_path / "m"),
                       "--no-plots", "--quiet"])
    assert code == 0 and "test weighted AUC" in capsys.readouterr().out
    assert load_model(tmp_path / "m").feature_names == ("a", "b")
    assert score_main(["--model", str(tmp_path / "m"), "--table", str(path), "--out", str(tmp_path / "s.parquet")]) == 0
    assert pq.read_table(tmp_path / "s.parquet").column_names == ["row", "score", "label", "split"]
    code = train_main(["--table", str(path), "--label", "nope", "--out", str(tmp_path / "n")])
    assert code == 2 and "no label column 'nope'" in capsys.readouterr().err


# ---------------------------------------------------------------------- input transform


def test_quantile_transform_maps_a_uniform_feature_to_normal_quantiles():
    x = np.linspace(0.0, 1.0, 10_001)[:, None]
    transform = InputTransform("quantile").fit(x, ["u"])
    probe = np.array([[0.1], [0.5], [0.975], [-3.0], [7.0]])
    z = transform.apply(probe)[:, 0]
    np.testing.assert_allclose(z[:3], ndtri([0.1, 0.5, 0.975]), atol=2e-3)
    assert z[3] == pytest.approx(ndtri(1e-4), rel=1e-6) and z[4] == pytest.approx(-ndtri(1e-4), rel=1e-6)
    again = InputTransform.from_dict(json.loads(json.dumps(transform.to_dict())))
    np.testing.assert_array_equal(again.apply(probe), transform.apply(probe))
    steps = InputTransform("quantile").fit(np.r_[np.zeros(500), np.ones(500)][:, None], ["b-tag"])
    assert steps.apply(np.array([[0.0], [1.0]]))[:, 0] == pytest.approx(ndtri([0.25, 0.75]), abs=2e-3)


def test_prepare_refuses_grid_points_and_one_class_tables(tmp_path):
    path = write_csv(tmp_path / "one.csv", {"a": [1.0, 2.0, 3.0], "label": [1, 1, 1]})
    table = read_table(path, TableSpec(label="label"))
    config = small_config()
    with pytest.raises(TableError, match="no background rows"):
        prepare_table_data(table, config.model, config.training, 0)
    with pytest.raises(TableError, match="no signal grid points"):
        prepare_table_data(table, config.model, config.training, 0, points=[(200.0, 40.0)])


# ------------------------------------------------------------------ the physics chain


def test_baseline_beside_a_parametrised_network_of_the_feature_store(tmp_path):
    grid = [(200.0, 40.0), (300.0, 80.0)]
    store = write_synthetic_store(tmp_path / "store", n_signal=600, n_background=1500, grid=grid, separation=2.0, seed=4)
    data = default_config().model_dump(mode="json")
    data["model"].update(hidden_layers=[16], dropout=0.0)
    data["training"].update(max_epochs=3, batch_size=256, baseline="xgboost", folds=1)
    config = config_from_dict(data)
    (result,) = train_from_store(store, tmp_path / "model", config, verbose=False)
    (trees,) = train_baselines([result], tmp_path / "model", config)
    comparison = trees.metadata["comparison"]
    network = comparison["classifiers"]["network"]
    assert network["auc"] == pytest.approx(result.metrics["test"]["auc"], abs=1e-6)
    for point, auc in result.metrics["test"]["auc_per_point"].items():
        assert comparison["points"][point]["network"]["auc"] == pytest.approx(auc, abs=1e-6)
    assert comparison["classifiers"]["xgboost"]["auc"] == pytest.approx(trees.metrics["test"]["auc"], abs=1e-9)
    assert trees.metrics["test"]["auc"] > 0.9
    # physics-weighted test histograms scaled to the full luminosity: the test split's signal yield / 0.2
    test = result.data.splits["test"]
    first = comparison["points"]["slepton_200_40"]["xgboost"]
    expected = test.physics_weight[test.is_signal & (test.point == 0)].sum() / 0.2
    assert sum(first["signal"]) == pytest.approx(expected, rel=1e-5)
    # a parametrised baseline scores raw features at a grid point like the network
    model = load_baseline(tmp_path / "model")
    assert model.parametrised and model.signal_points == grid
    raw = test.x[:5, :len(result.data.feature_names)] * result.data.scaler.std[:-2] + result.data.scaler.mean[:-2]
    at_point = test.x[:5].copy()
    at_point[:, -2:] = result.data.standardised_point(0)
    np.testing.assert_allclose(model.score(raw, 200.0, 40.0), trees.predict_standardised(at_point), atol=1e-6)
    images, summary = make_baseline_plots(tmp_path / "model", tmp_path / "plots", config.scan)
    assert len(images) == 3 and all(path.exists() for path in images.values())
    points = summary["baseline"]["points"]
    assert set(points) == {"slepton_200_40", "slepton_300_80"}
    assert all(np.isfinite(points[p]["best_z"]["network"]) and np.isfinite(points[p]["best_z"]["xgboost"]) for p in points)


# ----------------------------------------------------------------------------- dask-ml


def test_partial_fit_blocks_equal_fit_and_learn():
    columns = separable(1200, seed=7)
    x = np.stack([columns[name] for name in FEATURES], axis=1).astype(np.float32)
    y = columns["label"]
    first = FlaxMLPClassifier(hidden_layers=(8,), epochs=3, learning_rate=1e-2, seed=3).fit(x, y)
    second = FlaxMLPClassifier(hidden_layers=(8,), epochs=3, learning_rate=1e-2, seed=3)
    for _ in range(3):
        second.partial_fit(x, y)
    np.testing.assert_array_equal(first.predict_proba(x), second.predict_proba(x))
    assert first.score(x, y) > 0.99


@pytest.mark.slow
def test_dask_ml_training_on_a_local_cluster_equals_the_sequential_blocks(tmp_path):
    """dask-ml's Incremental over a real LocalCluster: the same parameters as partial_fit
    over the same standardised blocks in the same order on this process."""
    import dask.array as da
    from dask_ml.preprocessing import StandardScaler
    from dask_ml.wrappers import Incremental
    from distributed import Client, LocalCluster

    from nn.table_dask import train_table_dask

    columns = separable(4000, seed=11, shift=2.0)
    path = write_csv(tmp_path / "big.csv", columns)
    x = np.stack([columns[name] for name in FEATURES], axis=1).astype(np.float32)
    weights = columns["w"].astype(np.float32)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, Client(cluster):
        dx = da.from_array(x, chunks=(1000, 4))
        scaler = StandardScaler().fit(dx)
        np.testing.assert_allclose(scaler.mean_, x.astype(np.float64).mean(axis=0), rtol=1e-6)
        standardised = ((x - scaler.mean_.astype(np.float32)) / scaler.scale_.astype(np.float32)).astype(np.float32)
        joined = np.concatenate([standardised, weights[:, None]], axis=1)
        incremental = Incremental(FlaxMLPClassifier(hidden_layers=(8,), seed=1, weight_column=-1), shuffle_blocks=False)
        incremental.partial_fit(da.from_array(joined, chunks=(1000, 5)), da.from_array(columns["label"], chunks=1000))
        local = FlaxMLPClassifier(hidden_layers=(8,), seed=1, weight_column=-1)
        for start in range(0, 4000, 1000):
            local.partial_fit(joined[start:start + 1000], columns["label"][start:start + 1000])
        np.testing.assert_array_equal(incremental.estimator_.predict_proba(joined), local.predict_proba(joined))

        config = small_config(max_epochs=3)
        _, metrics = train_table_dask(path, tmp_path / "dmodel", TableSpec(label="label", weight="w"), config,
                                              blocksize=20_000)
    assert metrics["epochs_run"] == 3 and metrics["test"]["auc"] > 0.9
    model = load_model(tmp_path / "dmodel")
    assert model.feature_names == FEATURES and model.metadata["trained_with"].startswith("dask-ml Incremental")
    score_table(tmp_path / "dmodel", path, tmp_path / "d.parquet", TableSpec(label="label", weight="w"))
    scores = pq.read_table(tmp_path / "d.parquet")
    test = np.asarray(scores.column("split").to_pylist()) == "test"
    auc = weighted_roc_auc(scores.column("score").to_numpy()[test], columns["label"][test], columns["w"][test])
    assert auc == pytest.approx(metrics["test"]["auc"], abs=1e-4)
