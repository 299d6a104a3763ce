"""What a search maximises: the validation AUC, the validation loss or the Asimov Z of a scan.

:func:`trial_objective` scores a trained network for ``search.objective``;
:func:`epoch_score` is the same score after one epoch (what the Optuna pruners compare).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from analysis.core.names import point_name
from analysis.core.statistics import threshold_scan
from nn.model import signal_probability_numpy
from nn.trainer import compiled_apply, predict_logits

__all__ = ["asimov_objective", "asimov_z", "epoch_score", "trial_objective"]


def asimov_z(network, params, data, config) -> dict[str, float]:
    """Best Asimov Z of a threshold scan on the validation split, per grid point.

    Scores the validation events of the prepared ``data`` with ``network`` / ``params`` at each
    grid point (signal of that point against all background), histograms the physics-weighted
    scores (scaled by 1 / validation fraction to the full luminosity) in ``scan.score_bins``
    bins on [0, 1] and scans them with :func:`analysis.core.statistics.threshold_scan` and the
    ``scan`` settings (as the scan stage does). A point without a valid threshold gets Z = 0.
    """
    scan = config.scan
    part = data.splits["val"]
    scale = 1.0 / config.training.split_fractions[1]
    apply = compiled_apply(network)
    edges = np.linspace(0.0, 1.0, scan.score_bins + 1)
    background = np.flatnonzero(~part.is_signal)
    x_background = part.x[background].copy()
    d = len(data.feature_names)
    z_by_point = {}
    for index, (m, dm) in enumerate(data.signal_points):
        signal = np.flatnonzero(part.is_signal & (part.point == index))
        if data.parametrised:
            x_background[:, d:] = data.standardised_point(index)
        histograms = []
        for rows, x in ((signal, part.x[signal]), (background, x_background)):
            logits = predict_logits(apply, params, x, config.training.eval_batch_size) if len(rows) else None
            score = signal_probability_numpy(logits) if logits is not None else np.zeros(0)
            weight = part.physics_weight[rows].astype(np.float64) * scale
            counts, _ = np.histogram(np.clip(score, 0.0, 1.0), bins=edges, weights=weight)
            sumw2, _ = np.histogram(np.clip(score, 0.0, 1.0), bins=edges, weights=weight**2)
            histograms += [counts, sumw2]
        scanned = threshold_scan(
            *histograms, edges,
            relative_bkg_uncertainty=scan.relative_background_uncertainty,
            include_mc_stat=scan.include_mc_stat_uncertainty,
            min_signal=scan.min_signal,
            min_background=scan.min_background,
            min_background_ess=scan.min_background_ess,
        )
        z = float(scanned.best_z)
        z_by_point[point_name(m, dm)] = z if math.isfinite(z) else 0.0
    return z_by_point


def asimov_objective(result, config) -> dict[str, float]:
    """:func:`asimov_z` of a :class:`~nn.train.TrainingResult`."""
    return asimov_z(result.network, result.params, result.data, config)


def _asimov_value(z_by_point: dict[str, float], search) -> float:
    if search.objective_point is not None:
        if search.objective_point not in z_by_point:
            raise ValueError(f"search.objective_point {search.objective_point!r} is not a trained grid point; have {sorted(z_by_point)}")
        return z_by_point[search.objective_point]
    return float(np.mean(list(z_by_point.values())))


def trial_objective(result, config) -> dict[str, Any]:
    """``{"objective", "score", "metrics"}`` of a trained network for ``config.search.objective``.

    ``objective`` is the raw value (AUC, loss or Z); ``score`` is what the search maximises
    (the objective, or minus the loss).
    """
    search = config.search
    val = result.metrics["val"]
    metrics = {"val_auc": float(val["auc"]), "val_loss": float(val["loss"]), "epochs_run": int(result.metrics["epochs_run"])}
    if search.objective == "auc":
        objective = metrics["val_auc"]
    elif search.objective == "loss":
        objective = metrics["val_loss"]
    else:
        metrics["asimov_z"] = asimov_objective(result, config)
        objective = _asimov_value(metrics["asimov_z"], search)
    if not all(math.isfinite(v) for v in (metrics["val_auc"], metrics["val_loss"], objective)):
        raise FloatingPointError(f"non-finite validation metrics: auc {metrics['val_auc']}, loss {metrics['val_loss']}, objective {objective}")
    score = -objective if search.objective == "loss" else objective
    return {"objective": float(objective), "score": float(score), "metrics": metrics}


def epoch_score(network, params, data, entry: dict, config) -> float:
    """The search score (higher is better) of the network after one epoch: the validation AUC,
    minus the validation loss, or the Asimov Z (:func:`asimov_z` with these ``params``) of the
    history ``entry``'s epoch. NaN when not finite (a pruner then stops the trial)."""
    objective = config.search.objective
    if objective == "auc":
        value = entry["val"]["auc"]
    elif objective == "loss":
        value = -entry["val"]["loss"]
    else:
        value = _asimov_value(asimov_z(network, params, data, config), config.search)
    value = float(value)
    return value if math.isfinite(value) else math.nan
