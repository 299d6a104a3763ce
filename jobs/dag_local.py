"""Run a DAGMan file here: every node as a local process, in dependency order, in parallel.

The runner reads the DAG file and the submit files that ``python -m jobs.submit`` wrote (the
ones DAGMan would use; relative paths are relative to the DAG's directory, as with
``condor_submit_dag -usedagdir``), takes each node's ``arguments``, ``output`` and ``error``
from its submit file with the node's VARS filled in (``htcondor2.Submit.expand``), and runs
``python <arguments>`` for every node whose parents have succeeded, at most ``cores`` at a
time (``graphlib.TopologicalSorter`` orders them, a ``ThreadPoolExecutor`` waits on the
processes). stdout and stderr go to the node's ``output`` / ``error`` files. A failed node is
retried as often as its RETRY line allows; after a final failure its descendants do not run,
every other node does, and the run reports the failed node by name with the end of its error
log. The wrapper's environment set-up (``cluster.prologue``) is for execute nodes and is not
run here: the local processes use this Python, with the project root on ``PYTHONPATH``.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import htcondor2

from .dag import PROJECT_ROOT, DagError

log = logging.getLogger(__name__)


# -- reading the files ------------------------------------------------------------------------
@dataclass
class DagFile:
    """What of a DAG file decides what runs: node -> submit file (None: NOOP), VARS, parents, retries."""

    path: Path
    submit_files: dict[str, Path | None] = field(default_factory=dict)
    variables: dict[str, dict[str, str]] = field(default_factory=dict)
    parents: dict[str, set[str]] = field(default_factory=dict)
    retries: dict[str, int] = field(default_factory=dict)

    @property
    def nodes(self) -> list[str]:
        """Node names in file order."""
        return list(self.submit_files)


def read_dag(path: str | Path) -> DagFile:
    """Read the JOB, VARS, PARENT ... CHILD and RETRY lines of a DAG file (others do not change what runs).

    As for DAGMan, a line may name a node that a later JOB line defines.
    """
    path = Path(path)
    dag = DagFile(path)
    references: list[tuple[str, str, list[str], list[str]]] = []  # (where, keyword, names, values)

    for number, line in enumerate(path.read_text().splitlines(), 1):
        where = f"{path}:{number}"
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            words = shlex.split(line)  # VARS values are "..." with \" and \\ escapes
        except ValueError as error:
            raise DagError(f"{where}: {error}") from None
        keyword = words[0].upper()
        if keyword == "JOB":
            if len(words) < 3:
                raise DagError(f"{where}: JOB needs a node name and a submit file")
            name = words[1]
            if name in dag.submit_files:
                raise DagError(f"{where}: node {name} is defined twice")
            noop = "NOOP" in (word.upper() for word in words[3:])
            dag.submit_files[name] = None if noop else path.parent / words[2]
            dag.variables[name], dag.parents[name] = {}, set()
        elif keyword == "VARS" and len(words) > 1:
            references.append((where, keyword, words[1:2], words[2:]))
        elif keyword == "PARENT":
            if "CHILD" not in words:
                raise DagError(f"{where}: PARENT without CHILD")
            split = words.index("CHILD")
            references.append((where, keyword, words[1:split], words[split + 1:]))
        elif keyword == "RETRY" and len(words) > 2:
            references.append((where, keyword, words[1:2], words[2:3]))
    for where, keyword, names, values in references:
        unknown = [name for name in names + (values if keyword == "PARENT" else []) if name not in dag.submit_files]
        if unknown:
            raise DagError(f"{where}: unknown node {unknown[0]!r}")
        if keyword == "PARENT":
            for child in values:
                dag.parents[child].update(names)
        elif keyword == "RETRY":
            dag.retries[names[0]] = int(values[0])
        else:
            for pair in values:
                key, equals, value = pair.partition("=")
                if not equals:
                    raise DagError(f'{where}: VARS {pair!r} is not key="value"')
                dag.variables[names[0]][key] = value
    return dag


def unquote_arguments(value: str) -> list[str]:
    """Split an ``arguments = "..."`` value (HTCondor's new syntax) into the argument list."""
    value = value.strip()
    if not (value.startswith('"') and value.endswith('"') and len(value) > 1):
        return value.split()  # old syntax: plain whitespace-separated
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


@dataclass(frozen=True)
class NodeCommand:
    """What a node runs: the Python arguments (after the wrapper) and its stdout/stderr files."""

    arguments: list[str]
    output: Path
    error: Path


def node_command(dag: DagFile, name: str) -> NodeCommand:
    """The command of node ``name``: its submit file's ``arguments``, ``output`` and ``error`` with its VARS."""
    path = dag.submit_files[name]
    try:
        submit = htcondor2.Submit(path.read_text())
    except OSError as error:
        raise DagError(f"node {name}: cannot read its submit file {path}: {error.strerror}") from None
    missing = [key for key in ("arguments", "output", "error") if key not in submit]
    if missing:
        raise DagError(f"submit file {path} of node {name} has no {', '.join(missing)}")
    for key, value in dag.variables[name].items():
        submit[key] = value
    output, error = (Path(submit.expand(key)) for key in ("output", "error"))
    if not output.is_absolute() or not error.is_absolute():
        output, error = dag.path.parent / output, dag.path.parent / error
    return NodeCommand(unquote_arguments(submit.expand("arguments")), output, error)


# -- running ------------------------------------------------------------------------------------
@dataclass
class LocalRun:
    """The outcome of a local DAG run: node states and wall times."""

    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # node -> end of its error log
    not_run: list[str] = field(default_factory=list)  # descendants of a failed node
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether every node finished successfully."""
        return not self.failed and not self.not_run


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no error log)"


def _descendants(name: str, dag: DagFile) -> set[str]:
    children: dict[str, set[str]] = {}
    for child, parents in dag.parents.items():
        for parent in parents:
            children.setdefault(parent, set()).add(child)
    found, stack = set(), [name]
    while stack:
        for child in children.get(stack.pop(), ()):
            if child not in found:
                found.add(child)
                stack.append(child)
    return found


class _Processes:
    """The node processes running now, so that an interrupt can stop them (and no new one starts)."""

    def __init__(self, cwd: Path):
        self.cwd, self.stopping, self._running, self._lock = cwd, threading.Event(), {}, threading.Lock()
        self.env = dict(os.environ)
        self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), self.env.get("PYTHONPATH")]))

    def run(self, name: str, command: NodeCommand, retries: int) -> tuple[int, float]:
        """Run one node (retried up to ``retries`` times); its last exit code and wall seconds."""
        command.output.parent.mkdir(parents=True, exist_ok=True)
        command.error.parent.mkdir(parents=True, exist_ok=True)
        start, code = time.perf_counter(), -1
        for attempt in range(1 + retries):
            with self._lock:
                if self.stopping.is_set():
                    break
                with open(command.output, "w") as stdout, open(command.error, "w") as stderr:
                    process = subprocess.Popen([sys.executable, *command.arguments], stdout=stdout, stderr=stderr,
                                               env=self.env, cwd=self.cwd)
                self._running[name] = process
            log.info("start  %s%s", name, f" (attempt {attempt + 1})" if attempt else "")
            code = process.wait()
            with self._lock:
                self._running.pop(name, None)
            if code == 0:
                break
            if attempt < retries and not self.stopping.is_set():
                log.warning("retry  %s (exit code %d)", name, code)
        return code, round(time.perf_counter() - start, 2)

    def stop(self) -> None:
        """Start no more processes and terminate the running ones."""
        with self._lock:
            self.stopping.set()
            for process in self._running.values():
                process.terminate()


def run_dag_locally(dag_path: str | Path, cores: int | None = None) -> LocalRun:
    """Run every node of the DAG at ``dag_path`` as a local process; returns a :class:`LocalRun`.

    At most ``cores`` nodes (default: the number of cores) run at once; a node starts when all
    its parents have succeeded; the descendants of a node that failed (after its retries) are
    left out and listed in :attr:`LocalRun.not_run`. An interrupt terminates the running nodes.
    """
    dag = read_dag(dag_path)
    commands = {name: node_command(dag, name) for name, path in dag.submit_files.items() if path is not None}
    sorter = TopologicalSorter(dag.parents)
    try:
        sorter.prepare()
    except CycleError as error:
        raise DagError(f"{dag.path}: the DAG has a cycle: {' -> '.join(error.args[1])}") from None
    cores = max(1, cores or os.cpu_count() or 1)
    processes, run, blocked = _Processes(dag.path.parent), LocalRun(), set()
    with ThreadPoolExecutor(cores, thread_name_prefix="dag-node") as pool:
        running = {}
        try:
            while sorter.is_active():
                for name in sorter.get_ready():
                    if name in blocked or name not in commands:  # below a failure, or a NOOP node
                        (run.not_run if name in blocked else run.done).append(name)
                        sorter.done(name)
                    else:
                        running[pool.submit(processes.run, name, commands[name], dag.retries.get(name, 0))] = name
                if not running:
                    continue
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    name = running.pop(future)
                    code, run.seconds[name] = future.result()
                    if code == 0:
                        run.done.append(name)
                        log.info("done   %s (%.1f s)", name, run.seconds[name])
                    else:
                        run.failed[name] = _tail(commands[name].error)
                        blocked |= _descendants(name, dag)
                        log.error("FAILED %s (exit code %d); log: %s", name, code, commands[name].error)
                    sorter.done(name)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            processes.stop()
            raise
    return run
