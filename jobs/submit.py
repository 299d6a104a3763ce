"""The whole analysis as HTCondor batch jobs: ``python -m jobs.submit``.

Writes the DAGMan workflow of a config (``jobs/dag.py``: generate -> process -> train ->
score -> scan -> report, chunk stages fanned out over ``S`` nodes) and the submit files of its
steps into ``--dag-dir`` (default ``<outdir>/condor``), then

- ``--dry-run``: stops there (inspect the files, or submit them later with
  ``condor_submit_dag -usedagdir``: the DAG names its files relative to its own directory);
- ``--local``: runs the same DAG's jobs here as local processes, in dependency order, in
  parallel up to ``--cores``;
- otherwise: submits the DAG to the local schedd with the HTCondor Python bindings.

Every job reads and writes the results directory ``--outdir`` (and the sample cache), so both
must be on a filesystem the execute nodes share. The generate stage is left out when the
sample cache already holds the config's samples, or when the config analyses its own fileset.

Examples::

    python -m jobs.submit --config my.yaml --outdir /afs/cern.ch/work/u/user/results --dry-run
    python -m jobs.submit --config my.yaml --outdir results                 # submit the DAG
    python -m jobs.submit --config my.yaml --outdir results --local --cores 8
    python -m jobs.submit --config my.yaml --outdir results --stages score,scan,report
    python -m jobs.submit --config my.yaml --fileset my_fileset.json --outdir results --local
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from collections import Counter
from pathlib import Path

import htcondor2

from analysis.core.cli import (
    add_config_option,
    config_from_args,
    positive_int,
    run_command,
)
from analysis.core.config import AnalysisConfig
from analysis.core.errors import UserError
from analysis.pipeline import parse_stages
from analysis.stages.generate import with_fileset

from .dag import DAG_NAME, STAGES, build_workflow, write_workflow
from .dag_local import run_dag_locally
from .generate import MANIFEST_NAME, output_directory

log = logging.getLogger(__name__)


class SubmitError(UserError, RuntimeError):
    """The DAG could not be submitted (no schedd, a refused submission); the message says why."""


def _stages(text: str) -> tuple[str, ...]:
    try:
        return parse_stages(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def samples_cached(config: AnalysisConfig) -> bool:
    """Whether the sample cache already holds the config's manifest (nothing to generate)."""
    return config.samples.fileset is None and (output_directory(config) / MANIFEST_NAME).exists()


def prepare_dag(config: AnalysisConfig, outdir: str | Path, dag_dir: str | Path | None = None, *,
                stages=STAGES, chunk_jobs: int | None = None) -> Path:
    """Build the workflow of ``config`` and write its DAG and submit files; returns the DAG path."""
    outdir = Path(outdir).resolve()
    dag_dir = Path(dag_dir).resolve() if dag_dir is not None else outdir / "condor"
    stages = tuple(stages)
    if "generate" in stages and samples_cached(config):
        stages = tuple(stage for stage in stages if stage != "generate")
        log.info("the sample cache holds this config's samples: no generate stage")
    workflow = build_workflow(config, stages, chunk_jobs)
    dag = write_workflow(workflow, config, outdir, dag_dir)
    counts = Counter(node.step for node in workflow.nodes)
    log.info("DAG %s: %d nodes (%s)", dag, len(workflow.nodes), ", ".join(f"{step} {n}" for step, n in counts.items()))
    return dag


def _submit_hint(dag: Path) -> str:
    return f"cd {shlex.quote(str(dag.parent))} && condor_submit_dag -usedagdir {DAG_NAME}"


def submit_dag(dag: Path, force: bool = False) -> int:
    """Submit the DAG to the local schedd (``htcondor2.Submit.from_dag`` with ``UseDagDir`` + ``Schedd.submit``);
    returns the cluster id."""
    try:
        schedd = htcondor2.Schedd()
    except htcondor2.HTCondorException as error:
        raise SubmitError(
            f"no HTCondor schedd is reachable from this machine ({error}). The DAG is written: submit it from "
            f"a submit node with `{_submit_hint(dag)}`, or run its jobs here with --local"
        ) from None
    try:
        description = htcondor2.Submit.from_dag(str(dag), {"UseDagDir": True, "Force": force})
        result = schedd.submit(description)
    except htcondor2.HTCondorException as error:
        raise SubmitError(f"submitting {dag} failed: {error}") from None
    return int(result.cluster())


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit code (2 for a clear, named error)."""
    parser = argparse.ArgumentParser(prog="python -m jobs.submit", description=__doc__.split("\n\n")[0])
    add_config_option(parser)
    parser.add_argument("--fileset", type=Path, help="a coffea fileset JSON to analyse (overrides samples.fileset; "
                        "frozen into the DAG's config)")
    parser.add_argument("--outdir", type=Path, default=Path("results"), help="results directory (shared filesystem)")
    parser.add_argument("--dag-dir", type=Path, help="where the DAG and submit files go (default: OUTDIR/condor)")
    parser.add_argument("--stages", type=_stages, default=STAGES, help=f"comma-separated subset of {','.join(STAGES)}")
    parser.add_argument("--chunk-jobs", type=positive_int, help="nodes per chunked stage (default: one per chunk, "
                        "capped by cluster.chunk_jobs)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="write the DAG and submit files only")
    mode.add_argument("--local", action="store_true", help="run the DAG's jobs here as local processes")
    parser.add_argument("--cores", type=positive_int, help="--local: nodes running at once (default: the number of cores)")
    parser.add_argument("--force", action="store_true", help="overwrite DAGMan's files of an earlier submission")
    args = parser.parse_args(argv)

    def body() -> int:
        dag = prepare_dag(with_fileset(config_from_args(args), args.fileset), args.outdir, args.dag_dir, stages=args.stages,
                          chunk_jobs=args.chunk_jobs)
        if args.dry_run:
            print(f"dry run: nothing submitted; submit with `{_submit_hint(dag)}`")
            return 0
        if args.local:
            run = run_dag_locally(dag, args.cores)
            for node, tail in run.failed.items():
                print(f"error: node {node} failed:\n{tail}", file=sys.stderr)
            if run.not_run:
                print(f"error: {len(run.not_run)} node(s) below a failed one not run: {', '.join(run.not_run[:10])}"
                      + (" ..." if len(run.not_run) > 10 else ""), file=sys.stderr)
            if not run.ok:
                return 1
            print(f"local run finished: {len(run.done)} nodes; results in {Path(args.outdir).resolve()}")
            return 0
        cluster_id = submit_dag(dag, force=args.force)
        print(f"submitted {dag} as DAGMan job {cluster_id}; watch it with `condor_q -dag {cluster_id}` "
              f"or `tail -f {dag}.dagman.out`")
        return 0

    return run_command(body, verbose=args.verbose, name="jobs.submit")


if __name__ == "__main__":
    sys.exit(main())
