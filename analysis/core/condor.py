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

``bsmscan worker-script --config my.yaml`` prints the worker job's submit description.

Security: the scheduler this process starts is reachable from the pool, so every connection
to it uses TLS with mutual authentication (:func:`tls_security`): the certificates of the
``cluster`` section (``tls_ca_file``, ``tls_cert``, ``tls_key``) or, by default, a CA and
certificate made for this cluster only (``distributed.Security.temporary()``) and written to a
private folder (mode 0700) that is removed when the cluster closes. The worker jobs get the
files with ``transfer_input_files`` and name them relative to their scratch folder, so no
shared filesystem is needed. A client without the certificate cannot connect. The scheduler
serves no dashboard unless ``dashboard_port`` is set, and its HTTP endpoint (health, metrics;
the dashboard when asked) listens on ``dashboard_host`` (default ``127.0.0.1``: reach it with
``ssh -L``) only.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import shutil
import sys
import tempfile
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from analysis.core.cli import add_config_option, config_from_args, run_command
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


def transfer_directives(environment: WorkerEnvironment, extra_files: tuple[str, ...] = ()) -> dict[str, str]:
    """Submit commands that ship the environment's files (and ``extra_files``) with a job.

    None when nothing is shipped.
    """
    files = tuple(environment.transfer_input_files) + tuple(extra_files)
    if not files:
        return {}
    return {
        "should_transfer_files": "YES",
        "when_to_transfer_output": "ON_EXIT",
        "transfer_input_files": ", ".join(files),
    }


#: Names of the TLS files in a worker job's scratch folder (shipped with transfer_input_files).
TLS_WORKER_FILES = {"ca_file": "bsmscan-tls-ca.pem", "cert": "bsmscan-tls-cert.pem", "key": "bsmscan-tls-key.pem"}


@dataclass(frozen=True)
class ClusterTLS:
    """TLS of a condor cluster: the driver's ``Security``, the files each worker job is sent,
    and the worker's ``--tls-*`` arguments (file names relative to the job's scratch folder)."""

    security: object  # distributed.Security of the scheduler and the client (this process)
    files: tuple[str, ...]  # local paths shipped with every worker job
    worker_arguments: tuple[str, ...]
    private_directory: str | None  # the folder of the temporary certificates (removed on close)


def tls_security(cluster: ClusterConfig) -> ClusterTLS:
    """TLS for the scheduler, the client and the workers of an HTCondor cluster.

    With ``cluster.tls_ca_file`` and ``tls_cert`` (and ``tls_key`` unless the key is in the
    certificate file) those files are used; otherwise a temporary CA and certificate
    (``distributed.Security.temporary()``) are written to a new private folder (mode 0700,
    files 0600). Encryption is required for every connection.
    """
    from distributed import Security  # heavy: only Dask executors need it

    if cluster.tls_ca_file is not None:
        local = {"ca_file": cluster.tls_ca_file, "cert": cluster.tls_cert, "key": cluster.tls_key}
        local = {role: str(Path(path).expanduser().resolve()) for role, path in local.items() if path is not None}
        missing = [path for path in local.values() if not Path(path).is_file()]
        if missing:
            raise UserError(f"cluster TLS file(s) not found: {', '.join(missing)} (cluster.tls_ca_file/tls_cert/tls_key)")
        key = local.get("key")
        security = Security(require_encryption=True, tls_ca_file=local["ca_file"],
                            **{f"tls_{role}_{part}": local.get(part) if part == "cert" else key
                               for role in ("scheduler", "client") for part in ("cert", "key")})
        directory = None
    else:
        temporary = Security.temporary()
        role = temporary.get_tls_config_for_role("worker")
        directory = tempfile.mkdtemp(prefix="bsmscan-tls-")  # mkdtemp: mode 0700, this user only
        local = {}
        for part, name in TLS_WORKER_FILES.items():
            path = os.path.join(directory, name)
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(role[part])
            local[part] = path
        security = temporary
    shipped = {part: TLS_WORKER_FILES[part] for part in local}
    arguments = []
    for part, name in shipped.items():
        arguments += [f"--tls-{part.replace('_', '-')}", name]
    return ClusterTLS(security, tuple(local[part] for part in shipped), tuple(arguments), directory)


def scheduler_options(cluster: ClusterConfig) -> dict:
    """Options of the Dask scheduler (host, port, dashboard) the cluster starts in this process.

    No dashboard unless ``dashboard_port`` is set; the scheduler's HTTP server (health and
    metrics routes, the dashboard when asked) listens on ``dashboard_host`` only.
    """
    options: dict = {"port": cluster.scheduler_port}
    if cluster.dashboard_port is None:
        options.update(dashboard=False, dashboard_address=f"{cluster.dashboard_host}:0")  # any free local port
    else:
        options.update(dashboard=True, dashboard_address=f"{cluster.dashboard_host}:{cluster.dashboard_port}")
    if cluster.scheduler_host:
        options["host"] = cluster.scheduler_host
    return options


def _tls_cluster_class():
    """``HTCondorCluster`` that gives its workers the shipped TLS files by name.

    dask-jobqueue would pass the driver's certificate (a path on this machine, or in-memory
    PEM it dumps into the current folder) to the workers; this subclass hands them the
    ``--tls-*`` arguments of :class:`ClusterTLS` instead (files in the job's scratch folder).
    """
    from dask_jobqueue import HTCondorCluster  # optional, heavy: --executor condor only

    class TLSHTCondorCluster(HTCondorCluster):
        def __init__(self, *args, bsmscan_tls: ClusterTLS, **kwargs):
            self._bsmscan_tls = bsmscan_tls
            kwargs["worker_extra_args"] = list(kwargs.get("worker_extra_args") or []) + list(bsmscan_tls.worker_arguments)
            super().__init__(*args, security=bsmscan_tls.security, **kwargs)
            directory = bsmscan_tls.private_directory  # the temporary certificates live as long as the cluster
            self._bsmscan_cleanup = weakref.finalize(self, shutil.rmtree, directory, True) if directory else None

        def close(self, *args, **kwargs):
            try:
                return super().close(*args, **kwargs)
            finally:
                if self._bsmscan_cleanup is not None:
                    self._bsmscan_cleanup()

        def _get_worker_security(self, security):  # the --tls-* arguments are in worker_extra_args
            return None

    return TLSHTCondorCluster


def htcondor_cluster(cluster: ClusterConfig, *, name: str = "bsmscan"):
    """A ``dask_jobqueue.HTCondorCluster`` from the config's ``cluster`` section, not yet scaled.

    Its scheduler runs in this process (close the cluster when done); no job is submitted
    until :func:`start_workers` (or ``cluster.scale``/``adapt``) is called. Each job requests
    ``cores``, ``memory`` and ``disk`` and runs ``processes`` single-threaded Dask workers
    (default: one per core), plus ``submit_directives`` (e.g. ``+JobFlavour``) verbatim.
    """
    environment = worker_environment(cluster)
    tls = tls_security(cluster)
    directives = {**transfer_directives(environment, tls.files), **cluster.submit_directives}
    worker_args = ["--worker-port", cluster.worker_ports] if cluster.worker_ports else []
    try:
        htcondor = _tls_cluster_class()(
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
            protocol="tls://",  # scheduler and workers (dask-jobqueue adds --protocol tls:// to the job)
            bsmscan_tls=tls,
        )
    except BaseException:
        if tls.private_directory:
            shutil.rmtree(tls.private_directory, ignore_errors=True)
        raise
    return htcondor


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
    """``bsmscan worker-script --config my.yaml``: print the worker job's submit description."""
    parser = argparse.ArgumentParser(prog="bsmscan worker-script", description=main.__doc__)
    add_config_option(parser)
    args = parser.parse_args(argv)
    return run_command(lambda: print(job_script(config_from_args(args).cluster)), verbose=args.verbose,
                       name="worker-script")

if __name__ == "__main__":
    sys.exit(main())
