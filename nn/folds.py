"""A cross-trained model (``training.folds = k``): k networks, each event scored by the one network
whose test split it is in.

Each network is trained on the events of the other folds (:func:`nn.split.assign_split` with
``fold``), so no event is ever scored by a network that saw it in training or validation, and
the score histograms hold every selected event in their test split instead of 1/k of them:
the threshold scan and the fit see k times the simulated events (``training.scored_fraction``
is 1).  The usual HEP practice for analyses limited by their simulated samples (e.g. the
"k-folding" of the ATLAS and CMS di-Higgs and ttH analyses).

:func:`nn.artifact.load_model` returns a :class:`FoldSet` for a model folder whose ``model.json``
(the last fold's network) lists the others under ``cross_training``.  It scores *events*
(:meth:`FoldSet.score_events`, which needs their dataset and event numbers to find their
fold), not bare feature rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nn.split import TEST, event_fold, fold_count

__all__ = ["FoldSet"]


class FoldSet:
    """The k networks of a cross-training, fold j's network at ``models[f"fold_{j}"]``.

    The attributes a scorer reads (``feature_names``, ``parametrised``, ``signal_points``,
    ``classes``, ``metadata``, ``metrics``, ``history``, split settings) are those of the last
    fold's network; all networks must agree on inputs, points and split settings.
    """

    def __init__(self, models: Sequence[Any], directory: Path | None = None):
        last = models[-1]
        self.models = {f"fold_{fold}": model for fold, model in enumerate(models)}
        self.directory = directory
        self.folds = len(models)
        for name in ("feature_names", "input_names", "parametrised", "signal_points", "classes", "metadata", "metrics",
                     "history", "split_fractions", "split_seed"):
            setattr(self, name, getattr(last, name))
        if fold_count(self.split_fractions) != self.folds:
            raise ValueError(f"{self.folds} cross-trained networks, but the test fraction {self.split_fractions[2]} "
                             f"makes {fold_count(self.split_fractions)} folds")
        for fold, model in enumerate(models):
            same = (model.feature_names, model.input_names, model.signal_points, model.split_fractions, model.split_seed)
            if same != (last.feature_names, last.input_names, last.signal_points, last.split_fractions, last.split_seed):
                raise ValueError(f"cross-trained network {fold} has other inputs, grid points or split settings than the last")
            if model.split_fold != fold:
                raise ValueError(f"cross-trained network {fold} was trained as fold {model.split_fold}")

    def check_features(self, feature_names: Sequence[str], allow_extra: bool = False) -> np.ndarray:
        """As :meth:`nn.artifact.TrainedModel.check_features`."""
        return self.models[f"fold_{self.folds - 1}"].check_features(feature_names, allow_extra)

    def event_folds(self, dataset, event, dataset_names: Sequence[str] | None = None) -> np.ndarray:
        """The fold of each event (whose network scores it)."""
        return event_fold(dataset, event, self.folds, seed=self.split_seed, dataset_names=dataset_names)

    def assign_split(self, dataset, event, dataset_names: Sequence[str] | None = None) -> np.ndarray:
        """Every event is in the test split of its fold's network: :data:`~nn.split.TEST` for all."""
        return np.full(np.shape(event), TEST, dtype=np.int8)

    def score_events(self, features, points, feature_names, dataset, event, dataset_names=None) -> tuple[np.ndarray, np.ndarray]:
        """``(scores (n_points, n), split codes (n,))``: each event scored by its fold's network
        (as :meth:`nn.artifact.TrainedModel.score_events`); the codes are all test."""
        features = np.asarray(features)
        folds = self.event_folds(dataset, event, dataset_names)
        scores = np.zeros((len(points), len(folds)), dtype=np.float32)
        for fold, model in enumerate(self.models.values()):
            rows = np.flatnonzero(folds == fold)
            if rows.size:
                block = model.score_points(features[rows], points, feature_names=feature_names)
                scores = scores.astype(block.dtype, copy=False)
                scores[:, rows] = block
        return scores, self.assign_split(dataset, event, dataset_names)

    def score_points(self, *args, **kwargs):
        """Refused: which network scores an event depends on its fold (:meth:`score_events`)."""
        raise TypeError("a cross-trained model scores events by their fold: call score_events with their dataset and "
                        "event numbers")
