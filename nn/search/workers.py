"""Local Dask workers for the search: JAX on one thread each, each pinned to its own core.

One trial trains a small network, which one core runs best; so a LocalCluster of the search gets
one single-threaded worker per core (like the columnar stages' workers), and on Linux each
worker's threads are pinned to their core, so that two workers never share one.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Iterator

from analysis.core.executors import dask_client

__all__ = ["SINGLE_THREAD_XLA_FLAGS", "pin_workers", "search_client", "single_threaded_workers"]


#: XLA flags of the local search workers: one compute thread each (one worker per core, like
#: the columnar stages' single-threaded workers), so that 2 workers do not fight over the cores.
SINGLE_THREAD_XLA_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


@contextlib.contextmanager
def single_threaded_workers() -> Iterator[None]:
    """Within this block, worker processes that a LocalCluster spawns run JAX on one thread
    (``XLA_FLAGS`` is set in this process's environment, which they inherit, and restored after)."""
    before = os.environ.get("XLA_FLAGS")
    os.environ["XLA_FLAGS"] = f"{before} {SINGLE_THREAD_XLA_FLAGS}" if before else SINGLE_THREAD_XLA_FLAGS
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("XLA_FLAGS", None)
        else:
            os.environ["XLA_FLAGS"] = before


@contextlib.contextmanager
def search_client(workers: int | None = None, scheduler: str | None = None, cluster_config=None) -> Iterator[Any]:
    """A Dask client for the search (:func:`analysis.core.executors.dask_client`); a new LocalCluster
    gets single-threaded JAX workers (:func:`single_threaded_workers`), each pinned to a core."""
    local = scheduler is None and cluster_config is None
    with contextlib.ExitStack() as stack:
        if local:
            stack.enter_context(single_threaded_workers())
        client = stack.enter_context(dask_client(workers, scheduler, cluster_config=cluster_config))
        if local:
            pin_workers(client)
        yield client


def _pin_process(core: int) -> int:
    """Pin every thread of this process (and the threads it starts later) to CPU ``core``."""
    for task in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(task), {core})
        except OSError:
            pass
    return core


def pin_workers(client) -> dict[str, int]:
    """Pin local worker ``i`` to CPU ``i mod cores`` (Linux; a no-op elsewhere), so that
    single-threaded workers do not migrate onto each other's cores. Returns {worker: core}."""
    if not hasattr(os, "sched_setaffinity") or not os.path.isdir("/proc/self/task"):
        return {}
    cores = sorted(os.sched_getaffinity(0))
    workers = sorted(client.scheduler_info()["workers"])
    if len(workers) > len(cores):
        return {}
    return {w: client.run(_pin_process, cores[i], workers=[w])[w] for i, w in enumerate(workers)}
