"""Settings of the Dask worker processes bsmscan starts, locally or as HTCondor jobs."""

from __future__ import annotations

import os
import signal
import threading

import dask

#: Environment of the Dask worker processes bsmscan starts: Dask's defaults less
#: ``MALLOC_TRIM_THRESHOLD_``. Dask's nanny sets it so that workers hand memory back early, but
#: setting it at all switches off glibc's dynamic mmap threshold, so every array above 128 KiB
#: is mmap'ed and unmapped again: for awkward's many large temporaries a page-fault storm
#: (measured here: a 100k-event chunk took 0.45 s in a worker instead of 0.26 s).
WORKER_ENVIRONMENT = {"OMP_NUM_THREADS": 1, "MKL_NUM_THREADS": 1, "OPENBLAS_NUM_THREADS": 1}


def worker_settings():
    """Dask config for the worker processes bsmscan starts (use around cluster creation).

    The workers also preload this module (:func:`dask_setup`): they ignore Ctrl-C, which a
    terminal sends to every process of the foreground group, so that the driver alone handles
    it and shuts them down in order (instead of each dying with a KeyboardInterrupt traceback
    while the driver carries on without workers).
    """
    return dask.config.set({"distributed.nanny.pre-spawn-environ": dict(WORKER_ENVIRONMENT),
                            "distributed.worker.preload": [__name__]})


def dask_setup(worker) -> None:
    """Dask preload hook run in each worker process this module is preloaded into: ignore SIGINT."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def default_workers() -> int:
    """One worker per core."""
    return os.cpu_count() or 1


