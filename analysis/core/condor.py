"""Dask workers on an HTCondor pool (``--executor condor``), built from the config's ``cluster``.

:func:`htcondor_cluster` turns a :class:`~analysis.core.config.ClusterConfig` into a
``dask_jobqueue.HTCondorCluster`` (a Dask scheduler in this process; workers are submitted as
condor jobs once the cluster is scaled). :func:`condor_cluster` is the context manager the
executors use: it builds the cluster, scales it to ``cluster.jobs`` jobs (or adapts between
``cluster.adaptive.minimum`` and ``maximum``) and closes it, removing the jobs, on exit.

How a job finds bsmscan (``cluster.ship``, see :func:`worker_environment`) is shared with the
standalone batch DAG (``jobs/dag.py``): the same prologue lines and shipped files serve both.
coffea sends processors to the workers pickled *by reference* (module and class name), so
``processors``, ``analysis`` and ``nn`` must be importable on every worker: from the shared
filesystem (``ship: shared``, the project root is put on ``PYTHONPATH``), from a wheel
installed into the job's scratch directory (``ship: wheel``), or from a packed environment
(``ship: packed_env``).

Interactive use (Jupyter)::

    from distributed import Client
    from analysis.core.condor import htcondor_cluster, start_workers

    cluster = htcondor_cluster(config.cluster)     # scheduler starts here; no jobs yet
    start_workers(cluster, config.cluster)         # submit the worker jobs (scale or adapt)
    client = Client(cluster)                       # or Client(cluster.scheduler_address) elsewhere
    Pipeline(config, "results", executor="condor", client=client).run()

``python -m analysis.core.condor --config my.yaml`` prints the worker job's submit description.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import shutil
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from analysis.core.config import ClusterConfig
from analysis.core.errors import UserError
from analysis.core.workers import WORKER_ENVIRONMENT

logger = logging.getLogger(__name__)

#: The folder that holds the ``analysis``, ``processors``, ``nn`` and ``jobs`` packages.
PROJECT_ROOT = Path(__file__).resolve().parents[2]

#: Where a shipped wheel is installed and a packed environment unpacked, inside the job's scratch directory.
WHEEL_TARGET = "_bsmscan"
PACKED_ENV_DIR = "_bsmscan_env"


class CondorUnavailableError(UserError, FileNotFoundError):
    """HTCondor's command-line tools are not found here: this machine is not a submit node."""


@dataclass(frozen=True)
class WorkerEnvironment:
    """How a condor job sets up bsmscan: shell lines to run first, files to ship, the Python to use."""

    prologue: tuple[str, ...]
    transfer_input_files: tuple[str, ...]
    python: str


def worker_environment(cluster: ClusterConfig) -> WorkerEnvironment:
    """The prologue, shipped files and Python of a job on the pool, from ``cluster.ship``.

    The user's ``cluster.prologue`` lines run first (e.g. ``source /cvmfs/.../setup.sh``), then
    bsmscan's own: ``shared`` puts the project root on ``PYTHONPATH``; ``wheel`` installs the
    shipped wheel without dependencies into ``$PWD/_bsmscan`` and puts it on ``PYTHONPATH``;
    ``packed_env`` unpacks the shipped tarball into ``$PWD/_bsmscan_env`` and activates it.
    """
    lines = list(cluster.prologue)
    # As for local clusters (analysis.core.workers.WORKER_ENVIRONMENT): keep glibc's dynamic mmap
    # threshold, which Dask's default MALLOC_TRIM_THRESHOLD_ for worker processes switches off.
    lines.append(f"export DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON={shlex.quote(json.dumps(WORKER_ENVIRONMENT))}")
    files = []
    if cluster.ship == "shared":
        python = cluster.python or sys.executable
        lines.append(f"export PYTHONPATH={shlex.quote(str(PROJECT_ROOT))}${{PYTHONPATH:+:$PYTHONPATH}}")
    else:
        shipped = Path(cluster.ship_file).expanduser().resolve()
        files.append(str(shipped))
        name = shlex.quote(shipped.name)
        if cluster.ship == "wheel":
            python = cluster.python or "python3"
            lines += [
                f"{shlex.quote(python)} -m pip install --quiet --no-deps --no-index --target {WHEEL_TARGET} {name}",
                f"export PYTHONPATH=$PWD/{WHEEL_TARGET}${{PYTHONPATH:+:$PYTHONPATH}}",
            ]
        else:
            python = cluster.python or "python"
            lines += [
                f"mkdir -p {PACKED_ENV_DIR}",
                f"tar -xzf {name} -C {PACKED_ENV_DIR}",
                f". {PACKED_ENV_DIR}/bin/activate",
                f"if [ -x {PACKED_ENV_DIR}/bin/conda-unpack ]; then {PACKED_ENV_DIR}/bin/conda-unpack; fi",
            ]
    files += [str(Path(path).expanduser()) for path in cluster.transfer_input_files]
    return WorkerEnvironment(tuple(lines), tuple(files), python)


def transfer_directives(environment: WorkerEnvironment) -> dict[str, str]:
    """Submit commands that ship the environment's files with a job (none when nothing is shipped)."""
    if not environment.transfer_input_files:
        return {}
    return {
        "should_transfer_files": "YES",
        "when_to_transfer_output": "ON_EXIT",
        "transfer_input_files": ", ".join(environment.transfer_input_files),
    }


def scheduler_options(cluster: ClusterConfig) -> dict:
    """Options of the Dask scheduler (host, port, dashboard) the cluster starts in this process."""
    options: dict = {"port": cluster.scheduler_port}
    if cluster.dashboard_port is None:
        options.update(dashboard=False, dashboard_address=":0")  # no dashboard; its HTTP server on any free port
    else:
        options["dashboard_address"] = f":{cluster.dashboard_port}"
    if cluster.scheduler_host:
        options["host"] = cluster.scheduler_host
    return options


def htcondor_cluster(cluster: ClusterConfig, *, name: str = "bsmscan"):
    """A ``dask_jobqueue.HTCondorCluster`` from the config's ``cluster`` section, not yet scaled.

    Its scheduler runs in this process (close the cluster when done); no job is submitted
    until :func:`start_workers` (or ``cluster.scale``/``adapt``) is called. Each job requests
    ``cores``, ``memory`` and ``disk`` and runs ``processes`` single-threaded Dask workers
    (default: one per core), plus ``submit_directives`` (e.g. ``+JobFlavour``) verbatim.
    """
    from dask_jobqueue import HTCondorCluster

    environment = worker_environment(cluster)
    directives = {**transfer_directives(environment), **cluster.submit_directives}
    worker_args = ["--worker-port", cluster.worker_ports] if cluster.worker_ports else []
    return HTCondorCluster(
        cores=cluster.cores,
        processes=cluster.processes or cluster.cores,
        memory=cluster.memory,
        disk=cluster.disk,
        job_extra_directives=directives,
        job_script_prologue=list(environment.prologue),
        python=environment.python,
        interface=cluster.interface,
        death_timeout=cluster.death_timeout,
        local_directory=cluster.local_directory,
        log_directory=None if cluster.log_directory is None else str(Path(cluster.log_directory).expanduser()),
        worker_extra_args=worker_args,
        scheduler_options=scheduler_options(cluster),
        job_name=name,
    )


def start_workers(htcondor, cluster: ClusterConfig) -> None:
    """Submit the worker jobs: adapt between ``adaptive.minimum`` and ``maximum``, else ``jobs`` jobs."""
    if cluster.adaptive is not None:
        htcondor.adapt(minimum_jobs=cluster.adaptive.minimum, maximum_jobs=cluster.adaptive.maximum)
    else:
        htcondor.scale(jobs=cluster.jobs)


def require_submit_node() -> None:
    """Raise :class:`CondorUnavailableError` unless ``condor_submit`` (used by dask-jobqueue) is on PATH."""
    if shutil.which("condor_submit") is None:
        raise CondorUnavailableError(
            "condor_submit is not on PATH: --executor condor starts Dask workers as HTCondor jobs and must run on "
            "a submit node of the pool (e.g. lxplus); elsewhere use --executor dask, or attach to a running "
            "scheduler with --scheduler tcp://host:port"
        )


@contextmanager
def condor_cluster(cluster: ClusterConfig) -> Iterator:
    """An HTCondorCluster with its worker jobs submitted; closed (jobs removed) on exit.

    Raises :class:`CondorUnavailableError` at once where ``condor_submit`` is missing (instead of
    a scheduler waiting forever for workers that were never submitted).
    """
    require_submit_node()
    htcondor = htcondor_cluster(cluster)
    try:
        logger.info("Dask scheduler for HTCondor workers at %s", htcondor.scheduler_address)
        start_workers(htcondor, cluster)
        yield htcondor
    finally:
        htcondor.close()


def job_script(cluster: ClusterConfig) -> str:
    """The submit description of one worker job (builds the cluster briefly; submits nothing)."""
    htcondor = htcondor_cluster(cluster)
    try:
        return htcondor.job_script()
    finally:
        htcondor.close()


def main(argv: list[str] | None = None) -> int:
    """``python -m analysis.core.condor --config my.yaml``: print the worker job's submit description."""
    from analysis.core.config import ConfigError, default_config, load_config

    parser = argparse.ArgumentParser(prog="python -m analysis.core.condor", description=main.__doc__)
    parser.add_argument("--config", type=Path, help="analysis config YAML (default: the built-in analysis)")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config) if args.config else default_config()
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(job_script(config.cluster))
    return 0


if __name__ == "__main__":
    sys.exit(main())
