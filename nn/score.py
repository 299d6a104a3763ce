"""Score a table with a trained model: ``python -m nn.score --model DIR --table FILE --out SCORES.parquet``.

Command line::

    python -m nn.score --model DIR --table FILE --out SCORES.parquet [--format ...] [--label COLUMN]
        [--features NAME ...] [--nonfinite refuse|drop] [--delimiter C] [--no-baseline]

The table is read the way the model's training read its table (``model.json`` records the
format, label, weight, features and class values; every option overrides it) and streamed
record batch by record batch into a Parquet file with **one row per input row, in input
order**:

* ``row`` -- the input row number (from 0, header excluded);
* ``score`` -- the network's P(signal) (:meth:`nn.artifact.TrainedModel.score`, the model's input
  transform included);
* ``score_xgboost`` -- the tree baseline's P(signal), when the model has one (``DIR/baseline/``);
* ``label`` -- the table's label (1 / 0), when the table has the label column;
* ``split`` -- ``train``, ``val`` or ``test``: the row's split under the model's split settings
  (only the ``test`` rows are unbiased for a labelled table the model was trained on).

The model's features must all be in the table (a table with other features is refused, naming
the missing columns); extra columns are ignored.  NaN/inf/missing feature cells are refused
(counted per column), or with ``--nonfinite drop`` their rows get an empty (null) score,
counted and reported.  The output appears complete or not at all (written under a temporary
name, then renamed).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from analysis.core.atomic import atomic_path
from analysis.core.cli import run_command
from nn.artifact import ArtifactError, FeatureMismatchError, TrainedModel, load_model
from nn.baseline import load_baseline
from nn.split import SPLIT_NAMES
from nn.table import (
    TableError,
    TableSpec,
    iter_table_chunks,
    nonfinite_message,
    table_columns,
)
from nn.table_prepare import table_split
from nn.table_train import add_table_options, spec_from_args

__all__ = ["main", "score_table", "table_model"]

log = logging.getLogger(__name__)


def table_model(model_dir: str | Path) -> TrainedModel:
    """The single, non-parametrised network in ``model_dir`` (a table model); refuses others."""
    model = load_model(model_dir)
    if not isinstance(model, TrainedModel):
        raise ArtifactError(f"{model_dir} holds one network per grid point (training.per_point); "
                            f"a table is scored with a single network")
    if model.parametrised:
        raise ArtifactError(f"the model in {model_dir} is parametrised by the signal grid point (m_slepton, dm): "
                            f"it scores feature-store events of the physics chain, not a plain table")
    return model


def _features(model: TrainedModel, path: Path, spec: TableSpec, requested: Sequence[str] | None) -> tuple[str, ...]:
    """The model's feature names, checked against the table's columns and any ``--features``."""
    expected = tuple(model.feature_names)
    if requested is not None and tuple(requested) != expected:
        raise FeatureMismatchError(
            f"scoring table {path}: --features {list(requested)} differ from the features the model "
            f"{model.directory} was trained on, {list(expected)}")
    columns = table_columns(path, spec)
    missing = [name for name in expected if name not in columns]
    if missing:
        raise FeatureMismatchError(
            f"table {path} lacks the model's feature column(s) {missing}: the model {model.directory} was trained "
            f"on {list(expected)}; the table's columns are {list(columns)}")
    return expected


def score_table(model_dir: str | Path, table: str | Path, out: str | Path, spec: TableSpec | None = None,
                features: Sequence[str] | None = None, label_required: bool = False,
                baseline: bool = True) -> dict[str, Any]:
    """Score every row of ``table`` with the model in ``model_dir`` into the Parquet file ``out``.

    ``spec`` says how to read the table (default: as recorded in the model); ``features``, if
    given, must equal the model's features; ``label_required``: refuse a table without the
    label column (else the label is written when present).  ``baseline``: add the tree
    baseline's score when the model has one.  Returns a summary (rows, scored, not scored,
    non-finite cells per column, output path).  See the module doc for the columns.
    """
    model = table_model(model_dir)
    path, out = Path(table), Path(out)
    if spec is None:
        recorded = model.metadata.get("table")
        spec = TableSpec.from_dict(recorded) if isinstance(recorded, dict) else TableSpec()
    names = _features(model, path, spec, features)
    has_label = spec.label is not None and (label_required or spec.label in table_columns(path, spec))
    trees = load_baseline(model_dir) if baseline else None
    fields = [("row", pa.int64()), ("score", pa.float32())]
    fields += [("score_xgboost", pa.float32())] if trees is not None else []
    fields += [("label", pa.int8())] if has_label else []
    schema = pa.schema(fields + [("split", pa.string())])
    split_names = np.array(SPLIT_NAMES, dtype=object)
    bad_cells: dict[str, int] = {}
    first_bad: dict[str, int] = {}
    rows = scored = 0
    with atomic_path(out) as tmp, pq.ParquetWriter(tmp, schema) as writer:
        for chunk in iter_table_chunks(path, spec, need_label=has_label, features=names):
            for name, count in chunk.bad_cells.items():
                bad_cells[name] = bad_cells.get(name, 0) + count
                first_bad.setdefault(name, chunk.first_bad_row[name])
            if bad_cells and spec.nonfinite == "refuse":
                continue  # keep counting over the whole table, then refuse it
            ok = chunk.finite
            columns = {"row": pa.array(chunk.row), "score": _scores(model.score, chunk.features, ok)}
            if trees is not None:
                columns["score_xgboost"] = _scores(trees.score, chunk.features, ok)
            if has_label:
                columns["label"] = pa.array(chunk.label, pa.int8())
            columns["split"] = pa.array(split_names[table_split(chunk.row, model.split_fractions, model.split_seed)],
                                        pa.string())
            writer.write_batch(pa.record_batch(list(columns.values()), schema=schema))
            rows += len(chunk.row)
            scored += int(ok.sum())
        if bad_cells and spec.nonfinite == "refuse":
            raise TableError(nonfinite_message(path, bad_cells, first_bad))
    if rows > scored:
        log.warning("table %s: %d of %d rows not scored (NaN/inf/missing feature cells per column: %s); their score is empty",
                    path, rows - scored, rows, bad_cells)
    log.info("scored %d rows of %s into %s", rows, path, out)
    return {"rows": rows, "scored": scored, "not_scored": rows - scored, "nonfinite_cells": bad_cells, "out": str(out)}


def _scores(score, features: np.ndarray, ok: np.ndarray) -> pa.Array:
    values = np.zeros(len(ok), dtype=np.float32)
    if ok.any():
        values[ok] = score(features if ok.all() else features[ok])
    return pa.array(values, pa.float32(), mask=~ok)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (``python -m nn.score``); returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m nn.score", description="Score a CSV or Parquet table with a trained model.")
    parser.add_argument("--model", required=True, type=Path, help="model artifact directory (python -m nn.train --out)")
    add_table_options(parser, training=False)
    parser.add_argument("--out", required=True, type=Path, help="output Parquet file (row, score, [score_xgboost], [label], split)")
    parser.add_argument("--no-baseline", action="store_true", help="leave out the tree baseline's score")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug-level log messages")
    args = parser.parse_args(argv)

    def body() -> int:
        model = table_model(args.model)
        recorded = model.metadata.get("table")
        base = TableSpec.from_dict(recorded) if isinstance(recorded, dict) else TableSpec(format=args.format or "csv")
        spec = spec_from_args(args, base)
        summary = score_table(args.model, args.table, args.out, spec, features=args.features,
                              label_required=args.label is not None, baseline=not args.no_baseline)
        print(f"{summary['rows']} rows scored into {summary['out']}"
              + (f" ({summary['not_scored']} with non-finite features left empty)" if summary["not_scored"] else ""))
        return 0

    return run_command(body, verbose=args.verbose, name="nn.score")


if __name__ == "__main__":
    sys.exit(main())
