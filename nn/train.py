"""The training stage: feature store -> trained classifier artifact.

Command line::

    python -m nn.train --store STORE --out OUT [--config analysis.yaml] [--preset NAME]

reads ``STORE`` (:func:`nn.data.read_feature_store`), trains the network of the config's
``model`` and ``training`` sections (or of a named preset, :mod:`nn.presets`), prints one line
per epoch and the final weighted validation and test AUCs, and writes the artifact to ``OUT``
(:mod:`nn.artifact`).  With ``training.per_point`` it trains one network per signal grid point
into ``OUT/points/<point>/`` and writes ``OUT/index.json``.

Python API: :func:`train_classifier` (a :class:`~nn.data.FeatureTable` in, a
:class:`TrainingResult` out), :func:`train_from_store` (what the command runs).
"""

from __future__ import annotations

import argparse
import logging
import platform
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import flax
import jax
import numpy as np
import optax

from analysis.core.cli import setup_logging
from analysis.core.config import ConfigError, default_config, load_config
from analysis.core.names import point_name
from nn.artifact import ArtifactError, save_artifact, save_model_set
from nn.data import FeatureStoreError, FeatureTable, read_feature_store, simulation_only
from nn.losses import LossSpec
from nn.metrics import weighted_roc_auc
from nn.model import MLP, build_model, signal_probability_numpy
from nn.prepare import PreparedData, prepare_training_data
from nn.presets import PRESETS, apply_preset
from nn.table import TableSpec
from nn.table_train import TableTraining, table_main, train_table
from nn.trainer import (
    FitResult,
    compiled_apply,
    compiled_loss,
    evaluate_split,
    fit,
    predict_logits,
)

__all__ = ["TrainingResult", "loss_spec", "main", "training_seed", "train_classifier", "train_from_store",
           "train_from_table"]

log = logging.getLogger(__name__)


def training_seed(config) -> int:
    """``training.seed``, or the analysis ``seed`` when it is not set."""
    return int(config.training.seed if config.training.seed is not None else config.seed)


def loss_spec(config) -> LossSpec:
    """The :class:`~nn.losses.LossSpec` of a config (the Asimov uncertainty defaults to the scan's)."""
    training = config.training
    relative = training.asimov_relative_uncertainty
    if relative is None:
        relative = config.scan.relative_background_uncertainty
    return LossSpec(
        kind=training.loss,
        label_smoothing=training.label_smoothing,
        focal_gamma=training.focal_gamma,
        relative_uncertainty=float(relative),
        asimov_eps=training.asimov_eps,
    )


@dataclass
class TrainingResult:
    """A trained network with everything its artifact records.

    Attributes:
        network: the Flax module; params: its best parameters; data: the prepared splits;
        fit: the training-loop outcome (history, best epoch, stop reason);
        metrics: final validation and test metrics; metadata: the ``model.json`` content.
    """

    network: MLP
    params: Any
    data: PreparedData
    fit: FitResult
    metrics: dict[str, Any]
    metadata: dict[str, Any]

    def save(self, directory: str | Path) -> Path:
        """Write the artifact (weights + ``model.json``) to ``directory``."""
        return save_artifact(directory, self.params, self.metadata)


def _per_point_auc(apply, params, data: PreparedData, split: str, batch_size: int) -> dict[str, float]:
    """Weighted AUC of each grid point's signal against all background evaluated at that point."""
    part = data.splits.get(split)
    if part is None:
        return {}
    background = np.flatnonzero(~part.is_signal)
    x_background = part.x[background].copy()
    d = len(data.feature_names)
    result = {}
    for index, (m, dm) in enumerate(data.signal_points):
        signal = np.flatnonzero(part.is_signal & (part.point == index))
        if signal.size == 0:
            continue
        if data.parametrised:
            x_background[:, d:] = data.standardised_point(index)
        x = np.concatenate([part.x[signal], x_background])
        score = signal_probability_numpy(predict_logits(apply, params, x, batch_size))
        labels = np.r_[np.ones(signal.size), np.zeros(background.size)]
        weights = np.r_[part.weight[signal], part.weight[background]]
        result[point_name(m, dm)] = weighted_roc_auc(score, labels, weights)
    return result


def _final_metrics(network: MLP, params, data: PreparedData, spec: LossSpec, batch_size: int) -> dict[str, Any]:
    apply, loss_eval = compiled_apply(network), compiled_loss(spec)
    metrics: dict[str, Any] = {}
    for split in ("val", "test"):
        if split in data.splits:
            metrics[split], _ = evaluate_split(apply, loss_eval, params, data.splits[split], spec, data.total_rows, batch_size)
            per_point = _per_point_auc(apply, params, data, split, batch_size)
            metrics[split]["auc_per_point"] = per_point
            if per_point:
                metrics[split]["auc_mean_over_points"] = float(np.mean(list(per_point.values())))
    return metrics


def train_classifier(
    table: FeatureTable,
    config,
    preset: str | None = None,
    points: Sequence[tuple[float, float]] | None = None,
    parametrised: bool | None = None,
    verbose: bool = True,
    on_epoch: Callable[[MLP, Any, PreparedData, dict], None] | None = None,
    prepare: Callable[..., PreparedData] = prepare_training_data,
    fold: int | None = None,
) -> TrainingResult:
    """Train one network on ``table`` with the ``model``/``training`` sections of ``config``.

    ``preset`` applies a named preset first; ``points`` restricts the signal to these grid
    points (default: ``training.signal_points`` or all); ``parametrised`` overrides
    ``model.parametrised``.  Progress goes to this module's logger (INFO, or DEBUG when not
    ``verbose``).  ``on_epoch(network, params, data, entry)`` is called after every epoch with
    its history entry (it may raise to stop the training, as a search's pruner does).
    ``prepare`` turns ``table`` into the splits (default :func:`nn.prepare.prepare_training_data`;
    :func:`nn.table_prepare.prepare_table_data` for a plain table).  ``fold``: train the network
    of that fold of a cross-training (``training.folds``; its seed is the training seed + fold).
    Returns a :class:`TrainingResult` (call ``.save(dir)``).
    """
    level = logging.INFO if verbose else logging.DEBUG
    if preset is not None:
        config = apply_preset(config, preset)
    seed = training_seed(config) + (fold or 0)
    data = prepare(table, config.model, config.training, seed, points, parametrised, **({} if fold is None else {"fold": fold}))
    network = build_model(config.model.hidden_layers, config.model.activation, config.model.dropout, data.n_outputs,
                          config.model.input_encoding_bins, config.model.ensemble_members, config.model.ensemble_shared)
    spec = loss_spec(config)
    if log.isEnabledFor(level):
        counts = data.summary["events"]
        log.log(
            level,
            f"training {'parametrised ' if data.parametrised else ''}{config.model.output} MLP "
            f"{list(config.model.hidden_layers)} {config.model.activation} on {len(data.signal_points)} signal point(s), "
            f"{len(data.feature_names)} features; events train/val/test = "
            f"{counts.get('train', 0)}/{counts.get('val', 0)}/{counts.get('test', 0)}; loss {spec.kind}, "
            f"optimizer {config.training.optimizer}, batch {config.training.batch_size}"
        )
        for cls, ess in data.summary["effective_sample_size"]["train"].items():
            log.log(level, f"  train {cls:>10s}: {ess['events']} events, effective sample size {ess['ess_physics']:.1f} (physics weights)")
    report = None if on_epoch is None else (lambda params, entry: on_epoch(network, params, data, entry))
    result = fit(network, data, config.training, spec, seed, config.model.l1, config.model.l2, config.model.dropout,
                 verbose=verbose, on_epoch=report)
    metrics = _final_metrics(network, result.params, data, spec, config.training.eval_batch_size)
    metrics.update(best_epoch=result.best_epoch, epochs_run=result.epochs_run, stop_reason=result.stop_reason, **result.timings)
    metadata = {
        "network": {
            "hidden_layers": list(config.model.hidden_layers),
            "activation": config.model.activation,
            "dropout": config.model.dropout,
            "n_outputs": data.n_outputs,
            "output": config.model.output,
            "encoding_bins": config.model.input_encoding_bins,
            "members": config.model.ensemble_members,
            "shared_members": config.model.ensemble_shared,
        },
        "feature_names": list(data.feature_names),
        "input_names": list(data.input_names),
        "parametrised": data.parametrised,
        "classes": list(data.classes),
        "signal_points": [list(p) for p in data.signal_points],
        "point_probabilities": data.point_probabilities,
        "scaler": data.scaler.to_dict(),
        "split": {"fractions": list(config.training.split_fractions), "seed": config.training.split_seed, "scheme": "splitmix64+blake2b v1",
                  "fold": fold, "folds": config.training.folds if fold is not None else 1},
        "preset": preset,
        "seed": seed,
        "loss": spec.__dict__,
        "config": config.model_dump(mode="json"),
        "config_hash": config.hash(),
        "feature_set": table.feature_set,
        "store": str(table.source) if table.source is not None else None,
        "summary": data.summary,
        "metrics": metrics,
        "history": result.history,
        "versions": {
            "python": platform.python_version(),
            "jax": jax.__version__,
            "flax": flax.__version__,
            "optax": optax.__version__,
            "numpy": np.__version__,
            "device": str(jax.devices()[0]),
        },
    }
    if log.isEnabledFor(level):
        for split in ("val", "test"):
            if split in metrics:
                extra = metrics[split].get("auc_mean_over_points")
                per_point = f"  (mean per-point AUC {extra:.4f})" if extra is not None else ""
                log.log(level, f"{split:>4s}: weighted AUC {metrics[split]['auc']:.4f}  loss {metrics[split]['loss']:.5f}{per_point}")
        log.log(level, f"best epoch {result.best_epoch} of {result.epochs_run}: {result.stop_reason}")
    return TrainingResult(network, result.params, data, result, metrics, metadata)


def train_from_store(
    store: str | Path,
    out: str | Path,
    config=None,
    preset: str | None = None,
    verbose: bool = True,
) -> list[TrainingResult]:
    """Read the feature store, train (one network, or one per point with ``training.per_point``)
    and write the artifact(s) to ``out``; returns the results. Progress is logged
    (:func:`train_classifier`)."""
    config = default_config() if config is None else config
    if preset is not None:
        config = apply_preset(config, preset)
    table = read_feature_store(store)
    simulated = simulation_only(table)
    if len(simulated) < len(table):
        log.info("training on simulation only: %d collision-data events of the store left out", len(table) - len(simulated))
    table = simulated
    out = Path(out)
    if config.training.folds > 1:
        return _train_folds(table, out, config, preset, verbose)
    if not config.training.per_point:
        result = train_classifier(table, config, preset=None, verbose=verbose)
        result.metadata["preset"] = preset
        result.save(out)
        log.info("model written to %s", out)
        return [result]
    points = (
        [(p.m_slepton, p.dm) for p in config.training.signal_points]
        if config.training.signal_points is not None
        else table.signal_points()
    )
    results, members = [], {}
    for m, dm in points:
        name = point_name(m, dm)
        log.info("--- grid point %s", name)
        result = train_classifier(table, config, points=[(m, dm)], parametrised=False, verbose=verbose)
        result.metadata["preset"] = preset
        result.save(out / "points" / name)
        members[name] = {"m_slepton": m, "dm": dm, "path": f"points/{name}"}
        results.append(result)
    save_model_set(out, members)
    log.info("%d per-point models written to %s", len(results), out)
    return results


def _train_folds(table: FeatureTable, out: Path, config, preset: str | None, verbose: bool) -> list[TrainingResult]:
    """A cross-training: the network of fold j in ``out/folds/<j>`` for j < k - 1 and the last
    fold's at the top of ``out``, written last, whose ``model.json`` lists the others
    (``cross_training``: what :func:`nn.artifact.load_model` reads as a :class:`nn.folds.FoldSet`)."""
    folds = config.training.folds
    results = []
    for fold in range(folds):
        log.info("--- cross-training fold %d of %d", fold + 1, folds)
        result = train_classifier(table, config, preset=None, verbose=verbose, fold=fold)
        result.metadata["preset"] = preset
        results.append(result)
    members = [f"folds/{fold}" for fold in range(folds - 1)]
    for path, result in zip(members, results):
        result.save(out / path)
    test_auc = [r.metrics.get("test", {}).get("auc") for r in results]
    train_auc = [r.fit.history[r.fit.best_epoch - 1]["train"]["auc"] for r in results]  # at the kept epoch
    results[-1].metadata["cross_training"] = {"folds": folds, "members": members, "train_auc": train_auc, "test_auc": test_auc}
    results[-1].save(out)
    log.info("%d cross-trained networks written to %s (test AUC per fold: %s)", folds, out,
             ", ".join(f"{auc:.4f}" for auc in test_auc if auc is not None))
    return results


def train_from_table(table: str | Path, out: str | Path, spec: TableSpec, config=None, **options) -> TableTraining:
    """Train on a CSV / Parquet table read with ``spec`` and write the model (and the tree
    baseline and plots) to ``out``: :func:`nn.table_train.train_table` with
    :func:`train_classifier` (``options``: preset, baseline, input_transform, plots, verbose)."""
    return train_table(table, out, spec, train_classifier, config, **options)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (``python -m nn.train``); returns the exit status."""
    arguments = sys.argv[1:] if argv is None else list(argv)
    if any(arg == "--table" or arg.startswith("--table=") for arg in arguments):
        return table_main(arguments, train_classifier)  # a plain CSV / Parquet table: nn/table_train.py
    parser = argparse.ArgumentParser(prog="python -m nn.train", description="Train the signal-vs-background classifier from a feature store.")
    parser.add_argument("--store", required=True, help="feature-store directory (parts/*.parquet + schema.json)")
    parser.add_argument("--out", required=True, help="output directory of the model artifact")
    parser.add_argument("--config", help="analysis config YAML (default: the built-in analysis/core/default.yaml)")
    parser.add_argument("--preset", choices=sorted(PRESETS), help="network/training preset applied over the config")
    parser.add_argument("--quiet", action="store_true", help="print only the final metrics")
    args = parser.parse_args(argv)
    setup_logging()
    if args.quiet:
        logging.getLogger("nn").setLevel(logging.WARNING)
    try:
        config = load_config(args.config) if args.config else default_config()
        results = train_from_store(args.store, args.out, config, args.preset)
    except (ConfigError, FeatureStoreError, ArtifactError, ValueError, FloatingPointError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for result in results:
        val, test = result.metrics.get("val", {}), result.metrics.get("test", {})
        points = ",".join(point_name(m, d) for m, d in result.data.signal_points) if len(result.data.signal_points) <= 3 else "all points"
        print(
            f"[{points}] validation weighted AUC = {val.get('auc', float('nan')):.4f}, "
            f"test weighted AUC = {test.get('auc', float('nan')):.4f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
