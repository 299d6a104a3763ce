"""HTCondor without a pool: the Dask worker job script and the batch DAG parse with the htcondor2
bindings and carry the configured resources; the condor executor is wired to the config's cluster
section; the DAG lists every node with its parents; the local runner honours dependencies,
retries and failures."""

from __future__ import annotations

import re
import sys
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import htcondor2
import pytest
import yaml

from analysis.core.config import (
    ClusterConfig,
    ConfigError,
    config_from_dict,
    default_config,
    default_config_text,
)
from tests.conftest import small_config

LCG_SETUP = "source /cvmfs/sft.cern.ch/lcg/views/LCG_106/x86_64-el9-gcc13-opt/setup.sh"


def _lxplus_cluster(tmp_path: Path, **overrides) -> ClusterConfig:
    settings = dict(cores=4, memory="6 GB", disk="12 GB", submit_directives={"+JobFlavour": '"longlunch"'},
                    prologue=[LCG_SETUP], log_directory=tmp_path / "logs", worker_ports="10000:10100")
    settings.update(overrides)
    return ClusterConfig(**settings)


# -- Dask on HTCondor ----------------------------------------------------------------------------
def test_worker_job_script_parses_and_carries_the_requested_resources(tmp_path):
    from analysis.core.condor import job_script

    submit = htcondor2.Submit(job_script(_lxplus_cluster(tmp_path)))
    assert submit["MY.DaskWorkerCores"] == "4"
    assert submit["MY.DaskWorkerMemory"] == str(6 * 10**9)
    assert submit["MY.DaskWorkerDisk"] == str(12 * 10**9)
    assert submit["RequestCpus"] == "MY.DaskWorkerCores"
    assert submit["MY.JobFlavour"] == '"longlunch"'
    assert submit["LogDirectory"] == str(tmp_path / "logs")
    arguments = submit["Arguments"]
    # the prologue runs first, then the project goes on PYTHONPATH, then 4 single-threaded workers start
    assert arguments.index(LCG_SETUP) < arguments.index("export PYTHONPATH=") < arguments.index("distributed.cli.dask_worker")
    assert "--nworkers 4" in arguments and "--nthreads 1" in arguments
    assert "--worker-port 10000:10100" in arguments and "--local-directory $_CONDOR_SCRATCH_DIR" in arguments
    # shared filesystem: only the cluster's TLS certificates are shipped (see tests/test_reliability.py)
    assert all(Path(f.strip()).name.startswith("bsmscan-tls-") for f in submit["transfer_input_files"].split(","))


def test_cluster_is_built_from_the_config_without_submitting_jobs(tmp_path):
    from dask_jobqueue import HTCondorCluster

    from analysis.core.condor import htcondor_cluster

    cluster = htcondor_cluster(_lxplus_cluster(tmp_path, processes=2, scheduler_host="127.0.0.1"))
    try:
        assert isinstance(cluster, HTCondorCluster)
        assert cluster.scheduler_address.startswith("tls://127.0.0.1:")  # TLS, see tests/test_reliability.py
        assert not cluster.worker_spec and not cluster.workers  # no scale(): no job submitted
        assert "--nworkers 2" in cluster.job_script() and "--nthreads 2" in cluster.job_script()
        assert ":8787/" not in cluster.dashboard_link  # dashboard_port: null binds no fixed port
    finally:
        cluster.close()


@pytest.mark.parametrize("ship", ["wheel", "packed_env"])
def test_a_wheel_or_packed_environment_is_shipped_with_each_worker_job(tmp_path, ship):
    from analysis.core.condor import job_script

    shipped = tmp_path / ("bsmscan-0.1.0-py3-none-any.whl" if ship == "wheel" else "env.tar.gz")
    shipped.write_bytes(b"")
    submit = htcondor2.Submit(job_script(_lxplus_cluster(tmp_path, ship=ship, ship_file=shipped,
                                                         transfer_input_files=["/etc/hostname"])))
    # then the cluster's TLS certificates (tests/test_reliability.py)
    assert submit["transfer_input_files"].startswith(f"{shipped}, /etc/hostname, ")
    assert submit["should_transfer_files"] == "YES"
    arguments = submit["Arguments"]
    if ship == "wheel":
        assert f"python3 -m pip install --quiet --no-deps --no-index --target _bsmscan {shipped.name}" in arguments
        assert "export PYTHONPATH=$PWD/_bsmscan" in arguments and " python3 -m distributed.cli.dask_worker" in arguments
    else:
        assert f"tar -xzf {shipped.name} -C _bsmscan_env" in arguments and ". _bsmscan_env/bin/activate" in arguments
        assert " python -m distributed.cli.dask_worker" in arguments


def test_cluster_section_is_validated_with_the_field_named():
    base = default_config().model_dump(mode="json")
    for cluster, message in [
        ({"memory": "plenty"}, "cluster.memory: memory must be a size"),
        ({"submit_directives": {"executable": "/bin/true"}}, "'executable' is set by bsmscan itself"),
        ({"submit_directives": {"+JobFlavour": '"a"\nqueue 100'}}, "must be one line"),
        ({"ship": "packed_env"}, "ship: packed_env needs ship_file"),
        ({"adaptive": {"minimum": 3, "maximum": 1}}, "adaptive minimum (3) is above the maximum (1)"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(message)):
            config_from_dict({**base, "cluster": cluster})
    assert default_config().executor.name in ("dask", "condor")
    assert "cluster" in yaml.safe_load(default_config_text())  # the documented section parses


def test_condor_executor_builds_its_cluster_from_the_config_and_runs_coffea_on_dask(monkeypatch, tmp_path):
    """``client_for("condor")`` and ``Pipeline.run`` open the HTCondorCluster of ``config.cluster``
    (here replaced by an in-process Dask cluster) and coffea gets a DaskExecutor on its client."""
    from coffea.processor import DaskExecutor
    from distributed import LocalCluster

    import analysis.core.executors
    from analysis.core.executors import client_for, coffea_executor
    from analysis.pipeline import Pipeline

    opened = []

    @contextmanager
    def fake_condor_cluster(cluster_config):
        opened.append(cluster_config)
        with LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster:
            yield cluster

    monkeypatch.setattr(analysis.core.executors, "condor_cluster", fake_condor_cluster)
    config = default_config().model_copy(update={"cluster": ClusterConfig(cores=2, jobs=3)})
    with client_for("condor", cluster_config=config.cluster) as client:
        assert client.submit(sum, [1, 2]).result() == 3
        assert isinstance(coffea_executor("condor", client=client), DaskExecutor)
    assert opened == [config.cluster]
    with pytest.raises(ValueError, match="cluster section"):
        client_for("condor")

    seen = []
    def process(self):  # stands in for the selection stage: records the client, keeps some signal
        seen.append(self.run_options["client"])
        self.processing = SimpleNamespace(signal_selected=1)

    monkeypatch.setattr(Pipeline, "process", process)
    Pipeline(config, tmp_path, executor="condor").run(("process",))
    assert len(opened) == 2 and opened[1] is config.cluster and seen[0] is not None


def test_condor_executor_off_a_submit_node_stops_at_once_with_a_clear_error(tmp_path, monkeypatch, capsys):
    from analysis import run

    monkeypatch.setenv("PATH", str(tmp_path))  # no condor_submit here
    config_path = _write_config(default_config(), tmp_path / "c.yaml")
    assert run.main(["--executor", "condor", "--config", str(config_path), "--outdir", str(tmp_path / "out"),
                     "--stages", "process", "--no-progress"]) == 2
    assert "condor_submit is not on PATH" in capsys.readouterr().err


# -- the batch DAG ---------------------------------------------------------------------------------
def _dag_config(tmp_path: Path, **cluster):
    config = small_config(tmp_path / "cache")  # 2 signal points + WW, WZ, ZZ; 800 events per generation job
    settings = {"cores": 2, "memory": "3 GB", "disk": "5 GB", "request_gpus": 1,
                "submit_directives": {"+JobFlavour": '"workday"'}, "prologue": [LCG_SETUP]}
    settings.update(cluster)
    return config.model_copy(update={"cluster": ClusterConfig(**settings),
                                     "executor": config.executor.model_copy(update={"chunksize": 500})})


def _write_config(config, path: Path) -> Path:
    path.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))  # cut order matters
    return path


def _parse_dag_text(text: str) -> tuple[dict[str, str], dict[str, set[str]]]:
    """An independent reading of the DAG text: node -> submit file, node -> parents (a PARENT line
    may come before the JOB lines of its children, as htcondor2.dags writes them)."""
    submit_files, parents = {}, {}
    for line in text.splitlines():
        words = line.split()
        if words[:1] == ["JOB"]:
            submit_files[words[1]] = words[2]
        elif words[:1] == ["PARENT"]:
            split = words.index("CHILD")
            for child in words[split + 1:]:
                parents.setdefault(child, set()).update(words[1:split])
    assert set(parents) <= set(submit_files) and set().union(*parents.values()) <= set(submit_files)
    return submit_files, {name: parents.get(name, set()) for name in submit_files}


def test_dry_run_writes_a_dag_with_every_node_and_its_parents(tmp_path, capsys):
    from jobs import submit
    from jobs.plan import file_chunk_ranges
    from jobs.samples import jobs_from_config

    config = _dag_config(tmp_path)
    assert submit.main(["--config", str(_write_config(config, tmp_path / "c.yaml")), "--outdir", str(tmp_path / "out"),
                        "--dry-run"]) == 0
    dag_dir = tmp_path / "out" / "condor"
    submit_files, parents = _parse_dag_text((dag_dir / "bsmscan.dag").read_text())

    generation_jobs = jobs_from_config(config)  # 1200 / 800 -> 2 jobs per signal point, 2 per background
    n_chunks = sum(len(file_chunk_ranges(job.n_events, 500)) for job in generation_jobs)
    by_kind = lambda kind: sorted(n for n in submit_files if re.fullmatch(rf"{kind}_\d{{4}}", n))
    generate = sorted(n for n in submit_files if n.startswith("generate_"))
    assert len(generation_jobs) == 10 and len(generate) == 10
    assert generate == sorted(f"generate_{job.stem}" for job in generation_jobs)
    # coffea cuts an 800-event file into round(800 / 500) = 2 chunks and a 400-event file into 1:
    # signal 2 x (800 + 400), backgrounds 3 x (800 + 800) -> 2 x 3 + 3 x 4 = 18 chunks, one node each
    assert n_chunks == 18 and len(by_kind("process")) == len(by_kind("score")) == 18
    assert len(submit_files) == 10 + 1 + 1 + 2 * 18 + 2 + 1 + 1 + 1 + 1  # + merge_samples, plan, merges, train, scan, fit, report

    def single(node):
        return {node}

    assert all(not parents[n] for n in generate)
    assert parents["merge_samples"] == set(generate)
    assert parents["plan"] == single("merge_samples")
    assert all(parents[n] == single("plan") for n in by_kind("process"))
    assert parents["merge_process"] == set(by_kind("process"))
    assert parents["train"] == single("merge_process")
    assert all(parents[n] == single("train") for n in by_kind("score"))
    assert parents["merge_score"] == set(by_kind("score"))
    assert parents["scan"] == single("merge_score")
    assert parents["fit"] == single("scan")
    assert parents["report"] == single("fit")  # the scan slices the control histograms of the score pass; then the fits
    assert not any("control" in n for n in submit_files)

    # every submit file parses, carries the resources, the flavour and (train only) the GPU
    for path in sorted(dag_dir.glob("*.sub")):
        description = htcondor2.Submit(path.read_text())
        assert description["request_cpus"] == "2" and description["request_memory"] == str(3 * 10**9 // 2**20)
        assert description["MY.JobFlavour"] == '"workday"'
        assert description["executable"] == str(dag_dir / "bsmscan_job.sh")
        assert ("request_gpus" in description) == (path.name == "train.sub"), path.name
    assert {Path(p).name for p in submit_files.values()} == {p.name for p in dag_dir.glob("*.sub")}
    wrapper = (dag_dir / "bsmscan_job.sh").read_text()
    assert LCG_SETUP in wrapper and f'exec {sys.executable} "$@"' in wrapper
    assert yaml.safe_load((dag_dir / "analysis.yaml").read_text())["samples"]["cache_dir"] == str((tmp_path / "cache").resolve())
    captured = capsys.readouterr()
    assert f"DAG {dag_dir / 'bsmscan.dag'}: 54 nodes (generate 10, merge-samples 1, plan 1, process 18" in captured.err
    assert "condor_submit_dag -usedagdir bsmscan.dag" in captured.out


def test_dag_node_commands_are_the_batch_steps_with_their_slots(tmp_path):
    from jobs.dag import build_workflow, write_workflow
    from jobs.dag_local import node_command, read_dag

    config = _dag_config(tmp_path, chunk_jobs=3)
    dag = read_dag(write_workflow(build_workflow(config), config, tmp_path / "out", tmp_path / "dag"))
    assert sum(name.startswith("process_") for name in dag.nodes) == 3  # capped by cluster.chunk_jobs
    command = node_command(dag, "process_0002")
    config_path, outdir = str(tmp_path / "dag" / "analysis.yaml"), str((tmp_path / "out").resolve())
    assert command.arguments == ["-m", "jobs.batch", "process", "--config", config_path, "--outdir", outdir,
                                 "--slot", "2", "--slots", "3"]
    assert command.error == tmp_path / "dag" / "logs" / "process_0002.err"
    from jobs.samples import jobs_from_config

    second_ww = [job for job in jobs_from_config(config) if job.sample.name == "WW"][1]
    assert node_command(dag, f"generate_{second_ww.stem}").arguments[-2:] == ["--job", second_ww.stem]
    assert node_command(dag, "merge_score").arguments[-2:] == ["--slots", "3"]
    assert dag.retries["score_0000"] == config.cluster.retries and "train" not in dag.retries


def test_stage_subsets_and_user_filesets_leave_out_what_is_not_needed(tmp_path):
    from jobs.dag import build_workflow

    config = _dag_config(tmp_path)
    steps = [node.step for node in build_workflow(config, ("score", "scan", "report"), slots=2).nodes]
    assert steps == ["score", "score", "merge-score", "scan", "report"]
    first = build_workflow(config, ("score", "scan"), slots=2).nodes[0]
    assert first.parents == ()  # the earlier stages' outputs are already there
    user = config.model_copy(update={"samples": config.samples.model_copy(update={"fileset": tmp_path / "none.json"})})
    assert build_workflow(user, slots=4).nodes[0].step == "plan"


def test_submitting_without_a_schedd_fails_with_a_clear_message(tmp_path, capsys):
    from jobs import submit

    config_path = _write_config(_dag_config(tmp_path), tmp_path / "c.yaml")
    assert submit.main(["--config", str(config_path), "--outdir", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert "no HTCondor schedd is reachable" in error and "condor_submit_dag" in error and "--local" in error
    assert (tmp_path / "out" / "condor" / "bsmscan.dag").exists()


def test_condor_argument_quoting_round_trips_through_htcondor2():
    from jobs.dag import Var, condor_arguments
    from jobs.dag_local import unquote_arguments

    args = ["-m", "jobs.batch", "--config", "/path with space/it's.yaml", 'say "hi"', ""]
    quoted = condor_arguments(args + ["--slot", Var("slot")])
    assert quoted == '"-m jobs.batch --config \'/path with space/it\'\'s.yaml\' \'say ""hi""\' \'\' --slot $(slot)"'
    submit = htcondor2.Submit({"arguments": quoted, "slot": "7"})  # read back as condor_submit reads it
    assert unquote_arguments(submit.expand("arguments")) == args + ["--slot", "7"]
    assert unquote_arguments("\"a '' b\"") == ["a", "", "b"]


@pytest.mark.parametrize("bad", ["two\nlines", "carriage\rreturn", "tab\there", "$(HOME)/x", "nul\x00"])
def test_values_for_submit_files_must_be_one_line_and_hold_no_macro(bad):
    from jobs.dag import DagError, condor_arguments, literal_path

    with pytest.raises(DagError, match="the job argument"):
        condor_arguments(["--outdir", bad])
    with pytest.raises(DagError, match="the DAG directory"):
        literal_path(f"/tmp/{bad}", "the DAG directory")


def test_a_name_with_a_newline_and_a_submit_command_is_refused_by_the_config(tmp_path):
    data = default_config().model_dump(mode="json")
    for name in ("demo\narguments = -c 'import os; os.system(\"touch /tmp/pwned\")'", "demo\n", "my analysis",
                 "../x", "-rf", "x" * 101, ""):
        data["name"] = name
        with pytest.raises(ConfigError, match=r"name: the name must be 1-100 letters, digits"):
            config_from_dict(data)
    data["name"] = "slepton-demo_v2.1"
    assert config_from_dict(data).name == "slepton-demo_v2.1"
    from jobs.dag import DagError, build_workflow, write_workflow

    sneaked = _dag_config(tmp_path).model_copy(update={"name": "x\narguments = evil"})  # model_copy skips validation
    with pytest.raises(DagError, match=r"the analysis name 'x\\narguments = evil' must match"):
        write_workflow(build_workflow(sneaked, slots=1), sneaked, tmp_path / "out", tmp_path / "dag")
    assert not (tmp_path / "dag").exists()
    data["cluster"] = {"prologue": ["source a.sh\narguments = evil"]}
    with pytest.raises(ConfigError, match=r"cluster.prologue: every prologue entry must be one line"):
        config_from_dict(data)


def test_paths_with_blanks_and_quotes_are_quoted_in_the_submit_files(tmp_path):
    from jobs.dag import build_workflow, write_workflow
    from jobs.dag_local import node_command, read_dag

    config = _dag_config(tmp_path, chunk_jobs=2)
    outdir, dag_dir = tmp_path / "my results" / 'it\'s "here"', tmp_path / "dag dir"
    dag = read_dag(write_workflow(build_workflow(config, ("score", "scan")), config, outdir, dag_dir))
    score = htcondor2.Submit((dag_dir / "score.sub").read_text())
    assert score["executable"] == str(dag_dir / "bsmscan_job.sh")
    assert score["arguments"] == (f'"-m jobs.batch score --config \'{dag_dir}/analysis.yaml\' --outdir '
                                  f'\'{tmp_path}/my results/it\'\'s ""here""\' --slot $(slot) --slots $(slots)"')
    command = node_command(dag, "score_0001")
    assert command.arguments == ["-m", "jobs.batch", "score", "--config", str(dag_dir / "analysis.yaml"),
                                 "--outdir", str(outdir), "--slot", "1", "--slots", "2"]
    assert command.output == dag_dir / "logs" / "score_0001.out"
    dag_text = (dag_dir / "bsmscan.dag").read_text()
    assert str(tmp_path) not in dag_text  # the DAG names its files relative to its own directory


@pytest.mark.parametrize("outdir", ["out\narguments = evil", "out$(DOLLAR)x"])
def test_submit_dry_run_refuses_a_value_that_cannot_go_into_a_submit_file(tmp_path, capsys, outdir):
    from jobs import submit

    config_path = _write_config(_dag_config(tmp_path), tmp_path / "c.yaml")
    assert submit.main(["--config", str(config_path), "--outdir", str(tmp_path / outdir), "--dry-run"]) == 2
    error = capsys.readouterr().err
    assert "error: the results directory (--outdir)" in error and "Traceback" not in error
    assert not list(tmp_path.rglob("*.sub"))  # nothing written


def test_submit_dry_run_refuses_an_injected_name_with_exit_code_2(tmp_path, capsys):
    from jobs import submit

    data = _dag_config(tmp_path).model_dump(mode="json")
    data["name"] = "demo\narguments = -c 'import os; os.system(\"touch pwned\")'"
    config_path = tmp_path / "c.yaml"
    config_path.write_text(yaml.safe_dump(data, sort_keys=False))
    assert submit.main(["--config", str(config_path), "--outdir", str(tmp_path / "out"), "--dry-run"]) == 2
    error = capsys.readouterr().err
    assert f"invalid analysis config {config_path}" in error and "name: the name must be" in error
    assert not (tmp_path / "out").exists()


def test_the_lxplus_example_is_the_default_analysis_with_a_site_cluster_section(tmp_path):
    from analysis.core.condor import job_script
    from analysis.core.config import load_config
    from jobs.dag import build_workflow, write_workflow

    example = load_config(Path(__file__).resolve().parents[1] / "condor" / "example-lxplus.yaml")
    default = default_config().model_dump(mode="json")
    differing = [key for key, value in example.model_dump(mode="json").items() if value != default[key]]
    assert set(differing) <= {"samples", "executor", "cluster"} and example.executor.name == "condor"
    worker = htcondor2.Submit(job_script(example.cluster.model_copy(update={"log_directory": tmp_path})))
    assert worker["MY.JobFlavour"] == '"longlunch"' and worker["MY.WantOS"] == '"el9"'
    assert worker["MY.DaskWorkerCores"] == "4" and "--nworkers 4" in worker["Arguments"]
    dag = write_workflow(build_workflow(example, slots=2), example, tmp_path / "out", tmp_path / "dag")
    train = htcondor2.Submit((dag.parent / "train.sub").read_text())
    assert train["request_gpus"] == "1" and train["MY.JobFlavour"] == '"longlunch"'


# -- the local runner ------------------------------------------------------------------------------
def _tiny_dag(tmp_path: Path, programs: dict[str, str], parents: dict[str, list[str]], retries: dict[str, int]) -> Path:
    from dask_jobqueue.htcondor import quote_arguments

    lines = []
    for name, program in programs.items():
        (tmp_path / f"{name}.sub").write_text(
            f'executable = /bin/sh\narguments = "{quote_arguments(["-c", program])}"\n'
            f"output = {tmp_path}/logs/$(nodename).out\nerror = {tmp_path}/logs/$(nodename).err\nqueue\n"
        )
        lines += [f"JOB {name} {name}.sub", f'VARS {name} nodename="{name}"']
    lines += [f"PARENT {' '.join(ps)} CHILD {child}" for child, ps in parents.items()]
    lines += [f"RETRY {name} {n}" for name, n in retries.items()]
    dag = tmp_path / "t.dag"
    dag.write_text("\n".join(lines) + "\n")
    return dag


def test_local_runner_follows_dependencies_retries_and_stops_below_a_failure(tmp_path):
    from jobs.dag_local import run_dag_locally

    stamp = tmp_path / "order.txt"
    append = lambda text: f"open({str(stamp)!r}, 'a').write({text!r})"
    flaky = tmp_path / "flaky"
    programs = {
        "a": append("a"),
        "b": append("b"),
        "c": append("c"),  # after a and b
        "flaky": f"import os, sys; p = {str(flaky)!r}; ok = os.path.exists(p); open(p, 'w'); sys.exit(0 if ok else 3)",
        "broken": "import sys; print('bad input X'); sys.exit('merge refused: chunk X missing')",
        "after_broken": append("never"),
        "below_after_broken": append("never"),
        "beside_broken": "pass",  # not below the failure: runs
        # killed (SIGKILL, as by the OOM killer) on its first attempt: retried like any failure
        "killed": f"import os; p = {str(tmp_path / 'killed')!r}; ok = os.path.exists(p); open(p, 'w'); "
                  "ok or os.kill(os.getpid(), 9)",
    }
    parents = {"c": ["a", "b"], "broken": ["c", "flaky"], "after_broken": ["broken"],
               "below_after_broken": ["after_broken", "flaky"], "beside_broken": ["flaky"]}
    run = run_dag_locally(_tiny_dag(tmp_path, programs, parents, {"flaky": 1, "killed": 1}), cores=2)
    assert stamp.read_text() in ("abc", "bac")
    assert set(run.done) == {"a", "b", "c", "flaky", "beside_broken", "killed"}
    assert list(run.failed) == ["broken"] and "chunk X missing" in run.failed["broken"]
    assert run.not_run == ["after_broken", "below_after_broken"] and not run.ok
    assert (tmp_path / "logs" / "broken.out").read_text().strip() == "bad input X"


def test_local_runner_refuses_a_cycle_and_an_unknown_node(tmp_path):
    from jobs.dag import DagError
    from jobs.dag_local import run_dag_locally

    with pytest.raises(DagError, match="the DAG has a cycle"):
        run_dag_locally(_tiny_dag(tmp_path, {"a": "pass", "b": "pass"}, {"a": ["b"], "b": ["a"]}, {}))
    with pytest.raises(DagError, match=r"t.dag:\d+: unknown node 'z'"):
        run_dag_locally(_tiny_dag(tmp_path, {"a": "pass"}, {"a": ["z"]}, {}))
