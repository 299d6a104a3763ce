"""The selection stage: identical results on every executor, real CMS files in every format,
weights and cutflows against direct computations, and clear errors for bad input."""

from __future__ import annotations

from pathlib import Path

import awkward as ak
import numpy as np
import pyarrow.parquet as pq
import pytest
import uproot

from analysis.core.config import config_from_dict, default_config
from analysis.core.fileset import BadInputFileError, load_fileset
from analysis.core.store import PARTS
from analysis.stages.process import run_processing
from processors.selection import SelectionConfigError

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning:coffea.*")

LUMI_FB = 139.0
DY_XSEC_PB = 6000.0


def _config(**object_overrides):
    data = default_config().model_dump(mode="json")
    data["selection"]["objects"].update(object_overrides)
    return config_from_dict(data)


def _cms_config(**object_overrides):
    """Dilepton Z selection on CMS NanoAOD (DeepJet medium b-tag working point)."""
    data = default_config().model_dump(mode="json")
    data["selection"]["objects"].update(btag_branch="btagDeepFlavB", btag_threshold=0.2783, **object_overrides)
    data["selection"]["cuts"] = {
        "two_leptons": "n_lepton == 2",
        "opposite_charge": "lep1_charge * lep2_charge < 0",
        "z_window": "mll > 60 and mll < 120",
    }
    return config_from_dict(data)


def _read_store(store: Path) -> dict[str, dict]:
    return {path.name: pq.read_table(path).to_pydict() for path in sorted((store / PARTS).glob("*.parquet"))}


def _assert_same_store(a: dict[str, dict], b: dict[str, dict]) -> None:
    """Same part files, same columns, same values (NaN equal to NaN: background grid masses)."""
    assert a.keys() == b.keys()
    for part in a:
        assert a[part].keys() == b[part].keys()
        for column in a[part]:
            x, y = np.asarray(a[part][column]), np.asarray(b[part][column])
            same = np.array_equal(x, y, equal_nan=True) if x.dtype.kind == "f" else np.array_equal(x, y)
            assert same, f"{part}: column {column} differs"


@pytest.mark.slow
def test_every_executor_gives_identical_cutflows_and_feature_stores(small_samples, tmp_path):
    from distributed import Client, LocalCluster

    config, manifest = small_samples
    config = config.model_copy(update={"executor": config.executor.model_copy(update={"chunksize": 500})})
    fileset = load_fileset(manifest)
    results = {
        "iterative": run_processing(config, tmp_path / "iterative", executor="iterative", fileset=fileset),
        "futures": run_processing(config, tmp_path / "futures", executor="futures", workers=2, fileset=fileset),
    }
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, Client(cluster) as client:
        results["dask"] = run_processing(config, tmp_path / "dask", executor="dask", client=client, fileset=fileset)

    reference = results["iterative"]
    assert sum(reference.n_selected.values()) > 100  # something to compare
    assert reference.n_processed == reference.n_input == {name: (1200 if "slepton" in name else 1600) for name in fileset}
    stores = {name: _read_store(tmp_path / name) for name in results}
    assert len(stores["iterative"]) > 10
    for name in ("futures", "dask"):
        assert results[name].cutflow == reference.cutflow, name  # bit-identical sums
        assert results[name].n_processed == reference.n_processed
        _assert_same_store(stores[name], stores["iterative"])


@pytest.mark.slow
def test_cutflow_weights_and_met_cut_match_direct_computation(small_samples, tmp_path):
    config, manifest = small_samples
    fileset = load_fileset(manifest)
    result = run_processing(config, None, executor="iterative", fileset=fileset)
    steps = result.steps
    for name, entry in fileset.items():
        meta = entry["metadata"]
        row = result.cutflow[name]
        # Before any cut the weights add up to sigma x L.
        assert row["sumw"][0] == pytest.approx(meta["xsec_pb"] * 1000 * LUMI_FB, rel=1e-9)
        assert row["raw"][0] == meta["nevents"]
        assert all(a >= b for a, b in zip(row["raw"], row["raw"][1:]))  # a cutflow only decreases
    # The cuts on two leptons, MET and same-flavour opposite-sign, checked against uproot:
    # leptons above 10 GeV within acceptance, MET > 200 GeV, SFOS.
    entry = fileset["WZ"]
    events = ak.concatenate([uproot.open(p)[t].arrays() for p, t in entry["files"].items()])
    good_electron = (events.Electron_pt > 10) & (abs(events.Electron_eta) < 2.47)
    good_muon = (events.Muon_pt > 10) & (abs(events.Muon_eta) < 2.5)
    n_electron, n_muon = ak.sum(good_electron, axis=1), ak.sum(good_muon, axis=1)
    two_leptons = (n_electron + n_muon) == 2
    met = events.MET_pt > 200
    sfos = ((n_electron == 2) & (ak.sum(events.Electron_charge[good_electron], axis=1) == 0)) | (
        (n_muon == 2) & (ak.sum(events.Muon_charge[good_muon], axis=1) == 0))
    raw = result.cutflow["WZ"]["raw"]
    assert raw[steps.index("two_leptons")] == int(ak.sum(two_leptons))
    assert raw[steps.index("met")] == int(ak.sum(two_leptons & met))
    assert raw[steps.index("opposite_charge")] == int(ak.sum(two_leptons & met & sfos))


def test_cms_nanoaod_weights_and_negative_weights(shared_data, tmp_path):
    path = str(shared_data / "cms" / "nano_dy.root")
    fileset = {"dy": {"files": {path: "Events"}, "metadata": {"xsec_pb": DY_XSEC_PB, "process": "DY"}}}
    gen_weight = uproot.open(path)["Events"]["genWeight"].array(library="np")
    for schema in ("base", "nanoaod"):
        result = run_processing(_cms_config(), tmp_path / schema, executor="iterative", fileset=fileset, schema=schema)
        row = result.cutflow["dy"]
        assert row["raw"][0] == 40 and result.n_processed["dy"] == 40
        assert row["sumw"][0] == pytest.approx(DY_XSEC_PB * 1000 * LUMI_FB, rel=1e-9)  # sum_genweight from the file
        assert row["negative"][0] == int(np.sum(gen_weight < 0)) > 0  # kept and counted
    _assert_same_store(_read_store(tmp_path / "base"), _read_store(tmp_path / "nanoaod"))


def test_parquet_and_root_copies_of_the_same_events_agree(shared_data, tmp_path):
    cms = shared_data / "cms"
    fileset = {
        "root": {"files": {str(cms / "nano_dimuon.root"): "Events"}, "metadata": {"is_data": True}},
        "parquet": {"files": {str(cms / "nano_dimuon.parquet"): "Events"}, "metadata": {"is_data": True}},
    }
    result = run_processing(_cms_config(), tmp_path, executor="iterative", fileset=fileset)
    assert result.cutflow["root"] == result.cutflow["parquet"]
    assert result.cutflow["root"]["raw"][-1] > 0


def test_rntuple_dimuon_data_shows_the_z_peak(shared_data, tmp_path):
    path = shared_data / "cms" / "Run2012BC_DoubleMuParked_Muons_1000evts_rntuple_v1-0-0-0.root"
    fileset = {"run2012": {"files": {str(path): "Events"}, "metadata": {"is_data": True}}}
    config = _cms_config(use_electrons=False, use_jets=False, use_met=False)
    result = run_processing(config, tmp_path, executor="iterative", fileset=fileset)
    assert result.n_processed["run2012"] == 1000
    mll = np.concatenate([pq.read_table(p, columns=["mll"]).column(0).to_numpy() for p in (tmp_path / PARTS).glob("*.parquet")])
    assert len(mll) == result.cutflow["run2012"]["raw"][-1] > 50
    counts, edges = np.histogram(mll, bins=np.arange(61.0, 121.0, 4.0))
    assert abs(0.5 * (edges[np.argmax(counts)] + edges[np.argmax(counts) + 1]) - 91.19) <= 3.0


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("nano_dy_empty.root", "holds no events"),
        ("nano_dy_malformed.parquet", "not a readable Parquet file"),
    ],
)
def test_bad_files_are_named(shared_data, tmp_path, name, reason):
    path = str(shared_data / "cms" / name)
    fileset = {"bad": {"files": {path: "Events"}, "metadata": {"xsec_pb": 1.0}}}
    with pytest.raises(BadInputFileError, match=reason) as error:
        run_processing(_cms_config(), tmp_path, executor="iterative", fileset=fileset)
    assert name in str(error.value)


def test_missing_branch_and_corrupt_root_file_are_named(shared_data, tmp_path):
    rntuple = str(shared_data / "cms" / "Run2012BC_DoubleMuParked_Muons_1000evts_rntuple_v1-0-0-0.root")
    fileset = {"data": {"files": {rntuple: "Events"}, "metadata": {"is_data": True}}}
    with pytest.raises(BadInputFileError, match=r"Run2012BC.*missing branch\(es\) 'Electron_pt'"):
        run_processing(_cms_config(), tmp_path / "a", executor="iterative", fileset=fileset)

    corrupt = tmp_path / "corrupt.root"
    corrupt.write_bytes(b"root" + bytes(range(256)) * 8)
    fileset = {"data": {"files": {str(corrupt): "Events"}, "metadata": {"is_data": True}}}
    with pytest.raises(BadInputFileError, match="corrupt.root: not a readable ROOT file"):
        run_processing(_cms_config(), tmp_path / "b", executor="iterative", fileset=fileset)


def test_skip_bad_files_goes_on_and_lists_what_was_skipped(shared_data, tmp_path):
    cms = shared_data / "cms"
    corrupt = tmp_path / "corrupt.root"
    corrupt.write_bytes(b"not a root file")
    fileset = {
        "dy": {
            "files": {str(cms / "nano_dy.root"): "Events", str(cms / "nano_dy_empty.root"): "Events",
                      str(corrupt): "Events", str(cms / "nano_dy_malformed.parquet"): "Events"},
            "metadata": {"xsec_pb": DY_XSEC_PB},
        }
    }
    result = run_processing(_cms_config(), tmp_path / "store", executor="iterative", fileset=fileset, skip_bad_files=True)
    assert result.n_processed["dy"] == result.n_input["dy"] == 40
    skipped = {Path(s["file"]).name: s["n_events"] for s in result.skipped_files}
    assert skipped == {"nano_dy_empty.root": 0, "corrupt.root": None, "nano_dy_malformed.parquet": None}


def test_non_finite_input_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "nan_met.root"
    n = 20
    empty = ak.Array([[] for _ in range(n)], with_name=None)
    leptons = ak.zip({f: ak.values_astype(empty, np.float32) for f in ("pt", "eta", "phi", "mass")})
    leptons = ak.with_field(leptons, ak.values_astype(empty, np.int32), "charge")
    jets = ak.zip({f: ak.values_astype(empty, np.float32) for f in ("pt", "eta", "phi", "mass")})
    jets = ak.with_field(jets, ak.values_astype(empty, np.bool_), "btag")
    met = np.full(n, 250.0, dtype=np.float32)
    met[3] = np.nan
    branches = {"Electron": leptons, "Muon": leptons, "Jet": jets, "MET_pt": met, "MET_phi": np.zeros(n, np.float32),
                "genWeight": np.ones(n, np.float32), "event": np.arange(n, dtype=np.uint64)}
    with uproot.recreate(path) as file:
        file.mktree("Events", {k: v.type if isinstance(v, ak.Array) else v.dtype for k, v in branches.items()}).extend(branches)
    fileset = {"nan": {"files": {str(path): "Events"}, "metadata": {"xsec_pb": 1.0}}}
    with pytest.raises(Exception, match=r"non-finite values in .*nan_met.root \(entries 0-20\): MET_pt: 1 "):
        run_processing(_config(), tmp_path / "store", executor="iterative", fileset=fileset)


def test_config_errors_name_the_cut_or_dataset(shared_data, tmp_path):
    # A name that is no derived column is an input branch: checked in every file before processing.
    data = _cms_config().model_dump(mode="json")
    data["selection"]["cuts"] = {"typo": "mett > 200"}
    dy = {"dy": {"files": {str(shared_data / "cms" / "nano_dy.root"): "Events"}, "metadata": {"xsec_pb": 1.0}}}
    with pytest.raises(BadInputFileError, match=r"nano_dy.root: missing branch\(es\) 'mett' \(needed by "
                                                r"selection.cuts.typo; did you mean 'met'\?\)"):
        run_processing(config_from_dict(data), None, executor="iterative", fileset=dy)
    data["selection"]["cuts"] = {"bad": "met >> 200"}
    with pytest.raises(SelectionConfigError, match="selection.cuts.bad: operator '>>' is not supported"):
        run_processing(config_from_dict(data), None, executor="iterative", fileset={})
    fileset = {"mc": {"files": {str(shared_data / "cms" / "nano_dy.root"): "Events"}}}
    with pytest.raises(ValueError, match="dataset 'mc': simulation needs 'xsec_pb'"):
        run_processing(_cms_config(), None, executor="iterative", fileset=fileset)


def test_cli_attaches_to_a_running_scheduler_and_the_store_reads_back_as_float32(shared_data, tmp_path, capsys):
    import json

    from distributed import LocalCluster

    from analysis.process import main
    from nn.data import read_feature_store

    cms = shared_data / "cms"
    fileset_path = tmp_path / "fileset.json"
    fileset_path.write_text(json.dumps({
        "ttbar": {"files": {str(cms / "nano_tt_v12.root"): "Events"}, "metadata": {"xsec_pb": 833.9, "process": "ttbar"}},
        "data": {"files": [str(cms / "nano_dimuon.root")], "metadata": {"is_data": True}},
    }))
    config_path = tmp_path / "cms.yaml"
    data = _cms_config().model_dump(mode="json")
    data["selection"]["cuts"] = {"two_leptons": "n_lepton == 2"}
    import yaml

    config_path.write_text(yaml.safe_dump(data))
    store = tmp_path / "store"
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        code = main(["--config", str(config_path), "--fileset", str(fileset_path), "--executor", "dask",
                     "--scheduler", cluster.scheduler_address, "--store", str(store)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "ttbar: 200 of 200 input events processed" in printed
    assert "data: 40 of 40 input events processed" in printed
    cutflow = json.loads((store / "cutflow.json").read_text())
    table = read_feature_store(store)
    assert table.features.dtype == np.float32 and table.features.shape[1] == 26
    assert len(table) == sum(row["raw"][-1] for row in cutflow["cutflow"].values())
    assert np.isclose(table.weight.sum(), sum(row["sumw"][-1] for row in cutflow["cutflow"].values()), rtol=1e-6)


def test_cli_reports_a_bad_file_and_exits_non_zero(shared_data, tmp_path, capsys):
    import json

    from analysis.process import main

    fileset_path = tmp_path / "fileset.json"
    fileset_path.write_text(json.dumps({"dy": {"files": [str(shared_data / "cms" / "nano_dy_empty.root")],
                                               "metadata": {"xsec_pb": 1.0}}}))
    assert main(["--fileset", str(fileset_path), "--executor", "iterative", "--store", str(tmp_path / "s")]) == 2
    # The default config's b-tag branch is the generator's; CMS NanoAOD has btagDeepFlavB instead.
    assert "nano_dy_empty.root: missing branch(es) 'Jet_btag'" in capsys.readouterr().err


def _random_collection(rng, n_events: int, mean: float, dtype=np.float32) -> ak.Array:
    """Jagged (pt, eta, phi) of ``n_events`` events, a Poisson number of objects each, with ties in pT."""
    counts = rng.poisson(mean, n_events)
    n = int(counts.sum())
    pt = np.round(rng.exponential(30.0, n), 0).astype(dtype)  # rounded: equal pT within events happen
    eta = rng.uniform(-2.5, 2.5, n).astype(dtype)
    phi = rng.uniform(-np.pi, np.pi, n).astype(dtype)
    return ak.unflatten(ak.zip({"pt": pt, "eta": eta, "phi": phi}), counts)


def test_object_kernels_equal_the_awkward_expressions_they_replace():
    from processors.features import delta_r
    from processors.features.kinematics import flat_field
    from processors.kernels import (
        event_minima,
        event_sums,
        far_from_all,
        merge_descending,
        select_descending,
    )

    rng = np.random.default_rng(7)
    a, b = _random_collection(rng, 3000, 1.2), _random_collection(rng, 3000, 1.0)
    mask_a, mask_b = a.pt > 10, b.pt > 15
    offsets_a, pt_a = flat_field(a, "pt")
    offsets_b, pt_b = flat_field(b, "pt")
    flat_mask_a, flat_mask_b = ak.to_numpy(ak.flatten(mask_a)), ak.to_numpy(ak.flatten(mask_b))

    # select + stable descending sort: a[mask][argsort(pt, descending)]
    expected = a[mask_a][ak.argsort(a[mask_a].pt, axis=1, ascending=False)]
    offsets, index = select_descending(offsets_a, flat_mask_a, pt_a)
    assert np.array_equal(np.diff(offsets), ak.to_numpy(ak.num(expected)))
    assert np.array_equal(pt_a[index], ak.to_numpy(ak.flatten(expected.pt)))
    assert np.array_equal(ak.to_numpy(ak.flatten(a.eta))[index], ak.to_numpy(ak.flatten(expected.eta)))  # ties keep order

    # merge of two masked collections, a's objects first, then the same sort
    both = ak.concatenate([a[mask_a], b[mask_b]], axis=1)
    expected = both[ak.argsort(both.pt, axis=1, ascending=False)]
    offsets, index = merge_descending(offsets_a, flat_mask_a, pt_a, offsets_b, flat_mask_b, pt_b)
    eta = np.concatenate([ak.to_numpy(ak.flatten(a.eta)), ak.to_numpy(ak.flatten(b.eta))])
    assert np.array_equal(np.diff(offsets), ak.to_numpy(ak.num(expected)))
    assert np.array_equal(eta[index], ak.to_numpy(ak.flatten(expected.eta)))

    # jets farther than dR 0.4 from every lepton, in float32 as numpy computes it
    pairs = ak.cartesian({"jet": a, "lep": b}, axis=1, nested=True)
    far = ak.all(delta_r(pairs.jet.eta, pairs.jet.phi, pairs.lep.eta, pairs.lep.phi) > 0.4, axis=2)
    keep = far_from_all(offsets_a, ak.to_numpy(ak.flatten(a.eta)), ak.to_numpy(ak.flatten(a.phi)), offsets_b,
                        ak.to_numpy(ak.flatten(b.eta)), ak.to_numpy(ak.flatten(b.phi)), 0.4, jet_mask=flat_mask_a)
    assert np.array_equal(keep, ak.to_numpy(ak.flatten(far & mask_a)))
    assert 0 < keep.sum() < flat_mask_a.sum()  # something removed, something kept

    # per-event sums (in float32, in order) and minima (with a fill value for empty events)
    assert np.array_equal(event_sums(offsets_a, pt_a), ak.to_numpy(ak.sum(a.pt, axis=1)))
    minima = ak.to_numpy(ak.fill_none(ak.min(ak.values_astype(a.pt, np.float64), axis=1, mask_identity=True), np.pi))
    assert np.array_equal(event_minima(offsets_a, pt_a.astype(np.float64), np.pi), minima)


def test_chunks_read_eagerly_give_the_results_of_coffeas_virtual_arrays(shared_data, tmp_path):
    """The ROOT chunks the executors read in one go (``ChunkEvents``) and coffea's NanoEvents,
    read branch by branch, give the same cutflow, objects and stored features."""
    from analysis.core.executors import run_chunks
    from analysis.core.fileset import inspect_fileset, preload_branches
    from processors.processor import SelectionProcessor

    path = str(shared_data / "cms" / "nano_tt_v12.root")
    fileset = {"tt": {"files": {path: "Events"}, "metadata": {"xsec_pb": 800.0}}}
    config = _cms_config(muon_id="tight", muon_iso_max=0.15, electron_id="medium", jet_id="tight")
    outputs = {}
    for eager in (False, True):
        processor_instance = SelectionProcessor(config, str(tmp_path / f"store{eager}"))
        inspected = inspect_fileset(fileset, config, extra_branches=processor_instance.columns.required_branches())
        branches = preload_branches(config, inspected.root, processor_instance.columns.required_branches()) if eager else None
        chunks = run_chunks(inspected, processor_instance, executor="iterative", chunksize=70, branches=branches)
        outputs[eager] = chunks
    assert len(outputs[True]) == 3  # 200 events in chunks of ~67
    for key, chunk in outputs[True].items():
        reference = outputs[False][key]
        for field in ("n_events", "n_selected", "raw", "sumw", "sumw2", "negative", "objects"):
            assert chunk[field] == reference[field], field
    _assert_same_store(_read_store(tmp_path / "storeTrue"), _read_store(tmp_path / "storeFalse"))


def test_automatic_chunk_size_gives_every_worker_several_chunks():
    from analysis.core.chunking import CHUNKS_PER_WORKER, auto_chunksize, chunk_size
    from jobs.plan import file_chunk_ranges

    # one 100k-event file on 2 workers: 4 chunks of 25k (one 100k chunk would leave a worker idle)
    assert [stop - start for start, stop in file_chunk_ranges(100_000, auto_chunksize(100_000, 2))] == [25_000] * 4
    # 2M events in 100k files on 2 workers: the 100k cap, one chunk per file, 10 per worker
    assert auto_chunksize(2_000_000, 2) == 100_000
    assert auto_chunksize(600_000, 2) == 75_000  # -> one chunk per 100k file: 6 chunks, 3 per worker
    assert auto_chunksize(1000, 8) == 25_000  # small inputs: not below the minimum
    for n_events, workers, per_worker in ((100_000, 2, 2), (400_000, 4, CHUNKS_PER_WORKER), (1_000_000, 3, CHUNKS_PER_WORKER)):
        assert len(file_chunk_ranges(n_events, auto_chunksize(n_events, workers))) == per_worker * workers
    # a number in the config wins; "auto" (the default) is resolved from the events and the workers
    config = default_config()
    assert config.executor.chunksize is None
    assert chunk_size(config, 100_000, "dask", 2) == 25_000
    pinned = config.model_copy(update={"executor": config.executor.model_copy(update={"chunksize": 5000})})
    assert chunk_size(pinned, 100_000, "dask", 2) == 5000
    data = config.model_dump(mode="json")
    data["executor"]["chunksize"] = "auto"
    assert config_from_dict(data).executor.chunksize is None
