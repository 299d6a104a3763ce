"""Read the feature store (``<store>/parts/*.parquet`` + ``<store>/schema.json``) into numpy.

The processing stage writes one Parquet part per data chunk; every part has one float column
per feature name listed in ``schema.json``, plus ``weight`` (float64), ``label`` (int8),
``dataset`` and ``process`` (strings), ``m_slepton`` and ``dm`` (float32, NaN for background)
and ``event`` (uint64).  :func:`read_feature_store` reads it with pyarrow straight into
preallocated numpy arrays: the features become one float32 ``(n, d)`` C-contiguous matrix,
filled part by part and record batch by record batch, so the peak memory is the matrix plus one
record batch (no pandas, no concatenation copies).

Any problem raises :class:`FeatureStoreError` naming the file and, where it applies, the
column and the number of offending rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from analysis.core.errors import UserError

__all__ = [
    "FeatureStoreError",
    "FeatureTable",
    "META_COLUMNS",
    "read_feature_store",
    "read_schema",
    "simulation_only",
]

#: Columns every part has besides the features.
META_COLUMNS = ("weight", "label", "dataset", "process", "m_slepton", "dm", "event")

_BATCH_ROWS = 65_536


class FeatureStoreError(UserError, ValueError):
    """The feature store is missing, unreadable or inconsistent; the message names the file."""


@dataclass(eq=False)
class FeatureTable:
    """The selected events of a feature store, as numpy arrays (one row per event).

    Attributes:
        features: float32 ``(n, d)`` C-contiguous matrix, columns in ``feature_names`` order.
        feature_names: the d feature names.
        weight: float64 physics weight (may be negative).
        label: int8, 1 signal / 0 background.
        dataset, process: int32 codes into ``dataset_names`` / ``process_names``.
        m_slepton, dm: float32 signal grid point of signal events, NaN for background.
        event: uint64 event number (unique within a dataset).
        datasets: ``schema.json``'s per-dataset information.
        feature_set: the feature-set name recorded in ``schema.json``.
        source: the store directory.
    """

    features: np.ndarray
    feature_names: tuple[str, ...]
    weight: np.ndarray
    label: np.ndarray
    dataset: np.ndarray
    dataset_names: tuple[str, ...]
    process: np.ndarray
    process_names: tuple[str, ...]
    m_slepton: np.ndarray
    dm: np.ndarray
    event: np.ndarray
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)
    feature_set: str = ""
    source: Path | None = None

    def __len__(self) -> int:
        return int(self.features.shape[0])

    def column(self, name: str) -> np.ndarray:
        """The feature column ``name`` (a strided view into :attr:`features`)."""
        try:
            return self.features[:, self.feature_names.index(name)]
        except ValueError:
            raise KeyError(f"no feature {name!r}; features: {list(self.feature_names)}") from None

    def signal_points(self) -> list[tuple[float, float]]:
        """The distinct (m_slepton, dm) grid points of the signal events, sorted."""
        signal = self.label == 1
        if not signal.any():
            return []
        pairs = np.unique(np.stack([self.m_slepton[signal], self.dm[signal]], axis=1), axis=0)
        return [(float(m), float(dm)) for m, dm in pairs]


def simulation_only(table: FeatureTable) -> FeatureTable:
    """``table`` without the events of collision-data datasets (``is_data`` in ``schema.json``):
    a classifier is trained and evaluated on simulation only. The same table if it has none."""
    data = [code for code, name in enumerate(table.dataset_names) if table.datasets.get(name, {}).get("is_data")]
    if not data:
        return table
    keep = ~np.isin(table.dataset, data)
    return replace(table, features=np.ascontiguousarray(table.features[keep]),
                   **{name: getattr(table, name)[keep] for name in ("weight", "label", "dataset", "process",
                                                                    "m_slepton", "dm", "event")})


def read_schema(store: str | Path) -> dict[str, Any]:
    """Parse and check ``<store>/schema.json`` (feature names, feature set, datasets)."""
    path = Path(store) / "schema.json"
    try:
        schema = json.loads(path.read_text())
    except OSError as error:
        raise FeatureStoreError(f"cannot read feature-store schema {path}: {error.strerror}") from None
    except json.JSONDecodeError as error:
        raise FeatureStoreError(f"feature-store schema {path} is not valid JSON: {error}") from None
    if not isinstance(schema, dict):
        raise FeatureStoreError(f"feature-store schema {path}: the top level must be an object")
    names = schema.get("feature_names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise FeatureStoreError(f"feature-store schema {path}: 'feature_names' must be a non-empty list of strings")
    if len(set(names)) != len(names):
        raise FeatureStoreError(f"feature-store schema {path}: 'feature_names' lists a feature twice")
    clash = sorted(set(names) & set(META_COLUMNS))
    if clash:
        raise FeatureStoreError(f"feature-store schema {path}: feature names {clash} clash with metadata columns")
    datasets = schema.get("datasets", {})
    if not isinstance(datasets, dict):
        raise FeatureStoreError(f"feature-store schema {path}: 'datasets' must be an object")
    return schema


def _parts(store: Path) -> list[Path]:
    parts_dir = store / "parts"
    if not parts_dir.is_dir():
        raise FeatureStoreError(f"feature store {store} has no parts/ directory")
    parts = sorted(parts_dir.glob("*.parquet"))
    if not parts:
        raise FeatureStoreError(f"feature store {store}: no *.parquet files in {parts_dir}")
    return parts


def _check_part(path: Path, columns: Sequence[str]) -> int:
    """Check a part's columns and types from its footer alone; returns its number of rows."""
    try:
        metadata = pq.read_metadata(path)
        arrow_schema = metadata.schema.to_arrow_schema()
    except (pa.ArrowException, OSError) as error:
        raise FeatureStoreError(f"cannot read feature-store part {path}: {error}") from None
    missing = [name for name in columns if arrow_schema.get_field_index(name) < 0]
    if missing:
        raise FeatureStoreError(f"feature-store part {path} is missing column(s) {missing}")
    for name in columns:
        kind = arrow_schema.field(name).type
        string_column = name in ("dataset", "process")
        if string_column and not (
            pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_dictionary(kind)
        ):
            raise FeatureStoreError(f"feature-store part {path}: column {name!r} must be a string column, got {kind}")
        if not string_column and not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
            raise FeatureStoreError(f"feature-store part {path}: column {name!r} must be numeric, got {kind}")
    return int(metadata.num_rows)


_NUMPY_TYPES = {
    pa.int8(): np.int8, pa.int16(): np.int16, pa.int32(): np.int32, pa.int64(): np.int64,
    pa.uint8(): np.uint8, pa.uint16(): np.uint16, pa.uint32(): np.uint32, pa.uint64(): np.uint64,
    pa.float16(): np.float16, pa.float32(): np.float32, pa.float64(): np.float64,
}


def _as_numpy(array: pa.Array) -> np.ndarray:
    """Zero-copy numpy view of a primitive Arrow array (nulls, if any, read as NaN/garbage:
    callers check ``null_count`` first).  Avoids ``Array.to_numpy``, which imports pandas."""
    dtype = _NUMPY_TYPES.get(array.type)
    if dtype is None:
        return array.to_numpy(zero_copy_only=False)
    values = np.frombuffer(array.buffers()[1], dtype=dtype, count=array.offset + len(array))[array.offset :]
    if array.null_count:
        values = values.astype(np.float64)
        values[~_valid_mask(array)] = np.nan
    return values


def _valid_mask(array: pa.Array) -> np.ndarray:
    bitmap = np.frombuffer(array.buffers()[0], dtype=np.uint8)
    bits = np.unpackbits(bitmap, bitorder="little")
    return bits[array.offset : array.offset + len(array)].astype(bool)


def _numeric(batch: pa.RecordBatch, name: str, path: Path) -> np.ndarray:
    array = batch.column(name)
    if array.null_count:
        raise FeatureStoreError(f"feature-store part {path}: column {name!r} has {array.null_count} null value(s)")
    return _as_numpy(array)


def _finite(values: np.ndarray, name: str, path: Path, allow_nan: bool = False) -> None:
    if values.dtype.kind != "f":
        return
    bad = np.isinf(values) if allow_nan else ~np.isfinite(values)
    if bad.any():
        what = "infinite" if allow_nan else "NaN or infinite"
        raise FeatureStoreError(
            f"feature-store part {path}: column {name!r} has {int(bad.sum())} {what} value(s) "
            f"(first at row {int(np.argmax(bad))} of its record batch)"
        )


class _Codes:
    """Maps strings to stable integer codes (in order of first appearance)."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self._index: dict[str, int] = {}

    def encode(self, array: pa.Array) -> np.ndarray:
        encoded = array.dictionary_encode() if not pa.types.is_dictionary(array.type) else array
        dictionary = [str(value) for value in encoded.dictionary.to_pylist()]
        lookup = np.array([self._code(name) for name in dictionary], dtype=np.int32)
        return lookup[_as_numpy(encoded.indices)] if len(lookup) else np.zeros(0, np.int32)

    def _code(self, name: str) -> int:
        if name not in self._index:
            self._index[name] = len(self.names)
            self.names.append(name)
        return self._index[name]


def read_feature_store(store: str | Path, features: Sequence[str] | None = None) -> FeatureTable:
    """Read every part of the feature store at ``store`` into a :class:`FeatureTable`.

    ``features`` selects (and orders) a subset of the schema's feature names; default: all of
    them, in schema order.  Parts are read in sorted file-name order.  Raises
    :class:`FeatureStoreError` when the schema or a part is missing or unreadable, a column is
    missing or has the wrong type, a feature or weight is NaN/inf (naming the column and the
    number of rows), a label is not 0/1, or a dataset is not listed in ``schema.json``.
    """
    store = Path(store)
    schema = read_schema(store)
    names = tuple(schema["feature_names"]) if features is None else tuple(features)
    unknown = [name for name in names if name not in schema["feature_names"]]
    if unknown:
        raise FeatureStoreError(f"feature store {store}: feature(s) {unknown} are not in schema.json")
    parts = _parts(store)
    columns = list(names) + list(META_COLUMNS)
    rows = [_check_part(path, columns) for path in parts]
    total = int(sum(rows))

    table = FeatureTable(
        features=np.empty((total, len(names)), dtype=np.float32),
        feature_names=names,
        weight=np.empty(total, dtype=np.float64),
        label=np.empty(total, dtype=np.int8),
        dataset=np.empty(total, dtype=np.int32),
        dataset_names=(),
        process=np.empty(total, dtype=np.int32),
        process_names=(),
        m_slepton=np.empty(total, dtype=np.float32),
        dm=np.empty(total, dtype=np.float32),
        event=np.empty(total, dtype=np.uint64),
        datasets=dict(schema.get("datasets", {})),
        feature_set=str(schema.get("feature_set", "")),
        source=store,
    )
    datasets, processes = _Codes(), _Codes()
    offset = 0
    for path, n_rows in zip(parts, rows):
        end = offset + n_rows
        try:
            part = pq.ParquetFile(path)  # opened one at a time: a reader keeps its buffers
            for batch in part.iter_batches(batch_size=_BATCH_ROWS, columns=columns):
                if offset + batch.num_rows > end:
                    raise FeatureStoreError(f"feature-store part {path}: more rows than its metadata says ({n_rows})")
                offset = _fill(table, batch, offset, path, datasets, processes)
            del part
        except (pa.ArrowException, OSError) as error:
            raise FeatureStoreError(f"cannot read feature-store part {path}: {error}") from None
        if offset != end:
            raise FeatureStoreError(f"feature-store part {path}: metadata says {n_rows} rows, read {offset - end + n_rows}")
    table.dataset_names = tuple(datasets.names)
    table.process_names = tuple(processes.names)
    _check_consistency(table, store)
    return table


def _fill(table: FeatureTable, batch: pa.RecordBatch, offset: int, path: Path, datasets: _Codes, processes: _Codes) -> int:
    """Copy one record batch into the preallocated arrays at ``offset``; returns the new offset."""
    end = offset + batch.num_rows
    for j, name in enumerate(table.feature_names):
        values = _numeric(batch, name, path)
        _finite(values, name, path)
        table.features[offset:end, j] = values
    weight = _numeric(batch, "weight", path)
    _finite(weight, "weight", path)
    table.weight[offset:end] = weight
    label = _numeric(batch, "label", path)
    if label.size and not np.all((label == 0) | (label == 1)):
        raise FeatureStoreError(f"feature-store part {path}: column 'label' has values other than 0 and 1")
    table.label[offset:end] = label
    for name in ("m_slepton", "dm"):
        values = _as_numpy(batch.column(name))  # nulls read as NaN (background)
        _finite(values, name, path, allow_nan=True)
        getattr(table, name)[offset:end] = values
    event = _numeric(batch, "event", path)
    if event.dtype.kind == "i" and event.size and event.min() < 0:
        raise FeatureStoreError(f"feature-store part {path}: column 'event' has negative event numbers")
    table.event[offset:end] = event
    for name, codes in (("dataset", datasets), ("process", processes)):
        column = batch.column(name)
        if column.null_count:
            raise FeatureStoreError(f"feature-store part {path}: column {name!r} has {column.null_count} null value(s)")
        getattr(table, name)[offset:end] = codes.encode(column)
    return end


def _check_consistency(table: FeatureTable, store: Path) -> None:
    """Datasets known to schema.json; signal events carry a finite grid point."""
    if table.datasets:
        unknown = sorted(set(table.dataset_names) - set(table.datasets))
        if unknown:
            raise FeatureStoreError(f"feature store {store}: dataset(s) {unknown} are not listed in schema.json")
    signal = table.label == 1
    no_point = signal & ~(np.isfinite(table.m_slepton) & np.isfinite(table.dm))
    if no_point.any():
        raise FeatureStoreError(
            f"feature store {store}: {int(no_point.sum())} signal event(s) have NaN m_slepton or dm "
            f"(datasets {sorted({table.dataset_names[c] for c in np.unique(table.dataset[no_point])})})"
        )
