"""The batch workflow as an HTCondor DAG, written with the bindings' ``htcondor2.dags``.

:func:`build_workflow` lays out the nodes of a config's analysis as layers (one per batch step
of ``jobs/batch.py``); :func:`write_workflow` turns them into an ``htcondor2.dags.DAG`` (one
layer per step, each a child of the previous one) and writes, with ``dags.write_dag``, into a
directory: ``bsmscan.dag`` (DAGMan), one submit description per step (``<step>.sub``, an
``htcondor2.Submit``), plus the job wrapper ``bsmscan_job.sh`` (the environment set-up of
``cluster.prologue`` / ``cluster.ship``, then Python), a frozen copy of the config
(``analysis.yaml``) and ``logs/``. ``jobs/dag_local.py`` runs the written files here.

DAG shape (``S`` chunk nodes per chunked stage)::

    generate_<stem> (one per sample x chunk)  ->  merge_samples  ->  plan
    plan  ->  process_0000 .. process_<S-1>  ->  merge_process  ->  train
    train  ->  score_0000 .. score_<S-1>  ->  merge_score  ->  scan  ->  report

The chunks do not exist when the DAG is written (the samples are not generated yet), so a
chunk node is not tied to a chunk: the ``plan`` node writes the chunk list once the inputs
exist, and node ``i`` of ``S`` takes chunks ``i, i + S, i + 2S ...`` of it. ``S`` defaults to
the number of chunks the config will give (exact for generated samples, whose event counts
are known; counted from the files for a user fileset), i.e. one chunk per node, and
``cluster.chunk_jobs`` caps it.

Nothing from the inputs reaches the files raw. The DAG file holds only node names (checked
against :data:`NAME_PATTERN`), ``VARS`` values (quoted by ``write_dag``) and file names
relative to its own directory (submit it with ``-usedagdir``; :func:`jobs.submit.submit_dag`
does). In the submit descriptions every value must be one line, paths may not hold a ``$``
(a macro to HTCondor) and the arguments use HTCondor's new quoting (:func:`condor_arguments`).
"""

from __future__ import annotations

import logging
import re
import shlex
import string
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import htcondor2
import yaml
from dask.utils import parse_bytes
from htcondor2 import dags

from analysis.core.chunking import chunk_size
from analysis.core.condor import transfer_directives, worker_environment
from analysis.core.config import AnalysisConfig, ClusterConfig
from analysis.core.errors import UserError
from analysis.core.fileset import file_format, load_fileset

from .batch import CHUNK_STEPS, MERGE_STEPS, STEPS, chunk_node_name
from .plan import file_chunk_ranges, file_entries
from .samples import jobs_from_config

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = PROJECT_ROOT / "condor"
DAG_NAME = "bsmscan.dag"
WRAPPER_NAME = "bsmscan_job.sh"
CONFIG_NAME = "analysis.yaml"
STATUS_NAME = "bsmscan.status"
#: DAG node names (and the names they are built from): letters, digits, ``_ . -``.
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")

#: The analysis stages (as ``python -m analysis.run --stages``) and the batch steps of each, in order.
STAGE_STEPS = {
    "generate": ("generate", "merge-samples"),
    "process": ("plan", "process", "merge-process"),
    "train": ("train",),
    "score": ("score", "merge-score"),
    "scan": ("scan",),
    "fit": ("fit",),
    "report": ("report",),
}
STAGES = tuple(STAGE_STEPS)


class DagError(UserError, ValueError):
    """A malformed workflow or a value that cannot go into a DAG or submit file; the message names it."""


# -- values written into the files --------------------------------------------------------------
def _shown(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[:limit - 3] + "...")


def one_line(value: object, what: str) -> str:
    """``value`` as text, refused (naming ``what``) if it holds a newline or another control character."""
    text = str(value)
    bad = sorted({char for char in text if unicodedata.category(char) == "Cc"})
    if bad:
        raise DagError(f"{what} must be one line without control characters, got {_shown(text)} "
                       f"(contains {', '.join(repr(char) for char in bad)})")
    return text


def literal(value: object, what: str) -> str:
    """``value`` for a submit file, taken literally: one line, and no ``$`` (HTCondor would expand it)."""
    text = one_line(value, what)
    if "$" in text:
        raise DagError(f"{what} may not contain '$' (HTCondor expands $(...) in submit files), got {_shown(text)}")
    return text


def literal_path(path: str | Path, what: str) -> str:
    """A path as a literal submit-file value (:func:`literal`) with no blank at either end."""
    text = literal(path, what)
    if text != text.strip():
        raise DagError(f"{what} {_shown(text)} must not start or end with a blank")
    return text


@dataclass(frozen=True)
class Var:
    """A DAG ``VARS`` macro in the arguments (``$(slot)``), left for DAGMan to fill in."""

    name: str


def condor_arguments(args: list[str | Var]) -> str:
    """The value of ``arguments =`` in HTCondor's new syntax for ``args``.

    The whole list goes in double quotes (a ``"`` in it doubled), an argument with a blank or a
    ``'`` in single quotes (a ``'`` in it doubled). Each argument must be :func:`literal` (one line,
    no ``$``), so that no macro is expanded except the :class:`Var` ones.
    """
    parts = []
    for arg in args:
        if isinstance(arg, Var):
            parts.append(f"$({arg.name})")
            continue
        text = literal(arg, f"the job argument {_shown(str(arg), 40)}").replace('"', '""')
        if not text or any(char.isspace() or char == "'" for char in text):
            text = "'" + text.replace("'", "''") + "'"
        parts.append(text)
    return '"' + " ".join(parts) + '"'


class _Template(string.Template):
    """``@{name}`` placeholders, so that shell ``$VAR`` passes through."""

    delimiter = "@"


def render_template(template: str, /, **values) -> str:
    """The template ``condor/<template>`` with its ``@{...}`` placeholders filled."""
    path = TEMPLATES / template
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise DagError(f"template {path} not found: run jobs.submit from a bsmscan checkout") from None
    return _Template(text).substitute(**{key: str(value) for key, value in values.items()})


# -- the workflow -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Layer:
    """The DAG nodes of one batch step: one submit file; every node follows every node of the
    previous layer. ``variables[i]`` are node ``names[i]``'s VARS."""

    step: str
    names: tuple[str, ...]
    variables: tuple[tuple[tuple[str, str], ...], ...]
    retries: int = 0


@dataclass(frozen=True)
class Node:
    """One DAG node: it runs batch ``step`` with ``variables`` (DAG VARS) after its ``parents``."""

    name: str
    step: str
    variables: tuple[tuple[str, str], ...]
    parents: tuple[str, ...]
    retries: int


@dataclass
class Workflow:
    """The layers of a batch run, in order (each layer runs after the one before it)."""

    layers: list[Layer]
    slots: int = 1

    def __post_init__(self):
        seen: set[str] = set()
        for layer in self.layers:
            if layer.step not in STEPS:
                raise DagError(f"layer {layer.step!r}: unknown step; steps are {', '.join(STEPS)}")
            if not layer.names or len(layer.names) != len(layer.variables):
                raise DagError(f"layer {layer.step}: needs one VARS set per node and at least one node")
            for name in layer.names:
                if not NAME_PATTERN.fullmatch(name):
                    raise DagError(f"DAG node name {name!r} must match {NAME_PATTERN.pattern}")
                if name in seen:
                    raise DagError(f"node {name} is defined twice")
                seen.add(name)
            for key, value in (pair for variables in layer.variables for pair in variables):
                one_line(value, f"layer {layer.step}: VARS {key}")

    @property
    def nodes(self) -> list[Node]:
        """Every node, each after its parents."""
        nodes, parents = [], ()
        for layer in self.layers:
            nodes += [Node(name, layer.step, variables, parents, layer.retries)
                      for name, variables in zip(layer.names, layer.variables)]
            parents = layer.names
        return nodes

    def steps(self) -> list[str]:
        """The batch steps the workflow uses, in order."""
        return [layer.step for layer in self.layers]


def node_name(step: str, suffix: str | None = None) -> str:
    """A DAG node name: the step with ``_`` for ``-``, plus a suffix (``generate_WW_0003_<hash>``)."""
    base = step.replace("-", "_")
    return base if suffix is None else f"{base}_{suffix}"


def predicted_chunk_count(config: AnalysisConfig) -> int:
    """How many chunks the plan will hold: exact for generated samples (their sizes are known);
    for a user fileset counted from its files (a file that cannot be opened here counts once)."""
    if config.samples.fileset is None:
        entries = [job.n_events for job in jobs_from_config(config)]
    else:
        entries = []
        for entry in load_fileset(config.samples.fileset).values():
            for path, tree in entry["files"].items():
                try:
                    entries.append(file_entries(path, tree, file_format(path))[0])
                except Exception:  # noqa: BLE001 (unreadable here, or only on a remote site: one node's worth)
                    entries.append(None)
    chunksize = chunk_size(config, sum(n for n in entries if n is not None), "condor")  # as run_plan sizes them
    return max(sum(1 if n is None else len(file_chunk_ranges(n, chunksize)) for n in entries), 1)


def build_workflow(config: AnalysisConfig, stages=STAGES, slots: int | None = None) -> Workflow:
    """The DAG layers of ``stages`` (in analysis order) for ``config``, with ``slots`` chunk nodes per
    chunked stage (default: ``cluster.chunk_jobs`` capped at the predicted number of chunks).

    A stage's first layer follows the previous included stage's last one; leaving a stage out
    assumes its outputs already exist in the results directory.
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
    layers: list[Layer] = []
    for stage in STAGES:
        if stage not in stages or (stage == "generate" and config.samples.fileset is not None):
            continue  # a user fileset has nothing to generate
        for step in STAGE_STEPS[stage]:
            if step == "generate":
                jobs = jobs_from_config(config)
                layers.append(Layer(step, tuple(node_name(step, job.stem) for job in jobs),
                                    tuple((("job", job.stem),) for job in jobs), retries))
            elif step in CHUNK_STEPS:
                layers.append(Layer(step, tuple(chunk_node_name(step, slot) for slot in range(slots)),
                                    tuple((("slot", str(slot)), ("slots", str(slots))) for slot in range(slots)),
                                    retries))
            else:
                variables = (("slots", str(slots)),) if step in MERGE_STEPS else ()
                layers.append(Layer(step, (node_name(step),), (variables,)))
    return Workflow(layers, slots)


# -- writing ------------------------------------------------------------------------------------
def _step_arguments(step: str, config_path: Path, outdir: Path) -> list[str | Var]:
    args: list[str | Var] = ["-m", "jobs.batch", step, "--config", str(config_path), "--outdir", str(outdir)]
    if step == "generate":
        args += ["--job", Var("job")]
    elif step in CHUNK_STEPS:
        args += ["--slot", Var("slot"), "--slots", Var("slots")]
    elif step in MERGE_STEPS:
        args += ["--slots", Var("slots")]
    return args


def _transfer_commands(cluster: ClusterConfig) -> dict[str, str]:
    environment = worker_environment(cluster)
    for path in environment.transfer_input_files:
        if "," in str(path):
            raise DagError(f"a file sent with the jobs may not have a comma in its name: {path!r}")
        literal_path(path, "a file sent with the jobs (cluster.ship_file / transfer_input_files)")
    return transfer_directives(environment)


def submit_description(step: str, config: AnalysisConfig, config_path: Path, outdir: Path,
                       dag_dir: Path) -> htcondor2.Submit:
    """The submit description of the nodes of ``step``; ``$(nodename)`` and the step's VARS come from the DAG."""
    cluster = config.cluster
    logs = literal_path(dag_dir / "logs", "the DAG directory")
    commands = {
        "universe": "vanilla",
        "executable": literal_path(dag_dir / WRAPPER_NAME, "the DAG directory"),
        "arguments": condor_arguments(_step_arguments(step, config_path, outdir)),
        "output": f"{logs}/$(nodename).out",
        "error": f"{logs}/$(nodename).err",
        "log": f"{logs}/bsmscan.log",
        "request_cpus": str(cluster.cores),
        "request_memory": str(parse_bytes(cluster.memory) // 2**20),
        "request_disk": str(parse_bytes(cluster.disk) // 2**10),
        "batch_name": f"bsmscan-{config.name}",
    }
    if step == "train" and cluster.request_gpus:
        commands["request_gpus"] = str(cluster.request_gpus)
    commands.update(_transfer_commands(cluster))
    commands.update(cluster.submit_directives)  # the config checks their names; values are submit language
    for key, value in commands.items():
        one_line(value, f"the submit command {key} of {step}.sub")
    return htcondor2.Submit(commands)


def wrapper_script(cluster: ClusterConfig) -> str:
    """The job wrapper: the environment set-up lines, then ``exec python "$@"``."""
    environment = worker_environment(cluster)
    prologue = [one_line(line, "a cluster.prologue line") for line in environment.prologue]
    return render_template("job_wrapper.sh", prologue="\n".join(prologue), python=shlex.quote(environment.python))


def frozen_config(config: AnalysisConfig) -> dict:
    """The config as the jobs will read it, with the sample cache and fileset paths made absolute."""
    data = config.model_dump(mode="json")
    data["samples"]["cache_dir"] = str(config.samples.resolved_cache_dir().resolve())
    if config.samples.fileset is not None:
        data["samples"]["fileset"] = str(Path(config.samples.fileset).expanduser().resolve())
    return data


class _NodeNames(dags.NodeNameFormatter):
    """Node names of the workflow's own (``process_0003``, ``generate_<stem>``) for the layers' nodes."""

    def __init__(self, workflow: Workflow):
        self._names = {layer.step: layer.names for layer in workflow.layers}
        self._index = {name: (layer.step, i) for layer in workflow.layers for i, name in enumerate(layer.names)}

    def generate(self, layer_name: str, node_index: int) -> str:
        if layer_name == "__JOIN__":  # write_dag's no-op joins between two many-node layers
            return f"join_{node_index}"
        return self._names[layer_name][node_index]

    def parse(self, node_name: str) -> tuple[str, int]:
        if node_name.startswith("join_") and node_name not in self._index:
            return "__JOIN__", int(node_name.removeprefix("join_"))
        return self._index[node_name]


def htcondor_dag(workflow: Workflow, submit_descriptions: dict[str, htcondor2.Submit]) -> dags.DAG:
    """The ``htcondor2.dags.DAG`` of ``workflow``: a layer per step, named after it, a child of the one before."""
    dag = dags.DAG(node_status_file=dags.NodeStatusFile(Path(STATUS_NAME), update_time=60))
    previous = None
    for layer in workflow.layers:
        options = {"name": layer.step, "submit_description": submit_descriptions[layer.step],
                   "vars": [{"nodename": name, **dict(variables)} for name, variables in zip(layer.names, layer.variables)],
                   "retries": layer.retries or None}
        previous = dag.layer(**options) if previous is None else previous.child_layer(**options)
    return dag


def write_workflow(workflow: Workflow, config: AnalysisConfig, outdir: str | Path, dag_dir: str | Path) -> Path:
    """Write the DAG, one submit file per step, the wrapper and the frozen config; returns the DAG path."""
    outdir, dag_dir = Path(outdir).resolve(), Path(dag_dir).resolve()
    if not NAME_PATTERN.fullmatch(config.name):  # the config checks it; a model_copy does not
        raise DagError(f"the analysis name {_shown(config.name)} must match {NAME_PATTERN.pattern}")
    literal(outdir, "the results directory (--outdir)")  # an argument: quoted, blanks kept
    literal_path(dag_dir, "the DAG directory (--dag-dir)")
    config_path = dag_dir / CONFIG_NAME
    descriptions = {step: submit_description(step, config, config_path, outdir, dag_dir) for step in workflow.steps()}
    wrapper = wrapper_script(config.cluster)  # everything checked before anything is written
    (dag_dir / "logs").mkdir(parents=True, exist_ok=True)
    outdir.mkdir(parents=True, exist_ok=True)
    config_path.write_text(yaml.safe_dump(frozen_config(config), sort_keys=False))
    (dag_dir / WRAPPER_NAME).write_text(wrapper)
    (dag_dir / WRAPPER_NAME).chmod(0o755)
    for old in dag_dir.glob("*.sub"):  # submit files of steps a previous write used
        old.unlink()
    path = dags.write_dag(htcondor_dag(workflow, descriptions), dag_dir, dag_file_name=DAG_NAME,
                          node_name_formatter=_NodeNames(workflow))
    header = (f"# bsmscan DAGMan workflow of analysis {config.name} (config {config.hash()}), written by jobs.submit.\n"
              f"# Submit with `condor_submit_dag -usedagdir {DAG_NAME}`; run here with `python -m jobs.submit --local`.\n")
    path.write_text(header + path.read_text())
    log.debug("wrote %s and %d submit files", path, len(descriptions))
    return path
