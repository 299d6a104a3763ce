"""The batch workflow as a DAG: its nodes, the DAGMan and submit files, and reading them back.

:func:`build_workflow` lays out the nodes of a config's analysis; :func:`write_workflow`
renders them from the templates in ``condor/`` into a directory: ``bsmscan.dag`` (DAGMan),
one submit description per step (``<step>.sub``), the job wrapper ``bsmscan_job.sh`` (the
environment set-up of ``cluster.prologue`` / ``cluster.ship``, then Python), a frozen copy of
the config (``analysis.yaml``) and ``logs/``. :func:`read_dag` parses a DAG file and
:func:`node_command` a node's command line from its submit file and VARS, which is what the
local runner (``jobs/dag_local.py``) executes.

DAG shape (``S`` chunk nodes per chunked stage)::

    generate_<stem> (one per sample x chunk)  ->  merge_samples  ->  plan
    plan  ->  process_0000 .. process_<S-1>  ->  merge_process  ->  train
    train  ->  score_0000 .. score_<S-1>  ->  merge_score  ->  scan
    scan  ->  control_0000 .. control_<S-1>  ->  merge_control  ->  report

The chunks do not exist when the DAG is written (the samples are not generated yet), so a
chunk node is not tied to a chunk: the ``plan`` node writes the chunk list once the inputs
exist, and node ``i`` of ``S`` takes chunks ``i, i + S, i + 2S ...`` of it. ``S`` defaults to
the number of chunks the config will give (exact for generated samples, whose event counts
are known; counted from the files for a user fileset), i.e. one chunk per node, and
``cluster.chunk_jobs`` caps it.
"""

from __future__ import annotations

import re
import shlex
import string
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from analysis.core.config import AnalysisConfig, ClusterConfig
from analysis.core.errors import UserError

from .batch import CHUNK_STEPS, MERGE_STEPS, STEPS

PROJECT_ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = PROJECT_ROOT / "condor"
DAG_NAME = "bsmscan.dag"
WRAPPER_NAME = "bsmscan_job.sh"
CONFIG_NAME = "analysis.yaml"

#: The analysis stages (as ``python -m analysis.run --stages``) and the batch steps of each, in order.
STAGE_STEPS = {
    "generate": ("generate", "merge-samples"),
    "process": ("plan", "process", "merge-process"),
    "train": ("train",),
    "score": ("score", "merge-score"),
    "scan": ("scan", "control", "merge-control"),
    "report": ("report",),
}
STAGES = tuple(STAGE_STEPS)


class DagError(UserError, ValueError):
    """A malformed workflow or DAG file; the message names the node or line."""


class _Template(string.Template):
    """``@{name}`` placeholders, so that HTCondor's ``$(macro)`` and shell ``$VAR`` pass through."""

    delimiter = "@"


def render_template(template: str, /, **values) -> str:
    """The template ``condor/<template>`` with its ``@{...}`` placeholders filled."""
    path = TEMPLATES / template
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise DagError(f"template {path} not found: run jobs.submit from a bsmscan checkout") from None
    return _Template(text).substitute(**{key: str(value) for key, value in values.items()})


@dataclass(frozen=True)
class Node:
    """One DAG node: it runs batch ``step`` with ``variables`` (DAG VARS) after its ``parents``."""

    name: str
    step: str
    variables: tuple[tuple[str, str], ...] = ()
    parents: tuple[str, ...] = ()
    retries: int = 0


@dataclass
class Workflow:
    """The nodes of a batch run, each listed after its parents."""

    nodes: list[Node] = field(default_factory=list)
    slots: int = 1

    def __post_init__(self):
        seen: set[str] = set()
        for node in self.nodes:
            if node.name in seen:
                raise DagError(f"node {node.name} is defined twice")
            unknown = [parent for parent in node.parents if parent not in seen]
            if unknown:
                raise DagError(f"node {node.name} comes before its parent(s) {unknown}")
            if node.step not in STEPS:
                raise DagError(f"node {node.name}: unknown step {node.step!r}")
            seen.add(node.name)

    def steps(self) -> list[str]:
        """The batch steps the workflow uses, in order of first use."""
        return list(dict.fromkeys(node.step for node in self.nodes))

    def by_step(self, step: str) -> list[Node]:
        """The nodes that run ``step``."""
        return [node for node in self.nodes if node.step == step]


def node_name(step: str, suffix: str | None = None) -> str:
    """A DAG node name: the step with ``_`` for ``-``, plus a suffix (``process_0003``)."""
    base = step.replace("-", "_")
    return base if suffix is None else f"{base}_{suffix}"


def predicted_chunk_count(config: AnalysisConfig) -> int:
    """How many chunks the plan will hold: exact for generated samples (their sizes are known);
    for a user fileset counted from its files (a file that cannot be opened here counts once)."""
    from .plan import file_chunk_ranges, file_entries

    chunksize = config.executor.chunksize
    if config.samples.fileset is None:
        from .samples import jobs_from_config

        return sum(len(file_chunk_ranges(job.n_events, chunksize)) for job in jobs_from_config(config))
    from analysis.core.fileset import file_format, load_fileset

    count = 0
    for entry in load_fileset(config.samples.fileset).values():
        for path, tree in entry["files"].items():
            try:
                count += len(file_chunk_ranges(file_entries(path, tree, file_format(path))[0], chunksize))
            except Exception:  # unreadable here (or on a remote site): one node's worth
                count += 1
    return max(count, 1)


def build_workflow(config: AnalysisConfig, stages=STAGES, slots: int | None = None) -> Workflow:
    """The DAG nodes of ``stages`` (in analysis order) for ``config``, with ``slots`` chunk nodes per
    chunked stage (default: ``cluster.chunk_jobs`` capped at the predicted number of chunks).

    A stage's first nodes depend on the previous included stage's last node; leaving a stage
    out assumes its outputs already exist in the results directory.
    """
    unknown = [stage for stage in stages if stage not in STAGE_STEPS]
    if unknown:
        raise DagError(f"unknown stage(s) {unknown}; stages are {', '.join(STAGES)}")
    if slots is None:
        predicted = predicted_chunk_count(config)
        slots = min(predicted, config.cluster.chunk_jobs) if config.cluster.chunk_jobs else predicted
    if slots < 1:
        raise DagError(f"the number of chunk nodes must be >= 1 (got {slots})")
    retries = config.cluster.retries
    nodes: list[Node] = []
    previous: tuple[str, ...] = ()
    for stage in STAGES:
        if stage not in stages or (stage == "generate" and config.samples.fileset is not None):
            continue  # a user fileset has nothing to generate
        for step in STAGE_STEPS[stage]:
            if step == "generate":
                from .samples import jobs_from_config

                fanned = [Node(node_name(step, job.stem), step, (("job", job.stem),), previous, retries)
                          for job in jobs_from_config(config)]
            elif step in CHUNK_STEPS:
                fanned = [Node(node_name(step, f"{slot:04d}"), step, (("slot", str(slot)), ("slots", str(slots))),
                               previous, retries) for slot in range(slots)]
            else:
                variables = (("slots", str(slots)),) if step in MERGE_STEPS else ()
                fanned = [Node(node_name(step), step, variables, previous, 0)]
            nodes += fanned
            previous = tuple(node.name for node in fanned)
    return Workflow(nodes, slots)


# -- writing ----------------------------------------------------------------------------------
def _condor_quote(args: list[str]) -> str:
    from dask_jobqueue.htcondor import quote_arguments

    return quote_arguments(args)


def _step_arguments(step: str, config_path: Path, outdir: Path) -> list[str]:
    args = ["-m", "jobs.batch", step, "--config", str(config_path), "--outdir", str(outdir)]
    if step == "generate":
        args += ["--job", "$(job)"]
    elif step in CHUNK_STEPS:
        args += ["--slot", "$(slot)", "--slots", "$(slots)"]
    elif step in MERGE_STEPS:
        args += ["--slots", "$(slots)"]
    return args


def submit_description(step: str, config: AnalysisConfig, config_path: Path, outdir: Path, dag_dir: Path) -> str:
    """The submit description of ``step`` (``condor/batch_step.sub`` filled in)."""
    from dask.utils import parse_bytes

    from analysis.core.condor import transfer_directives, worker_environment

    cluster = config.cluster
    extra = {}
    if step == "train" and cluster.request_gpus:
        extra["request_gpus"] = str(cluster.request_gpus)
    extra.update(transfer_directives(worker_environment(cluster)))
    extra.update(cluster.submit_directives)
    return render_template(
        "batch_step.sub",
        step=step,
        name=config.name,
        config_hash=config.hash(),
        wrapper=dag_dir / WRAPPER_NAME,
        arguments=_condor_quote(_step_arguments(step, config_path, outdir)),
        logs=dag_dir / "logs",
        cpus=cluster.cores,
        memory_mb=parse_bytes(cluster.memory) // 2**20,
        disk_kb=parse_bytes(cluster.disk) // 2**10,
        extra="\n".join(f"{key} = {value}" for key, value in extra.items()),
    )


def wrapper_script(cluster: ClusterConfig) -> str:
    """The job wrapper: the environment set-up lines, then ``exec python "$@"``."""
    from analysis.core.condor import worker_environment

    environment = worker_environment(cluster)
    return render_template("job_wrapper.sh", prologue="\n".join(environment.prologue), python=shlex.quote(environment.python))


def frozen_config(config: AnalysisConfig) -> dict:
    """The config as the jobs will read it, with the sample cache and fileset paths made absolute."""
    data = config.model_dump(mode="json")
    data["samples"]["cache_dir"] = str(config.samples.resolved_cache_dir().resolve())
    if config.samples.fileset is not None:
        data["samples"]["fileset"] = str(Path(config.samples.fileset).expanduser().resolve())
    return data


def dag_text(workflow: Workflow, config: AnalysisConfig, dag_dir: Path, outdir: Path) -> str:
    """The DAGMan file (``condor/workflow.dag`` filled in): JOB, VARS, PARENT/CHILD and RETRY lines."""
    jobs, dependencies, retries = [], [], []
    for node in workflow.nodes:
        jobs.append(f"JOB {node.name} {dag_dir / (node.step + '.sub')}")
        variables = (("nodename", node.name),) + node.variables
        jobs.append(f"VARS {node.name} " + " ".join(f'{key}="{value}"' for key, value in variables))
        if node.retries:
            retries.append(f"RETRY {node.name} {node.retries}")
    groups: dict[tuple[str, ...], list[str]] = {}
    for node in workflow.nodes:
        if node.parents:
            groups.setdefault(node.parents, []).append(node.name)
    for parents, children in groups.items():
        dependencies.append(f"PARENT {' '.join(parents)} CHILD {' '.join(children)}")
    return render_template(
        "workflow.dag", name=config.name, config_hash=config.hash(), slots=workflow.slots, dag=dag_dir / DAG_NAME,
        outdir=outdir, status_file=dag_dir / "bsmscan.status", jobs="\n".join(jobs),
        dependencies="\n".join(dependencies), retries="\n".join(retries),
    )


def write_workflow(workflow: Workflow, config: AnalysisConfig, outdir: str | Path, dag_dir: str | Path) -> Path:
    """Write the DAG, one submit file per step, the wrapper and the frozen config; returns the DAG path."""
    outdir, dag_dir = Path(outdir).resolve(), Path(dag_dir).resolve()
    (dag_dir / "logs").mkdir(parents=True, exist_ok=True)
    outdir.mkdir(parents=True, exist_ok=True)
    config_path = dag_dir / CONFIG_NAME
    config_path.write_text(yaml.safe_dump(frozen_config(config), sort_keys=False))
    wrapper = dag_dir / WRAPPER_NAME
    wrapper.write_text(wrapper_script(config.cluster))
    wrapper.chmod(0o755)
    for old in dag_dir.glob("*.sub"):  # submit files of steps a previous write used
        old.unlink()
    for step in workflow.steps():
        (dag_dir / f"{step}.sub").write_text(submit_description(step, config, config_path, outdir, dag_dir))
    dag = dag_dir / DAG_NAME
    dag.write_text(dag_text(workflow, config, dag_dir, outdir))
    return dag


# -- reading ----------------------------------------------------------------------------------
@dataclass
class ParsedDag:
    """A DAG file read back: node -> submit file, node -> VARS, node -> parents, node -> retries."""

    path: Path
    submit_files: dict[str, Path] = field(default_factory=dict)
    variables: dict[str, dict[str, str]] = field(default_factory=dict)
    parents: dict[str, set[str]] = field(default_factory=dict)
    retries: dict[str, int] = field(default_factory=dict)

    @property
    def nodes(self) -> list[str]:
        """Node names in file order."""
        return list(self.submit_files)


_VARS = re.compile(r'(\w+)\s*=\s*"((?:[^"\\]|\\.)*)"')


def read_dag(path: str | Path) -> ParsedDag:
    """Parse the JOB, VARS, PARENT/CHILD and RETRY lines of a DAGMan file (other lines are skipped)."""
    path = Path(path)
    dag = ParsedDag(path)
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keyword, *rest = line.split()
        keyword = keyword.upper()
        where = f"{path}:{number}"
        if keyword == "JOB":
            if len(rest) < 2:
                raise DagError(f"{where}: JOB needs a node name and a submit file")
            name, submit = rest[0], Path(rest[1])
            if name in dag.submit_files:
                raise DagError(f"{where}: node {name} is defined twice")
            dag.submit_files[name] = submit if submit.is_absolute() else path.parent / submit
            dag.parents[name] = set()
            dag.variables[name] = {}
        elif keyword == "VARS":
            name = rest[0] if rest else ""
            if name not in dag.submit_files:
                raise DagError(f"{where}: VARS for unknown node {name!r}")
            dag.variables[name].update(_VARS.findall(line.split(None, 2)[2] if len(rest) > 1 else ""))
        elif keyword == "PARENT":
            if "CHILD" not in rest:
                raise DagError(f"{where}: PARENT without CHILD")
            split = rest.index("CHILD")
            parents, children = rest[:split], rest[split + 1:]
            for name in parents + children:
                if name not in dag.submit_files:
                    raise DagError(f"{where}: unknown node {name!r}")
            for child in children:
                dag.parents[child].update(parents)
        elif keyword == "RETRY":
            dag.retries[rest[0]] = int(rest[1])
    return dag


def unquote_arguments(value: str) -> list[str]:
    """Split an ``arguments = "..."`` value (HTCondor's new syntax) into the argument list."""
    value = value.strip()
    if not (value.startswith('"') and value.endswith('"')):
        return shlex.split(value)  # old syntax: plain whitespace-separated
    text = value[1:-1].replace('""', '"')
    args, current, in_quote, have_token, i = [], [], False, False, 0
    while i < len(text):
        char = text[i]
        if char == "'":
            if in_quote and text[i + 1:i + 2] == "'":
                current.append("'")
                i += 2
                continue
            in_quote, have_token = not in_quote, True
        elif char.isspace() and not in_quote:
            if have_token:
                args.append("".join(current))
                current, have_token = [], False
        else:
            current.append(char)
            have_token = True
        i += 1
    if in_quote:
        raise DagError(f"unbalanced single quote in arguments {value}")
    if have_token:
        args.append("".join(current))
    return args


def _expand(text: str, variables: dict[str, str]) -> str:
    return re.sub(r"\$\((\w+)\)", lambda match: variables.get(match.group(1), match.group(0)), text)


@dataclass(frozen=True)
class NodeCommand:
    """What a node runs: the Python arguments (after the wrapper) and its stdout/stderr files."""

    arguments: list[str]
    output: Path
    error: Path


def node_command(dag: ParsedDag, name: str, _cache: dict | None = None) -> NodeCommand:
    """The command line of node ``name``: its submit file's ``arguments`` with the node's VARS."""
    import htcondor2

    path = dag.submit_files[name]
    cache = {} if _cache is None else _cache
    if path not in cache:
        cache[path] = htcondor2.Submit(path.read_text())
    submit = cache[path]
    variables = dag.variables[name]
    try:
        arguments = unquote_arguments(_expand(submit["arguments"], variables))
        output, error = (Path(_expand(submit[key], variables)) for key in ("output", "error"))
    except KeyError as missing:
        raise DagError(f"submit file {path} of node {name} has no {missing}") from None
    return NodeCommand(arguments, output, error)
