"""Benchmark: the network against the tree baseline on a plain table (``python benchmarks/tables.py``).

For each of ``--split-seeds`` (``training.split_seed``: another train / validation / test
partition of the same rows) it runs what ``python -m nn.train --table FILE --baseline xgboost
--preset PRESET`` runs, and prints the weighted test AUC and the training time of the network
(preset ``--preset``, default ``table_small``; and of the default network with
``--default-too``) and of XGBoost on the same split, then the mean difference over the splits.
Nothing here asserts on timings.

A table of real rows to run it on: the first 7 500 rows of the UCI HIGGS data set (Baldi et al.
2014) ship with LightGBM's examples, label first, tab-separated::

    git clone --depth 1 https://github.com/microsoft/LightGBM
    cat LightGBM/examples/binary_classification/binary.{train,test} > higgs7500.tsv
    python benchmarks/tables.py --table higgs7500.tsv --format uci-higgs --delimiter tab

Without ``--table`` a synthetic table (two Gaussian classes with a non-linear boundary) of
``--rows`` rows is written to a temporary folder.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.core.config import config_from_dict, default_config
from nn.table import TableSpec
from nn.table_spec import TABLE_FORMATS
from nn.train import train_from_table


def synthetic_table(path: Path, rows: int, seed: int = 0) -> Path:
    """A CSV table: 8 features, the signal on a ring around the background in (x0, x1)."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, rows)
    x = rng.normal(size=(rows, 8))
    radius = np.hypot(x[:, 0], x[:, 1])
    x[:, 0] *= np.where(label == 1, 1.0 + 1.2 / np.maximum(radius, 0.3), 1.0)
    x[:, 2] += 0.5 * label * x[:, 3]
    header = ",".join(["label"] + [f"x{j}" for j in range(8)])
    np.savetxt(path, np.column_stack([label, x]), delimiter=",", header=header, comments="", fmt=["%d"] + ["%.6f"] * 8)
    return path


def run(table: Path, spec: TableSpec, preset: str | None, seed: int, baseline: bool) -> dict:
    data = default_config().model_dump(mode="json")
    data["training"]["split_seed"] = seed
    data["model"]["ensemble_members"] = 1  # the "default net" column: one network of the default shape
    started = time.perf_counter()
    made = train_from_table(table, Path(tempfile.mkdtemp()) / "model", spec, config_from_dict(data), preset=preset,
                            baseline="xgboost" if baseline else "none", plots=False, verbose=False)
    wall = time.perf_counter() - started
    metrics = made.network.metrics
    row = {"network_auc": metrics["test"]["auc"], "network_seconds": metrics["train_seconds"], "epochs": metrics["epochs_run"],
           "wall_seconds": wall}
    if made.baseline is not None:
        row.update(xgboost_auc=made.baseline.metrics["test"]["auc"], xgboost_seconds=made.baseline.metrics["train_seconds"],
                   trees=made.baseline.metrics["trees"])
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", type=Path, help="the table (default: a synthetic one)")
    parser.add_argument("--format", choices=TABLE_FORMATS, default="csv")
    parser.add_argument("--label", default=None)
    parser.add_argument("--delimiter", default=",", help="',' (default) or 'tab'")
    parser.add_argument("--rows", type=int, default=20_000, help="rows of the synthetic table")
    parser.add_argument("--preset", default="table_small")
    parser.add_argument("--split-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--default-too", action="store_true", help="also train the default network (no preset)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        table = args.table or synthetic_table(Path(tmp) / "synthetic.csv", args.rows)
        label = args.label or "label"
        spec = TableSpec(format=args.format, label=label, delimiter="\t" if args.delimiter in ("tab", "\\t") else args.delimiter)
        print(f"table {table} ({args.format}); weighted test AUC and training time per split seed")
        differences, default_differences = [], []
        for seed in args.split_seeds:
            row = run(table, spec, args.preset, seed, baseline=True)
            differences.append(row["network_auc"] - row["xgboost_auc"])
            line = (f"  split seed {seed}: network ({args.preset}) {row['network_auc']:.4f} in {row['network_seconds']:.0f} s "
                    f"({row['epochs']} epochs) | xgboost {row['xgboost_auc']:.4f} in {row['xgboost_seconds']:.0f} s "
                    f"({row['trees']} trees) | difference {differences[-1]:+.4f}")
            if args.default_too:
                default = run(table, spec, None, seed, baseline=False)
                default_differences.append(default["network_auc"] - row["xgboost_auc"])
                line += f" | default network {default['network_auc']:.4f} in {default['network_seconds']:.0f} s"
            print(line, flush=True)
        spread = statistics.stdev(differences) if len(differences) > 1 else float("nan")
        print(f"network - xgboost: mean {statistics.mean(differences):+.4f} (spread {spread:.4f} over {len(differences)} splits)")
        if default_differences:
            print(f"default network - xgboost: mean {statistics.mean(default_differences):+.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
