"""Distributed scoring: identical histograms on every executor, consistent with the selection
stage, the model loaded once per worker, histograms saved without pickle."""

from __future__ import annotations

import json

import hist
import numpy as np
import pytest

from analysis.core.fileset import load_fileset
from analysis.core.names import point_name
from analysis.results.control import control_at_thresholds
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
    train_from_store(outdir / "store", outdir / "model", config, verbose=False)
    points = [(p.m_slepton, p.dm) for p in config.samples.signal_grid]
    return config, fileset, processing, outdir / "model", points


def test_dask_and_iterative_scoring_give_identical_histograms(trained):
    from distributed import Client, LocalCluster

    config, fileset, _, model_dir, points = trained
    iterative = run_scoring(config, model_dir, fileset, points, executor="iterative")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, Client(cluster) as client:
        dask = run_scoring(config, model_dir, fileset, points, executor="dask", client=client)
    assert iterative.score.sum().value > 0
    assert dask.score == iterative.score  # bit-identical contents and axes
    assert all(dask.control[name] == iterative.control[name] for name in iterative.control)
    assert dask.n_events == iterative.n_events and dask.n_scored == iterative.n_scored


def test_control_histograms_sliced_at_a_threshold_close_with_the_score_histogram(trained):
    """One scoring pass: the control distributions above a point's threshold (sliced from the
    score axis of the control histograms) hold exactly the test-split yield of the score
    histogram above that threshold, process by process; the preselection view holds every
    selected event."""
    config, fileset, _, model_dir, points = trained
    result = run_scoring(config, model_dir, fileset, points, executor="iterative")
    label = point_name(*points[0])
    threshold = float(result.score.axes["score"].edges[50])
    sliced = control_at_thresholds(result.control, {label: threshold})["met"]
    for process in result.score.axes["process"]:
        above = result.score[{"split": "test", "process": process, "point": label,
                              "score": slice(hist.loc(threshold), None, sum)}].value
        cut = sliced[{"step": "score cut", "process": process, "point": label}].sum(flow=True).value
        assert cut == pytest.approx(above, rel=1e-9, abs=1e-12), process
        everything = result.score[{"process": process, "point": label}].sum(flow=True).value
        presel = sliced[{"step": "preselection", "process": process, "point": label}].sum(flow=True).value
        assert presel == pytest.approx(everything, rel=1e-9), process
    total_cut = sliced[{"step": "score cut", "point": label}].sum(flow=True).value
    assert 0 < total_cut < sliced[{"step": "preselection", "point": label}].sum(flow=True).value


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
    # The default cross-training (5 folds): every scored event in the test split of its fold's network
    assert config.training.folds == 5
    counts = {split: result.score[{"split": split, "point": first_point}].sum(flow=True).value for split in SPLITS}
    assert counts["train"] == counts["validation"] == 0
    assert counts["test"] == pytest.approx(sum(processing.cutflow[d]["sumw"][-1] for d in fileset), rel=1e-9)


LOADED: list[str] = []


def _counting_loader(directory):
    """``load_model`` that records its calls (module level: coffea pickles the processor by
    reference to this function, so the calls land in this process's :data:`LOADED`)."""
    from nn.artifact import load_model

    LOADED.append(directory)
    return load_model(directory)


def test_model_is_loaded_once_per_worker_not_per_chunk(trained, monkeypatch):
    from analysis.stages import score as score_stage

    config, fileset, _, model_dir, points = trained
    LOADED.clear()
    monkeypatch.setattr(score_stage, "load_model", _counting_loader)
    monkeypatch.setattr(scoring, "_MODELS", {})
    result = run_scoring(config, model_dir, fileset, points, executor="iterative")
    n_chunks = sum(-(-n // config.executor.chunksize) for n in result.n_events.values())
    assert n_chunks > 10 and len(LOADED) == 1


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


def test_collision_data_are_scored_into_the_observed_histogram_and_fitted(trained, tmp_path):
    """A dataset marked ``is_data`` (here the ZZ file, read as if it were collision data): its
    selected events are scored into ``observed`` (one unweighted entry per event and grid point),
    never into the simulation's ``score`` histogram, and the fit stage takes them as its observed
    counts."""
    from analysis.stages.fit import fit_inputs_from_fileset, run_fit

    config, fileset, processing, model_dir, points = trained
    with_data = {**fileset, "run2018": {"files": fileset["ZZ"]["files"],
                                        "metadata": {"is_data": True, "process": "data"}}}
    result = run_scoring(config, model_dir, with_data, points, executor="iterative")
    assert list(result.observed.axes["process"]) == ["data"] and "data" not in result.score.axes["process"]
    selected_zz = processing.n_selected["ZZ"]
    assert result.n_scored["run2018"] == selected_zz > 0
    for label in (point_name(*p) for p in points):
        observed = result.observed[{"process": "data", "point": label}]
        assert observed.sum(flow=True).value == observed.sum(flow=True).variance == selected_zz
    assert result.score == run_scoring(config, model_dir, fileset, points, executor="iterative").score
    loaded = load_histograms(save_histograms(tmp_path / "histograms.json", result))
    assert loaded.observed == result.observed

    data, _ = fit_inputs_from_fileset(with_data)
    # the tiny samples' background ESS is ~3: a looser binning minimum than the default 10
    config = config.model_copy(update={"fit": config.fit.model_copy(update={"min_background_ess": 1.0})})
    summary = run_fit(config, result.score, points, tmp_path, data_processes=data, observed=result.observed)
    assert summary.data_processes == ["data"] and "data" not in summary.background_processes
    for point in summary.points:
        # the workspace's observations are the observed histogram, rebinned (the fit itself need
        # not converge: unweighted ZZ events stand far above the weighted expectation)
        workspace = json.loads((tmp_path / point.workspace).read_text())
        (observation,) = workspace["observations"]
        assert point.has_data and sum(observation["data"]) == selected_zz, point.label
