"""Columnar physics: objects, selection, features, scoring (coffea processors)."""

#: Modules for the forkserver of local Dask workers to import before forking them
#: (``analysis.core.workers``): the processors and their compiled kernels, loaded once.
WORKER_MODULES = ("processors.processor", "processors.scoring", "processors.warmup")
