"""Train on a plain table: ``python -m nn.train --table FILE --label COLUMN --out DIR``.

Command line (the ``--table`` form of :mod:`nn.train`)::

    python -m nn.train --table FILE [--format csv|parquet|uci-susy|uci-higgs] [--label COLUMN]
        [--weight COLUMN] [--features NAME ...] [--signal-class V ... --background-class V ...]
        [--nonfinite refuse|drop] [--delimiter C] [--preset table_small] [--input-transform quantile]
        [--baseline none|xgboost] [--config analysis.yaml] [--no-plots] [--scheduler ADDRESS|local] --out DIR

reads the table (:mod:`nn.table`), trains a binary, non-parametrised network with the config's
``model`` / ``training`` sections (or a preset, :mod:`nn.table_presets`) through
:func:`nn.train.train_classifier` with :func:`nn.table_prepare.prepare_table_data`, writes the
artifact (``weights.msgpack`` + ``model.json``, which records how the table was read and the
input transform), the tree baseline beside it (``DIR/baseline/``, :mod:`nn.baseline`) and the
diagnostics (``DIR/plots/``: ROC, score distributions, training curves, confusion matrix,
:mod:`nn.table_plots`).

This module sits below :mod:`nn.train` (which dispatches ``--table`` here), so the training
function comes in as an argument: :func:`nn.train.train_from_table` is the Python API.
"""

from __future__ import annotations

import argparse
import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analysis.core.cli import add_config_option, config_from_args, run_command
from analysis.core.config import AnalysisConfig, default_config
from nn.baseline import BASELINES, BaselineResult, network_scorer, train_baselines
from nn.table import LabelledTable, TableError, TableSpec, read_table
from nn.table_dask import train_table_dask
from nn.table_plots import write_table_plots
from nn.table_prepare import prepare_table_data
from nn.table_presets import apply_table_preset, table_preset_names
from nn.table_spec import TABLE_FORMATS
from nn.table_transform import TRANSFORMS, InputTransform

__all__ = ["TableTraining", "add_table_options", "spec_from_args", "table_main", "train_table"]

log = logging.getLogger(__name__)


@dataclass
class TableTraining:
    """What :func:`train_table` made: the network's :class:`~nn.train.TrainingResult`, the
    baseline (or None), the table, and the plot files (caption -> path)."""

    network: Any
    baseline: BaselineResult | None
    table: LabelledTable
    plots: dict[str, Path]


def train_table(table_path: str | Path, out: str | Path, spec: TableSpec, trainer: Callable, config: AnalysisConfig | None = None,
                preset: str | None = None, baseline: str | None = None, input_transform: str | None = None,
                plots: bool = True, verbose: bool = True) -> TableTraining:
    """Read ``table_path`` with ``spec``, train, and write the artifacts to ``out`` (module doc).

    ``trainer`` is :func:`nn.train.train_classifier`; ``baseline`` (default
    ``config.training.baseline``) is ``none`` or ``xgboost``; ``input_transform`` (default: the
    preset's, else ``none``) is a name of :data:`nn.table_transform.TRANSFORMS`.
    """
    config, preset_transform = apply_table_preset(config or default_config(), preset)
    transform_kind = input_transform or preset_transform
    baseline = baseline or config.training.baseline
    if baseline not in BASELINES:
        raise ValueError(f"unknown baseline {baseline!r}; known: {list(BASELINES)}")
    table = read_table(table_path, spec)
    transform = InputTransform(transform_kind) if transform_kind != "none" else None
    result = trainer(table, config, verbose=verbose, prepare=functools.partial(prepare_table_data, transform=transform))
    table_record = {**spec.to_dict(), "source": str(table.source), "rows": table.n_input_rows,
                    "dropped_rows": table.n_dropped, "dropped_cells": table.dropped}
    result.metadata.update(preset=preset, table=table_record, store=None)
    if transform is not None:
        result.metadata["input_transform"] = transform.to_dict()
    out = Path(out)
    result.save(out)
    log.info("model written to %s", out)
    trees = None
    if baseline == "xgboost":
        extra = {"table": table_record}
        if transform is not None:
            extra["input_transform"] = transform.to_dict()
        (trees,) = train_baselines([result], out, config, extra)
    images = write_table_plots(out / "plots", result, network_scorer(result), trees) if plots else {}
    return TableTraining(result, trees, table, images)


def add_table_options(parser: argparse.ArgumentParser, training: bool = True) -> None:
    """The options that say how to read a table (shared by ``nn.train --table`` and ``nn.score``)."""
    parser.add_argument("--table", required=True, type=Path, help="CSV (optionally .gz) or Parquet file, or a folder of Parquet files")
    parser.add_argument("--format", choices=TABLE_FORMATS, default=None,
                        help="csv (header line), parquet, or the UCI layouts uci-susy / uci-higgs (label first, no header)"
                        + ("" if training else "; default: as the model was trained"))
    parser.add_argument("--label", help="label column (1 signal, 0 background); default 'label' for the UCI formats")
    parser.add_argument("--weight", help="event-weight column (finite, >= 0); default: unit weights")
    parser.add_argument("--features", nargs="+", metavar="NAME",
                        help="feature columns (default: all but label and weight; UCI: also low-level or high-level)")
    parser.add_argument("--signal-class", nargs="+", default=None, metavar="VALUE", help="label value(s) of signal rows")
    parser.add_argument("--background-class", nargs="+", default=None, metavar="VALUE", help="label value(s) of background rows")
    parser.add_argument("--nonfinite", choices=("refuse", "drop"), default=None,
                        help="NaN/inf/missing feature cells: refuse the table (default) or drop those rows "
                        + ("(counted and reported)" if training else "(their score is left empty, counted and reported)"))
    parser.add_argument("--delimiter", default=None, help="CSV delimiter (default ','; '\\t' for tab)")


def spec_from_args(args: argparse.Namespace, base: TableSpec | None = None) -> TableSpec:
    """The :class:`TableSpec` of the command-line options over ``base`` (default: a CSV spec)."""
    base = base or TableSpec(format=args.format or "csv")
    delimiter = "\t" if args.delimiter in ("\\t", "tab") else args.delimiter
    changes = {"format": args.format, "label": args.label, "weight": args.weight, "nonfinite": args.nonfinite,
               "delimiter": delimiter, "features": args.features, "signal_classes": args.signal_class,
               "background_classes": args.background_class}
    return TableSpec.from_dict({**base.to_dict(), **{k: v for k, v in changes.items() if v is not None}})


def _train_on_cluster(args: argparse.Namespace) -> int:
    """The ``--scheduler`` form: :func:`nn.table_dask.train_table_dask` on a Dask cluster."""
    if args.baseline == "xgboost" or args.preset or args.input_transform:
        raise TableError("--scheduler trains the network of the config's model/training sections block by block; "
                         "--baseline, --preset and --input-transform need the in-memory form (leave out --scheduler)")
    from distributed import (  # heavy: only for training on a cluster
        Client,
        LocalCluster,
    )

    config, _ = apply_table_preset(config_from_args(args), None)
    if args.scheduler == "local":
        with LocalCluster(threads_per_worker=1, dashboard_address=None) as cluster, Client(cluster):
            _, metrics = train_table_dask(args.table, args.out, spec_from_args(args), config, args.blocksize)
    else:
        with Client(args.scheduler):
            _, metrics = train_table_dask(args.table, args.out, spec_from_args(args), config, args.blocksize)
    print(f"network: validation weighted AUC = {metrics['val']['auc']:.4f}, "
          f"test weighted AUC = {metrics.get('test', {}).get('auc', float('nan')):.4f}")
    return 0


def table_main(argv: Sequence[str], trainer: Callable) -> int:
    """``python -m nn.train --table ...`` (called by :func:`nn.train.main`); returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m nn.train --table", description="Train a classifier on a CSV or Parquet table.")
    add_table_options(parser)
    parser.add_argument("--out", required=True, type=Path, help="output directory of the model artifact")
    add_config_option(parser)
    parser.add_argument("--preset", choices=table_preset_names(), help="network/training preset (table_small for small tables)")
    parser.add_argument("--input-transform", choices=TRANSFORMS, help="input transform (default: the preset's, else none)")
    parser.add_argument("--baseline", choices=BASELINES, help="also train gradient-boosted trees (default: training.baseline)")
    parser.add_argument("--no-plots", action="store_true", help="do not write the diagnostic plots")
    parser.add_argument("--scheduler", metavar="ADDRESS|local",
                        help="train on a Dask cluster block by block (dask-ml, nn/table_dask.py): a scheduler address, "
                        "or 'local' for a local cluster; for tables larger than memory")
    parser.add_argument("--blocksize", default="64MB", help="CSV bytes per Dask block with --scheduler (default 64MB)")
    parser.add_argument("--quiet", action="store_true", help="print only the final metrics")
    args = parser.parse_args(argv)

    def body() -> int:
        if args.quiet:  # the trainer's module is __main__ under python -m nn.train
            for name in ("nn", trainer.__module__):
                logging.getLogger(name).setLevel(logging.WARNING)
        if args.scheduler:
            return _train_on_cluster(args)
        try:
            made = train_table(args.table, args.out, spec_from_args(args), trainer, config_from_args(args), args.preset,
                               args.baseline, args.input_transform, plots=not args.no_plots)
        except FloatingPointError as error:  # a diverged training: the user lowers the learning rate
            raise TableError(f"table {args.table}: {error}") from None
        val, test = made.network.metrics.get("val", {}), made.network.metrics.get("test", {})
        print(f"network: validation weighted AUC = {val.get('auc', float('nan')):.4f}, "
              f"test weighted AUC = {test.get('auc', float('nan')):.4f}")
        if made.baseline is not None:
            val, test = made.baseline.metrics.get("val", {}), made.baseline.metrics.get("test", {})
            print(f"xgboost: validation weighted AUC = {val.get('auc', float('nan')):.4f}, "
                  f"test weighted AUC = {test.get('auc', float('nan')):.4f}")
        return 0

    return run_command(body, verbose=args.verbose, name="nn.train")
