"""The train stage: the classifier from the feature store, or the best model of a search."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from analysis.core.config import AnalysisConfig
from analysis.core.errors import UserError
from analysis.core.layout import ResultsLayout
from nn.artifact import load_model
from nn.search import best_model_directory
from nn.train import train_from_store

log = logging.getLogger(__name__)


def run_training(config: AnalysisConfig, layout: ResultsLayout) -> Path:
    """Train on ``layout.store`` and write the model to ``layout.model_dir``; returns that folder.

    With ``search.use_best_model`` the best model of the finished search in
    ``search.directory`` (``python -m nn.search``) is copied there instead.
    """
    if config.search.use_best_model:
        if config.search.directory is None:
            raise UserError("search.use_best_model needs search.directory (the output folder of python -m nn.search)")
        source = best_model_directory(config.search.directory)
        if layout.model_dir.exists():
            shutil.rmtree(layout.model_dir)
        shutil.copytree(source, layout.model_dir)
        log.info("model: the best model of the search in %s", config.search.directory)
        return layout.model_dir
    train_from_store(layout.store, layout.model_dir, config)
    return layout.model_dir


def model_points(model_dir: str | Path) -> list[tuple[float, float]]:
    """The signal grid points (m(slepton), dm) the model in ``model_dir`` is evaluated at."""
    return [(float(m), float(d)) for m, d in load_model(model_dir).signal_points]
