"""Reliability and security (issue 12): every case of the hostile test, each with a fixture the
test writes itself. TLS on the condor scheduler, folder locks, dataset names that are not paths,
skipped files that keep yields right, truncated and corrupt ROOT files, NaN kinematics, YAML
bombs, Ctrl-C, worker errors, strict config types, artifact paths, orphan temporary files."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from analysis.core.config import (
    ClusterConfig,
    ConfigError,
    config_from_dict,
    default_config,
    load_config,
)
from analysis.core.fileset import BadInputFileError, inspect_fileset
from analysis.core.store import PARTS, part_name

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning:coffea.*")

ROOT = Path(__file__).resolve().parents[1]
LUMI_FB = 139.0


def write_ntuple(path: Path, n: int, seed: int, *, muon_pt_nan: bool = False, met_nan_at: int | None = None,
                 gen_weight: float | None = None) -> None:
    """Dimuon events with MET, no electrons or jets (most pass the default preselection)."""
    rng = np.random.default_rng(seed)
    pt = rng.uniform(15, 200, 2 * n).astype(np.float32)
    if muon_pt_nan:
        pt[0::2] = np.nan  # every leading muon
    muons = ak.unflatten(ak.zip({
        "pt": pt,
        "eta": rng.uniform(-2.4, 2.4, 2 * n).astype(np.float32),
        "phi": rng.uniform(-np.pi, np.pi, 2 * n).astype(np.float32),
        "mass": np.full(2 * n, 0.106, np.float32),
        "charge": np.tile(np.array([1, -1], np.int32), n),
    }), np.full(n, 2))
    empty = ak.Array([[] for _ in range(n)])
    electrons = ak.zip({f: ak.values_astype(empty, np.float32) for f in ("pt", "eta", "phi", "mass")})
    electrons = ak.with_field(electrons, ak.values_astype(empty, np.int32), "charge")
    jets = ak.zip({f: ak.values_astype(empty, np.float32) for f in ("pt", "eta", "phi", "mass")})
    jets = ak.with_field(jets, ak.values_astype(empty, np.bool_), "btag")
    met = rng.uniform(210, 600, n).astype(np.float32)
    if met_nan_at is not None:
        met[met_nan_at] = np.nan
    weights = (np.full(n, gen_weight, np.float32) if gen_weight is not None
               else rng.uniform(0.5, 2.0, n).astype(np.float32))
    branches = {"Electron": electrons, "Muon": muons, "Jet": jets, "MET_pt": met,
                "MET_phi": rng.uniform(-np.pi, np.pi, n).astype(np.float32), "genWeight": weights,
                "event": np.arange(n, dtype=np.uint64) + 100_000 * seed}
    with uproot.recreate(path) as file:
        file.mktree("Events", {k: v.type if isinstance(v, ak.Array) else v.dtype for k, v in branches.items()}).extend(branches)


def _config(**executor):
    data = default_config().model_dump(mode="json")
    data["executor"].update(executor)
    return config_from_dict(data)


def _run(config, store, fileset, **options):
    from analysis.stages.process import run_processing

    options.setdefault("executor", "iterative")
    return run_processing(config, store, fileset=fileset, **options)


def _files_outside(root: Path, allowed: list[Path]) -> list[Path]:
    """Files under ``root`` that are not under one of ``allowed``."""
    return [p for p in root.rglob("*") if p.is_file() and not any(a in p.parents for a in allowed)]


# -- 1. TLS on the condor scheduler ---------------------------------------------------------------
def test_condor_scheduler_uses_tls_ships_the_certificates_and_serves_no_dashboard(tmp_path):
    import urllib.error
    import urllib.request

    import htcondor2

    from analysis.core.condor import TLS_WORKER_FILES, htcondor_cluster

    cluster = htcondor_cluster(ClusterConfig(processes=1, scheduler_host="127.0.0.1"))
    private = Path(cluster._bsmscan_tls.private_directory)
    try:
        assert cluster.scheduler_address.startswith("tls://127.0.0.1:")
        assert cluster.security.require_encryption
        assert (private.stat().st_mode & 0o777) == 0o700
        assert sorted(p.name for p in private.iterdir()) == sorted(TLS_WORKER_FILES.values())
        assert all((p.stat().st_mode & 0o777) == 0o600 for p in private.iterdir())
        submit = htcondor2.Submit(cluster.job_script())
        shipped = [Path(p.strip()) for p in submit["transfer_input_files"].split(",")]
        assert sorted(shipped) == sorted(private / name for name in TLS_WORKER_FILES.values())
        arguments = submit["Arguments"]
        for option, name in (("ca-file", "bsmscan-tls-ca.pem"), ("cert", "bsmscan-tls-cert.pem"), ("key", "bsmscan-tls-key.pem")):
            assert f"--tls-{option} {name}" in arguments  # relative to the job's scratch folder
        assert "--protocol tls://" in arguments and cluster.scheduler_address in arguments
        assert "BEGIN" not in arguments  # no key material in the submit file
        # the scheduler's HTTP server: this machine only, and no dashboard
        hosts = {sock.getsockname()[0] for sock in cluster.scheduler.http_server._sockets.values()}
        assert hosts == {"127.0.0.1"}
        port = next(iter(cluster.scheduler.http_server._sockets.values())).getsockname()[1]
        assert urllib.request.urlopen(f"http://127.0.0.1:{port}/health").read() == b"ok"
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/status")
    finally:
        cluster.close()
    assert not private.exists()  # the temporary certificates go with the cluster


def test_condor_dashboard_binds_to_localhost_unless_configured_and_config_certificates_are_used(tmp_path):
    from distributed import Security

    from analysis.core.condor import scheduler_options, tls_security

    assert scheduler_options(ClusterConfig())["dashboard_address"] == "127.0.0.1:0"
    assert scheduler_options(ClusterConfig()).get("dashboard") is False
    assert scheduler_options(ClusterConfig(dashboard_port=8787))["dashboard_address"] == "127.0.0.1:8787"
    assert scheduler_options(ClusterConfig(dashboard_port=8787, dashboard_host="10.0.0.5"))["dashboard_address"] == "10.0.0.5:8787"

    temporary = Security.temporary()
    for name, text in (("ca.pem", temporary.tls_ca_file), ("node.pem", temporary.tls_scheduler_cert),
                       ("node.key", temporary.tls_scheduler_key)):
        (tmp_path / name).write_text(text)
    tls = tls_security(ClusterConfig(tls_ca_file=tmp_path / "ca.pem", tls_cert=tmp_path / "node.pem", tls_key=tmp_path / "node.key"))
    assert tls.private_directory is None and tls.files == tuple(str(tmp_path / n) for n in ("ca.pem", "node.pem", "node.key"))
    assert tls.security.tls_scheduler_cert == str(tmp_path / "node.pem") and tls.security.require_encryption
    with pytest.raises(ConfigError, match="tls_ca_file and tls_cert"):
        config_from_dict({**default_config().model_dump(mode="json"), "cluster": {"tls_cert": str(tmp_path / "node.pem")}})
    with pytest.raises(Exception, match="not found"):
        tls_security(ClusterConfig(tls_ca_file=tmp_path / "missing.pem", tls_cert=tmp_path / "node.pem"))


@pytest.mark.slow
def test_a_worker_started_with_the_job_arguments_joins_over_tls_and_a_client_without_certificates_cannot(tmp_path):
    """The worker command of the job script, run here in a scratch folder holding the shipped files."""
    import shutil

    import htcondor2
    from distributed import Client

    from analysis.core.condor import htcondor_cluster

    cluster = htcondor_cluster(ClusterConfig(processes=1, scheduler_host="127.0.0.1", death_timeout=60))
    worker = None
    try:
        submit = htcondor2.Submit(cluster.job_script())
        scratch = tmp_path / "scratch"
        scratch.mkdir()
        for path in submit["transfer_input_files"].split(","):
            shutil.copy(path.strip(), scratch)  # what condor's file transfer does
        arguments = _condor_arguments(submit["Arguments"])
        assert arguments[0] == "-c"  # /bin/sh -c '<prologue>; <python> -m distributed.cli.dask_worker ...'
        env = {**os.environ, "_CONDOR_SCRATCH_DIR": str(scratch)}
        worker = subprocess.Popen(["/bin/sh", *arguments], cwd=scratch, env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, start_new_session=True)
        with Client(cluster, timeout=60) as client:
            client.wait_for_workers(1, timeout=60)
            assert client.submit(sum, [1, 2, 3]).result(timeout=60) == 6
        with pytest.raises((OSError, TimeoutError)):
            Client(cluster.scheduler_address.replace("tls://", "tcp://"), timeout=3)
        with pytest.raises((OSError, TimeoutError, TypeError)):
            Client(cluster.scheduler_address, timeout=3)  # no certificate
    finally:
        cluster.close()
        if worker is not None:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(timeout=60)


def _condor_arguments(text: str) -> list[str]:
    """Split a submit file's new-syntax ``Arguments`` value: blanks separate, '...' groups, '' is '."""
    text = text.strip()
    text = text[1:-1].replace('""', '"') if text.startswith('"') else text
    arguments, current, quoted, i = [], "", False, 0
    while i < len(text):
        char = text[i]
        if char == "'" and quoted and text[i + 1:i + 2] == "'":
            current, i = current + "'", i + 2
            continue
        if char == "'":
            quoted = not quoted
        elif char == " " and not quoted:
            if current:
                arguments.append(current)
            current = ""
        else:
            current += char
        i += 1
    return arguments + ([current] if current else [])


# -- 3. one writer per results folder and sample cache ---------------------------------------------
_HOLD_LOCK = """
import sys
from analysis.core.lock import acquire
acquire(sys.argv[1], "results folder")
print("locked", flush=True)
sys.stdin.readline()
"""


def test_a_second_run_into_a_locked_folder_is_refused_naming_the_first_ones_pid(tmp_path):
    from analysis.core.lock import LOCK_NAME, FolderLockedError, folder_lock, read_lock

    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(tmp_path / "out")], cwd=ROOT,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(FolderLockedError, match=rf"in use by PID {holder.pid} on "), \
                folder_lock(tmp_path / "out", "results folder"):
            pass
        assert read_lock(tmp_path / "out" / LOCK_NAME)["pid"] == holder.pid  # not taken over
    finally:
        holder.communicate("done\n")
    # its process has exited: the lock it left is stale and is taken over
    assert (tmp_path / "out" / LOCK_NAME).exists()
    with folder_lock(tmp_path / "out") as lock:
        assert read_lock(lock)["pid"] == os.getpid()
        with folder_lock(tmp_path / "out"):  # the same process may nest
            pass
        assert lock.exists()
    assert not (tmp_path / "out" / LOCK_NAME).exists()


def test_pipeline_and_sample_generation_take_the_lock(tmp_path, monkeypatch):
    from analysis.core.lock import LOCK_NAME, FolderLockedError
    from analysis.pipeline import Pipeline
    from jobs.generate import generate_samples, output_directory
    from tests.conftest import small_config

    config = small_config(tmp_path / "cache")
    stale = {"pid": 2**22 + 12345, "host": "elsewhere.example.org", "command": "python -m analysis.run", "since": 0}
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / LOCK_NAME).write_text(json.dumps(stale))
    with pytest.raises(FolderLockedError, match=r"results folder .*PID 4206649 on elsewhere.example.org"):
        Pipeline(config, tmp_path / "results", executor="iterative").run(("process",))
    cache = output_directory(config)
    cache.mkdir(parents=True)
    (cache / LOCK_NAME).write_text(json.dumps(stale))
    with pytest.raises(FolderLockedError, match=r"sample cache .*PID 4206649"):
        generate_samples(config, workers=1, show_progress=False)


def test_stale_temporary_files_are_removed_at_the_next_write(tmp_path):
    from analysis.core.atomic import remove_stale_temporaries
    from analysis.core.store import clear_store

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True, capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    store = tmp_path / "store"
    (store / PARTS).mkdir(parents=True)
    orphans = [store / f".schema.json.tmp-{dead_pid}", store / PARTS / f".x.parquet.tmp-{dead_pid}"]
    live = store / f".cutflow.json.tmp-{os.getppid()}"  # a live process's file stays
    for path in (*orphans, live, store / "keep.txt"):
        path.write_text("partial")
    clear_store(store)
    assert [p.exists() for p in orphans] == [False, False] and live.exists() and (store / "keep.txt").exists()
    assert remove_stale_temporaries(tmp_path / "missing") == []


# -- 4. dataset names are never paths --------------------------------------------------------------
def test_any_dataset_name_works_and_nothing_is_written_outside_the_store(tmp_path):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    write_ntuple(inputs / "a.root", 200, 1)
    write_ntuple(inputs / "b.root", 150, 2)
    names = ["/DYJetsToLL_M-50_TuneCP5_13TeV/RunIISummer20UL18NanoAODv9-v1/NANOAODSIM", "/../../x/PWNED", "..", "a b\nc"]
    fileset = {name: {"files": {str(inputs / ("a.root" if i % 2 == 0 else "b.root")): "Events"},
                      "metadata": {"xsec_pb": 1.0 + i}} for i, name in enumerate(names)}
    store = tmp_path / "deep" / "results" / "store"
    result = _run(default_config(), store, fileset)
    assert result.n_processed == {name: (200 if i % 2 == 0 else 150) for i, name in enumerate(names)}
    parts = sorted((store / PARTS).iterdir())
    assert len(parts) == 4 and all(p.parent == store / PARTS for p in parts)
    assert _files_outside(tmp_path, [store, inputs]) == []
    assert not (tmp_path / "x").exists() and not (tmp_path / "deep" / "x").exists()
    for name in names:
        part = part_name(name, "/data/file.root", 0, 10)
        assert "/" not in part and "\n" not in part and not part.startswith(".")
    assert part_name("a/b", "f.root", 0, 1) != part_name("a_b", "f.root", 0, 1)  # sanitised alike, hashed apart
    import pyarrow.parquet as pq

    stored = {row for p in parts for row in pq.read_table(p, columns=["dataset"]).column(0).to_pylist()}
    assert stored == set(names)  # the names themselves are kept as data


# -- 5. skipped files: events lost reported, weights normalised to the files read -----------------
def _ten_files(tmp_path: Path, n: int = 100) -> dict:
    for i in range(10):
        write_ntuple(tmp_path / f"WW_{i}.root", n, i, gen_weight=1.0)
    return {"WW": {"files": {str(tmp_path / f"WW_{i}.root"): "Events" for i in range(10)},
                   "metadata": {"xsec_pb": 10.0, "process": "WW", "nevents": 10 * n, "sum_genweight": 10.0 * n}}}


def test_a_missing_file_stops_the_run_by_default(tmp_path):
    fileset = _ten_files(tmp_path)
    (tmp_path / "WW_3.root").unlink()
    with pytest.raises(BadInputFileError, match="WW_3.root: file not found"):
        _run(default_config(), tmp_path / "store", fileset)


@pytest.mark.parametrize("how", ["flag", "config"])
def test_skipping_a_file_reports_the_loss_and_keeps_the_yield(tmp_path, how):
    from analysis.stages.process import format_cutflow

    fileset = _ten_files(tmp_path)
    reference = _run(default_config(), tmp_path / "ref", fileset)
    (tmp_path / "WW_3.root").unlink()
    config = _config(on_bad_files="skip") if how == "config" else default_config()
    result = _run(config, tmp_path / "store", fileset, skip_bad_files=how == "flag")
    expected_total = 10.0 * LUMI_FB * 1000.0  # xsec [pb] x luminosity [pb^-1]: every event weighs 1.39
    assert reference.cutflow["WW"]["sumw"][0] == pytest.approx(expected_total, rel=1e-12)
    # 9 files of 100 events, each weighing 10 pb x 139 fb^-1 / 900 instead of / 1000: the yield is kept
    assert result.cutflow["WW"]["sumw"][0] == pytest.approx(expected_total, rel=1e-12)
    assert result.n_processed == result.n_input == {"WW": 900}
    loss = result.losses["WW"]
    assert (loss["files_skipped"], loss["files_read"], loss["events_read"], loss["events_lost"]) == (1, 9, 900, 100)
    assert loss["sum_genweight_fileset"] == 1000.0 and loss["sum_genweight_read"] == 900.0
    assert loss["fraction_lost"] == pytest.approx(0.1)
    text = format_cutflow(result)
    assert "WW: 1 of 10 files skipped (100 events lost, 10.0% of the dataset); 900 events read" in text
    assert "weights normalised to the files read (sum of generator weights 900 instead of 1000 in the fileset)" in text
    saved = json.loads((tmp_path / "store" / "cutflow.json").read_text())
    assert saved["losses"]["WW"]["events_lost"] == 100


def test_without_fileset_counts_the_loss_is_still_named(tmp_path):
    fileset = _ten_files(tmp_path)
    fileset["WW"]["metadata"] = {"xsec_pb": 10.0}  # no nevents, no sum_genweight
    (tmp_path / "WW_0.root").write_bytes(b"not a ROOT file")
    inspected = inspect_fileset(fileset, default_config(), skip_bad_files=True)
    loss = inspected.losses["WW"]
    assert loss.events_lost is None and loss.sum_genweight_read == 900.0
    assert "an unknown number of events lost" in loss.describe()


# -- 6. truncated and corrupt ROOT files -----------------------------------------------------------
def _truncated_and_corrupt(tmp_path: Path) -> tuple[Path, Path, Path]:
    good = tmp_path / "good.root"
    write_ntuple(good, 3000, 7)
    data = bytearray(good.read_bytes())
    truncated = tmp_path / "truncated.root"
    truncated.write_bytes(bytes(data[: int(len(data) * 0.7)]))  # an interrupted copy
    with uproot.open(good) as file:
        branch = file["Events"]["MET_pt"]
        seek, size = int(branch.member("fBasketSeek")[0]), int(branch.member("fBasketBytes")[0])
    for i in range(seek + size // 2, seek + size - 4):  # scramble the compressed payload of one basket
        data[i] = (data[i] * 7 + 13) % 256
    corrupt = tmp_path / "corrupt.root"
    corrupt.write_bytes(bytes(data))
    return good, truncated, corrupt


def test_a_truncated_root_file_is_named_before_processing_or_skipped_and_reported(tmp_path):
    good, truncated, _ = _truncated_and_corrupt(tmp_path)
    fileset = {"d": {"files": {str(good): "Events", str(truncated): "Events"}, "metadata": {"xsec_pb": 1.0}}}
    with pytest.raises(BadInputFileError, match=r"truncated.root: truncated ROOT file: \d+ bytes of the \d+ its header records"):
        _run(default_config(), tmp_path / "a", fileset)
    result = _run(default_config(), tmp_path / "b", fileset, skip_bad_files=True)
    assert result.n_processed == {"d": 3000}
    assert [(Path(s["file"]).name, s["n_events"]) for s in result.skipped_files] == [("truncated.root", 3000)]
    assert result.losses["d"]["events_lost"] == 3000


@pytest.mark.parametrize("executor", ["iterative", "futures"])
def test_a_read_error_inside_a_chunk_is_a_named_bad_file(tmp_path, executor):
    _, _, corrupt = _truncated_and_corrupt(tmp_path)
    fileset = {"d": {"files": {str(corrupt): "Events"}, "metadata": {"xsec_pb": 1.0}}}
    with pytest.raises(BadInputFileError, match=r"corrupt.root: read error in entries 0-3000 \(error: Error -3 while decompressing"):
        _run(default_config(), tmp_path / "store", fileset, executor=executor, workers=1)


# -- 7. non-finite kinematics ----------------------------------------------------------------------
@pytest.mark.parametrize("executor", ["iterative", "futures"])
def test_nan_muon_pt_is_an_input_error_naming_file_branch_and_count(tmp_path, executor):
    from processors.processor import InputDataError

    write_ntuple(tmp_path / "nan_mu.root", 500, 3, muon_pt_nan=True)
    fileset = {"d": {"files": {str(tmp_path / "nan_mu.root"): "Events"}, "metadata": {"xsec_pb": 1.0}}}
    with pytest.raises(InputDataError, match=r"non-finite values in .*nan_mu.root \(entries 0-500\): Muon_pt: 500 "):
        _run(default_config(), tmp_path / "store", fileset, executor=executor, workers=1)


def test_nan_met_through_the_cli_is_exit_2_with_bsmscan_s_message(tmp_path, capsys):
    from analysis import process

    write_ntuple(tmp_path / "nan_met.root", 50, 4, met_nan_at=7)
    (tmp_path / "fileset.json").write_text(json.dumps({"d": {"files": ["nan_met.root"], "metadata": {"xsec_pb": 1.0}}}))
    code = process.main(["--fileset", str(tmp_path / "fileset.json"), "--executor", "futures", "--workers", "1",
                         "--store", str(tmp_path / "store")])
    err = capsys.readouterr().err
    assert code == 2
    assert re.search(r"error: non-finite values in .*nan_met.root \(entries 0-50\): MET_pt: 1 ", err)
    assert "Traceback" not in err and "Failed processing file" not in err


# -- 8. YAML bombs and long values -----------------------------------------------------------------
def test_a_yaml_bomb_is_refused_before_it_expands(tmp_path):
    levels = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, 9):
        levels.append(f"{chr(97 + i)}: &{chr(97 + i)} [" + ", ".join([f"*{chr(96 + i)}"] * 9) + "]")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(levels) + "\n")
    assert bomb.stat().st_size < 400  # 9^9 = 387 million strings once expanded
    with pytest.raises(ConfigError, match="expands to more than 100000 YAML nodes"):
        load_config(bomb)
    recursive = tmp_path / "recursive.yaml"
    recursive.write_text("name: &n [*n]\n")
    with pytest.raises(ConfigError, match="expands to more than"):
        load_config(recursive)
    many = tmp_path / "aliases.yaml"
    many.write_text("x: &x 1\ny: [" + ", ".join(["*x"] * 101) + "]\n")
    with pytest.raises(ConfigError, match="more than 100 YAML aliases"):
        load_config(many)


def test_big_configs_are_refused_and_error_messages_stay_short(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("name: x\n# " + "x" * 1_000_001 + "\n")
    with pytest.raises(ConfigError, match="bytes; the limit is 1000000"):
        load_config(big)
    long_value = tmp_path / "long.yaml"
    text = default_config().model_dump(mode="json")
    text["luminosity_fb"] = ["lumi"] * 50_000
    long_value.write_text(json.dumps(text))  # JSON is YAML
    with pytest.raises(ConfigError) as error:
        load_config(long_value)
    assert "luminosity_fb" in str(error.value) and len(str(error.value)) < 1000


# -- poor: strict counts, finite floats, empty grids -----------------------------------------------
@pytest.mark.parametrize(("section", "field", "value", "message"), [
    ("executor", "chunksize", True, "executor.chunksize: Input should be a valid integer"),
    ("executor", "chunksize", 1000.5, "executor.chunksize: Input should be a valid integer"),
    ("executor", "workers", "4", "executor.workers: Input should be a valid integer"),
    (None, "luminosity_fb", float("inf"), "luminosity_fb: Input should be a finite number"),
    (None, "luminosity_fb", float("nan"), "luminosity_fb: Input should be a finite number"),
    ("training", "batch_size", True, "training.batch_size: Input should be a valid integer"),
])
def test_counts_are_strict_integers_and_floats_finite(section, field, value, message):
    data = default_config().model_dump(mode="json")
    (data[section] if section else data)[field] = value
    with pytest.raises(ConfigError, match=re.escape(message)):
        config_from_dict(data)


def test_yaml_infinity_is_refused_with_the_field_named(tmp_path):
    path = tmp_path / "inf.yaml"
    path.write_text(default_config_text_with("luminosity_fb: 139.0", "luminosity_fb: .inf"))
    with pytest.raises(ConfigError, match="luminosity_fb: Input should be a finite number"):
        load_config(path)


def default_config_text_with(old: str, new: str) -> str:
    from analysis.core.config import default_config_text

    text = default_config_text()
    assert old in text
    return text.replace(old, new)


# -- 9. Ctrl-C with --executor dask ----------------------------------------------------------------
_CTRL_C_DRIVER = """
import json, os, signal, sys
import analysis.stages.train as train_stage
from analysis import run

real_training = train_stage.train_from_store

def interrupted_training(*args, **kwargs):
    from distributed import get_client
    with open(sys.argv[2], "w") as handle:  # the worker processes, to check they are gone afterwards
        json.dump(sorted(get_client().run(os.getpid).values()), handle)
    try:
        os.killpg(os.getpgid(0), signal.SIGINT)  # Ctrl-C as a terminal sends it: driver and workers
        signal.pthread_kill(os.getpid(), 0)  # let the handler run here
    except KeyboardInterrupt:
        if sys.argv[4] == "swallow":  # a library that eats the KeyboardInterrupt and carries on
            return real_training(*args, **kwargs)
        raise
    return real_training(*args, **kwargs)

if __name__ == "__main__":
    train_stage.train_from_store = interrupted_training
    sys.exit(run.main(["--config", sys.argv[1], "--executor", "dask", "--workers", "2", "--outdir", sys.argv[3],
                       "--no-progress"]))
"""


def _signal_fileset_config(base: Path, **training):
    write_ntuple(base / "sig.root", 600, 1)
    write_ntuple(base / "bkg.root", 600, 2)
    fileset = {"sig": {"files": ["sig.root"], "metadata": {"xsec_pb": 0.2, "process": "slepton", "is_signal": True,
                                                           "m_slepton": 200.0, "dm": 75.0}},
               "bkg": {"files": ["bkg.root"], "metadata": {"xsec_pb": 12.0, "process": "WW"}}}
    (base / "fileset.json").write_text(json.dumps(fileset))
    data = default_config().model_dump(mode="json")
    data["samples"]["fileset"] = str(base / "fileset.json")
    data["executor"]["chunksize"] = 200
    data["training"].update(max_epochs=2, **training)
    data["model"]["hidden_layers"] = [8]
    return data


def _pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:  # a zombie not yet reaped by its parent counts as gone
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


@pytest.mark.slow
@pytest.mark.parametrize("library", ["propagates", "swallow"])
def test_ctrl_c_during_training_stops_the_run_shuts_down_the_workers_and_exits_130(tmp_path, library):
    import yaml

    (tmp_path / "c.yaml").write_text(yaml.safe_dump(_signal_fileset_config(tmp_path)))
    (tmp_path / "driver.py").write_text(_CTRL_C_DRIVER)
    outdir = tmp_path / "results"
    run = subprocess.run([sys.executable, str(tmp_path / "driver.py"), str(tmp_path / "c.yaml"), str(tmp_path / "pids.json"),
                          str(outdir), library], check=False, cwd=ROOT, capture_output=True, text=True, timeout=600,
                         start_new_session=True)  # its own process group, like a shell job
    assert run.returncode == 130, run.stderr[-3000:]
    assert "analysis.run: interrupted" in run.stderr
    assert "KeyboardInterrupt" not in run.stderr  # no worker died of it (they leave Ctrl-C to the driver)
    workers = json.loads((tmp_path / "pids.json").read_text())
    assert len(workers) == 2 and all(_pid_gone(pid) for pid in workers)
    assert (outdir / "store" / "cutflow.json").exists()  # the process stage had finished
    assert not (outdir / "histograms.json").exists()  # the score stage never started
    assert not (outdir / ".bsmscan.lock").exists()  # the results folder is free again


# -- poor: a stale model, model folders that point outside themselves --------------------------------
def _tiny_artifact(directory: Path, config) -> Path:
    """A real (untrained) 2-feature network saved as a bsmscan artifact recording ``config``."""
    import jax
    import jax.numpy as jnp

    from nn.artifact import save_artifact
    from nn.model import build_model
    from nn.scaler import Standardizer

    network = build_model([4], "relu", 0.0, 1)
    params = network.init(jax.random.key(0), jnp.zeros((1, 4), jnp.float32))["params"]
    scaler = Standardizer.fit(np.random.default_rng(0).normal(size=(50, 4)))
    metadata = {"network": {"hidden_layers": [4], "activation": "relu", "dropout": 0.0, "n_outputs": 1},
                "feature_names": ["met", "mll"], "input_names": ["met", "mll", "m_slepton", "dm"], "parametrised": True,
                "classes": ["background", "signal"], "signal_points": [[200.0, 75.0]], "scaler": scaler.to_dict(),
                "split": {"fractions": [0.6, 0.2, 0.2], "seed": 0}, "config": config.model_dump(mode="json")}
    return save_artifact(directory, params, metadata)


def test_a_model_trained_on_another_selection_is_refused_unless_allowed(tmp_path, monkeypatch, capsys):
    import yaml

    import analysis.pipeline
    from analysis import run
    from analysis.pipeline import Pipeline
    from analysis.stages.train import StaleModelError, check_model_is_current

    trained = default_config().model_dump(mode="json")
    trained["selection"]["cuts"]["met"] = "met > 200"
    _tiny_artifact(tmp_path / "results" / "model", config_from_dict(trained))
    same = config_from_dict({**trained, "scan": {**trained["scan"], "min_signal": 5.0},  # the scan may change
                             "samples": {**trained["samples"], "cache_dir": str(tmp_path / "elsewhere")}})
    check_model_is_current(tmp_path / "results" / "model", same)
    now = json.loads(json.dumps(trained))
    now["selection"]["cuts"]["met"] = "met > 250"
    with pytest.raises(StaleModelError, match=r"another selection than this config \(selection: cuts.met: met > 200 -> met > 250\)"):
        check_model_is_current(tmp_path / "results" / "model", config_from_dict(now))

    (tmp_path / "now.yaml").write_text(yaml.safe_dump(now))
    assert run.main(["--config", str(tmp_path / "now.yaml"), "--outdir", str(tmp_path / "results"),
                     "--stages", "score,scan", "--executor", "iterative", "--no-progress"]) == 2
    assert "--allow-stale-model" in capsys.readouterr().err
    scored = []
    monkeypatch.setattr(analysis.pipeline, "run_scoring", lambda *a, **k: scored.append(a) or "scores")
    monkeypatch.setattr(analysis.pipeline, "save_histograms", lambda *a: None)
    monkeypatch.setattr(Pipeline, "fileset", lambda self: {})
    pipeline = Pipeline(config_from_dict(now), tmp_path / "results", executor="iterative", allow_stale_model=True)
    assert pipeline.score() == "scores" and len(scored) == 1


@pytest.mark.parametrize(("edit", "message"), [
    ({"weights_file": "../../../etc/passwd"}, "weights_file '../../../etc/passwd' must be a plain file name"),
    ({"weights_file": "/etc/passwd"}, "must be a plain file name"),
    ({"weights_file": "link.msgpack"}, "weights_file 'link.msgpack' points outside the model folder"),
])
def test_a_model_folder_cannot_make_bsmscan_read_outside_it(tmp_path, edit, message):
    from nn.artifact import ArtifactError, load_model

    model = _tiny_artifact(tmp_path / "model", default_config())
    load_model(model)  # the untouched artifact loads
    (tmp_path / "secret.msgpack").write_bytes((model / "weights.msgpack").read_bytes())
    (model / "link.msgpack").symlink_to(tmp_path / "secret.msgpack")
    record = json.loads((model / "model.json").read_text())
    (model / "model.json").write_text(json.dumps({**record, **edit}))
    with pytest.raises(ArtifactError, match=re.escape(message)):
        load_model(model)


@pytest.mark.parametrize("member", ["../outside", "/tmp", "points/../../outside", 7])
def test_model_set_members_must_lie_inside_the_set(tmp_path, member):
    from nn.artifact import ArtifactError, load_model, save_model_set

    _tiny_artifact(tmp_path / "outside", default_config())
    _tiny_artifact(tmp_path / "set" / "points" / "slepton_200_75", default_config())
    save_model_set(tmp_path / "set", {"slepton_200_75": {"m_slepton": 200.0, "dm": 75.0, "path": "points/slepton_200_75"}})
    assert set(load_model(tmp_path / "set").models) == {"slepton_200_75"}
    save_model_set(tmp_path / "set", {"slepton_200_75": {"m_slepton": 200.0, "dm": 75.0, "path": member}})
    with pytest.raises(ArtifactError, match="index.json: member 'slepton_200_75' path"):
        load_model(tmp_path / "set")


# -- poor: an empty signal grid, negative worker counts ---------------------------------------------
def test_an_empty_signal_grid_is_named_before_any_work(tmp_path, monkeypatch, caplog):
    """Without signal the stages that need it are refused (alone) or skipped with a message, up front."""
    from analysis.core.fileset import NoSignalError
    from analysis.pipeline import Pipeline

    data = default_config().model_dump(mode="json")
    data["samples"].update(signal_grid=[], cache_dir=str(tmp_path / "cache"))
    monkeypatch.setattr(Pipeline, "generate", lambda self: pytest.fail("work started"))
    with pytest.raises(NoSignalError, match="samples.signal_grid is empty"):
        Pipeline(config_from_dict(data), tmp_path / "out", executor="iterative").run(("train", "score", "scan"))
    write_ntuple(tmp_path / "bkg.root", 10, 1)
    (tmp_path / "fileset.json").write_text(json.dumps({"WW": {"files": ["bkg.root"], "metadata": {"xsec_pb": 1.0}}}))
    data["samples"]["fileset"] = str(tmp_path / "fileset.json")
    with pytest.raises(NoSignalError, match="has no dataset with is_signal: true"):
        Pipeline(config_from_dict(data), tmp_path / "out", executor="iterative").run(("train",))
    assert not (tmp_path / "cache").exists()
    pipeline = Pipeline(config_from_dict(data), tmp_path / "out", executor="iterative")
    with pytest.raises(pytest.fail.Exception, match="work started"):  # the rest runs, the signal stages do not
        pipeline.run()
    assert set(pipeline.skipped) == {"train", "score", "scan", "fit"}
    assert "train, score, scan, fit skipped" in caplog.text


@pytest.mark.parametrize("command", [
    ["analysis.run"], ["analysis.process"], ["jobs.generate"], ["nn.search"], ["jobs.submit", "--dry-run"],
    ["jobs.batch", "process", "--config", "c.yaml", "--outdir", "o", "--slot", "-1", "--slots"],
])
def test_a_negative_worker_count_is_refused_by_every_command(command, capsys):
    import importlib

    module, *rest = command
    main = importlib.import_module(module).main
    option = [] if module == "jobs.batch" else ["--workers" if module not in ("jobs.submit",) else "--cores"]
    with pytest.raises(SystemExit) as stop:
        main([*rest, *option, "-1"])
    assert stop.value.code == 2
    assert "expected a whole number >= 1, got -1" in capsys.readouterr().err or module == "jobs.batch"


# -- beyond the list: worker errors and a killed worker on a real LocalCluster ----------------------
@pytest.fixture(scope="module")
def local_cluster():
    """Two single-threaded worker processes (as ``--executor dask`` starts them)."""
    from distributed import Client, LocalCluster

    from analysis.core.workers import worker_settings

    with worker_settings(), LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                         dashboard_address=None) as cluster, Client(cluster) as client:
        yield client


@pytest.mark.slow
def test_an_error_raised_in_a_dask_worker_reaches_the_user_as_bsmscan_s_message(tmp_path, local_cluster, capsys):
    from analysis import process
    from processors.processor import InputDataError

    write_ntuple(tmp_path / "nan_mu.root", 300, 5, muon_pt_nan=True)
    fileset = {"d": {"files": {str(tmp_path / "nan_mu.root"): "Events"}, "metadata": {"xsec_pb": 1.0}}}
    with pytest.raises(InputDataError, match=r"nan_mu.root \(entries 0-300\): Muon_pt: 300 "):
        _run(default_config(), tmp_path / "a", fileset, executor="dask", client=local_cluster)
    (tmp_path / "fileset.json").write_text(json.dumps(fileset))
    capsys.readouterr()  # only what the command prints counts
    code = process.main(["--fileset", str(tmp_path / "fileset.json"), "--executor", "dask",
                         "--scheduler", local_cluster.scheduler.address, "--store", str(tmp_path / "b")])
    err = capsys.readouterr().err
    assert code == 2 and "error: non-finite values in" in err and "Muon_pt: 300" in err
    assert "Traceback" not in err and "Failed processing file" not in err


class _KillOnce:
    """A scheduler plugin that SIGKILLs the worker holding the first finished scoring chunk."""

    name = "bsmscan-kill-once"

    def __init__(self, pids: dict[str, int], marker: str):
        self.pids, self.marker, self.killed = pids, marker, None

    def transition(self, key, start, finish, *args, **kwargs):
        if self.killed is None and finish == "memory" and self.marker in str(key):
            worker = kwargs.get("worker")
            if worker in self.pids:
                self.killed = (str(key), worker)
                os.kill(self.pids[worker], signal.SIGKILL)


@pytest.mark.slow
def test_scoring_with_a_worker_killed_mid_run_equals_an_undisturbed_run_byte_for_byte(tmp_path, local_cluster):
    from analysis.stages.score import run_scoring, save_histograms
    from analysis.stages.train import model_points
    from nn.train import train_from_store

    data = _signal_fileset_config(tmp_path)
    data["executor"]["chunksize"] = 100  # 12 chunks
    config = config_from_dict(data)
    from analysis.core.fileset import load_fileset

    fileset = load_fileset(tmp_path / "fileset.json")
    _run(config, tmp_path / "store", fileset)
    train_from_store(tmp_path / "store", tmp_path / "model", config, verbose=False)
    points = model_points(tmp_path / "model")

    def score(name: str) -> bytes:
        result = run_scoring(config, tmp_path / "model", fileset, points, executor="dask", client=local_cluster)
        return save_histograms(tmp_path / name, result).read_bytes()

    undisturbed = score("undisturbed.json")
    pids = local_cluster.run(os.getpid)
    plugin = _KillOnce(pids, "ChunkGuard")
    local_cluster.cluster.scheduler.add_plugin(plugin)
    try:
        disturbed = score("disturbed.json")
    finally:
        local_cluster.cluster.scheduler.remove_plugin(name=plugin.name)
    assert plugin.killed is not None, "no worker was killed"
    local_cluster.wait_for_workers(2, timeout=120)
    assert set(local_cluster.run(os.getpid).values()) != set(pids.values())  # the nanny started a new worker
    assert json.loads(undisturbed)["n_events"] == {"bkg": 600, "sig": 600}
    assert disturbed == undisturbed


# -- beyond the list: a bad-input suite over every input kind, through the command line -------------
def _bad_inputs(base: Path) -> dict[str, tuple[dict | str, str]]:
    """name -> (fileset JSON or its raw text, expected message): each a different input mistake."""
    _, truncated, corrupt = _truncated_and_corrupt(base)  # and good.root
    write_ntuple(base / "nan.root", 40, 2, met_nan_at=3)
    (base / "text.root").write_text("this is not a ROOT file")
    (base / "text.parquet").write_text("nor a Parquet file")
    with uproot.recreate(base / "no_muons.root") as file:
        file.mktree("Events", {"MET_pt": np.float32, "genWeight": np.float32}).extend(
            {"MET_pt": np.zeros(5, np.float32), "genWeight": np.ones(5, np.float32)})
    with uproot.recreate(base / "other_tree.root") as file:
        file.mktree("Tree", {"x": np.float32}).extend({"x": np.zeros(5, np.float32)})
    sim = {"xsec_pb": 1.0}
    return {
        "not JSON": ("{'d': [1,", "is not valid JSON"),
        "a list": ("[1, 2]", "must be a non-empty mapping of dataset -> files"),
        "no files": ({"d": {"metadata": sim}}, "dataset 'd': no 'files'"),
        "files a number": ({"d": {"files": 7, "metadata": sim}}, "'files' must be a list of paths or a mapping"),
        "metadata a list": ({"d": {"files": ["good.root"], "metadata": [1]}}, "'metadata' must be a mapping"),
        "no cross section": ({"d": {"files": ["good.root"]}}, "simulation needs 'xsec_pb'"),
        "missing file": ({"d": {"files": ["absent.root"], "metadata": sim}}, "absent.root: file not found"),
        "text as ROOT": ({"d": {"files": ["text.root"], "metadata": sim}}, "text.root: not a readable ROOT file"),
        "text as Parquet": ({"d": {"files": ["text.parquet"], "metadata": sim}}, "text.parquet: not a readable Parquet file"),
        "missing branch": ({"d": {"files": ["no_muons.root"], "metadata": sim}}, "no_muons.root: missing branch(es)"),
        "other tree": ({"d": {"files": ["other_tree.root"], "metadata": sim}}, "other_tree.root: no tree 'Events'"),
        "truncated": ({"d": {"files": [truncated.name], "metadata": sim}}, "truncated.root: truncated ROOT file"),
        "corrupt basket": ({"d": {"files": [corrupt.name], "metadata": sim}}, "corrupt.root: read error in entries"),
        "NaN MET": ({"d": {"files": ["nan.root"], "metadata": sim}}, "nan.root (entries 0-40): MET_pt: 1"),
    }


_BAD_CASES = ["not JSON", "a list", "no files", "files a number", "metadata a list", "no cross section", "missing file",
              "text as ROOT", "text as Parquet", "missing branch", "other tree", "truncated", "corrupt basket", "NaN MET"]


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory):
    base = tmp_path_factory.mktemp("bad_inputs")
    return base, _bad_inputs(base)


@pytest.mark.parametrize("case", _BAD_CASES)
def test_every_bad_fileset_input_is_one_named_error_with_exit_2(bad_inputs, case, capsys, tmp_path):
    from analysis import process

    base, cases = bad_inputs
    fileset, message = cases[case]
    path = base / f"{case.replace(' ', '_')}.json"
    path.write_text(fileset if isinstance(fileset, str) else json.dumps(fileset))
    capsys.readouterr()
    code = process.main(["--fileset", str(path), "--executor", "iterative", "--store", str(tmp_path / "store")])
    err = capsys.readouterr().err
    assert code == 2, err[-2000:]
    assert message in err and [line.startswith("error: ") for line in err.splitlines()].count(True) == 1
    assert "Traceback" not in err


@pytest.mark.parametrize(("text", "message"), [
    ("name: [unclosed", "is not valid YAML"),
    ("- a\n- list\n", "the top level must be a mapping, got list"),
    ("samples: {signal_grid: []}\nluminosty_fb: 100\n", "luminosty_fb: Extra inputs are not permitted"),
    ("samples: !!python/object/apply:os.system ['echo pwned']\n", "is not valid YAML"),
])
def test_every_bad_config_is_one_named_error_with_exit_2(tmp_path, text, message, capsys):
    from analysis import process

    (tmp_path / "c.yaml").write_text(text)
    assert process.main(["--config", str(tmp_path / "c.yaml"), "--store", str(tmp_path / "store")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and "pwned" not in capsys.readouterr().out
