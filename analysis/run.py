"""The one command: ``python -m analysis.run --executor dask``.

Runs the whole chain on the built-in default analysis (or ``--config``): generate (if not
cached) -> process -> train -> score -> scan -> report, prints the best significance per grid
point and where the report is, and exits 0.

Examples::

    python -m analysis.run --executor dask                       # LocalCluster, one worker per core
    python -m analysis.run --executor dask --scheduler tcp://host:8786
    python -m analysis.run --config my.yaml --outdir results/my --workers 8
    python -m analysis.run --stages scan,report                  # re-run the end only
    python -m analysis.run --config examples/cms_dimuon_2012.yaml --executor iterative   # collision data
    python -m analysis.run --config my.yaml --fileset my_fileset.json                    # your own files

Without signal in the inputs (collision data, simulation without ``is_signal``) it runs the
selection, the control histograms and the report, and says that training, scoring and the
scan are skipped.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from analysis.core.cli import (
    add_config_option,
    config_from_args,
    positive_int,
    run_command,
)
from analysis.core.executors import EXECUTORS
from analysis.pipeline import STAGES, Pipeline, parse_stages


def _stages(text: str) -> tuple[str, ...]:
    try:
        return parse_stages(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def format_summary(pipeline: Pipeline) -> str:
    """Best Z per grid point, the standard threshold, timings and the report location."""
    reasons: dict[str, list[str]] = {}
    for stage, reason in pipeline.skipped.items():
        reasons.setdefault(reason, []).append(stage)
    lines = [f"skipped {', '.join(stages)}: {reason}" for reason, stages in reasons.items()]
    processing = pipeline.processing
    if processing is not None:
        for dataset in processing.cutflow:
            kind = processing.datasets.get(dataset, {})
            what = "data" if kind.get("is_data") else "signal" if kind.get("is_signal") else "simulation"
            row = processing.cutflow[dataset]
            lines.append(f"{dataset} ({what}): {row['raw'][-1]} of {processing.n_processed[dataset]} events selected, "
                         f"sum of weights {row['sumw'][-1]:.6g}")
    summary = pipeline.scan_summary
    if summary is not None:
        lines.append(f"{'grid point':<18} {'m(slep)':>8} {'dm':>6} {'best cut':>9} {'best Z':>8} {'Z(std)':>8}")
        for point in summary.points:
            fmt = lambda value, spec: "n/a" if not math.isfinite(value) else format(value, spec)  # noqa: E731
            lines.append(f"{point.label:<18} {point.m_slepton:>8g} {point.dm:>6g} {fmt(point.best_threshold, '.2f'):>9} "
                         f"{fmt(point.best_z, '.2f'):>8} {fmt(point.z_at_standard, '.2f'):>8}")
        lines.append(f"standard threshold {summary.standard_threshold:.2f}; L = {summary.luminosity_fb:g} fb^-1, "
                     f"background uncertainty {summary.relative_background_uncertainty:.0%}")
    if pipeline.timings:
        lines.append("stage times [s]: " + ", ".join(f"{k} {v:.1f}" for k, v in pipeline.timings.items()))
    report = pipeline.outdir / "index.html"
    if report.exists():
        lines.append(f"report: {report.resolve()}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit code (2: a clear error; 130: interrupted)."""
    parser = argparse.ArgumentParser(prog="python -m analysis.run", description=__doc__.split("\n\n")[0])
    add_config_option(parser)
    parser.add_argument("--executor", choices=EXECUTORS, help="default: the config's executor.name (dask)")
    parser.add_argument("--scheduler", help="address of a running Dask scheduler, tcp://host:port")
    parser.add_argument("--workers", type=positive_int, help="local Dask workers / processes (default: one per core)")
    parser.add_argument("--fileset", type=Path,
                        help="a coffea fileset JSON to analyse (overrides samples.fileset and the built-in samples)")
    parser.add_argument("--outdir", type=Path, default=Path("results"), help="results directory (default: results)")
    parser.add_argument("--stages", type=_stages, default=STAGES, help=f"comma-separated subset of {','.join(STAGES)}")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--allow-stale-model", action="store_true",
                        help="score with a model trained on another selection (refused by default)")
    args = parser.parse_args(argv)

    def body() -> int:
        pipeline = Pipeline(config_from_args(args), args.outdir, executor=args.executor, workers=args.workers,
                            scheduler=args.scheduler, show_progress=not args.no_progress and sys.stderr.isatty(),
                            allow_stale_model=args.allow_stale_model, fileset=args.fileset)
        pipeline.run(args.stages)
        print(format_summary(pipeline))
        return 0

    return run_command(body, verbose=args.verbose, name="analysis.run")

if __name__ == "__main__":
    sys.exit(main())
