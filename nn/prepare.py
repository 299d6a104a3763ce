"""From a :class:`~nn.data.FeatureTable` to standardised, weighted train/val/test arrays.

:func:`prepare_training_data` does, in this order:

1. select the background and the signal events of the chosen grid points;
2. split them by the hash of (dataset, event number) (:func:`nn.split.assign_split`);
3. set the targets (binary 1/0, or class 0 = signal, 1.. = background processes);
4. apply the negative-weight policy to the physics weights;
5. for a parametrised network, append (m_slepton, dm): the signal's own point, a drawn point
   for background (:func:`nn.parametrise.draw_background_points`);
6. resample the training split if asked (imbalanced-learn, :mod:`nn.resampling`; after the
   standardisation, whose statistics come from the original events only);
7. balance the weights per split (each signal point, then each class, to equal totals) and
   normalise them to mean 1;
8. build one float32 input matrix per split (a single gather from the feature matrix) and
   standardise all three in place with the statistics of the training split only.

The effective sample size per class and split is recorded in ``summary``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from analysis.core.names import point_name
from nn.data import FeatureTable
from nn.parametrise import PARAMETER_NAMES, draw_background_points, match_points
from nn.resampling import ResamplingError, resample_training_split
from nn.scaler import Standardizer
from nn.split import SPLIT_NAMES, TEST, TRAIN, VALIDATION, assign_split
from nn.weights import (
    apply_negative_weight_policy,
    effective_sample_size,
    equalise_totals,
    normalise_mean,
)

__all__ = ["PreparedData", "SplitData", "prepare_training_data", "resolve_points"]

_CHUNK_ROWS = 65_536


@dataclass(eq=False)
class SplitData:
    """One split, ready for the network.

    Attributes:
        x: float32 ``(n, k)`` standardised inputs (features, then parameters if parametrised).
        target: int32 class per row (binary: 1 signal; multi-class: 0 signal).
        is_signal: bool per row.
        weight: float32 balanced weights, mean 1 (used by bce/focal and by the metrics).
        physics_weight: float32 physics weights after the negative-weight policy (asimov loss).
        point: int32 index of the row's grid point (for background: the drawn one).
        rows: int64 row index into the source table.
    """

    x: np.ndarray
    target: np.ndarray
    is_signal: np.ndarray
    weight: np.ndarray
    physics_weight: np.ndarray
    point: np.ndarray
    rows: np.ndarray

    def __len__(self) -> int:
        return int(self.x.shape[0])


@dataclass(eq=False)
class PreparedData:
    """Everything the training loop needs, plus what the artifact records."""

    feature_names: tuple[str, ...]
    input_names: tuple[str, ...]
    parametrised: bool
    classes: tuple[str, ...]
    signal_points: list[tuple[float, float]]
    point_probabilities: np.ndarray
    scaler: Standardizer
    splits: dict[str, SplitData]
    total_rows: int
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def n_outputs(self) -> int:
        """1 for a binary network, else the number of classes."""
        return 1 if self.classes == ("background", "signal") else len(self.classes)

    def standardised_point(self, index: int) -> np.ndarray:
        """The standardised parameter inputs of grid point ``index`` (length 2)."""
        d = len(self.feature_names)
        raw = np.asarray(self.signal_points[index], dtype=np.float64)
        return ((raw - self.scaler.mean[d:]) / self.scaler.std[d:]).astype(np.float32)


def resolve_points(table: FeatureTable, requested: Sequence[tuple[float, float]] | None) -> list[tuple[float, float]]:
    """The grid points to train on: ``requested`` (checked to exist in the table) or all of them."""
    available = table.signal_points()
    if not available:
        raise ValueError(f"feature store {table.source}: there are no signal events")
    if requested is None:
        return available
    missing = [point_name(m, d) for m, d in requested if match_points(np.float32([m]), np.float32([d]), available)[0] < 0]
    if missing:
        raise ValueError(
            f"signal point(s) {missing} are not in the feature store {table.source}; "
            f"available: {[point_name(m, d) for m, d in available]}"
        )
    return [(float(m), float(d)) for m, d in requested]


def _targets(table: FeatureTable, rows: np.ndarray, multiclass: bool) -> tuple[np.ndarray, tuple[str, ...]]:
    label = table.label[rows]
    if not multiclass:
        return label.astype(np.int32), ("background", "signal")
    background_codes = np.unique(table.process[rows][label == 0])
    processes = [table.process_names[c] for c in background_codes]
    order = np.argsort(processes)
    lookup = np.zeros(len(table.process_names), dtype=np.int32)
    lookup[background_codes[order]] = np.arange(1, len(processes) + 1)
    target = np.where(label == 1, 0, lookup[table.process[rows]]).astype(np.int32)
    return target, ("signal", *sorted(processes))


def _balanced(physics: np.ndarray, target: np.ndarray, is_signal: np.ndarray, point: np.ndarray, classes, balance: str, by_point: bool) -> np.ndarray:
    """Balanced weights (mean 1): signal points equalised inside the signal, classes equalised."""
    weight = physics.astype(np.float64)
    if by_point and is_signal.any():
        signal_total = weight[is_signal].sum()
        within = equalise_totals(weight[is_signal], point[is_signal])
        weight[is_signal] = within * signal_total / within.sum()
    if balance == "equal":
        weight = equalise_totals(weight, target, list(classes))
    return normalise_mean(weight)


def _input_matrix(table: FeatureTable, rows: np.ndarray, params: np.ndarray | None) -> np.ndarray:
    """float32 (n, d [+2]) gathered from the feature matrix chunk by chunk (no full temporary)."""
    d = table.features.shape[1]
    width = d + (0 if params is None else params.shape[1])
    x = np.empty((rows.size, width), dtype=np.float32)
    for start in range(0, rows.size, _CHUNK_ROWS):
        chunk = rows[start : start + _CHUNK_ROWS]
        x[start : start + chunk.size, :d] = table.features[chunk]
        if params is not None:
            x[start : start + chunk.size, d:] = params[start : start + chunk.size]
    return x


def _resampled(train: SplitData, training_config, seed: int) -> tuple[SplitData, dict]:
    """The training split after ``training.resample`` (:mod:`nn.resampling`; class totals kept)."""
    before = {int(k): int(n) for k, n in zip(*np.unique(train.target, return_counts=True))}
    x, target, weights, extra, n_synthetic = resample_training_split(
        train.x, train.target, {"weight": train.weight, "physics_weight": train.physics_weight},
        {"is_signal": train.is_signal, "point": train.point, "rows": train.rows},
        training_config.resample, training_config.sampling_strategy, training_config.smote_k_neighbors, seed,
    )
    after = {int(k): int(n) for k, n in zip(*np.unique(target, return_counts=True))}
    resampled = SplitData(x=x, target=target, is_signal=extra["is_signal"], weight=weights["weight"],
                          physics_weight=weights["physics_weight"], point=extra["point"], rows=extra["rows"])
    return resampled, {"method": training_config.resample, "strategy": training_config.sampling_strategy,
                       "events_per_class_before": before, "events_per_class_after": after, "synthetic": n_synthetic}


def prepare_training_data(
    table: FeatureTable,
    model_config,
    training_config,
    seed: int,
    points: Sequence[tuple[float, float]] | None = None,
    parametrised: bool | None = None,
    fold: int | None = None,
) -> PreparedData:
    """Split, weight, parametrise and standardise ``table`` for training (see the module doc);
    ``fold``: the splits of that fold of a cross-training (:func:`nn.split.assign_split`).

    ``points`` (default: ``training_config.signal_points`` or every point in the table) are the
    signal grid points to use; ``parametrised`` overrides ``model_config.parametrised``.
    ``seed`` drives the background-parameter draw and the resampling.
    """
    if points is None and training_config.signal_points is not None:
        points = [(p.m_slepton, p.dm) for p in training_config.signal_points]
    points = resolve_points(table, points)
    parametrised = model_config.parametrised if parametrised is None else parametrised
    multiclass = model_config.output == "multiclass"

    point_of_row = match_points(table.m_slepton, table.dm, points)
    is_background = table.label == 0
    rows = np.flatnonzero(is_background | ((table.label == 1) & (point_of_row >= 0)))
    if not is_background.any():
        raise ValueError(f"feature store {table.source}: there are no background events")
    split = assign_split(
        table.dataset[rows], table.event[rows], training_config.split_fractions,
        seed=training_config.split_seed, dataset_names=table.dataset_names, fold=fold,
    )
    target, classes = _targets(table, rows, multiclass)
    is_signal = table.label[rows] == 1
    physics = apply_negative_weight_policy(table.weight[rows], training_config.negative_weights)
    point = point_of_row[rows].copy()

    train_signal = (split == TRAIN) & is_signal
    if training_config.balance_signal_points:
        probabilities = np.ones(len(points))
    else:
        probabilities = np.clip(np.bincount(point[train_signal], weights=physics[train_signal], minlength=len(points)), 0, None)
        if not probabilities.sum() > 0:
            probabilities = np.ones(len(points))
    probabilities = probabilities / probabilities.sum()
    background_rows = ~is_signal  # drawn also when not parametrised: per-point metrics use it
    point[background_rows] = draw_background_points(
        table.dataset[rows][background_rows], table.event[rows][background_rows],
        table.dataset_names, probabilities, seed,
    )

    point_array = np.asarray(points, dtype=np.float32)
    splits: dict[str, SplitData] = {}
    summary: dict[str, Any] = {"events": {}, "effective_sample_size": {}}
    for code, name in zip((TRAIN, VALIDATION, TEST), SPLIT_NAMES):
        local = np.flatnonzero(split == code)
        if local.size == 0:
            if code == TEST:
                continue
            raise ValueError(f"the {name} split is empty: too few events or a zero split fraction")
        balanced = _balanced(
            physics[local], target[local], is_signal[local], point[local], classes,
            training_config.balance, training_config.balance_signal_points,
        )
        params = point_array[point[local]] if parametrised else None
        splits[name] = SplitData(
            x=_input_matrix(table, rows[local], params),
            target=target[local],
            is_signal=is_signal[local],
            weight=balanced.astype(np.float32),
            physics_weight=physics[local].astype(np.float32),
            point=point[local],
            rows=rows[local],
        )
        summary["events"][name] = int(local.size)
        summary["effective_sample_size"][name] = {
            cls: {
                "events": int(np.sum(target[local] == k)),
                "sum_weight": float(physics[local][target[local] == k].sum()),
                "ess_physics": effective_sample_size(physics[local][target[local] == k]),
                "ess_training": effective_sample_size(balanced[target[local] == k]),
            }
            for k, cls in enumerate(classes)
        }
    scaler = Standardizer.fit(splits["train"].x)
    for data in splits.values():
        scaler.transform_(data.x)
    if training_config.resample != "none":
        if parametrised and training_config.resample == "smote":
            raise ResamplingError("training.resample: smote would interpolate the grid-point inputs of a parametrised "
                                  "network between grid points; use it with model.parametrised: false or training.per_point")
        splits["train"], summary["resampling"] = _resampled(splits["train"], training_config, seed)
    summary["negative_weight_fraction"] = float(np.mean(table.weight[rows] < 0))
    return PreparedData(
        feature_names=tuple(table.feature_names),
        input_names=tuple(table.feature_names) + (PARAMETER_NAMES if parametrised else ()),
        parametrised=parametrised,
        classes=classes,
        signal_points=list(points),
        point_probabilities=probabilities,
        scaler=scaler,
        splits=splits,
        total_rows=int(rows.size),
        summary=summary,
    )
