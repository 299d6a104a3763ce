"""How many events a chunk holds: ``executor.chunksize``, or an automatic size.

``executor.chunksize: auto`` (the default) sizes chunks from the events of the run and the
workers that will process them, so that every worker gets :data:`CHUNKS_PER_WORKER` chunks or
more (a single 100k-event file keeps both workers of a 2-core machine busy, where one
100k-event chunk would leave one idle), within [:data:`AUTO_MIN_EVENTS`, :data:`AUTO_MAX_EVENTS`]
events (small chunks cost a fixed overhead each, so small inputs get fewer; large ones memory). coffea then cuts each file into
``max(round(n / chunksize), 1)`` nearly equal pieces.

The size depends only on the config and the inputs, never on the executor that runs them:
``iterative``, ``futures`` and ``dask`` cut the same chunks and so write the same feature-store
parts and bit-identical cutflows. The workers counted are ``executor.workers`` (default: the
cores of this machine) or, for ``condor``, the cluster's jobs; set ``executor.chunksize`` to a
number to pin the chunks across machines.
"""

from __future__ import annotations

import math

from analysis.core.config import AnalysisConfig
from analysis.core.workers import default_workers

__all__ = ["AUTO_MAX_EVENTS", "AUTO_MIN_EVENTS", "CHUNKS_PER_WORKER", "auto_chunksize", "chunk_size", "planned_workers"]

#: With an automatic chunk size, each worker gets at least this many chunks (load balance).
CHUNKS_PER_WORKER = 4
#: Automatic chunk sizes stay within these bounds (events).
AUTO_MIN_EVENTS = 25_000
AUTO_MAX_EVENTS = 100_000


def auto_chunksize(n_events: int, workers: int) -> int:
    """The automatic chunk size for ``n_events`` events on ``workers`` workers.

    >>> auto_chunksize(100_000, 2), auto_chunksize(600_000, 2), auto_chunksize(10_000_000, 16)
    (25000, 75000, 100000)
    """
    wanted = math.ceil(max(n_events, 1) / (CHUNKS_PER_WORKER * max(workers, 1)))
    return int(min(AUTO_MAX_EVENTS, max(AUTO_MIN_EVENTS, wanted)))


def planned_workers(config: AnalysisConfig, executor: str | None = None, workers: int | None = None) -> int:
    """The workers a run is sized for: ``workers``, ``executor.workers``, the condor cluster's jobs
    (its adaptive maximum) for ``condor``, else the cores of this machine."""
    if workers:
        return workers
    if config.executor.workers:
        return config.executor.workers
    if (executor or config.executor.name) == "condor":
        cluster = config.cluster
        jobs = cluster.adaptive.maximum if cluster.adaptive is not None else cluster.jobs
        return max(jobs, 1)
    return default_workers()


def chunk_size(config: AnalysisConfig, n_events: int, executor: str | None = None, workers: int | None = None) -> int:
    """Events per chunk of a run over ``n_events`` events: ``executor.chunksize`` if set, else
    :func:`auto_chunksize` for the :func:`planned_workers`."""
    if config.executor.chunksize is not None:
        return config.executor.chunksize
    return auto_chunksize(n_events, planned_workers(config, executor, workers))
