"""The ``executor`` and ``cluster`` sections: where the columnar stages run."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from dask.utils import parse_bytes
from pydantic import (
    Field,
    StrictInt,
    field_validator,
    model_validator,
)

from analysis.core.config.base import _Section


class ExecutorConfig(_Section):
    """Where the columnar stages run (``condor``: Dask workers as HTCondor jobs, see ``cluster``)."""

    name: Literal["iterative", "futures", "dask", "condor"] = "dask"
    workers: StrictInt | None = Field(default=None, gt=0, description="local workers; default: number of cores")
    scheduler: str | None = Field(default=None, description="address of a running Dask scheduler, tcp://host:port")
    chunksize: StrictInt | None = Field(
        default=None, gt=0,
        description="events per chunk; auto (or null, the default): from the events and the workers, so that every "
        "worker gets several chunks (analysis.core.chunking)",
    )
    on_bad_files: Literal["stop", "skip"] = Field(
        default="stop",
        description="an unreadable, truncated or incomplete input file: stop with an error naming it, or skip it "
        "(as --skip-bad-files), report the events lost and normalise the weights to the files read",
    )

    @field_validator("chunksize", mode="before")
    @classmethod
    def _auto_chunksize(cls, value):
        return None if isinstance(value, str) and value == "auto" else value


#: Submit-description commands bsmscan writes itself; ``cluster.submit_directives`` may not set them.
_RESERVED_SUBMIT_COMMANDS = {"executable", "arguments", "queue", "universe", "transfer_input_files", "log", "output", "error"}


def _byte_size(value: str, field: str) -> str:
    try:
        size = parse_bytes(value)
    except (ValueError, TypeError):
        raise ValueError(f"{field} must be a size like '4 GB' or '500 MiB'") from None
    if size <= 0:
        raise ValueError(f"{field} must be > 0")
    return value


class AdaptiveConfig(_Section):
    """Adaptive scaling of the Dask-on-HTCondor cluster between ``minimum`` and ``maximum`` jobs."""

    minimum: StrictInt = Field(default=0, ge=0, description="jobs kept even when idle")
    maximum: StrictInt = Field(gt=0, description="most jobs submitted under load")

    @model_validator(mode="after")
    def _ordered(self) -> "AdaptiveConfig":
        if self.minimum > self.maximum:
            raise ValueError(f"adaptive minimum ({self.minimum}) is above the maximum ({self.maximum})")
        return self


class ClusterConfig(_Section):
    """An HTCondor pool: resources per job and the worker environment.

    Read by ``--executor condor`` (Dask workers started as condor jobs with dask-jobqueue,
    ``analysis/condor.py``) and by the standalone batch DAG (``python -m jobs.submit``).
    ``ship`` says how jobs find bsmscan: ``shared`` (the submitting Python and checkout are on a
    filesystem every node mounts, e.g. AFS or CVMFS), ``wheel`` (``ship_file`` is a bsmscan wheel
    installed with ``--no-deps`` into the job's scratch directory; the dependencies come from the
    environment the ``prologue`` activates) or ``packed_env`` (``ship_file`` is a conda-pack /
    venv-pack tarball unpacked and activated in the job). Shipped files go with
    ``transfer_input_files``.
    """

    cores: StrictInt = Field(default=1, gt=0, description="cores per job (request_cpus)")
    processes: StrictInt | None = Field(default=None, gt=0, description="Dask worker processes per job; default: one per core, single-threaded")
    memory: str = Field(default="4 GB", description="memory per job (request_memory), e.g. '4 GB'")
    disk: str = Field(default="8 GB", description="scratch disk per job (request_disk)")
    jobs: StrictInt = Field(default=4, ge=0, description="Dask worker jobs to submit (ignored when adaptive is set)")
    adaptive: AdaptiveConfig | None = Field(default=None, description="scale between minimum and maximum jobs with the load")
    submit_directives: dict[str, str] = Field(
        default_factory=dict, description='extra submit commands, e.g. {"+JobFlavour": \'"longlunch"\'}'
    )
    prologue: list[str] = Field(default_factory=list, description="shell lines run before the worker starts (activate the environment)")
    python: str | None = Field(default=None, description="Python on the nodes; default: this Python (shared) or 'python3'")
    ship: Literal["shared", "wheel", "packed_env"] = "shared"
    ship_file: Path | None = Field(default=None, description="the wheel or packed environment shipped with each job")
    transfer_input_files: list[str] = Field(default_factory=list, description="more files to send with each job")
    scheduler_host: str | None = Field(default=None, description="host or address the Dask scheduler listens on")
    interface: str | None = Field(default=None, description="network interface of the scheduler and workers, e.g. eth0")
    scheduler_port: StrictInt = Field(default=0, ge=0, le=65535, description="Dask scheduler port; 0: a free one")
    dashboard_port: StrictInt | None = Field(default=None, ge=0, le=65535, description="Dask dashboard port; null: no dashboard")
    dashboard_host: str = Field(default="127.0.0.1", pattern=r"^[A-Za-z0-9.:_-]+$",
                                description="address the scheduler's HTTP server (dashboard) listens on; default: this machine only")
    tls_ca_file: Path | None = Field(default=None, description="CA of the Dask TLS certificates; null: a temporary CA per cluster")
    tls_cert: Path | None = Field(default=None, description="certificate of the scheduler, client and workers (with tls_ca_file)")
    tls_key: Path | None = Field(default=None, description="its private key; null: the key is in tls_cert")
    worker_ports: str | None = Field(default=None, pattern=r"^\d+(:\d+)?$", description="worker port or range 'low:high' (firewalls)")
    death_timeout: float = Field(default=120.0, gt=0, description="seconds a worker waits for the scheduler before exiting")
    local_directory: str | None = Field(default="$_CONDOR_SCRATCH_DIR", description="worker spill directory on the node")
    log_directory: Path | None = Field(default=None, description="condor stdout/stderr/log of the worker jobs; null: none")
    request_gpus: StrictInt = Field(default=0, ge=0, description="GPUs requested by the train node of the batch DAG")
    chunk_jobs: StrictInt | None = Field(default=None, gt=0, description="batch DAG: process/score nodes per stage; default: one per chunk")
    retries: StrictInt = Field(default=2, ge=0, description="batch DAG: retries of a failed generate/process/score node")

    @field_validator("memory", "disk")
    @classmethod
    def _sizes(cls, value: str, info) -> str:
        return _byte_size(value, info.field_name)

    @field_validator("submit_directives")
    @classmethod
    def _safe_directives(cls, directives: dict[str, str]) -> dict[str, str]:
        for key, value in directives.items():
            if not re.fullmatch(r"\+?[A-Za-z_][A-Za-z0-9_.]*", key):
                raise ValueError(f"submit directive {key!r} is not a submit command name (e.g. request_cpus, +JobFlavour)")
            if key.lower() in _RESERVED_SUBMIT_COMMANDS:
                raise ValueError(f"submit directive {key!r} is set by bsmscan itself")
            if "\n" in str(value) or "\r" in str(value):
                raise ValueError(f"submit directive {key!r}: the value must be one line")
        return directives

    @field_validator("prologue", "transfer_input_files")
    @classmethod
    def _single_lines(cls, lines: list[str], info) -> list[str]:
        if any("\n" in line or "\r" in line for line in lines):
            raise ValueError(f"every {info.field_name} entry must be one line")
        return lines

    @model_validator(mode="after")
    def _ship_file_given(self) -> "ClusterConfig":
        if self.ship != "shared" and self.ship_file is None:
            raise ValueError(f"ship: {self.ship} needs ship_file (the file sent with every job)")
        if (self.tls_ca_file is None) != (self.tls_cert is None) or (self.tls_key is not None and self.tls_cert is None):
            raise ValueError("TLS certificates need both tls_ca_file and tls_cert (and optionally tls_key), or none of them")
        return self
