"""The model artifact: ``weights.msgpack`` (flax msgpack) + ``model.json``; loading and scoring.

An artifact directory holds

* ``weights.msgpack`` -- the network parameters (``flax.serialization``; no pickle), and
* ``model.json`` -- format and version, the network shape, the input names (features, then
  ``m_slepton``/``dm`` for a parametrised network), the input scaler, the classes, the signal
  grid points, the split settings, the full analysis config, the preset, the training
  metrics and per-epoch history, library versions and the SHA-256 of the weights file.

A per-grid-point training writes one such directory per point under ``points/`` plus an
``index.json``; :func:`load_model` returns a :class:`TrainedModel` or a :class:`ModelSet` with
the same scoring interface.  Scoring checks the caller's feature names against the
artifact's and refuses a mismatch (:class:`FeatureMismatchError` names the missing and extra
features); a different column order is fine and is reordered.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from pathlib import Path
from typing import Any, Sequence

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np

from analysis.core.errors import UserError
from analysis.core.names import point_name
from nn.folds import FoldSet
from nn.model import build_model_from_record, signal_probability
from nn.scaler import Standardizer
from nn.split import assign_split
from nn.table_transform import InputTransform

__all__ = [
    "ARTIFACT_FORMAT",
    "ArtifactError",
    "FeatureMismatchError",
    "ModelSet",
    "TrainedModel",
    "check_features",
    "load_model",
    "save_artifact",
    "save_model_set",
]

ARTIFACT_FORMAT = "bsmscan-classifier"
FORMAT_VERSION = 1
WEIGHTS_FILE = "weights.msgpack"
METADATA_FILE = "model.json"
INDEX_FILE = "index.json"
#: Rows per jitted forward call when scoring: on a CPU blocks whose activations stay in cache
#: (8192 rows of 3 x 128: 415k rows/s on this 2-core machine, against 145k with 65536-row blocks);
#: on an accelerator large blocks (few launches). Smaller inputs are padded to a power of two.
_SCORE_CHUNK_CPU, _SCORE_CHUNK_ACCELERATOR = 8192, 65_536


def _score_chunk() -> int:
    return _SCORE_CHUNK_CPU if jax.default_backend() == "cpu" else _SCORE_CHUNK_ACCELERATOR


class ArtifactError(UserError, ValueError):
    """A model artifact is missing, corrupt or of an unknown format; the message names the file."""


class FeatureMismatchError(UserError, ValueError):
    """The data's features differ from the model's; the message names missing and extra ones."""


def check_features(expected: Sequence[str], given: Sequence[str], allow_extra: bool = False, what: str = "the model") -> np.ndarray:
    """Column indices into ``given`` that yield ``expected`` in order.

    Raises :class:`FeatureMismatchError` naming the features ``expected`` by ``what`` that are
    missing from ``given``, and (unless ``allow_extra``) those ``given`` has in addition.
    """
    given = list(given)
    missing = [name for name in expected if name not in given]
    extra = [name for name in given if name not in expected]
    if missing or (extra and not allow_extra):
        parts = []
        if missing:
            parts.append(f"missing feature(s) {missing}")
        if extra and not allow_extra:
            parts.append(f"extra feature(s) {extra}")
        raise FeatureMismatchError(
            f"the data's features do not match {what}: {'; '.join(parts)} "
            f"(the model was trained on {list(expected)})"
        )
    return np.array([given.index(name) for name in expected], dtype=np.int64)


def _json_ready(value: Any) -> Any:
    """Convert numpy scalars/arrays to Python and non-finite floats to None (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return _json_ready(value.tolist())
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    return value


def save_artifact(directory: str | Path, params: Any, metadata: dict[str, Any]) -> Path:
    """Write ``params`` and ``metadata`` (see the module doc for the keys) to ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights = flax.serialization.to_bytes(jax.device_get(params))
    (directory / WEIGHTS_FILE).write_bytes(weights)
    document = dict(metadata)
    document.update(
        format=ARTIFACT_FORMAT,
        format_version=FORMAT_VERSION,
        weights_file=WEIGHTS_FILE,
        weights_sha256=hashlib.sha256(weights).hexdigest(),
    )
    (directory / METADATA_FILE).write_text(json.dumps(_json_ready(document), indent=1, allow_nan=False))
    return directory


def save_model_set(directory: str | Path, members: dict[str, dict[str, Any]]) -> Path:
    """Write ``index.json`` of a per-point training: ``{point name: {m_slepton, dm, path}}``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    index = {"format": ARTIFACT_FORMAT + "-set", "format_version": FORMAT_VERSION, "models": members}
    (directory / INDEX_FILE).write_text(json.dumps(_json_ready(index), indent=1, allow_nan=False))
    return directory


def _flat_shapes(tree: Any, prefix: str = "") -> dict[str, tuple]:
    if isinstance(tree, dict):
        out: dict[str, tuple] = {}
        for key, value in tree.items():
            out.update(_flat_shapes(value, f"{prefix}/{key}"))
        return out
    return {prefix: tuple(np.shape(tree))}


class _EventScoring:
    """``score_events`` of a model that scores feature rows (``score_points``) and knows each
    event's split (``assign_split``): one network, or one per grid point."""

    def score_events(self, features, points, feature_names, dataset, event, dataset_names=None) -> tuple[np.ndarray, np.ndarray]:
        """``(scores (n_points, n), split codes (n,))`` of events: ``score_points`` and
        ``assign_split`` (what the scoring stage calls; a :class:`~nn.folds.FoldSet` has the same)."""
        return (self.score_points(features, points, feature_names=feature_names),
                self.assign_split(dataset, event, dataset_names=dataset_names))


class TrainedModel(_EventScoring):
    """A trained network ready for scoring: raw features in, signal probability out.

    Build it with :func:`load_model` (or ``TrainedModel(result.params, result.metadata)`` from a
    :class:`~nn.train.TrainingResult`).  The attributes
    mirror ``model.json``: ``feature_names``, ``input_names``, ``parametrised``, ``classes``,
    ``signal_points``, ``split_fractions``, ``split_seed``, ``metrics``, ``history`` and the
    full ``metadata`` dict.
    """

    def __init__(self, params: Any, metadata: dict[str, Any], directory: Path | None = None):
        self.metadata = metadata
        self.directory = directory
        network = metadata["network"]
        self.network = build_model_from_record(network)
        self.params = params
        self.feature_names: tuple[str, ...] = tuple(metadata["feature_names"])
        self.input_names: tuple[str, ...] = tuple(metadata["input_names"])
        self.parametrised: bool = bool(metadata["parametrised"])
        self.classes: tuple[str, ...] = tuple(metadata["classes"])
        self.signal_points: list[tuple[float, float]] = [(float(m), float(d)) for m, d in metadata["signal_points"]]
        self.split_fractions = tuple(metadata["split"]["fractions"])
        self.split_seed = int(metadata["split"]["seed"])
        self.split_fold = metadata["split"].get("fold")  # None, or this network's fold of a cross-training
        self.metrics: dict[str, Any] = metadata.get("metrics", {})
        self.history: list[dict[str, Any]] = metadata.get("history", [])
        self.scaler = Standardizer.from_dict(metadata["scaler"])
        if len(self.scaler.mean) != len(self.input_names):
            raise ArtifactError(f"scaler has {len(self.scaler.mean)} columns but the model has {len(self.input_names)} inputs")
        self._mean = jnp.asarray(self.scaler.mean, jnp.float32)
        self._inverse_std = jnp.asarray(1.0 / self.scaler.std, jnp.float32)
        self._forward = _scorer(self.network)
        self._n_features = len(self.feature_names)
        transform = metadata.get("input_transform")  # a table model's transform (nn/table_transform.py)
        self.input_transform = InputTransform.from_dict(transform) if transform else None

    def check_features(self, feature_names: Sequence[str], allow_extra: bool = False) -> np.ndarray:
        """Column indices of the model's features in ``feature_names``; refuses a mismatch."""
        return check_features(self.feature_names, feature_names, allow_extra, what=f"the model {self.directory or ''}".strip())

    def _matrix(self, features: np.ndarray, feature_names: Sequence[str] | None, allow_extra: bool) -> np.ndarray:
        features = np.asarray(features)
        if features.ndim != 2:
            raise ValueError(f"features must be a 2-D (events, features) array, got shape {features.shape}")
        if feature_names is not None:
            columns = self.check_features(feature_names, allow_extra)
            if not np.array_equal(columns, np.arange(features.shape[1])):
                features = features[:, columns]
        elif features.shape[1] != self._n_features:
            raise FeatureMismatchError(
                f"features have {features.shape[1]} columns but the model expects {self._n_features}: {list(self.feature_names)}"
            )
        return np.asarray(features, dtype=np.float32)

    def score(
        self,
        features: np.ndarray,
        m_slepton: float | np.ndarray | None = None,
        dm: float | np.ndarray | None = None,
        feature_names: Sequence[str] | None = None,
        allow_extra: bool = False,
    ) -> np.ndarray:
        """Signal probability (float32, one per row) of raw (unstandardised) ``features``.

        Give ``feature_names`` to have the columns checked and reordered (recommended).  A
        parametrised model needs ``m_slepton`` and ``dm`` (scalars or one value per row).
        """
        x = self._matrix(features, feature_names, allow_extra)
        if self.input_transform is not None:
            x = self.input_transform.apply(x)
        n = x.shape[0]
        if self.parametrised:
            if m_slepton is None or dm is None:
                raise ValueError("this model is parametrised: give m_slepton and dm (the grid point to evaluate at)")
            parameters = np.empty((n, 2), dtype=np.float32)
            parameters[:, 0] = m_slepton
            parameters[:, 1] = dm
        else:
            parameters = None
        chunk = _score_chunk()
        out = np.empty(n, dtype=np.float32)
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            rows = 1 << max(0, math.ceil(math.log2(stop - start)))  # the last block: to a power of two (few shapes)
            block = _padded(x[start:stop], rows)
            extra = None if parameters is None else _padded(parameters[start:stop], rows)
            out[start:stop] = np.asarray(self._forward(self.params, self._mean, self._inverse_std, block, extra))[: stop - start]
        return out

    def score_points(
        self,
        features: np.ndarray,
        points: Sequence[tuple[float, float]] | None = None,
        feature_names: Sequence[str] | None = None,
        allow_extra: bool = False,
    ) -> np.ndarray:
        """Scores ``(n_points, n)`` at each grid point (default: the points it was trained on).

        A parametrised model is evaluated at each point; a non-parametrised one gives the same
        score for every point.
        """
        points = self.signal_points if points is None else [(float(m), float(d)) for m, d in points]
        x = self._matrix(features, feature_names, allow_extra)
        if not self.parametrised:
            return np.tile(self.score(x), (len(points), 1))
        return np.stack([self.score(x, m, d) for m, d in points])

    def assign_split(self, dataset, event, dataset_names: Sequence[str] | None = None) -> np.ndarray:
        """The train/val/test code of events with the split settings this model was trained with."""
        return assign_split(dataset, event, self.split_fractions, seed=self.split_seed, dataset_names=dataset_names,
                            fold=self.split_fold)



@functools.lru_cache(maxsize=32)
def _scorer(network) -> Any:
    """Jitted raw-features -> P(signal) for one network shape (shared by all models of that shape)."""

    def forward(params, mean, inverse_std, features, parameters):
        x = features if parameters is None else jnp.concatenate([features, parameters], axis=1)
        x = (x - mean) * inverse_std
        return signal_probability(network.apply({"params": params}, x, train=False))

    return jax.jit(forward)


def _padded(block: np.ndarray, rows: int) -> np.ndarray:
    if block.shape[0] == rows:
        return block
    return np.concatenate([block, np.zeros((rows - block.shape[0],) + block.shape[1:], block.dtype)])


class ModelSet(_EventScoring):
    """One non-parametrised network per grid point (``training.per_point``), scored together.

    ``models`` maps the point name (``slepton_200_40``) to its :class:`TrainedModel`.
    """

    def __init__(self, models: dict[str, TrainedModel], directory: Path | None = None):
        if not models:
            raise ArtifactError(f"model set {directory} has no members")
        self.models = models
        self.directory = directory
        first = next(iter(models.values()))
        self.feature_names = first.feature_names
        self.parametrised = False
        self.split_fractions, self.split_seed = first.split_fractions, first.split_seed
        self.signal_points = [model.signal_points[0] for model in models.values()]
        for name, model in models.items():
            if model.feature_names != self.feature_names:
                raise ArtifactError(f"model set {directory}: member {name} has different features")

    def check_features(self, feature_names: Sequence[str], allow_extra: bool = False) -> np.ndarray:
        """As :meth:`TrainedModel.check_features`."""
        return check_features(self.feature_names, feature_names, allow_extra, what=f"the model set {self.directory or ''}".strip())

    def score_points(self, features, points=None, feature_names=None, allow_extra: bool = False) -> np.ndarray:
        """Scores ``(n_points, n)``: each point's own network (points must be members)."""
        points = self.signal_points if points is None else [(float(m), float(d)) for m, d in points]
        names = [point_name(m, d) for m, d in points]
        unknown = [name for name in names if name not in self.models]
        if unknown:
            raise KeyError(f"no network for grid point(s) {unknown}; this set has {sorted(self.models)}")
        return np.stack([self.models[name].score(features, feature_names=feature_names, allow_extra=allow_extra) for name in names])

    def assign_split(self, dataset, event, dataset_names: Sequence[str] | None = None) -> np.ndarray:
        """As :meth:`TrainedModel.assign_split` (all members share the split settings)."""
        return assign_split(dataset, event, self.split_fractions, seed=self.split_seed, dataset_names=dataset_names)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except OSError as error:
        raise ArtifactError(f"cannot read model file {path}: {error.strerror}") from None
    except json.JSONDecodeError as error:
        raise ArtifactError(f"model file {path} is not valid JSON: {error}") from None


def _inside(directory: Path, relative: Any, what: str, source: Path, *, plain_name: bool = False) -> Path:
    """``directory / relative``, refused unless it stays inside ``directory`` (symlinks resolved).

    A model folder is user input: ``weights_file: ../../etc/passwd`` or an ``index.json``
    member at ``/etc`` must not make bsmscan read files outside it.
    """
    text = relative if isinstance(relative, str) else None
    if not text or "\x00" in text or Path(text).is_absolute() or (plain_name and Path(text).name != text):
        raise ArtifactError(f"{source}: {what} {str(relative)[:200]!r} must be a "
                            f"{'plain file name' if plain_name else 'relative path'} inside the model folder")
    path = directory / text
    root = directory.resolve()
    if path.resolve() != root and root not in path.resolve().parents:
        raise ArtifactError(f"{source}: {what} {text[:200]!r} points outside the model folder {directory}")
    return path


def _load_single(directory: Path) -> TrainedModel:
    metadata = _read_json(directory / METADATA_FILE)
    if metadata.get("format") != ARTIFACT_FORMAT or metadata.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(
            f"{directory / METADATA_FILE} is not a {ARTIFACT_FORMAT} v{FORMAT_VERSION} model "
            f"(format {metadata.get('format')!r}, version {metadata.get('format_version')!r})"
        )
    weights_path = _inside(directory, metadata.get("weights_file", WEIGHTS_FILE), "weights_file",
                           directory / METADATA_FILE, plain_name=True)
    try:
        weights = weights_path.read_bytes()
    except OSError as error:
        raise ArtifactError(f"cannot read model weights {weights_path}: {error.strerror}") from None
    if hashlib.sha256(weights).hexdigest() != metadata.get("weights_sha256"):
        raise ArtifactError(f"model weights {weights_path} do not match the SHA-256 recorded in {METADATA_FILE}")
    try:
        state = flax.serialization.msgpack_restore(weights)
    except Exception as error:  # msgpack raises several unrelated types for corrupt input
        raise ArtifactError(f"model weights {weights_path} are not valid flax msgpack: {error}") from None
    try:
        network = metadata["network"]
        model = build_model_from_record(network)
        template = jax.eval_shape(
            lambda: model.init(jax.random.key(0), jnp.zeros((1, len(metadata["input_names"])), jnp.float32))["params"]
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ArtifactError(f"{directory / METADATA_FILE}: bad network description: {error}") from None
    expected, found = _flat_shapes(jax.tree.map(lambda s: np.zeros(s.shape), template)), _flat_shapes(state)
    if expected != found:
        raise ArtifactError(f"model weights {weights_path} do not fit the network in {METADATA_FILE}: expected {expected}, found {found}")
    params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), state)
    try:
        return TrainedModel(params, metadata, directory)
    except (KeyError, ValueError) as error:
        raise ArtifactError(f"{directory / METADATA_FILE}: {error}") from None


def load_model(directory: str | Path) -> TrainedModel | ModelSet | FoldSet:
    """Load an artifact directory: a :class:`TrainedModel`, a :class:`ModelSet` if it has
    ``index.json``, or a :class:`~nn.folds.FoldSet` if its ``model.json`` lists cross-trained folds."""
    directory = Path(directory)
    if (directory / INDEX_FILE).exists():
        index = _read_json(directory / INDEX_FILE)
        members = index.get("models", {}) if isinstance(index, dict) else None
        if not isinstance(members, dict) or not all(isinstance(entry, dict) for entry in members.values()):
            raise ArtifactError(f"{directory / INDEX_FILE}: 'models' must map point names to {{path: ...}}")
        models = {name: _load_single(_inside(directory, entry.get("path"), f"member {name!r} path", directory / INDEX_FILE))
                  for name, entry in members.items()}
        return ModelSet(models, directory)
    if not (directory / METADATA_FILE).exists():
        raise ArtifactError(f"{directory} is not a model artifact: no {METADATA_FILE} or {INDEX_FILE}")
    last = _load_single(directory)
    cross = last.metadata.get("cross_training")
    if cross is None:
        return last
    members = cross.get("members") if isinstance(cross, dict) else None
    if not isinstance(members, list) or len(members) + 1 != cross.get("folds"):
        raise ArtifactError(f"{directory / METADATA_FILE}: cross_training needs 'folds' and the paths of the other folds' networks")
    models = [_load_single(_inside(directory, path, f"fold {fold} path", directory / METADATA_FILE))
              for fold, path in enumerate(members)]
    try:
        return FoldSet([*models, last], directory)
    except ValueError as error:
        raise ArtifactError(f"{directory}: {error}") from None
