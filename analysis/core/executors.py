"""Where the columnar stages run: coffea executors and the Dask cluster behind them.

- ``iterative``: one process, chunk after chunk (debugging, tiny inputs);
- ``futures``: a local process pool (``workers`` processes);
- ``dask``: a Dask ``distributed`` cluster: a new ``LocalCluster`` (``workers`` processes, one
  thread each, default one per core), a running scheduler (``scheduler="tcp://host:port"``),
  or a ``distributed.Client`` the caller already holds (interactive sessions).
- ``condor``: the same Dask executor on workers that run as HTCondor jobs: a
  ``dask_jobqueue.HTCondorCluster`` built from the config's ``cluster`` section
  (``cluster_config``; see :mod:`analysis.core.condor`), or the given scheduler / client.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from typing import Iterator

from coffea import processor
from coffea.nanoevents import BaseSchema, NanoAODSchema
from distributed import Client, LocalCluster

from analysis.core.condor import condor_cluster
from analysis.core.workers import WORKER_ENVIRONMENT, default_workers, worker_settings  # noqa: F401 (re-exported)

EXECUTORS = ("iterative", "futures", "dask", "condor")
#: Executors that run on a Dask cluster (coffea's DaskExecutor).
DASK_EXECUTORS = ("dask", "condor")
SCHEMAS = {"base": BaseSchema, "nanoaod": NanoAODSchema}


@contextmanager
def dask_client(workers: int | None = None, scheduler: str | None = None, client=None, cluster_config=None) -> Iterator:
    """A ``distributed.Client``: the one given, one attached to ``scheduler``, or a new cluster's.

    The new cluster is an HTCondorCluster when ``cluster_config`` (the config's ``cluster``
    section) is given, else a LocalCluster of ``workers`` processes. Clusters and clients this
    function creates are closed on exit; a given client is left open.
    """
    if client is not None:
        yield client
        return
    if scheduler:
        with Client(scheduler) as attached:
            yield attached
        return
    if cluster_config is not None:
        with condor_cluster(cluster_config) as cluster, Client(cluster) as condor:
            yield condor
        return
    with worker_settings(), LocalCluster(
        n_workers=workers or default_workers(), threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster, Client(cluster) as local:
        yield local


def coffea_executor(name: str, *, workers: int | None = None, client=None, show_progress: bool = False):
    """The coffea executor called ``name`` (``dask`` and ``condor`` need a ``client``)."""
    if name == "iterative":
        return processor.IterativeExecutor(status=show_progress)
    if name == "futures":
        return processor.FuturesExecutor(workers=workers or default_workers(), status=show_progress)
    if name in DASK_EXECUTORS:
        if client is None:
            raise ValueError("the dask executor needs a distributed.Client (see analysis.core.executors.dask_client)")
        return processor.DaskExecutor(client=client, status=show_progress)
    raise ValueError(f"unknown executor {name!r}; choose one of {', '.join(EXECUTORS)}")


def client_for(executor: str, workers: int | None = None, scheduler: str | None = None, client=None,
               cluster_config=None):
    """A context giving the Dask client the executor needs (``None`` for iterative and futures).

    ``condor`` builds an HTCondorCluster from ``cluster_config`` (the config's ``cluster``
    section) unless a ``client`` or ``scheduler`` is given; ``workers`` does not apply to it.
    """
    if executor == "condor":
        if client is None and not scheduler and cluster_config is None:
            raise ValueError("the condor executor needs the config's cluster section (cluster_config=config.cluster)")
        return dask_client(None, scheduler, client, cluster_config=cluster_config)
    return dask_client(workers, scheduler, client) if executor == "dask" else nullcontext(None)


def run_chunks(
    inspected,
    processor_instance,
    *,
    executor: str,
    chunksize: int,
    workers: int | None = None,
    client=None,
    schema: str = "base",
    show_progress: bool = False,
) -> dict:
    """Run a processor over an inspected fileset (ROOT and Parquet parts) with coffea's Runner.

    ``inspected`` is an :class:`analysis.core.fileset.InspectedFileset`; returns the merged
    accumulator (a dict, the processors here key it by chunk).
    """
    output: dict = {}
    for fmt in ("root", "parquet"):
        datasets = getattr(inspected, fmt)
        if not datasets:
            continue
        make = lambda: coffea_executor(executor, workers=workers, client=client, show_progress=show_progress)  # noqa: E731
        runner = processor.Runner(
            executor=make(), pre_executor=make(), chunksize=chunksize, schema=SCHEMAS[schema], format=fmt
        )
        output.update(runner(datasets, processor_instance))
    return output
