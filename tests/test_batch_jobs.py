"""Standalone batch jobs: chunks cut exactly as coffea's Runner cuts them, merges that equal the
executors' results bit for bit and refuse missing, duplicated or unknown chunks by name, and the
whole DAG run as local processes giving the same cutflow, histograms and significances as Dask."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import awkward as ak
import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from analysis.core.config import config_from_dict, default_config
from jobs.batch import BatchError, BatchPaths
from jobs.plan import PlanError, read_plan
from jobs.steps.generation import run_merge_samples
from jobs.steps.selection import run_merge_process, run_plan, run_process

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning:coffea.*")

CHUNKSIZE = 60
FILE_SIZES = {"sig_a.root": 250, "sig_b.root": 173, "bkg.root": 301}
SLOTS = 3


def _write_ntuple(path: Path, n: int, seed: int) -> None:
    """Dimuon events with MET (no electrons or jets): many pass the default preselection."""
    rng = np.random.default_rng(seed)
    counts = np.full(n, 2)
    muons = ak.unflatten(ak.zip({
        "pt": rng.uniform(15, 200, 2 * n).astype(np.float32),
        "eta": rng.uniform(-2.4, 2.4, 2 * n).astype(np.float32),
        "phi": rng.uniform(-np.pi, np.pi, 2 * n).astype(np.float32),
        "mass": np.full(2 * n, 0.106, np.float32),
        "charge": np.tile(np.array([1, -1], np.int32), n),
    }), counts)
    empty = ak.Array([[] for _ in range(n)])
    electrons = ak.zip({f: ak.values_astype(empty, np.float32) for f in ("pt", "eta", "phi", "mass")})
    electrons = ak.with_field(electrons, ak.values_astype(empty, np.int32), "charge")
    jets = ak.zip({f: ak.values_astype(empty, np.float32) for f in ("pt", "eta", "phi", "mass")})
    jets = ak.with_field(jets, ak.values_astype(empty, np.bool_), "btag")
    branches = {"Electron": electrons, "Muon": muons, "Jet": jets,
                "MET_pt": rng.uniform(100, 600, n).astype(np.float32), "MET_phi": rng.uniform(-np.pi, np.pi, n).astype(np.float32),
                "genWeight": rng.choice([-1.0, 1.0, 1.0, 1.0], n).astype(np.float32) * rng.uniform(0.5, 2.0, n).astype(np.float32),
                "event": np.arange(n, dtype=np.uint64) + 1000 * seed}
    import uproot

    with uproot.recreate(path) as file:
        file.mktree("Events", {k: v.type if isinstance(v, ak.Array) else v.dtype for k, v in branches.items()}).extend(branches)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """A user fileset of three small files and a config that analyses it in 60-event chunks."""
    base = tmp_path_factory.mktemp("synthetic")
    for seed, (name, n) in enumerate(FILE_SIZES.items()):
        _write_ntuple(base / name, n, seed)
    fileset = {
        "sig": {"files": {str(base / "sig_a.root"): "Events", str(base / "sig_b.root"): "Events"},
                "metadata": {"xsec_pb": 0.2, "process": "slepton", "is_signal": True, "m_slepton": 200.0, "dm": 75.0}},
        "bkg": {"files": {str(base / "bkg.root"): "Events"}, "metadata": {"xsec_pb": 12.0, "process": "WW"}},
    }
    (base / "fileset.json").write_text(json.dumps(fileset))
    data = default_config().model_dump(mode="json")
    data["samples"]["fileset"] = str(base / "fileset.json")
    data["executor"]["chunksize"] = CHUNKSIZE
    return config_from_dict(data), base


@pytest.fixture(scope="module")
def batch_run(synthetic, tmp_path_factory):
    """plan -> process (3 nodes) -> merge-process, run in this process."""
    config, _ = synthetic
    paths = BatchPaths(tmp_path_factory.mktemp("batch"))
    plan = run_plan(config, paths)
    for slot in range(SLOTS):
        run_process(config, paths, slot, SLOTS)
    return config, paths, plan, run_merge_process(config, paths, SLOTS)


def _store(store: Path) -> dict:
    return {path.name: pq.read_table(path).to_pydict() for path in sorted((store / "parts").glob("*.parquet"))}


def test_chunks_are_coffeas_and_the_merge_equals_the_runner_bit_for_bit(batch_run, synthetic, tmp_path):
    from analysis.core.executors import run_chunks
    from analysis.core.fileset import inspect_fileset
    from analysis.stages.process import run_processing
    from processors.processor import SelectionProcessor

    config, paths, plan, merged = batch_run
    runner_chunks = run_chunks(inspect_fileset(json.loads((synthetic[1] / "fileset.json").read_text()), config),
                               SelectionProcessor(config, None), executor="iterative", chunksize=CHUNKSIZE)
    # coffea: 250 -> 4 x 63 (last 61), 173 -> 3 x 58 (last 57), 301 -> 5 x 61 (last 57)
    assert [c.entrystop - c.entrystart for c in plan.chunks if c.filename.endswith("sig_a.root")] == [63, 63, 63, 61]
    assert [c.key for c in plan.chunks] == sorted(runner_chunks) and len(plan.chunks) == 12

    reference = run_processing(config, tmp_path / "store", executor="iterative")
    assert merged.cutflow == reference.cutflow  # bit-identical sums
    assert (merged.n_input, merged.n_processed, merged.n_selected) == (reference.n_input, reference.n_processed, reference.n_selected)
    assert merged.n_processed == {"bkg": 301, "sig": 423} and 0 < merged.n_selected["sig"] < 423
    batch_store, reference_store = _store(paths.store), _store(tmp_path / "store")
    assert batch_store.keys() == reference_store.keys() and len(batch_store) == 12
    for part, table in reference_store.items():
        for column, values in table.items():
            assert np.array_equal(np.asarray(batch_store[part][column]), np.asarray(values), equal_nan=column in ("m_slepton", "dm")), (part, column)
    assert json.loads((paths.store / "schema.json").read_text()) == json.loads((tmp_path / "store" / "schema.json").read_text())
    assert json.loads((paths.store / "cutflow.json").read_text())["cutflow"] == reference.cutflow


def test_merge_refuses_a_missing_chunk_naming_it_and_its_node(batch_run, capsys):
    from jobs import batch

    config, paths, plan, _ = batch_run
    chunk = plan.chunks[4]
    partial = paths.partials("process") / chunk.output_name
    saved = partial.read_bytes()
    partial.unlink()
    try:
        with pytest.raises(PlanError, match=rf"1 chunk\(s\) of the plan have no output .*{chunk.dataset}: .*{Path(chunk.filename).name} "
                                            rf"entries \[{chunk.entrystart}, {chunk.entrystop}\) \(node process_0001\)"):
            run_merge_process(config, paths, SLOTS)
        config_path = paths.outdir / "c.yaml"
        config_path.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
        assert batch.main(["merge-process", "--config", str(config_path), "--outdir", str(paths.outdir), "--slots", "3"]) == 2
        assert "have no output" in capsys.readouterr().err
    finally:
        partial.write_bytes(saved)


def test_merge_refuses_a_duplicated_or_an_unknown_chunk(batch_run):
    config, paths, plan, _ = batch_run
    directory = paths.partials("process")
    source = directory / plan.chunks[0].output_name
    copy = directory / "copy-of-a-chunk.json"
    shutil.copy(source, copy)
    try:
        with pytest.raises(PlanError, match=rf"chunk {plan.chunks[0].dataset}: .* is in 2 partial outputs .*copy-of-a-chunk.json"):
            run_merge_process(config, paths, SLOTS)
        stale = json.loads(source.read_text())
        stale["chunk"] = "sig|/old/file.root|000000000000|000000000100"
        copy.write_text(json.dumps(stale))
        with pytest.raises(PlanError, match="hold a chunk that is not in the plan .*copy-of-a-chunk.json"):
            run_merge_process(config, paths, SLOTS)
    finally:
        copy.unlink()
    assert run_merge_process(config, paths, SLOTS).cutflow  # intact again


def test_plan_round_trips_and_slots_cover_every_chunk_once(batch_run):
    _, paths, plan, _ = batch_run
    assert read_plan(paths.plan) == plan
    slots = [chunk.key for slot in range(5) for chunk in plan.for_slot(slot, 5)]
    assert sorted(slots) == [chunk.key for chunk in plan.chunks] and len(set(slots)) == len(slots)
    with pytest.raises(ValueError, match="slot 5 is outside 0..4"):
        plan.for_slot(5, 5)


def test_merge_samples_refuses_missing_generation_outputs_by_job(tmp_path):
    from jobs.steps.generation import run_generate
    from tests.conftest import small_config

    config = small_config(tmp_path / "cache")
    with pytest.raises(BatchError, match=r"10 generation job\(s\) have no output .*slepton_200_10_0000"):
        run_merge_samples(config)
    with pytest.raises(BatchError, match="no generation job 'WW_0007' .*WW_0001"):
        run_generate(config, "WW_0007")


# -- the whole DAG, locally, against the Dask pipeline -------------------------------------------------
def _tiny_config(cache_dir: Path):
    from tests.conftest import small_config

    data = small_config(cache_dir, signal_grid=[{"m_slepton": 200, "dm": 75}], backgrounds=["WW", "ZZ"],
                        signal_events=400, background_events=400, events_per_job=400).model_dump(mode="json")
    data["executor"]["chunksize"] = 150  # 3 chunks per 400-event file
    data["training"]["max_epochs"] = 2
    data["model"]["hidden_layers"] = [16, 16]
    data["cluster"] = {"chunk_jobs": 2}  # 9 chunks on 2 nodes per chunked stage
    return config_from_dict(data, source="tests")


@pytest.mark.slow
def test_local_dag_run_equals_the_dask_pipeline(tmp_path):
    from analysis.pipeline import Pipeline
    from analysis.stages.score import load_histograms
    from jobs import submit

    config = _tiny_config(tmp_path / "cache")
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    stages = ["generate", "process", "train", "score", "scan", "fit", "report"]
    batch_out, dask_out = tmp_path / "batch", tmp_path / "dask"
    assert submit.main(["--config", str(config_path), "--outdir", str(batch_out), "--local", "--cores", "2",
                        "--stages", ",".join(stages)]) == 0
    dag_nodes = (batch_out / "condor" / "bsmscan.dag").read_text().count("\nJOB ")
    # 3 generation jobs + merge, plan, 2 process nodes + merge, train, 2 score nodes + merge, scan, fit, report
    assert dag_nodes == 3 + 1 + 1 + 2 + 1 + 1 + 2 + 1 + 1 + 1 + 1

    # the Dask run finds the samples the DAG generated (same cache), like any later run would
    Pipeline(config, dask_out, executor="dask", workers=2).run(tuple(stages))

    batch_cutflow = json.loads((batch_out / "store" / "cutflow.json").read_text())
    dask_cutflow = json.loads((dask_out / "store" / "cutflow.json").read_text())
    for key in ("steps", "cutflow", "n_input", "n_processed", "n_selected", "skipped_files"):
        assert batch_cutflow[key] == dask_cutflow[key], key
    assert batch_cutflow["n_processed"] == {"WW": 400, "ZZ": 400, "slepton_200_75": 400}
    assert _store(batch_out / "store").keys() == _store(dask_out / "store").keys()
    assert (batch_out / "model" / "weights.msgpack").read_bytes() == (dask_out / "model" / "weights.msgpack").read_bytes()
    for name in ("histograms.json",):
        batch, dask = load_histograms(batch_out / name), load_histograms(dask_out / name)
        assert batch.score.sum(flow=True).value > 0
        assert batch.score == dask.score, name  # same axes, same bin contents and variances
        assert batch.control.keys() == dask.control.keys()
        assert all(batch.control[k] == dask.control[k] for k in batch.control), name
        assert (batch.n_events, batch.n_scored) == (dask.n_events, dask.n_scored)
    assert (batch_out / "scan.json").read_text() == (dask_out / "scan.json").read_text()  # same significances
    scan = json.loads((batch_out / "scan.json").read_text())
    assert [point["label"] for point in scan["points"]] == ["slepton_200_75"]
    batch_fit, dask_fit = (json.loads((out / "fit.json").read_text()) for out in (batch_out, dask_out))
    assert [p["label"] for p in batch_fit["points"]] == [p["label"] for p in dask_fit["points"]] == ["slepton_200_75"]
    for batch_point, dask_point in zip(batch_fit["points"], dask_fit["points"]):  # same workspace, same minimiser
        assert batch_point["expected_limit"] == pytest.approx(dask_point["expected_limit"], rel=2e-5)
    assert (batch_out / "index.html").exists()


def test_a_generation_node_imports_neither_the_network_nor_the_likelihood_packages():
    """``jobs.batch`` imports only the module of the step it runs: a generation node (most nodes
    of a run) loads no JAX, pyhf or matplotlib, which the later steps need."""
    probe = ("import sys\nfrom jobs import batch\nbatch.step_module('generate')\n"
             "print(sorted(m for m in ('jax', 'pyhf', 'matplotlib', 'flax') if m in sys.modules))\n"
             "batch.step_module('fit')\nprint('pyhf' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1]).stdout.split("\n")
    assert out[0] == "[]" and out[1] == "True", out
