"""Entry points of the batch jobs: ``python -m jobs.batch <step> --config FILE --outdir DIR ...``.

Each step is one node of the DAG written by ``python -m jobs.submit`` (``jobs/dag.py``) and
runs as an HTCondor job or as a local process; none needs a Dask scheduler. Every step reads
its inputs from, and writes its outputs into, the results directory ``--outdir`` (the same
layout as ``python -m analysis.run``), which all jobs must reach (a shared filesystem)::

    generate --job STEM        one (sample x chunk) generation job -> <sample cache>/<STEM>.root/.json
    merge-samples              the sample manifest <sample cache>/fileset.json
    plan                       inspect the fileset; the chunk plan batch/plan.json; clear old outputs
    process --slot I --slots N selection of every N-th chunk -> store/parts/*.parquet, batch/process/*.json
    merge-process --slots N    store/cutflow.json and store/schema.json
    train                      model/ (request_gpus on the pool when configured)
    score --slot I --slots N   score histograms per chunk -> batch/score/*.json
    merge-score --slots N      histograms.json
    scan                       scan.json (from the histograms only)
    fit                        workspaces/*.json and fit.json (pyhf)
    report                     summary.json, plots, index.html

The steps live in :mod:`jobs.steps`, and a node imports only the module of its own step (a
generation node does not load the network, likelihood and plotting packages). Every step
calls the same stage function as the Dask pipeline (:mod:`analysis.stages`):
chunk nodes run the stage's processor on their chunks, merges call the stage's ``merge_*``.
Partial outputs are JSON (histograms with uhi's serialisation) or Parquet, written under a
temporary name and renamed when complete; nothing is pickled. Merges add the chunks in
sorted key order exactly like ``run_processing`` / ``run_scoring``, so the results equal a
Dask run's bit for bit, and refuse a missing, duplicated or unknown chunk, naming it.
"""


from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

from analysis.core.cli import non_negative_int, positive_int, run_command
from analysis.core.config import AnalysisConfig, load_config

from .steps.common import (
    CHUNK_STEPS,
    MERGE_STEPS,
    BatchError,
    BatchPaths,
    chunk_node_name,
)

__all__ = ["CHUNK_STEPS", "MERGE_STEPS", "STEPS", "BatchError", "BatchPaths", "chunk_node_name", "main", "run_step",
           "step_module"]

#: Step -> the module of :mod:`jobs.steps` that runs it.
STEP_MODULES = {
    "generate": "generation", "merge-samples": "generation",
    "plan": "selection", "process": "selection", "merge-process": "selection",
    "train": "results", "score": "results", "merge-score": "results", "scan": "results", "fit": "results",
    "report": "results",
}
STEPS = tuple(STEP_MODULES)


def step_module(step: str):
    """The module of :mod:`jobs.steps` that runs ``step``, imported now: only that module's
    dependencies are loaded (the reason for importing by name here)."""
    if step not in STEP_MODULES:
        raise BatchError(f"unknown step {step!r}; steps are {', '.join(STEPS)}")
    return importlib.import_module(f"jobs.steps.{STEP_MODULES[step]}")


def run_step(step: str, config: AnalysisConfig, outdir: Path, *, job: str | None = None, slot: int | None = None,
             slots: int | None = None) -> str:
    """Run one step; returns a one-line summary of what it did (a signal step without signal
    does nothing and says so: the report then shows the selection and control histograms)."""
    return step_module(step).run_step(step, config, BatchPaths(Path(outdir)), job=job, slot=slot, slots=slots)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit code (2 for a clear, named failure)."""
    parser = argparse.ArgumentParser(prog="python -m jobs.batch", description=__doc__.split("\n\n")[0])
    parser.add_argument("step", choices=STEPS)
    parser.add_argument("--config", type=Path, required=True, help="the analysis config YAML of the run")
    parser.add_argument("--outdir", type=Path, required=True, help="the results directory (shared by all jobs)")
    parser.add_argument("--job", help="generate: the job stem, e.g. WW_0003")
    parser.add_argument("--slot", type=non_negative_int, help="chunk nodes: this node's index")
    parser.add_argument("--slots", type=positive_int, help="chunk nodes and merges: the number of chunk nodes")
    args = parser.parse_args(argv)
    start = time.perf_counter()

    def body() -> int:
        message = run_step(args.step, load_config(args.config), args.outdir, job=args.job, slot=args.slot,
                           slots=args.slots)
        print(f"{message} ({time.perf_counter() - start:.1f} s)")
        return 0

    return run_command(body, name=f"jobs.batch {args.step}")

if __name__ == "__main__":
    sys.exit(main())
