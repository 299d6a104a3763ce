"""Settings of the Dask worker processes bsmscan starts, locally or as HTCondor jobs.

Local workers are forked from a forkserver (on Linux) that has imported the heavy packages
once (:data:`FORKSERVER_PRELOAD`, plus the modules the caller names, e.g. the compiled kernels
of the columnar processors): a worker starts its first chunk without importing them or
initialising numba itself, and leaves without the interpreter's teardown (forked processes
exit directly), so a short run does not wait for its cluster (measured on this 2-core
machine, 100k events on 2 workers: cluster start + processing + shutdown 7-11 s instead of
12-19 s with spawned workers). Elsewhere workers are spawned, as Dask does by default.
"""

from __future__ import annotations

import importlib.util
import multiprocessing
import os
import signal
import sys
import threading
from collections.abc import Sequence

import dask

#: Environment of the Dask worker processes bsmscan starts: Dask's defaults less
#: ``MALLOC_TRIM_THRESHOLD_``. Dask's nanny sets it so that workers hand memory back early, but
#: setting it at all switches off glibc's dynamic mmap threshold, so every array above 128 KiB
#: is mmap'ed and unmapped again: for awkward's many large temporaries a page-fault storm
#: (measured here: a 100k-event chunk took 0.45 s in a worker instead of 0.26 s).
WORKER_ENVIRONMENT = {"OMP_NUM_THREADS": 1, "MKL_NUM_THREADS": 1, "OPENBLAS_NUM_THREADS": 1}


#: Packages the forkserver of local workers imports before forking them (see the module docstring).
FORKSERVER_PRELOAD = ("numpy", "pandas", "pyarrow", "awkward", "uproot", "coffea.processor", "coffea.nanoevents",
                      "hist", "numba")


def _use_forkserver(preload: Sequence[str]) -> bool:
    """Set the forkserver's preload (once per process: the forkserver starts with the first worker)
    and say whether local workers are forked (Linux) or spawned."""
    if not sys.platform.startswith("linux"):
        return False
    import distributed.utils  # (only where a cluster is started; distributed is imported by then)
    from distributed.versions import (  # (as distributed's own preload)
        optional_packages,
        required_packages,
    )

    if not getattr(distributed.utils, "_forkserver_preload_set", False):
        modules = ["distributed"]
        for name in (*required_packages, *optional_packages, *FORKSERVER_PRELOAD, *preload):
            if name not in modules and importlib.util.find_spec(name.split(".")[0]) is not None:
                modules.append(name)
        multiprocessing.get_context("forkserver").set_forkserver_preload(modules)
        distributed.utils._forkserver_preload_set = True  # distributed would set its own list otherwise
    return True


def worker_settings(preload: Sequence[str] = ()):
    """Dask config for the worker processes bsmscan starts (use around cluster creation).

    ``preload``: modules for the forkserver to import besides :data:`FORKSERVER_PRELOAD` (the
    first cluster of a process sets them). The workers also preload this module
    (:func:`dask_setup`): they ignore Ctrl-C, which a terminal sends to every process of the
    foreground group, so that the driver alone handles it and shuts them down in order (instead
    of each dying with a KeyboardInterrupt traceback while the driver carries on without workers).
    """
    settings = {"distributed.nanny.pre-spawn-environ": dict(WORKER_ENVIRONMENT),
                "distributed.worker.preload": [__name__]}
    if _use_forkserver(preload):
        settings["distributed.worker.multiprocessing-method"] = "forkserver"
    return dask.config.set(settings)


def dask_setup(worker) -> None:
    """Dask preload hook run in each worker process this module is preloaded into: ignore SIGINT."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def default_workers() -> int:
    """One worker per core."""
    return os.cpu_count() or 1


