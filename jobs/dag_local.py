"""Run a bsmscan DAG here: every node as a local process, in dependency order, in parallel.

The runner reads the DAG file and the submit files that ``python -m jobs.submit`` wrote (the
ones DAGMan would use), takes each node's arguments from its submit file with the node's VARS,
and starts ``python <arguments>`` for every node whose parents have finished, at most
``cores`` at a time. stdout and stderr go to the node's ``output`` / ``error`` files of the
submit description (``<dag dir>/logs/<node>.out/.err``). A failed node is retried as often as
its RETRY line allows; after a final failure no new node starts, the running ones finish, and
the run reports the failed node with the end of its error log. The wrapper's environment
set-up (``cluster.prologue``) is for execute nodes and is not run locally: the local processes
use this Python, with the project root on ``PYTHONPATH``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .dag import PROJECT_ROOT, DagError, node_command, read_dag


@dataclass
class LocalRun:
    """The outcome of a local DAG run: node states and wall times."""

    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # node -> end of its error log
    not_run: list[str] = field(default_factory=list)
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


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    return env


def run_dag_locally(dag_path: str | Path, cores: int | None = None, log=print, poll_seconds: float = 0.05) -> LocalRun:
    """Run every node of the DAG at ``dag_path`` as a local process; returns a :class:`LocalRun`.

    At most ``cores`` nodes (default: the number of cores) run at once; a node starts when all
    its parents have succeeded. ``log`` gets one line per started, finished or failed node.
    """
    dag = read_dag(dag_path)
    cores = max(1, cores or os.cpu_count() or 1)
    cache: dict = {}
    commands = {name: node_command(dag, name, cache) for name in dag.nodes}
    for name, parents in dag.parents.items():
        if name in parents:
            raise DagError(f"node {name} is its own parent")
    env = _environment()
    run = LocalRun()
    pending = list(dag.nodes)
    attempts: dict[str, int] = {}
    running: dict[str, tuple[subprocess.Popen, float, list]] = {}

    def start(name: str) -> None:
        command = commands[name]
        command.output.parent.mkdir(parents=True, exist_ok=True)
        command.error.parent.mkdir(parents=True, exist_ok=True)
        stdout, stderr = open(command.output, "w"), open(command.error, "w")
        process = subprocess.Popen([sys.executable, *command.arguments], stdout=stdout, stderr=stderr, env=env,
                                   cwd=str(dag.path.parent))
        running[name] = (process, time.perf_counter(), [stdout, stderr])
        attempts[name] = attempts.get(name, 0) + 1
        log(f"start  {name}" + (f" (attempt {attempts[name]})" if attempts[name] > 1 else ""))

    while pending or running:
        if not run.failed:
            for name in list(pending):
                if len(running) >= cores:
                    break
                if dag.parents[name] <= set(run.done):
                    pending.remove(name)
                    start(name)
        if not running:
            break  # nothing can start: a failed node blocks the rest (or the DAG has a cycle)
        time.sleep(poll_seconds)
        for name, (process, began, files) in list(running.items()):
            code = process.poll()
            if code is None:
                continue
            for handle in files:
                handle.close()
            del running[name]
            run.seconds[name] = round(time.perf_counter() - began, 2)
            if code == 0:
                run.done.append(name)
                log(f"done   {name} ({run.seconds[name]:.1f} s)")
            elif attempts[name] <= dag.retries.get(name, 0) and not run.failed:
                log(f"retry  {name} (exit code {code})")
                start(name)
            else:
                run.failed[name] = _tail(commands[name].error)
                log(f"FAILED {name} (exit code {code}); log: {commands[name].error}")
    run.not_run = pending
    return run
