"""From a :class:`~nn.table.LabelledTable` to the training loop's :class:`~nn.prepare.PreparedData`.

The table path of :func:`nn.prepare.prepare_training_data`, without signal grid points: a plain
binary classifier (label 1 signal, 0 background), never parametrised.

1. each row goes to train / validation / test by the hash of its input row number
   (:func:`nn.split.assign_split` with the dataset name :data:`TABLE_DATASET` and
   ``training.split_fractions`` / ``split_seed``): the same row lands in the same split in every
   run, for the network and the tree baseline alike, and rows dropped for NaN cells do not move
   the others;
2. the optional input transform of ``input_transform`` (:mod:`nn.table_transform`) is fitted on
   the training rows and applied to all;
3. the weights (the weight column, or 1) are balanced per split with ``training.balance``
   (each class to the same total) and normalised to mean 1;
4. the inputs are standardised with the training split's statistics;
5. the training split is resampled if ``training.resample`` asks (:mod:`nn.resampling`, as
   for the feature store).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nn.prepare import PreparedData, SplitData
from nn.resampling import resample_training_split
from nn.scaler import Standardizer
from nn.split import SPLIT_NAMES, TEST, TRAIN, VALIDATION, assign_split
from nn.table import LabelledTable, TableError
from nn.weights import effective_sample_size, equalise_totals, normalise_mean

__all__ = ["TABLE_CLASSES", "TABLE_DATASET", "prepare_table_data", "table_split"]

#: The dataset name salting the split hash of table rows (a constant: renaming the file keeps the split).
TABLE_DATASET = "table"
TABLE_CLASSES = ("background", "signal")


def table_split(rows: np.ndarray, fractions, seed: int) -> np.ndarray:
    """Split code (:data:`~nn.split.TRAIN`, ``VALIDATION``, ``TEST``) of table rows by input row number."""
    rows = np.asarray(rows, dtype=np.int64)
    return assign_split(np.zeros(rows.shape, np.int64), rows, fractions, seed=seed, dataset_names=[TABLE_DATASET])


def _resample(splits: dict[str, SplitData], training_config, seed: int) -> dict[str, Any]:
    """Resample the training split in place (``training.resample``); returns what was done."""
    train = splits["train"]
    before = np.bincount(train.target, minlength=2).tolist()
    x, target, weights, extra, n_synthetic = resample_training_split(
        train.x, train.target, {"weight": train.weight, "physics_weight": train.physics_weight},
        {"is_signal": train.is_signal, "point": train.point, "rows": train.rows},
        training_config.resample, training_config.sampling_strategy, training_config.smote_k_neighbors, seed,
    )
    splits["train"] = SplitData(x=x, target=target, is_signal=extra["is_signal"], weight=weights["weight"],
                                physics_weight=weights["physics_weight"], point=extra["point"], rows=extra["rows"])
    return {"method": training_config.resample, "events_per_class_before": before,
            "events_per_class_after": np.bincount(target, minlength=2).tolist(), "synthetic": n_synthetic}


def prepare_table_data(table: LabelledTable, model_config, training_config, seed: int, points=None,
                       parametrised=None, transform=None) -> PreparedData:
    """Split, weight and standardise ``table`` for training (see the module doc).

    The signature is that of :func:`nn.prepare.prepare_training_data` (so it can be handed to
    :func:`nn.train.train_classifier`); ``points`` and ``parametrised`` must be left unset (a
    table has no signal grid).  ``transform`` is a fitted-on-demand input transform
    (:class:`nn.table_transform.InputTransform`) or None.
    """
    if points is not None or parametrised:
        raise TableError(f"table {table.source}: a table has no signal grid points; train a non-parametrised network")
    if table.label is None:
        raise TableError(f"table {table.source}: training needs a label column")
    label = table.label
    for value, name in ((1, "signal"), (0, "background")):
        if not np.any(label == value):
            raise TableError(f"table {table.source}: there are no {name} rows (label column {table.spec.label!r})")
    split = table_split(table.row, training_config.split_fractions, training_config.split_seed)
    physics = np.ones(len(table)) if table.weight is None else table.weight.astype(np.float64)
    features = table.features
    if transform is not None:
        transform.fit(features[split == TRAIN], table.feature_names)
        features = transform.apply(features)
    target = label.astype(np.int32)
    splits: dict[str, SplitData] = {}
    summary: dict[str, Any] = {"events": {}, "effective_sample_size": {}}
    for code, name in zip((TRAIN, VALIDATION, TEST), SPLIT_NAMES):
        local = np.flatnonzero(split == code)
        if local.size == 0:
            if code == TEST:
                continue
            raise TableError(f"table {table.source}: the {name} split is empty (too few rows for split fractions "
                             f"{list(training_config.split_fractions)})")
        weight = physics[local]
        if training_config.balance == "equal":
            try:
                weight = equalise_totals(weight, target[local], list(TABLE_CLASSES))
            except ValueError as error:
                raise TableError(f"table {table.source}, {name} split: {error}") from None
        balanced = normalise_mean(weight)
        splits[name] = SplitData(
            x=np.ascontiguousarray(features[local], dtype=np.float32),
            target=target[local],
            is_signal=target[local] == 1,
            weight=balanced.astype(np.float32),
            physics_weight=physics[local].astype(np.float32),
            point=np.zeros(local.size, np.int32),
            rows=local.astype(np.int64),
        )
        summary["events"][name] = int(local.size)
        summary["effective_sample_size"][name] = {
            cls: {
                "events": int(np.sum(target[local] == k)),
                "sum_weight": float(physics[local][target[local] == k].sum()),
                "ess_physics": effective_sample_size(physics[local][target[local] == k]),
                "ess_training": effective_sample_size(balanced[target[local] == k]),
            }
            for k, cls in enumerate(TABLE_CLASSES)
        }
    scaler = Standardizer.fit(splits["train"].x)
    for data in splits.values():
        scaler.transform_(data.x)
    if training_config.resample != "none":
        summary["resampling"] = _resample(splits, training_config, seed)
    summary["negative_weight_fraction"] = 0.0
    summary["table"] = {"rows": table.n_input_rows, "dropped_rows": table.n_dropped, "dropped_cells": table.dropped}
    return PreparedData(
        feature_names=tuple(table.feature_names),
        input_names=tuple(table.feature_names),
        parametrised=False,
        classes=TABLE_CLASSES,
        signal_points=[],
        point_probabilities=np.zeros(0),
        scaler=scaler,
        splits=splits,
        total_rows=len(table),
        summary=summary,
    )
