"""Tables larger than memory on a Dask cluster: dask.dataframe + dask-ml + the Flax estimator.

``python -m nn.train --table FILE --scheduler ADDRESS|local ...`` (or :func:`train_table_dask`):

1. the table is read as a ``dask.dataframe`` (:func:`read_table_dask`: ``dd.read_csv`` in blocks
   of ``blocksize`` bytes, or ``dd.read_parquet``); every row keeps its input row number;
2. the same checks as in memory run on the cluster in one pass (:func:`check_table_dask`:
   missing columns, non-numeric, NaN/inf cells per column, labels, weights), with the same
   :class:`~nn.table.TableError` messages; with ``nonfinite: drop`` the bad rows are filtered;
3. the rows are split by the hash of their row number (:func:`nn.table_prepare.table_split`,
   the split of the in-memory path and of ``nn.score``) and globally shuffled by a hash key
   (``DataFrame.shuffle``; then sorted by that key inside each partition, so the order does not
   depend on timing);
4. ``dask_ml.preprocessing.StandardScaler`` computes the training split's means and standard
   deviations on the cluster;
5. ``dask_ml.wrappers.Incremental`` trains :class:`nn.estimator.FlaxMLPClassifier` block by
   block (one ``partial_fit`` per block per epoch, each on a worker: only one block needs to be
   in a worker's memory); after every epoch the validation AUC is computed on the cluster and
   the best epoch's parameters are kept;
6. the model is written as a normal artifact (scored by ``python -m nn.score``).

dask-ml's ``HyperbandSearchCV`` would search hyperparameters over the same ``partial_fit``;
with dask >= 2025.3 it fails inside dask-ml (dask/dask-ml#1016), so bsmscan's own Hyperband
search (``python -m nn.search``) remains the way to tune the network.
"""

from __future__ import annotations

import copy
import functools
import logging
import operator
import time
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
from dask_ml.preprocessing import StandardScaler
from dask_ml.wrappers import Incremental

from analysis.core.config import AnalysisConfig
from nn.estimator import FlaxMLPClassifier
from nn.metrics import weighted_roc_auc
from nn.scaler import Standardizer
from nn.split import TEST, TRAIN, VALIDATION, splitmix64
from nn.table import TableError, TableSpec, nonfinite_message, table_features
from nn.table_prepare import table_split
from nn.table_spec import UCI_FEATURES, UCI_LABEL

__all__ = ["check_table_dask", "read_table_dask", "train_table_dask"]

log = logging.getLogger(__name__)


def read_table_dask(path: str | Path, spec: TableSpec, features, blocksize: str | int = "64MB") -> dd.DataFrame:
    """The label, weight and feature columns of the table as a dask dataframe, plus ``row``
    (the input row number); column checks as :func:`nn.table.table_features`."""
    path = Path(path)
    wanted = [name for name in (spec.label, spec.weight, *features) if name is not None]
    numeric = {name: "float64" for name in wanted if name != spec.label or not spec.signal_classes}
    if spec.format == "parquet":
        frame = dd.read_parquet(str(path), columns=wanted)
    else:
        if path.suffix in (".gz", ".bz2", ".xz", ".zst"):
            blocksize = None  # a compressed CSV cannot be split: one block
        uci = spec.format.startswith("uci-")
        names = [UCI_LABEL, *UCI_FEATURES[spec.format]] if uci else None
        frame = dd.read_csv(str(path), sep=spec.delimiter, header=None if uci else "infer", names=names, usecols=wanted,
                            dtype={**numeric, **({spec.label: str} if spec.signal_classes else {})}, blocksize=blocksize,
                            keep_default_na=True)
    lengths = frame.map_partitions(len).compute()
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)

    def numbered(part: pd.DataFrame, partition_info=None) -> pd.DataFrame:
        start = offsets[partition_info["number"]] if partition_info else 0
        return part.assign(row=np.arange(start, start + len(part), dtype=np.int64))

    meta = frame._meta.assign(row=np.zeros(0, np.int64))
    return frame.map_partitions(numbered, meta=meta)


def check_table_dask(frame: dd.DataFrame, path: Path, spec: TableSpec, features) -> dict[str, int]:
    """Count bad cells on the cluster (one pass); raises :class:`TableError` as the in-memory
    reader would, and returns the NaN/inf/missing cells per feature column (for ``drop``)."""
    label = frame[spec.label]
    if spec.signal_classes:
        known = label.isin(list(spec.signal_classes) + list(spec.background_classes))
    else:
        known = label.isin([0.0, 1.0])
    counts = {name: (~(frame[name].abs() < np.inf)).sum() for name in features}  # NaN, inf and missing
    counts["__label__"] = (~known).sum()
    if spec.weight is not None:
        counts["__weight__"] = (~(frame[spec.weight] >= 0)).sum() + (frame[spec.weight] == np.inf).sum()
    values = dict(zip(counts, (int(v) for v in dask.compute(*counts.values()))))
    if values.pop("__label__"):
        raise TableError(f"table {path}: label column {spec.label!r} has rows that are not 0 or 1 (or not one of the "
                         f"given classes); give its class values with --signal-class and --background-class")
    if values.pop("__weight__", 0):
        raise TableError(f"table {path}: weight column {spec.weight!r} has negative, NaN, inf or missing values")
    bad = {name: count for name, count in values.items() if count}
    if bad and spec.nonfinite == "refuse":
        raise TableError(nonfinite_message(path, bad, {name: -1 for name in bad}).replace(" (first at row -1)", ""))
    return bad


def _arrays(frame: dd.DataFrame, spec: TableSpec, features, code: int):
    part = frame[frame["split"] == code]
    x = part[list(features)].to_dask_array(lengths=True).astype(np.float32)
    if spec.signal_classes:
        y = part[spec.label].isin(list(spec.signal_classes)).astype(np.int32).to_dask_array(lengths=True)
    else:
        y = part[spec.label].astype(np.int32).to_dask_array(lengths=True)
    w = (part[spec.weight] if spec.weight is not None else part["row"] * 0 + 1.0).astype(np.float32).to_dask_array(lengths=True)
    return x, y, w


def _with_weight(x: da.Array, w: da.Array, scaler) -> da.Array:
    """Standardised features and the weight as the last column (the estimator's ``weight_column=-1``)."""
    mean, scale = np.asarray(scaler.mean_, np.float32), np.asarray(scaler.scale_, np.float32)
    joined = da.concatenate([((x - mean) / scale).astype(np.float32), w[:, None]], axis=1)
    return joined.rechunk({1: joined.shape[1]})


def _scores(estimator: FlaxMLPClassifier, x: da.Array, y: da.Array, w: da.Array) -> float:
    """Weighted validation/test AUC computed on the cluster's blocks."""
    scores = da.map_blocks(lambda block: estimator.decision_function(block), x, drop_axis=1, dtype=np.float64)
    return weighted_roc_auc(*dask.compute(scores, y, w))


def train_table_dask(path: str | Path, out: str | Path, spec: TableSpec, config: AnalysisConfig,
                     blocksize: str | int = "64MB", shuffle: bool = True) -> tuple[FlaxMLPClassifier, dict[str, Any]]:
    """Train on the table with the connected Dask client (see the module doc); writes the
    artifact to ``out`` and returns the estimator and its metrics.  The network and optimiser
    come from the config's ``model`` / ``training`` sections (``max_epochs`` passes over the
    training blocks; ``patience`` epochs without a better validation AUC stop it)."""
    path, out = Path(path), Path(out)
    features = table_features(path, spec)
    frame = read_table_dask(path, spec, features, blocksize)
    bad = check_table_dask(frame, path, spec, features)
    if bad:
        frame = frame[functools.reduce(operator.and_, [frame[name].abs() < np.inf for name in features])]
        log.warning("table %s: dropping the rows with NaN/inf/missing cells (cells per column: %s)", path, bad)
    training = config.training
    frame = frame.assign(split=frame["row"].map_partitions(
        lambda rows: pd.Series(table_split(rows.to_numpy(), training.split_fractions, training.split_seed), index=rows.index),
        meta=("split", np.int8)))
    if shuffle:
        key = frame["row"].map_partitions(
            lambda rows: pd.Series((splitmix64(rows.to_numpy()) >> np.uint64(2)).astype(np.int64), index=rows.index),
            meta=("key", np.int64))
        frame = frame.assign(key=key).shuffle("key").map_partitions(lambda part: part.sort_values("key", kind="stable"))
    frame = frame.persist()
    x_train, y_train, w_train = _arrays(frame, spec, features, TRAIN)
    x_val, y_val, w_val = _arrays(frame, spec, features, VALIDATION)
    scaler = StandardScaler().fit(x_train)
    train_input, val_input = _with_weight(x_train, w_train, scaler), _with_weight(x_val, w_val, scaler)
    model = config.model
    estimator = FlaxMLPClassifier(hidden_layers=tuple(model.hidden_layers), activation=model.activation, dropout=model.dropout,
                                  l2=model.l2, optimizer=training.optimizer, learning_rate=training.learning_rate,
                                  batch_size=training.batch_size, seed=int(training.seed if training.seed is not None else config.seed),
                                  weight_column=-1)
    incremental = Incremental(estimator, shuffle_blocks=False)
    history, best, best_auc, waited = [], None, -np.inf, 0
    started = time.perf_counter()
    for epoch in range(1, training.max_epochs + 1):
        tick = time.perf_counter()
        incremental.partial_fit(train_input, y_train)
        fitted = incremental.estimator_
        auc = _scores(fitted, val_input, y_val, w_val)
        history.append({"epoch": epoch, "val": {"auc": auc}, "seconds": time.perf_counter() - tick})
        log.info("epoch %3d/%d  val auc %.4f  (%.1f s)", epoch, training.max_epochs, auc, history[-1]["seconds"])
        if best is None or auc > best_auc:
            best, best_auc, waited = copy.deepcopy(fitted), auc, 0
        else:
            waited += 1
            if waited >= max(1, training.patience):
                break
    metrics: dict[str, Any] = {"val": {"auc": best_auc}, "epochs_run": len(history), "train_seconds": time.perf_counter() - started}
    if training.split_fractions[TEST] > 0:
        x_test, y_test, w_test = _arrays(frame, spec, features, TEST)
        metrics["test"] = {"auc": _scores(best, _with_weight(x_test, w_test, scaler), y_test, w_test)}
    scaler_record = Standardizer(mean=np.asarray(scaler.mean_, np.float64), std=np.asarray(scaler.scale_, np.float64))
    best.save(out, features, scaler_record, {
        "split": {"fractions": list(training.split_fractions), "seed": training.split_seed, "scheme": "splitmix64+blake2b v1"},
        "table": {**spec.to_dict(), "source": str(path), "dropped_cells": bad}, "metrics": metrics, "history": history,
        "trained_with": "dask-ml Incremental(FlaxMLPClassifier)", "config": config.model_dump(mode="json"), "preset": None,
    })
    log.info("model written to %s (best validation AUC %.4f)", out, best_auc)
    return best, metrics
