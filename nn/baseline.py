"""A gradient-boosted-tree baseline beside the network: XGBoost on the same splits and weights.

``training.baseline: xgboost`` (or ``python -m nn.train --baseline xgboost``) trains
:data:`XGBOOST_PARAMS` trees on exactly the inputs the network saw -- the same
:class:`~nn.prepare.PreparedData`: the same train / validation / test rows, the same balanced
training weights, the same standardised inputs (a parametrised network's (m_slepton, dm)
included) -- with early stopping on the weighted validation log-loss.  XGBoost is optional
(``pip install 'bsmscan[baselines]'``); asking for the baseline without it is a clear error.

The artifact lies next to the network's, in ``<model>/baseline/``: ``xgboost.json`` (XGBoost's
own JSON model format, never pickle) holding only the trees up to the best iteration, and
``baseline.json`` (inputs, scaler, metrics, per-tree history, and the side-by-side comparison
with the network on the test split: AUCs and score histograms, :func:`compare_classifiers`).
:func:`load_baseline` reads it back as a :class:`BaselineModel` that scores raw features
like :class:`nn.artifact.TrainedModel`.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from analysis.core.atomic import write_json_atomic
from analysis.core.errors import UserError
from analysis.core.names import point_name
from nn.artifact import _json_ready, check_features
from nn.metrics import weighted_roc_auc
from nn.model import signal_probability_numpy
from nn.prepare import PreparedData, SplitData
from nn.scaler import Standardizer
from nn.split import TEST
from nn.table_transform import InputTransform
from nn.trainer import compiled_apply, predict_logits

__all__ = [
    "BASELINES",
    "XGBOOST_PARAMS",
    "BaselineError",
    "BaselineModel",
    "BaselineResult",
    "compare_classifiers",
    "load_baseline",
    "network_scorer",
    "train_baseline",
    "train_baselines",
]

log = logging.getLogger(__name__)

BASELINES = ("none", "xgboost")
BASELINE_DIR = "baseline"
MODEL_FILE = "xgboost.json"
METADATA_FILE = "baseline.json"
#: The trees: histogram method, shrinkage 0.05, depth 5, row and column subsampling 0.8, at most
#: 2000 trees, stopped when the validation log-loss has not improved for 50 trees.
XGBOOST_PARAMS = {"n_estimators": 2000, "learning_rate": 0.05, "max_depth": 5, "subsample": 0.8,
                  "colsample_bytree": 0.8, "min_child_weight": 1.0, "tree_method": "hist", "eval_metric": "logloss"}
EARLY_STOPPING_ROUNDS = 50
SCORE_BINS = 100


class BaselineError(UserError, ValueError):
    """The baseline cannot be trained or loaded (xgboost missing, bad file); the message says which."""


def _xgboost():
    try:
        import xgboost  # optional dependency (the "baselines" extra): only needed for the tree baseline
    except ImportError:
        raise BaselineError("the tree baseline (training.baseline: xgboost) needs XGBoost: "
                            "pip install 'bsmscan[baselines]', or set training.baseline: none") from None
    return xgboost


def _predict(booster, x: np.ndarray) -> np.ndarray:
    if x.shape[0] == 0:
        return np.zeros(0, np.float32)
    return np.asarray(booster.inplace_predict(np.ascontiguousarray(x, dtype=np.float32)), dtype=np.float32)


class BaselineResult:
    """A trained tree baseline: ``booster`` (an ``xgboost.Booster`` of the kept trees) and the
    ``metadata`` written to ``baseline.json``; :meth:`save` writes both."""

    def __init__(self, booster, metadata: dict[str, Any]):
        self.booster = booster
        self.metadata = metadata

    @property
    def metrics(self) -> dict[str, Any]:
        """Validation and test metrics (``{"val": {"auc": ...}, "test": {...}}``)."""
        return self.metadata["metrics"]

    def predict_standardised(self, x: np.ndarray) -> np.ndarray:
        """P(signal) of already standardised inputs (the network's input matrix)."""
        return _predict(self.booster, x)

    def save(self, model_dir: str | Path) -> Path:
        """Write ``<model_dir>/baseline/xgboost.json`` and ``baseline.json``; returns that folder."""
        directory = Path(model_dir) / BASELINE_DIR
        directory.mkdir(parents=True, exist_ok=True)
        tmp = directory / f".tmp-{os.getpid()}-{MODEL_FILE}"  # ends in .json: xgboost picks the format by the suffix
        self.booster.save_model(str(tmp))
        tmp.replace(directory / MODEL_FILE)
        write_json_atomic(directory / METADATA_FILE, _json_ready(self.metadata), indent=1, allow_nan=False)
        return directory


def train_baseline(data: PreparedData, seed: int, extra: dict[str, Any] | None = None) -> BaselineResult:
    """Train the XGBoost baseline on ``data`` (the network's prepared splits; see the module doc).

    ``extra`` is added to the metadata (e.g. the table's input transform, so that
    :class:`BaselineModel` can score raw features).  Raises :class:`BaselineError` when
    XGBoost is not installed.
    """
    xgboost = _xgboost()
    train, val = data.splits["train"], data.splits["val"]
    classifier = xgboost.XGBClassifier(**XGBOOST_PARAMS, early_stopping_rounds=EARLY_STOPPING_ROUNDS, random_state=seed)
    started = time.perf_counter()
    classifier.fit(train.x, train.target, sample_weight=train.weight, eval_set=[(train.x, train.target), (val.x, val.target)],
                   sample_weight_eval_set=[train.weight, val.weight], verbose=False)
    seconds = time.perf_counter() - started
    best = int(classifier.best_iteration)
    booster = classifier.get_booster()[: best + 1]
    curves = classifier.evals_result()
    history = [{"tree": i + 1, "train_logloss": float(a), "val_logloss": float(b)}
               for i, (a, b) in enumerate(zip(curves["validation_0"]["logloss"], curves["validation_1"]["logloss"]))]
    metrics = {}
    for split in ("val", "test"):
        part = data.splits.get(split)
        if part is not None:
            metrics[split] = {"auc": weighted_roc_auc(_predict(booster, part.x), part.is_signal, part.weight)}
    metrics.update(trees=best + 1, trees_grown=len(history), train_seconds=seconds)
    metadata = {
        "format": "bsmscan-baseline", "format_version": 1, "kind": "xgboost", "model_file": MODEL_FILE,
        "params": dict(XGBOOST_PARAMS, early_stopping_rounds=EARLY_STOPPING_ROUNDS, random_state=seed),
        "feature_names": list(data.feature_names), "input_names": list(data.input_names),
        "parametrised": data.parametrised, "signal_points": [list(p) for p in data.signal_points],
        "scaler": data.scaler.to_dict(), "inputs": "standardised with the network's scaler",
        "metrics": metrics, "history": history, "versions": {"xgboost": xgboost.__version__},
        **(extra or {}),
    }
    log.info("tree baseline (xgboost): %d trees (best of %d grown) in %.1f s; validation AUC %.4f%s", best + 1,
             len(history), seconds, metrics["val"]["auc"],
             f", test AUC {metrics['test']['auc']:.4f}" if "test" in metrics else "")
    return BaselineResult(booster, metadata)


def _weighted_histogram(scores: np.ndarray, weights: np.ndarray, edges: np.ndarray) -> tuple[list, list]:
    counts = np.histogram(np.clip(scores, 0.0, 1.0), edges, weights=weights)[0]
    sumw2 = np.histogram(np.clip(scores, 0.0, 1.0), edges, weights=np.square(weights))[0]
    return counts.tolist(), sumw2.tolist()


def _with_point(data: PreparedData, x: np.ndarray, index: int) -> np.ndarray:
    if not data.parametrised:
        return x
    x = x.copy()
    x[:, len(data.feature_names):] = data.standardised_point(index)
    return x


def compare_classifiers(data: PreparedData, classifiers: dict[str, Callable[[np.ndarray], np.ndarray]],
                        split: str = "test", test_fraction: float | None = None) -> dict[str, Any]:
    """The classifiers side by side on one split of ``data`` (default: the test split).

    ``classifiers`` maps a name (``network``, ``xgboost``) to a function of standardised inputs
    returning P(signal).  Returns, per classifier, the weighted AUC and the signal and
    background score histograms (:data:`SCORE_BINS` bins on [0, 1]) with the balanced training
    weights (for the ROC curve); and per signal grid point (physics chain) the AUC of that
    point's signal against all background evaluated at that point, with physics-weighted
    histograms (sums and sums of squares) divided by ``test_fraction`` (for the significance
    scan at the full luminosity, as the scan stage scales the test split).
    """
    part: SplitData | None = data.splits.get(split)
    if part is None:
        return {}
    edges = np.linspace(0.0, 1.0, SCORE_BINS + 1)
    scale = 1.0 / test_fraction if test_fraction else 1.0
    out: dict[str, Any] = {"split": split, "edges": edges.tolist(), "classifiers": {}, "points": {}}
    background = np.flatnonzero(~part.is_signal)
    for name, score in classifiers.items():
        scores = np.asarray(score(part.x), dtype=np.float64)
        signal_hist = _weighted_histogram(scores[part.is_signal], part.weight[part.is_signal], edges)
        background_hist = _weighted_histogram(scores[~part.is_signal], part.weight[~part.is_signal], edges)
        out["classifiers"][name] = {"auc": weighted_roc_auc(scores, part.is_signal, part.weight),
                                    "signal": signal_hist[0], "background": background_hist[0]}
        for index, (m, dm) in enumerate(data.signal_points):
            signal = np.flatnonzero(part.is_signal & (part.point == index))
            if signal.size == 0:
                continue
            s_score = scores[signal]
            b_score = np.asarray(score(_with_point(data, part.x[background], index)), dtype=np.float64)
            labels = np.r_[np.ones(signal.size), np.zeros(background.size)]
            auc = weighted_roc_auc(np.r_[s_score, b_score], labels, np.r_[part.weight[signal], part.weight[background]])
            s_counts, s_sumw2 = _weighted_histogram(s_score, part.physics_weight[signal] * scale, edges)
            b_counts, b_sumw2 = _weighted_histogram(b_score, part.physics_weight[background] * scale, edges)
            entry = out["points"].setdefault(point_name(m, dm), {"m_slepton": m, "dm": dm})
            entry[name] = {"auc": auc, "signal": s_counts, "signal_sumw2": s_sumw2,
                           "background": b_counts, "background_sumw2": b_sumw2}
    return out


def network_scorer(result) -> Callable[[np.ndarray], np.ndarray]:
    """P(signal) of standardised inputs with a :class:`~nn.train.TrainingResult`'s network."""
    apply = compiled_apply(result.network)
    return lambda x: signal_probability_numpy(predict_logits(apply, result.params, x))


def train_baselines(results: Sequence, out: str | Path, config, extra: dict[str, Any] | None = None) -> list[BaselineResult]:
    """The tree baseline beside each network of a training, with the side-by-side comparison
    (:func:`compare_classifiers`) in its ``baseline.json``: ``out/baseline/`` for one network,
    ``out/points/<point>/baseline/`` for one network per grid point (``training.per_point``)."""
    out = Path(out)
    made = []
    per_point = bool(config.training.per_point)
    for result in results:
        directory = out / "points" / point_name(*result.data.signal_points[0]) if per_point else out
        trees = train_baseline(result.data, int(result.metadata["seed"]), extra)
        trees.metadata["comparison"] = compare_classifiers(
            result.data, {"network": network_scorer(result), "xgboost": trees.predict_standardised},
            test_fraction=config.training.split_fractions[TEST])
        trees.save(directory)
        log.info("tree baseline written to %s", directory / BASELINE_DIR)
        made.append(trees)
    return made


class BaselineModel:
    """A saved tree baseline, scoring raw features like :class:`nn.artifact.TrainedModel`
    (input transform, if any, then the network's standardisation, then the trees)."""

    def __init__(self, booster, metadata: dict[str, Any], directory: Path | None = None):
        self.booster = booster
        self.metadata = metadata
        self.directory = directory
        self.feature_names = tuple(metadata["feature_names"])
        self.parametrised = bool(metadata["parametrised"])
        self.signal_points = [(float(m), float(d)) for m, d in metadata["signal_points"]]
        self.scaler = Standardizer.from_dict(metadata["scaler"])
        transform = metadata.get("input_transform")
        self.transform = InputTransform.from_dict(transform) if transform else None

    def score(self, features: np.ndarray, m_slepton=None, dm=None, feature_names: Sequence[str] | None = None,
              allow_extra: bool = False) -> np.ndarray:
        """P(signal) (float32, one per row) of raw ``features``; a parametrised baseline needs
        ``m_slepton`` and ``dm``.  ``feature_names`` are checked and reordered as for the network."""
        x = np.asarray(features)
        if feature_names is not None:
            x = x[:, check_features(self.feature_names, feature_names, allow_extra, what=f"the baseline {self.directory}")]
        if x.ndim != 2 or x.shape[1] != len(self.feature_names):
            raise ValueError(f"features must have {len(self.feature_names)} columns ({list(self.feature_names)}), got shape {x.shape}")
        x = self.transform.apply(x) if self.transform is not None else np.asarray(x, np.float32)
        if self.parametrised:
            if m_slepton is None or dm is None:
                raise ValueError("this baseline is parametrised: give m_slepton and dm")
            x = np.concatenate([x, np.broadcast_to(np.float32(m_slepton), (len(x), 1)),
                                np.broadcast_to(np.float32(dm), (len(x), 1))], axis=1)
        x = self.scaler.transform_(np.array(x, dtype=np.float32))
        return _predict(self.booster, x)


def load_baseline(model_dir: str | Path) -> BaselineModel | None:
    """The baseline saved next to the model in ``model_dir``, or None if there is none."""
    directory = Path(model_dir) / BASELINE_DIR
    if not (directory / METADATA_FILE).exists():
        return None
    xgboost = _xgboost()
    try:
        metadata = json.loads((directory / METADATA_FILE).read_text())
        booster = xgboost.Booster()
        booster.load_model(str(directory / metadata.get("model_file", MODEL_FILE)))
        return BaselineModel(booster, metadata, directory)
    except (OSError, ValueError, KeyError, xgboost.core.XGBoostError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise BaselineError(f"cannot load the tree baseline in {directory}: {first_line}") from None
