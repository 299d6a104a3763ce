"""Distributed scoring: identical histograms on every executor, consistent with the selection
stage, the model loaded once per worker, histograms saved without pickle."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.core.fileset import load_fileset
from analysis.core.names import point_name
from analysis.stages.process import run_processing
from analysis.stages.score import load_histograms, run_scoring, save_histograms
from processors import scoring
from processors.scoring import SPLITS

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::RuntimeWarning:coffea.*")]


@pytest.fixture(scope="module")
def trained(small_samples, tmp_path_factory):
    """The small samples processed into a store and a quickly trained parametrised network."""
    from nn.train import train_from_store

    config, manifest = small_samples
    config = config.model_copy(update={
        "executor": config.executor.model_copy(update={"chunksize": 400}),
        "training": config.training.model_copy(update={"max_epochs": 2}),
        "model": config.model.model_copy(update={"hidden_layers": [16, 16]}),
    })
    outdir = tmp_path_factory.mktemp("trained")
    fileset = load_fileset(manifest)
    processing = run_processing(config, outdir / "store", executor="iterative", fileset=fileset)
    train_from_store(outdir / "store", outdir / "model", config, log=None)
    points = [(p.m_slepton, p.dm) for p in config.samples.signal_grid]
    return config, fileset, processing, outdir / "model", points


def test_dask_and_iterative_scoring_give_identical_histograms(trained):
    from distributed import Client, LocalCluster

    config, fileset, _, model_dir, points = trained
    thresholds = {point_name(*points[0]): 0.5}
    iterative = run_scoring(config, model_dir, fileset, points, executor="iterative", thresholds=thresholds)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, Client(cluster) as client:
        dask = run_scoring(config, model_dir, fileset, points, executor="dask", client=client, thresholds=thresholds)
    assert iterative.score.sum().value > 0
    assert dask.score == iterative.score  # bit-identical contents and axes
    assert all(dask.control[name] == iterative.control[name] for name in iterative.control)
    assert dask.n_events == iterative.n_events and dask.n_scored == iterative.n_scored
    cut = iterative.control["met"][{"step": "score cut"}].sum().value
    assert 0 < cut < iterative.control["met"][{"step": "preselection"}].sum().value


def test_scored_events_and_weights_match_the_selection_stage(trained):
    config, fileset, processing, model_dir, points = trained
    result = run_scoring(config, model_dir, fileset, points, executor="iterative")
    assert result.n_events == processing.n_input
    assert result.n_scored == processing.n_selected
    first_point = point_name(*points[0])
    for dataset, entry in fileset.items():
        meta = entry["metadata"]
        label = point_name(meta["m_slepton"], meta["dm"]) if meta["is_signal"] else meta["process"]
        filled = result.score[{"point": first_point, "process": label}].sum(flow=True).value
        assert filled == pytest.approx(processing.cutflow[dataset]["sumw"][-1], rel=1e-9), dataset
    # The deterministic split: about 60 / 20 / 20 % of the scored events by count.
    counts = {split: result.score[{"split": split, "point": first_point}].sum(flow=True).value for split in SPLITS}
    assert all(value > 0 for value in counts.values())


def test_model_is_loaded_once_per_worker_not_per_chunk(trained, monkeypatch):
    from nn import artifact

    config, fileset, _, model_dir, points = trained
    calls = []
    original = artifact.load_model
    monkeypatch.setattr(artifact, "load_model", lambda directory: calls.append(directory) or original(directory))
    monkeypatch.setattr(scoring, "_MODELS", {})
    result = run_scoring(config, model_dir, fileset, points, executor="iterative")
    n_chunks = sum(-(-n // config.executor.chunksize) for n in result.n_events.values())
    assert n_chunks > 10 and len(calls) == 1


def test_histograms_round_trip_through_json(trained, tmp_path):
    config, fileset, _, model_dir, points = trained
    result = run_scoring(config, model_dir, {k: v for k, v in fileset.items() if k in ("ZZ", "slepton_200_75")},
                         points, executor="iterative")
    path = save_histograms(tmp_path / "histograms.json", result)
    assert b"pickle" not in path.read_bytes()
    loaded = load_histograms(path)
    assert loaded.score == result.score
    assert all(loaded.control[k] == result.control[k] for k in result.control)
    assert np.array_equal(loaded.score.values(), result.score.values())
