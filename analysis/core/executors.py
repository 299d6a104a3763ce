"""Where the columnar stages run: coffea executors and the Dask cluster behind them.

- ``iterative``: one process, chunk after chunk (debugging, tiny inputs);
- ``futures``: a local process pool (``workers`` processes);
- ``dask``: a Dask ``distributed`` cluster: a new ``LocalCluster`` (``workers`` processes, one
  thread each, default one per core), a running scheduler (``scheduler="tcp://host:port"``),
  or a ``distributed.Client`` the caller already holds (interactive sessions).
- ``condor``: the same Dask executor on workers that run as HTCondor jobs: a
  ``dask_jobqueue.HTCondorCluster`` built from the config's ``cluster`` section
  (``cluster_config``; see :mod:`analysis.core.condor`), or the given scheduler / client.

Errors: :func:`run_chunks` wraps the processor in :class:`ChunkGuard`, so that a read error
inside a chunk (a corrupt basket, a file cut short after it was checked) becomes a
:class:`~analysis.core.fileset.BadInputFileError` naming the file and entry range, and unwraps
coffea's exception chain (``Failed processing file: WorkItem(...)``) so that a bsmscan error
raised in a worker reaches the user as itself (exit code 2 from the CLIs), not as a traceback.
A deterministic error is not retried on local executors (coffea would run the chunk 4 times).
"""

from __future__ import annotations

import io
import re
import sys
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext, redirect_stderr

import pyarrow
import uproot
from coffea import processor
from coffea.nanoevents import BaseSchema, NanoAODSchema
from coffea.processor.executor import FileMeta
from distributed import Client, LocalCluster

from analysis.core.condor import condor_cluster
from analysis.core.errors import UserError
from analysis.core.fileset import BadInputFileError
from analysis.core.workers import WORKER_ENVIRONMENT, default_workers, worker_settings  # noqa: F401 (re-exported)

EXECUTORS = ("iterative", "futures", "dask", "condor")
#: Executors that run on a Dask cluster (coffea's DaskExecutor).
DASK_EXECUTORS = ("dask", "condor")
SCHEMAS = {"base": BaseSchema, "nanoaod": NanoAODSchema}


@contextmanager
def dask_client(workers: int | None = None, scheduler: str | None = None, client=None, cluster_config=None,
                preload: tuple[str, ...] = ()) -> Iterator:
    """A ``distributed.Client``: the one given, one attached to ``scheduler``, or a new cluster's.

    The new cluster is an HTCondorCluster when ``cluster_config`` (the config's ``cluster``
    section) is given, else a LocalCluster of ``workers`` processes (forked from a forkserver
    that imported ``preload``, see :func:`~analysis.core.workers.worker_settings`). Clusters and
    clients this function creates are closed on exit; a given client is left open.
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
    with worker_settings(preload), local_cluster(workers) as cluster, Client(cluster) as local:
        yield local


def local_cluster(workers: int | None = None, dashboard_port: int | None = None) -> LocalCluster:
    """A ``LocalCluster`` of single-threaded worker processes (default one per core) whose
    scheduler listens on 127.0.0.1 only; the dashboard is served, on 127.0.0.1, only when
    ``dashboard_port`` is given (0: any free port)."""
    dashboard = {"scheduler_kwargs": {"dashboard": False}} if dashboard_port is None else {}
    return LocalCluster(n_workers=workers or default_workers(), threads_per_worker=1, processes=True, host="127.0.0.1",
                        dashboard_address=f"127.0.0.1:{dashboard_port or 0}", **dashboard)


def coffea_executor(name: str, *, workers: int | None = None, client=None, show_progress: bool = False):
    """The coffea executor called ``name`` (``dask`` and ``condor`` need a ``client``)."""
    if name == "iterative":  # retries=0: a chunk that failed here fails again (coffea's default retries 3 times)
        return processor.IterativeExecutor(status=show_progress, retries=0)
    if name == "futures":
        return processor.FuturesExecutor(workers=workers or default_workers(), status=show_progress, retries=0)
    if name in DASK_EXECUTORS:
        if client is None:
            raise ValueError("the dask executor needs a distributed.Client (see analysis.core.executors.dask_client)")
        return processor.DaskExecutor(client=client, status=show_progress)
    raise ValueError(f"unknown executor {name!r}; choose one of {', '.join(EXECUTORS)}")


def client_for(executor: str, workers: int | None = None, scheduler: str | None = None, client=None,
               cluster_config=None, preload: tuple[str, ...] = ()):
    """A context giving the Dask client the executor needs (``None`` for iterative and futures).

    ``condor`` builds an HTCondorCluster from ``cluster_config`` (the config's ``cluster``
    section) unless a ``client`` or ``scheduler`` is given; ``workers`` does not apply to it.
    """
    if executor == "condor":
        if client is None and not scheduler and cluster_config is None:
            raise ValueError("the condor executor needs the config's cluster section (cluster_config=config.cluster)")
        return dask_client(None, scheduler, client, cluster_config=cluster_config)
    return dask_client(workers, scheduler, client, preload=preload) if executor == "dask" else nullcontext(None)


def _read_errors() -> tuple[type[BaseException], ...]:
    """Exception types that mean the bytes of an input file could not be read or decoded."""
    return (OSError, EOFError, zlib.error, uproot.deserialization.DeserializationError, pyarrow.ArrowInvalid)


class ChunkEvents:
    """The branches of one chunk, read eagerly: what the processors use of coffea's events.

    ``fields`` (membership tests), ``events[branch]`` (an awkward array), ``len(events)`` and
    ``metadata`` (coffea's chunk metadata: dataset, filename, treename, entry range, and the
    dataset's own). Branches are the flat ones of the file (``Muon_pt``), whatever the schema.
    """

    def __init__(self, arrays: dict, metadata: dict, n_events: int):
        self._arrays = arrays
        self.metadata = metadata
        self._n_events = n_events

    @property
    def fields(self):
        """The branches read (a set-like view)."""
        return self._arrays.keys()

    def __getitem__(self, branch: str):
        return self._arrays[branch]

    def __len__(self) -> int:
        return self._n_events


def read_chunk(events, branches) -> ChunkEvents:
    """``branches`` of the ROOT chunk that coffea's ``events`` stand for, read in one go with uproot
    (TTree or RNTuple); branches the file lacks are left out (asking for one names it)."""
    metadata = dict(events.metadata)
    wanted = frozenset(branches)
    start, stop = metadata["entrystart"], metadata["entrystop"]
    with uproot.open(metadata["filename"]) as file:
        arrays = file[metadata["treename"]].arrays(filter_name=lambda name: name in wanted, entry_start=start,
                                                   entry_stop=stop, how=dict)
    return ChunkEvents(arrays, metadata, stop - start)


class ChunkGuard(processor.ProcessorABC):
    """A processor wrapper: read errors inside a chunk become a :class:`BadInputFileError`.

    An ``OSError: expected Chunk of length 18486, received 0 bytes`` from uproot names no file.
    bsmscan's own errors (:class:`UserError`) pass unchanged. With ``branches`` (dataset -> the
    branches the processor reads), ROOT chunks are read eagerly (:func:`read_chunk`) and the processor
    gets :class:`ChunkEvents`: one bulk read per chunk, and plain arrays from then on, instead
    of coffea's virtual arrays read branch by branch on first access.
    """

    def __init__(self, inner, branches: dict[str, list[str]] | None = None):
        self.inner = inner
        self.branches = branches

    def process(self, events):
        try:
            if self.branches is not None:
                events = read_chunk(events, self.branches[events.metadata["dataset"]])
            return self.inner.process(events)
        except UserError:
            raise
        except _read_errors() as error:
            metadata = dict(getattr(events, "metadata", None) or {})
            where = f"entries {metadata.get('entrystart')}-{metadata.get('entrystop')}"
            message = " ".join(str(error).split())[:300]
            raise BadInputFileError(str(metadata.get("filename", "<unknown file>")),
                                    f"read error in {where} ({type(error).__name__}: {message})") from None

    def postprocess(self, accumulator):
        return self.inner.postprocess(accumulator)


def user_error_in(error: BaseException) -> UserError | None:
    """The first bsmscan :class:`UserError` in ``error``'s chain of causes (coffea wraps worker errors)."""
    return next((cause for cause in _causes(error) if isinstance(cause, UserError)), None)


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
    branches: dict[str, list[str]] | None = None,
) -> dict:
    """Run a processor over an inspected fileset (ROOT and Parquet parts) with coffea's Runner.

    ``inspected`` is an :class:`analysis.core.fileset.InspectedFileset`; returns the merged
    accumulator (a dict, the processors here key it by chunk). A bsmscan error raised in a
    chunk is re-raised as itself; a read error as :class:`BadInputFileError` naming the file;
    anything else (a bug) keeps its traceback. ``KeyboardInterrupt`` passes through untouched.
    ``branches`` (dataset -> branch names, :func:`analysis.core.fileset.preload_branches`): the
    branches of ROOT files read eagerly, all in one go per chunk (:class:`ChunkGuard`), instead
    of one by one as the processor first touches them.
    """
    output: dict = {}
    for fmt in ("root", "parquet"):
        datasets = getattr(inspected, fmt)
        if not datasets:
            continue
        guarded = ChunkGuard(processor_instance, branches if fmt == "root" else None)
        make = lambda: coffea_executor(executor, workers=workers, client=client, show_progress=show_progress)
        # metadata_cache: coffea's default cache is global to the process and keeps each file's
        # *user* metadata too, so a second run in one session (another sum_genweight after skipped
        # files, an edited cross section) would silently get the first run's values. A fresh one,
        # filled with what the inspection read (events, UUID), so coffea does not open every file
        # again (on Dask: one round of tasks less before the first chunk starts)
        runner = processor.Runner(
            executor=make(), pre_executor=make(), chunksize=chunksize, schema=SCHEMAS[schema], format=fmt,
            metadata_cache=_inspected_metadata(datasets, getattr(inspected, "entries", {})),
        )
        try:
            with _quiet_futures_errors(executor, show_progress):
                output.update(runner(datasets, guarded))
        except Exception as error:  # coffea wraps what a chunk raised: hand the user bsmscan's own message
            cause = user_error_in(error)
            if cause is not None:
                raise cause.with_traceback(None) from None
            read_error = next((c for c in _causes(error) if isinstance(c, _read_errors())), None)
            if read_error is not None:  # the file could not be opened in the worker (coffea names the WorkItem)
                named = re.search(r"filename='([^']*)'", str(error))
                raise BadInputFileError(named.group(1) if named else "(a file of the fileset)",
                                        f"{type(read_error).__name__}: {' '.join(str(read_error).split())[:300]}") from None
            raise  # not an input problem: a bug, keep its traceback
    return output


def _inspected_metadata(datasets: dict, entries: dict[str, tuple[int, bytes]]) -> dict:
    """coffea's metadata cache (``FileMeta`` -> dataset metadata + ``numentries`` + ``uuid``) for the
    files whose events and UUID the fileset inspection recorded."""
    cache = {}
    for dataset, entry in datasets.items():
        for path, tree in entry["files"].items():
            if path in entries:
                n_events, file_uuid = entries[path]
                metadata = {**entry.get("metadata", {}), "numentries": n_events, "uuid": file_uuid}
                cache[FileMeta(dataset, path, tree, metadata)] = metadata
    return cache


@contextmanager
def _quiet_futures_errors(executor: str, show_progress: bool) -> Iterator[None]:
    """Hold back what coffea's FuturesExecutor prints to stderr while it runs.

    On a failed chunk it prints the worker's whole traceback (``traceback.print_exc()``) before
    raising; the error itself reaches the user as bsmscan's message. Other output is passed on
    once the run ends (not with live progress bars, which are left alone).
    """
    if executor != "futures" or show_progress:
        yield
        return
    held = io.StringIO()
    failed = False
    try:
        with redirect_stderr(held):
            yield
    except BaseException:
        failed = True
        raise
    finally:
        text = held.getvalue()
        if failed and "Traceback" in text:  # coffea's print of the error the caller gets anyway
            text = ""
        if text:
            sys.stderr.write(text)


def _causes(error: BaseException) -> list[BaseException]:
    chain, current = [], error
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain
