"""``python -m analysis.process`` (also ``bsmscan process``): the selection stage alone.

Examples::

    python -m analysis.process --executor dask --store results/store
    python -m analysis.process --executor dask --scheduler tcp://host:8786
    python -m analysis.process --config my.yaml --executor futures --workers 4 --skip-bad-files
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from analysis.core.cli import (
    add_config_option,
    config_from_args,
    positive_int,
    run_command,
)
from analysis.core.executors import EXECUTORS, SCHEMAS
from analysis.stages.generate import log_inputs, with_fileset
from analysis.stages.process import format_cutflow, run_processing


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m analysis.process", description=__doc__.split("\n\n")[0])
    add_config_option(parser)
    parser.add_argument("--executor", choices=EXECUTORS, help="default: the config's executor.name")
    parser.add_argument("--workers", type=positive_int)
    parser.add_argument("--scheduler", help="address of a running Dask scheduler, tcp://host:port")
    parser.add_argument("--fileset", type=Path, help="a coffea fileset JSON (overrides samples.fileset)")
    parser.add_argument("--schema", choices=sorted(SCHEMAS), default="base", help="coffea NanoEvents schema")
    parser.add_argument("--store", type=Path, default=Path("results/store"), help="feature store directory")
    parser.add_argument("--skip-bad-files", action="store_true", help="leave out unreadable files and list them")
    args = parser.parse_args(argv)

    def body() -> int:
        config = with_fileset(config_from_args(args), args.fileset)
        log_inputs(config)
        result = run_processing(
            config, args.store, executor=args.executor, workers=args.workers, scheduler=args.scheduler,
            skip_bad_files=args.skip_bad_files, schema=args.schema, show_progress=sys.stderr.isatty(),
        )
        print(format_cutflow(result))
        print(f"feature store: {result.store}")
        return 0

    return run_command(body, verbose=args.verbose, name="analysis.process")


if __name__ == "__main__":
    sys.exit(main())
