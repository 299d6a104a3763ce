"""A user's own files through the whole chain: the worked examples on the real CMS files in
../shared/data (2012 dimuon data as an RNTuple, NanoAOD data over Drell-Yan simulation), with
their numbers checked against direct uproot/awkward counts; NanoAOD working points, triggers,
event flags, input branches in cuts, features by name and as expressions, configurable control
histograms; data-only runs that skip training and the scan; empty selections; bad input named."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import awkward as ak
import numpy as np
import pyarrow.parquet as pq
import pytest
import uproot
import vector

from analysis.core.config import ConfigError, config_from_dict, load_config
from analysis.core.fileset import BadInputFileError, FilesetError
from analysis.core.store import PARTS
from analysis.stages.process import run_processing

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning:coffea.*", "ignore::UserWarning:coffea.*")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
DIMUON_2012 = EXAMPLES / "cms_dimuon_2012.yaml"
NANOAOD = EXAMPLES / "cms_nanoaod_dilepton.yaml"
RNTUPLE = "Run2012BC_DoubleMuParked_Muons_1000evts_rntuple_v1-0-0-0.root"
Z_MASS = 91.19
vector.register_awkward()


def _config(path: Path, **changes):
    """An example config with sections replaced (``changes``: section -> dict merged into it)."""
    data = load_config(path).model_dump(mode="json")
    for section, values in changes.items():
        data[section] = {**data[section], **values} if isinstance(values, dict) else values
    return config_from_dict(data, source=str(path))


def _run(argv, capsys) -> tuple[int, str]:
    from analysis import run

    code = run.main(argv)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


# -- the 2012 dimuon data (RNTuple): the Z peak in the report ------------------------------------
@pytest.fixture(scope="module")
def dimuon_run(shared_data, tmp_path_factory):
    """``python -m analysis.run`` on the 2012 example, as the README shows it."""
    from analysis import run

    outdir = tmp_path_factory.mktemp("dimuon2012")
    code = run.main(["--config", str(DIMUON_2012), "--executor", "iterative", "--outdir", str(outdir), "--no-progress"])
    return code, outdir


def test_dimuon_2012_example_runs_without_signal_and_shows_the_z_peak(dimuon_run, shared_data):
    code, outdir = dimuon_run
    assert code == 0
    summary = json.loads((outdir / "summary.json").read_text())
    assert set(summary["skipped"]) == {"train", "score", "scan", "fit"}
    assert "no dataset with is_signal: true" in summary["skipped"]["train"]
    assert "scan" not in summary and not (outdir / "scan.json").exists() and not (outdir / "model").exists()
    mll = summary["control"]["mll"]["data"]
    assert abs(mll["peak"] - Z_MASS) <= 3.0 and abs(mll["mean"] - Z_MASS) <= 3.0
    assert (outdir / "plots" / "preselection_mll.png").stat().st_size > 10_000
    assert "preselection_mll.png" in (outdir / "index.html").read_text()

    # The cutflow against a direct count on the RNTuple.
    events = uproot.open(shared_data / "cms" / RNTUPLE)["Events"].arrays()
    good = (events.Muon_pt > 10) & (abs(events.Muon_eta) < 2.4)
    two = events.nMuon == 2
    two_good = two & (ak.sum(good, axis=1) == 2)
    opposite = two_good & (ak.sum(ak.where(good, events.Muon_charge, 0), axis=1) == 0)
    expected = [len(events), int(ak.sum(two)), int(ak.sum(two_good)), int(ak.sum(opposite))]
    assert summary["steps"] == ["all events", "two_muons", "two_selected_muons", "opposite_charge"]
    assert summary["cutflow"]["DoubleMuParked_2012BC"]["raw"] == expected
    assert summary["object_cutflow"]["DoubleMuParked_2012BC"]["Muon"] == {
        "all": int(ak.sum(events.nMuon)), "pT > 10 GeV, |eta| < 2.4": int(ak.sum(good))}

    # m_ll of the selected events, directly: the control histogram holds exactly them.
    muons = ak.zip({"pt": events.Muon_pt, "eta": events.Muon_eta, "phi": events.Muon_phi, "mass": events.Muon_mass},
                   with_name="Momentum4D")[opposite]
    masses = ak.to_numpy((muons[:, 0] + muons[:, 1]).mass)
    assert mll["events"] == np.count_nonzero((masses >= 60) & (masses < 120))
    from analysis.stages.control import load_control

    control = load_control(outdir / "store" / "control.json")
    counts, _ = np.histogram(masses, bins=30, range=(60, 120))
    assert np.array_equal(control.histograms["mll"][{"process": "data"}].values(), counts)
    assert control.data == ["data"] and control.simulation == []


def test_dimuon_store_holds_the_features_chosen_by_name(dimuon_run):
    _, outdir = dimuon_run
    schema = json.loads((outdir / "store" / "schema.json").read_text())
    assert schema["feature_names"] == ["mll", "ptll", "lep1_pt", "lep2_pt", "lep1_eta", "lep2_eta", "dr_ll"]
    assert schema["feature_set"] == "names" and schema["datasets"]["DoubleMuParked_2012BC"]["is_data"] is True
    table = pq.read_table(min((outdir / "store" / PARTS).glob("*.parquet")))
    assert table.column_names[:7] == schema["feature_names"] and "met" not in table.column_names


def test_every_run_logs_its_inputs_objects_and_cuts_first(shared_data, tmp_path, capsys):
    fileset = tmp_path / "mine.json"
    fileset.write_text(json.dumps({"run2012": {"files": {str(shared_data / "cms" / RNTUPLE): "Events"},
                                               "metadata": {"is_data": True}}}))
    code, text = _run(["--config", str(DIMUON_2012), "--fileset", str(fileset), "--executor", "iterative",
                       "--outdir", str(tmp_path / "out"), "--stages", "generate,process", "--no-progress"], capsys)
    assert code == 0
    lines = text.splitlines()
    first = lines.index(next(line for line in lines if line.startswith("inputs:")))
    assert lines[first] == f"inputs: the user's fileset {fileset} (1 dataset(s))"  # --fileset wins over the config's
    assert lines[first + 1] == "inputs: dataset run2012: collision data, process run2012, 1 file(s)"
    assert "objects: muons: pT > 10 GeV, |eta| < 2.4, no ID, no isolation" in lines
    assert "selection: cut two_muons: nMuon == 2" in lines
    assert "input branch nMuon: read by selection.cuts.two_muons" in lines
    assert "run2012 (data): 264 of 1000 events selected, sum of weights 264" in lines
    assert json.loads((tmp_path / "out" / "store" / "cutflow.json").read_text())["n_input"] == {"run2012": 1000}


def test_default_object_cuts_are_said_not_applied_silently():
    from analysis.stages.control import describe_selection

    config = config_from_dict({"samples": {"signal_grid": []}, "selection": {"cuts": {"two": "n_lepton == 2"}}})
    lines = describe_selection(config)
    assert "objects: muons: pT > 10 GeV (default), |eta| < 2.5 (default), no ID (default), no isolation (default)" in lines
    assert any("selection.objects is not in the config: the default object definitions above apply" in line
               for line in lines)
    assert "control histogram (defaults): mll: mll, 60 bins in [0, 300]" in lines


# -- NanoAOD dileptons: ID, isolation, triggers, flags; data over simulation ---------------------
def _direct_nanoaod(path: Path, xsec_pb: float | None, lumi_fb: float) -> tuple[dict, dict]:
    """The example's cutflow (raw, sumw) and muon object cutflow, counted with uproot + awkward."""
    e = uproot.open(path)["Events"].arrays(filter_name=["Muon_*", "Electron_*", "HLT_IsoMu24", "HLT_Ele32_WPTight_Gsf",
                                                         "Flag_goodVertices", "Flag_METFilters", "nMuon", "nElectron",
                                                         "genWeight"])
    muon_kin = (e.Muon_pt > 15) & (abs(e.Muon_eta) < 2.4)
    muon_good = muon_kin & e.Muon_tightId & (e.Muon_pfRelIso04_all < 0.15)
    electron_good = ((e.Electron_pt > 15) & (abs(e.Electron_eta) < 2.5) & (e.Electron_cutBased >= 3)
                     & (e.Electron_pfRelIso03_all < 0.15))
    leptons = ak.concatenate([
        ak.zip({"pt": e.Muon_pt, "charge": e.Muon_charge, "flavour": ak.full_like(e.Muon_charge, 13)})[muon_good],
        ak.zip({"pt": e.Electron_pt, "charge": e.Electron_charge,
                "flavour": ak.full_like(e.Electron_charge, 11)})[electron_good]], axis=1)
    leptons = leptons[ak.argsort(leptons.pt, axis=1, ascending=False)]
    padded = ak.pad_none(leptons, 2, axis=1)
    first, second = padded[:, 0], padded[:, 1]
    masks = [np.ones(len(e), bool), ak.to_numpy(e.HLT_IsoMu24 | e.HLT_Ele32_WPTight_Gsf),
             ak.to_numpy(e.Flag_goodVertices & e.Flag_METFilters), ak.to_numpy(e.nMuon + e.nElectron >= 2),
             ak.to_numpy(ak.num(leptons) == 2), ak.to_numpy(ak.fill_none(first.flavour == second.flavour, False)),
             ak.to_numpy(ak.fill_none(first.charge * second.charge < 0, False)),
             ak.to_numpy(ak.fill_none(first.pt > 26, False))]
    if xsec_pb is None:
        weights = np.ones(len(e))
    else:
        gen = ak.to_numpy(e.genWeight).astype(np.float64)
        weights = gen * xsec_pb * lumi_fb * 1000.0 / gen.sum()
    alive, raw, sumw = np.ones(len(e), bool), [], []
    for mask in masks:
        alive = alive & mask
        raw.append(int(alive.sum()))
        sumw.append(float(weights[alive].sum()))
    muons = {"all": int(ak.sum(ak.num(e.Muon_pt))), "pT > 15 GeV, |eta| < 2.4": int(ak.sum(muon_kin)),
             "tight ID (Muon_tightId)": int(ak.sum(muon_kin & e.Muon_tightId)),
             "Muon_pfRelIso04_all < 0.15": int(ak.sum(muon_good))}
    return {"raw": raw, "sumw": sumw}, muons


@pytest.fixture(scope="module")
def nanoaod_run(shared_data, tmp_path_factory):
    """``python -m analysis.run`` on the NanoAOD example, as the README shows it."""
    from analysis import run

    outdir = tmp_path_factory.mktemp("nanoaod")
    code = run.main(["--config", str(NANOAOD), "--executor", "iterative", "--outdir", str(outdir), "--no-progress"])
    return code, outdir


def test_nanoaod_example_cutflow_with_id_and_isolation_matches_a_direct_count(nanoaod_run, shared_data):
    code, outdir = nanoaod_run
    assert code == 0
    summary = json.loads((outdir / "summary.json").read_text())
    assert summary["steps"] == ["all events", "trigger", "event flags", "two_candidates", "two_leptons", "same_flavour",
                                "opposite_charge", "leading_lepton"]
    config = load_config(NANOAOD)
    for dataset, name, xsec in (("DoubleMuon_2018", "nano_dimuon.root", None), ("DYJetsToLL_M50", "nano_dy.root", 6077.22)):
        expected, muons = _direct_nanoaod(shared_data / "cms" / name, xsec, config.luminosity_fb)
        row = summary["cutflow"][dataset]
        assert row["raw"] == expected["raw"], dataset
        assert row["sumw"] == pytest.approx(expected["sumw"], rel=1e-6), dataset
        assert summary["object_cutflow"][dataset]["Muon"] == muons, dataset
    data = summary["cutflow"]["DoubleMuon_2018"]["raw"]
    assert data[0] == 40 and data[-1] == 3  # three Z -> mu mu candidates with tight, isolated muons
    assert summary["cutflow"]["DYJetsToLL_M50"]["raw"][-1] == 5


def test_nanoaod_example_draws_data_over_simulation_with_a_ratio(nanoaod_run):
    _, outdir = nanoaod_run
    summary = json.loads((outdir / "summary.json").read_text())
    mll = summary["control"]["mll"]
    assert mll["data"]["events"] == 3 and mll["simulation"]["events"] > 0
    assert mll["data_over_simulation"] == pytest.approx(3 / mll["simulation"]["events"])
    assert abs(mll["data"]["peak"] - Z_MASS) <= 3.0 and abs(mll["simulation"]["peak"] - Z_MASS) <= 3.0
    for name in ("mll", "lep1_pt", "npv", "pt_balance"):
        assert (outdir / "plots" / f"preselection_{name}.png").stat().st_size > 10_000
    page = (outdir / "index.html").read_text()
    assert "mll after the preselection (data / simulation)" in page
    assert summary["datasets"]["DoubleMuon_2018"] == {"process": "data", "is_data": True, "is_signal": False}


def test_nanoaod_features_by_name_and_expression_and_training_sees_simulation_only(nanoaod_run):
    from nn.data import read_feature_store, simulation_only

    _, outdir = nanoaod_run
    table = read_feature_store(outdir / "store")
    assert table.feature_names == ("mll", "ptll", "lep1_pt", "lep2_pt", "lep1_eta", "lep2_eta", "dr_ll", "met", "n_jet",
                                   "n_bjet", "PV_npvs", "pt_balance")
    np.testing.assert_allclose(table.column("pt_balance"), table.column("lep2_pt") / table.column("lep1_pt"), rtol=1e-6)
    assert np.all(table.column("PV_npvs") >= 1)  # an input branch, read per event
    assert len(table) == 8
    simulated = simulation_only(table)
    assert len(simulated) == 5 and {simulated.dataset_names[c] for c in np.unique(simulated.dataset)} == {"DYJetsToLL_M50"}


def test_nanoaod_schema_gives_the_same_cutflow_and_features(nanoaod_run, tmp_path):
    _, outdir = nanoaod_run
    result = run_processing(load_config(NANOAOD), tmp_path / "store", executor="iterative", schema="nanoaod",
                            describe=False)
    reference = json.loads((outdir / "store" / "cutflow.json").read_text())
    assert result.cutflow == reference["cutflow"] and result.object_cutflow == reference["object_cutflow"]
    for part in sorted((outdir / "store" / PARTS).glob("*.parquet")):
        base, nano = pq.read_table(part).to_pydict(), pq.read_table(tmp_path / "store" / PARTS / part.name).to_pydict()
        assert base.keys() == nano.keys()
        for column in base:  # NaN grid masses of background equal NaN
            x, y = np.asarray(base[column]), np.asarray(nano[column])
            assert np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), (part.name, column)


# -- batch jobs on a user fileset ------------------------------------------------------------
def test_batch_jobs_run_the_data_example_and_skip_the_signal_steps(dimuon_run, tmp_path):
    from jobs.batch import run_step

    config = load_config(DIMUON_2012)
    outdir = tmp_path / "batch"
    for step in ("plan", "process", "merge-process"):
        run_step(step, config, outdir, slot=0 if step == "process" else None, slots=1)
    assert run_step("train", config, outdir) == "train skipped: no signal dataset in the inputs"
    assert run_step("score", config, outdir, slot=0, slots=1).startswith("score skipped")
    assert run_step("report", config, outdir).startswith("report ")
    _, pipeline_out = dimuon_run
    batch = json.loads((outdir / "store" / "cutflow.json").read_text())
    pipeline = json.loads((pipeline_out / "store" / "cutflow.json").read_text())
    assert batch["cutflow"] == pipeline["cutflow"] and batch["object_cutflow"] == pipeline["object_cutflow"]
    from analysis.stages.control import load_control

    a, b = load_control(outdir / "store" / "control.json"), load_control(pipeline_out / "store" / "control.json")
    assert all(a.histograms[name] == b.histograms[name] for name in b.histograms)
    summary = json.loads((outdir / "summary.json").read_text())
    assert summary["control"]["mll"] == json.loads((pipeline_out / "summary.json").read_text())["control"]["mll"]


# -- a selection that keeps nothing ------------------------------------------------------------
def test_a_selection_that_keeps_nothing_writes_an_empty_store_and_a_complete_cutflow(shared_data, tmp_path, caplog):
    config = _config(DIMUON_2012, selection={"cuts": {"two_muons": "nMuon == 2", "impossible": "mll > 1e6"}})
    with caplog.at_level(logging.WARNING):
        result = run_processing(config, tmp_path / "store", executor="iterative", describe=False)
    row = result.cutflow["DoubleMuParked_2012BC"]
    assert result.steps == ["all events", "two_muons", "impossible"] and row["raw"] == [1000, 554, 0]
    assert "the selection kept none of the 1000 events: the feature store" in caplog.text
    assert "dropped by step 'impossible'" in caplog.text
    assert (tmp_path / "store" / PARTS).is_dir() and not list((tmp_path / "store" / PARTS).iterdir())
    assert json.loads((tmp_path / "store" / "schema.json").read_text())["feature_names"][0] == "mll"
    assert json.loads((tmp_path / "store" / "cutflow.json").read_text())["n_selected"] == {"DoubleMuParked_2012BC": 0}


def test_a_run_that_keeps_nothing_still_reports(shared_data, tmp_path, capsys):
    import yaml

    data = load_config(DIMUON_2012).model_dump(mode="json")
    data["selection"]["cuts"] = {"none": "nMuon > 100"}
    config_path = tmp_path / "empty.yaml"
    config_path.write_text(yaml.safe_dump(data))
    code, text = _run(["--config", str(config_path), "--executor", "iterative", "--outdir", str(tmp_path / "out"),
                       "--no-progress"], capsys)
    assert code == 0, text
    assert "the selection kept none of the 1000 events" in text
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["cutflow"]["DoubleMuParked_2012BC"]["raw"] == [1000, 0]
    assert summary["control"]["mll"]["data"] == {"events": 0.0}


# -- bad input: each a clear error naming the file, branch or setting --------------------------
def _rntuple_fileset(shared_data) -> dict:
    return {"run2012": {"files": {str(shared_data / "cms" / RNTUPLE): "Events"}, "metadata": {"is_data": True}}}


def test_a_branch_in_a_cut_that_the_input_lacks_is_named(shared_data, tmp_path):
    config = _config(DIMUON_2012, selection={"cuts": {"trigger": "HLT_IsoMu24"}})
    with pytest.raises(BadInputFileError, match=rf"{RNTUPLE}: missing branch\(es\) 'HLT_IsoMu24' \(needed by "
                                                r"selection.cuts.trigger\)"):
        run_processing(config, None, executor="iterative", fileset=_rntuple_fileset(shared_data), describe=False)
    config = _config(DIMUON_2012, selection={"triggers": ["HLT_IsoMu24"]})
    with pytest.raises(BadInputFileError, match=r"'HLT_IsoMu24' \(needed by selection.triggers\)"):
        run_processing(config, None, executor="iterative", fileset=_rntuple_fileset(shared_data), describe=False)
    config = _config(DIMUON_2012, selection={"cuts": {"jagged": "Muon_pt > 10"}})
    with pytest.raises(Exception, match=r"branch 'Muon_pt' \(used by selection.cuts.jagged\) in .*"
                                        r"holds a list or record per event"):
        run_processing(config, None, executor="iterative", fileset=_rntuple_fileset(shared_data), describe=False)


def test_a_working_point_the_input_cannot_support_is_named(shared_data):
    config = _config(DIMUON_2012, selection={"objects": {**load_config(DIMUON_2012).selection.objects.model_dump(),
                                                         "muon_id": "tight", "muon_iso_max": 0.15}})
    with pytest.raises(BadInputFileError, match=r"missing branch\(es\) 'Muon_tightId', 'Muon_pfRelIso04_all' \(needed "
                                                r"by selection.objects.muon_id: tight; selection.objects.muon_iso_max\)"):
        run_processing(config, None, executor="iterative", fileset=_rntuple_fileset(shared_data), describe=False)
    config = _config(NANOAOD, selection={"objects": {**load_config(NANOAOD).selection.objects.model_dump(),
                                                     "btag_branch": "btagDeepB"}, "triggers": []})
    tt = {"tt": {"files": {str(shared_data / "cms" / "nano_tt_v12.root"): "Events"}, "metadata": {"xsec_pb": 833.9}}}
    with pytest.raises(BadInputFileError, match=r"nano_tt_v12.root: missing branch\(es\) 'Jet_btagDeepB' \(needed by "
                                                r"selection.objects.btag_branch: btagDeepB\)"):
        run_processing(config, None, executor="iterative", fileset=tt, describe=False)


def test_data_and_simulation_mixed_without_is_data_is_refused(shared_data):
    cms = shared_data / "cms"
    config = load_config(NANOAOD)
    mixed = {"all": {"files": {str(cms / "nano_dy.root"): "Events", str(cms / "nano_dimuon.root"): "Events"},
                     "metadata": {"xsec_pb": 6077.22}}}
    with pytest.raises(FilesetError, match=r"dataset 'all' mixes simulation \(nano_dy.root has a genWeight branch\) and "
                                           r"collision data \(nano_dimuon.root has none\)"):
        run_processing(config, None, executor="iterative", fileset=mixed, describe=False)
    unmarked = {"DoubleMuon": {"files": [str(cms / "nano_dimuon.root")], "metadata": {"xsec_pb": 1.0}}}
    with pytest.raises(FilesetError, match=r"dataset 'DoubleMuon' is treated as simulation .*/nano_dimuon.root has no "
                                           r"genWeight branch: collision data\? set \"is_data\": true"):
        run_processing(config, None, executor="iterative", fileset=unmarked, describe=False)
    for metadata, message in (({"is_data": "yes"}, "metadata 'is_data' must be true or false, got 'yes'"),
                              ({"is_data": True, "is_signal": True}, "both is_data and is_signal")):
        bad = {"d": {"files": [str(cms / "nano_dimuon.root")], "metadata": metadata}}
        with pytest.raises(FilesetError, match=message):
            run_processing(config, None, executor="iterative", fileset=bad, describe=False)


def test_control_histograms_with_an_unknown_variable_or_an_empty_range_are_refused(shared_data):
    config = _config(DIMUON_2012, control={"histograms": {"mlll": {"bins": 10, "range": [0, 100]}}})
    with pytest.raises(BadInputFileError, match=r"missing branch\(es\) 'mlll' \(needed by control.histograms.mlll \(its "
                                                r"name is the variable\); did you mean 'mll'\?\)"):
        run_processing(config, None, executor="iterative", fileset=_rntuple_fileset(shared_data), describe=False)
    for histogram, message in (
        ({"bins": 10, "range": [120, 60]}, r"control.histograms.mll: range \[120, 60\] is empty"),
        ({"bins": 10, "range": [50, 50]}, r"range \[50, 50\] is empty"),
        ({"bins": 10, "range": [0, 100], "log_x": True}, "log_x needs a range above 0"),
        ({"bins": 0, "range": [0, 100]}, "control.histograms.mll.bins"),
        ({"bins": 10, "range": [0, 100], "variable": "mll", "expression": "mll"}, "a variable or an expression"),
    ):
        with pytest.raises(ConfigError, match=message):
            _config(DIMUON_2012, control={"histograms": {"mll": histogram}})
    from processors.processor import SelectionProcessor
    from processors.selection import SelectionConfigError

    with pytest.raises(SelectionConfigError, match="control.histograms.score: the name 'score' is reserved"):
        SelectionProcessor(_config(DIMUON_2012, control={"histograms": {"score": {"range": [0, 1]}}}), None)


def test_bad_feature_expressions_and_event_filters_are_named():
    from processors.processor import SelectionProcessor
    from processors.selection import SelectionConfigError

    base = load_config(DIMUON_2012)
    for expressions, message in (
        ({"a": "b + 1", "b": "a * 2"}, r"features.expressions: the expressions refer to each other in a cycle \(a -> b -> a\)"),
        ({"mll": "lep1_pt"}, r"features.expressions.mll: 'mll' is a derived column already"),
        ({"x": "lep1_pt ** 2"}, r"features.expressions.x: operator '\*\*' is not supported"),
    ):
        config = _config(DIMUON_2012, features={**base.features.model_dump(), "expressions": expressions})
        with pytest.raises(SelectionConfigError, match=message):
            SelectionProcessor(config, None)
    with pytest.raises(ConfigError, match=r"selection.triggers: triggers must be names"):
        _config(DIMUON_2012, selection={"triggers": ["HLT_IsoMu24 or 1"]})
    with pytest.raises(ConfigError, match=r"features.names: .*listed twice: \['mll'\]"):
        _config(DIMUON_2012, features={"names": ["mll", "mll"]})


def test_expressions_may_build_on_each_other_and_cuts_may_use_them(shared_data, tmp_path):
    config = _config(DIMUON_2012, features={"names": ["mll", "balance", "scaled"],
                                            "expressions": {"balance": "lep2_pt / lep1_pt", "scaled": "2 * balance"}},
                     selection={"cuts": {"two_muons": "nMuon == 2", "n": "n_muon == 2", "balanced": "balance > 0.5"}})
    result = run_processing(config, tmp_path, executor="iterative", fileset=_rntuple_fileset(shared_data), describe=False)
    table = pq.read_table(min((tmp_path / PARTS).glob("*.parquet"))).to_pydict()
    balance = np.asarray(table["balance"])
    assert len(balance) == result.cutflow["run2012"]["raw"][-1] > 100 and np.all(balance > 0.5)
    np.testing.assert_allclose(table["scaled"], 2 * balance, rtol=1e-6)


def test_a_data_only_report_ignores_scan_results_an_earlier_run_left(shared_data, tmp_path, capsys):
    outdir = tmp_path / "out"
    outdir.mkdir()
    (outdir / "scan.json").write_text("{}")  # an earlier signal run's outputs in the same folder
    (outdir / "histograms.json").write_text("{}")
    code, text = _run(["--config", str(DIMUON_2012), "--executor", "iterative", "--outdir", str(outdir),
                       "--no-progress"], capsys)
    assert code == 0, text
    summary = json.loads((outdir / "summary.json").read_text())
    assert "scan" not in summary and "aucs" not in summary and set(summary["skipped"]) == {"train", "score", "scan", "fit"}
    from analysis.core.layout import ResultsLayout
    from analysis.stages.report import run_report

    run_report(load_config(DIMUON_2012), ResultsLayout(outdir), executor="iterative")  # --stages report later
    summary = json.loads((outdir / "summary.json").read_text())
    assert summary["skipped"] == {"train, score, scan": "no signal dataset in the inputs"}
