"""ONNX export: onnxruntime on the exported file gives bsmscan's scores on real (generated and
selected) events, to 1e-5, for a binary, a multiclass and a parametrised network, and ensembles with the piecewise-linear input encoding."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.core.config import config_from_dict
from analysis.core.fileset import load_fileset
from analysis.stages.process import run_processing
from nn.artifact import load_model
from nn.data import read_feature_store
from nn.export import INPUT_NAME, OUTPUT_NAME, ExportError, export, export_model
from nn.train import train_from_store

onnxruntime = pytest.importorskip("onnxruntime")
pytest.importorskip("jax2onnx")

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::RuntimeWarning:coffea.*")]

VARIANTS = {
    "parametrised": {"model": {"parametrised": True, "output": "binary", "ensemble_members": 1}},
    "binary": {"model": {"parametrised": False, "output": "binary", "activation": "tanh", "ensemble_members": 1}},
    "multiclass": {"model": {"parametrised": False, "output": "multiclass", "activation": "elu", "ensemble_members": 1}},
    "ensemble": {"model": {"parametrised": True, "output": "binary", "activation": "selu", "input_encoding_bins": 4,
                           "ensemble_members": 3}},
    "multiclass_ensemble": {"model": {"parametrised": False, "output": "multiclass", "ensemble_members": 2}},
    "shared_ensemble": {"model": {"parametrised": True, "output": "binary", "activation": "selu", "input_encoding_bins": 4,
                                  "ensemble_members": 4, "ensemble_shared": True}},
}


@pytest.fixture(scope="module")
def store(small_samples, tmp_path_factory):
    """The small generated samples, selected with a loose cut so that hundreds of events remain."""
    config, manifest = small_samples
    data = config.model_dump(mode="json")
    data["selection"]["cuts"] = {"two_leptons": "n_lepton == 2", "met": "met > 50"}
    config = config_from_dict(data)
    path = tmp_path_factory.mktemp("export") / "store"
    run_processing(config, path, executor="iterative", fileset=load_fileset(manifest))
    return config, path


def _trained(config, store, tmp_path, overrides):
    data = config.model_dump(mode="json")
    data["model"].update(hidden_layers=[16, 8], **overrides["model"])
    data["training"].update(max_epochs=2, folds=1)  # one network, one ONNX file
    config = config_from_dict(data)
    train_from_store(store, tmp_path / "model", config)
    return load_model(tmp_path / "model")


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_onnx_scores_equal_bsmscan_scores(store, tmp_path, variant):
    config, store_path = store
    model = _trained(config, store_path, tmp_path, VARIANTS[variant])
    (path,) = export(tmp_path / "model", tmp_path / "model.onnx")
    table = read_feature_store(store_path)
    features = table.features[:, [table.feature_names.index(name) for name in model.feature_names]]
    assert len(features) > 200
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == [INPUT_NAME]
    assert [o.name for o in session.get_outputs()] == [OUTPUT_NAME]
    points = model.signal_points if model.parametrised else [model.signal_points[0]]
    expected = model.score_points(features, points, feature_names=list(model.feature_names))
    for (m, dm), bsmscan_scores in zip(points, expected):
        inputs = features.astype(np.float32)
        if model.parametrised:
            inputs = np.column_stack([inputs, np.full(len(inputs), m, np.float32), np.full(len(inputs), dm, np.float32)])
        (onnx_scores,) = session.run(None, {INPUT_NAME: inputs})
        np.testing.assert_allclose(onnx_scores.reshape(-1), bsmscan_scores, rtol=0, atol=1e-5)
        assert 0.0 < float(np.std(bsmscan_scores))  # not a constant network
    import onnx

    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert props["bsmscan_parametrised"] == ("true" if model.parametrised else "false")


def test_an_operator_the_exporter_cannot_express_is_a_named_error(store, tmp_path, monkeypatch):
    config, store_path = store
    model = _trained(config, store_path, tmp_path, VARIANTS["binary"])
    import jax2onnx

    def refuse(*args, **kwargs):
        raise NotImplementedError("No ONNX handler for primitive 'erf_inv'")

    monkeypatch.setattr(jax2onnx, "to_onnx", refuse)
    with pytest.raises(ExportError, match="cannot export.*erf_inv"):
        export_model(model, tmp_path / "refused.onnx")
    assert not (tmp_path / "refused.onnx").exists()
