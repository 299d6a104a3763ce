"""The train stage: the classifier from the feature store, or the best model of a search."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from analysis.core.config import AnalysisConfig
from analysis.core.errors import UserError
from analysis.core.layout import ResultsLayout
from nn.artifact import load_model
from nn.baseline import train_baselines
from nn.boosting import boost_on_errors
from nn.data import read_feature_store, simulation_only
from nn.search import best_model_directory
from nn.train import train_from_store

log = logging.getLogger(__name__)


def run_training(config: AnalysisConfig, layout: ResultsLayout) -> Path:
    """Train on ``layout.store`` and write the model to ``layout.model_dir``; returns that folder.

    With ``search.use_best_model`` the best model of the finished search in
    ``search.directory`` (``python -m nn.search``) is copied there instead; with
    ``training.boost_rounds`` the network of the last round of boosting on errors
    (:mod:`nn.boosting`) is saved, with every round's AUCs in ``model.json``; with
    ``training.folds`` the k cross-trained networks (:mod:`nn.folds`).
    """
    if config.search.use_best_model:
        if config.search.directory is None:
            raise UserError("search.use_best_model needs search.directory (the output folder of python -m nn.search)")
        if config.training.folds > 1:
            raise UserError("search.use_best_model copies one network; it cannot stand for a cross-training "
                            f"(training.folds = {config.training.folds}): set training.folds to 1, or train here")
        source = best_model_directory(config.search.directory)
        if layout.model_dir.exists():
            shutil.rmtree(layout.model_dir)
        shutil.copytree(source, layout.model_dir)
        log.info("model: the best model of the search in %s", config.search.directory)
        return layout.model_dir
    if config.training.boost_rounds:
        if config.training.per_point:
            raise UserError("training.boost_rounds: boosting on errors trains one network; it cannot be combined "
                            "with training.per_point")
        boosted = boost_on_errors(simulation_only(read_feature_store(layout.store)), config, verbose=True)
        boosted.final.save(layout.model_dir)
        if config.training.baseline != "none":
            train_baselines([boosted.final], layout.model_dir, config)  # trees beside the network: nn/baseline.py
        return layout.model_dir
    results = train_from_store(layout.store, layout.model_dir, config)
    if config.training.baseline != "none":  # trees beside the network (nn/baseline.py); for folds, the last one's
        train_baselines(results[-1:] if config.training.folds > 1 else results, layout.model_dir, config)
    return layout.model_dir


#: Config sections a model's training data depend on: a model trained with other values is stale.
DATA_SECTIONS = ("samples", "luminosity_fb", "selection", "features")


class StaleModelError(UserError, RuntimeError):
    """The model was trained on data selected with another config; the message names the sections."""


def _data_config(config: dict) -> dict:
    data = {key: config.get(key) for key in DATA_SECTIONS}
    if isinstance(data["samples"], dict):
        data["samples"] = {k: v for k, v in data["samples"].items() if k != "cache_dir"}  # where, not what
    return data


def check_model_is_current(model_dir: str | Path, config: AnalysisConfig) -> None:
    """Raise :class:`StaleModelError` unless the model in ``model_dir`` was trained on data the
    config's :data:`DATA_SECTIONS` describe (the full config is recorded in ``model.json``).

    A model without a recorded config (written by another tool) is accepted with a warning.
    """
    model = load_model(model_dir)
    first = model if not hasattr(model, "models") else next(iter(model.models.values()))
    recorded = first.metadata.get("config")
    if not isinstance(recorded, dict):
        log.warning("the model in %s records no config: cannot check that it fits this selection", model_dir)
        return
    now, then = _data_config(config.model_dump(mode="json")), _data_config(recorded)
    changed = [key for key in DATA_SECTIONS if now[key] != then[key]]
    if changed:
        details = "; ".join(f"{key}: {_difference(then[key], now[key])}" for key in changed)
        raise StaleModelError(
            f"the model in {model_dir} was trained with another {', '.join(changed)} than this config ({details}); "
            "run the train stage again, or pass --allow-stale-model to score with it anyway"
        )


def _difference(then, now, prefix: str = "") -> str:
    """The first differing leaf of two JSON values, as ``path: old -> new`` (short)."""
    if isinstance(then, dict) and isinstance(now, dict):
        for key in sorted(set(then) | set(now), key=str):
            if then.get(key) != now.get(key):
                return _difference(then.get(key), now.get(key), f"{prefix}{key}.")
    return f"{prefix.rstrip('.') or 'value'}: {str(then)[:80]} -> {str(now)[:80]}"


def model_points(model_dir: str | Path) -> list[tuple[float, float]]:
    """The signal grid points (m(slepton), dm) the model in ``model_dir`` is evaluated at."""
    return [(float(m), float(d)) for m, d in load_model(model_dir).signal_points]
