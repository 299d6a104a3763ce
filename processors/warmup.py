"""Importing this module loads the compiled kernels of :mod:`processors.kernels` (a side effect on purpose).

The forkserver of bsmscan's local Dask workers imports it (``analysis.core.workers``), so that
every worker forked from it starts with numba running and the kernels' machine code (cached
on disk) in memory, instead of paying that at its first chunk (about 1.7 s per process on the
2-core machine). Nothing else imports it.
"""

from __future__ import annotations

from .kernels import warm_up

warm_up()
