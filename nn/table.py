"""Plain tables (CSV, Parquet, the UCI SUSY and HIGGS layouts) as labelled float32 arrays.

Formats (``--format``):

* ``csv`` -- a header line with the column names (``.csv.gz`` and ``.csv.bz2`` are decompressed);
* ``parquet`` -- one ``.parquet`` file or a folder of them (read in sorted file-name order);
* ``uci-susy`` / ``uci-higgs`` -- the UCI layouts of Baldi, Sadowski and Whiteson (Nature Commun.
  5 (2014) 4308): no header, the class label (1 signal, 0 background) first, then the 18 SUSY or
  28 HIGGS features with their published names (:data:`UCI_FEATURES`); ``--features low-level``
  or ``high-level`` selects the published groups (:data:`UCI_FEATURE_GROUPS`).  How to read a
table is a :class:`~nn.table_spec.TableSpec` (stored in the model artifact).

:func:`iter_table_chunks` streams a table record batch by record batch (pyarrow's streaming CSV
reader, Parquet row-group batches): memory is one batch, whatever the file size.
:func:`read_table` collects the chunks into one :class:`LabelledTable` (float32 features, so
the table in memory is 4 bytes per cell, not the CSV's ~20).  Rows are numbered from 0 in input
order (header excluded): a row's identity, for the split too.

Every problem raises :class:`TableError` naming the file and the column (missing or non-numeric
columns, bad labels or weights, NaN/inf/missing feature cells: counted, or dropped and reported).
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from nn.table_spec import (
    TABLE_FORMATS,
    UCI_FEATURE_GROUPS,
    UCI_FEATURES,
    UCI_LABEL,
    TableError,
    TableSpec,
)

__all__ = [
    "TABLE_FORMATS",
    "UCI_FEATURES",
    "UCI_FEATURE_GROUPS",
    "UCI_LABEL",
    "LabelledTable",
    "TableChunk",
    "TableError",
    "TableSpec",
    "iter_table_chunks",
    "read_table",
    "table_columns",
    "table_features",
]

log = logging.getLogger(__name__)

_BLOCK_BYTES = 1 << 22
_BATCH_ROWS = 65_536


@dataclass(eq=False)
class TableChunk:
    """One record batch of a table: features (float32), label (int8 or None), weight, row numbers."""

    features: np.ndarray
    label: np.ndarray | None
    weight: np.ndarray | None
    row: np.ndarray
    finite: np.ndarray  # bool per row: every feature cell finite
    bad_cells: dict[str, int]  # feature column -> non-finite / missing cells in this chunk
    first_bad_row: dict[str, int]


@dataclass(eq=False)
class LabelledTable:
    """A table in memory; the attributes :func:`nn.train.train_classifier` records too.

    Attributes:
        features: float32 ``(n, d)``; feature_names: the d column names; label: int8 1/0 (or
        None when the table has no label); weight: float64 (or None: unit weights); row: int64
        input row number of each row; n_input_rows: rows in the file; dropped: feature column
        -> rows dropped for a non-finite cell there (a row may count in several columns);
        n_dropped: rows dropped; source: the file; spec: how it was read.
    """

    features: np.ndarray
    feature_names: tuple[str, ...]
    label: np.ndarray | None
    weight: np.ndarray | None
    row: np.ndarray
    n_input_rows: int
    source: Path
    spec: TableSpec
    dropped: dict[str, int] = field(default_factory=dict)
    n_dropped: int = 0

    def __len__(self) -> int:
        return int(self.features.shape[0])

    @property
    def feature_set(self) -> str:
        """``table:<format>`` (what the artifact records as the feature set)."""
        return f"table:{self.spec.format}"


def _parquet_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(path.glob("*.parquet"))
        if not files:
            raise TableError(f"table folder {path} has no *.parquet files")
        return files
    return [path]


def _csv_options(spec: TableSpec, types=None, include=None):
    uci = spec.format.startswith("uci-")
    read = pcsv.ReadOptions(block_size=_BLOCK_BYTES,
                            column_names=[UCI_LABEL, *UCI_FEATURES[spec.format]] if uci else None)
    parse = pcsv.ParseOptions(delimiter=spec.delimiter)
    convert = pcsv.ConvertOptions(column_types=types or {}, include_columns=include or [])
    return read, parse, convert


def table_columns(path: str | Path, spec: TableSpec) -> dict[str, pa.DataType]:
    """The columns of the table at ``path`` and their (inferred, for CSV) Arrow types."""
    path = Path(path)
    if not path.exists():
        raise TableError(f"table {path} does not exist")
    try:
        if spec.format == "parquet":
            schemas = [pq.read_schema(file) for file in _parquet_files(path)]
            for file, schema in zip(_parquet_files(path), schemas):
                if schema.names != schemas[0].names:
                    raise TableError(f"table {file}: its columns differ from those of {_parquet_files(path)[0].name}")
            schema = schemas[0]
        else:
            with pcsv.open_csv(path, *_csv_options(spec)) as reader:
                schema = reader.schema
    except (pa.ArrowException, OSError) as error:
        raise TableError(f"cannot read table {path} as {spec.format}: {error}") from None
    duplicated = sorted({name for name in schema.names if schema.names.count(name) > 1})
    if duplicated:
        raise TableError(f"table {path}: column name(s) {duplicated} appear more than once")
    return {name: schema.field(name).type for name in schema.names}


def resolve_columns(path: Path, spec: TableSpec, columns: dict[str, pa.DataType], need_label: bool) -> tuple[str, ...]:
    """Check the label, weight and feature columns exist and are numeric; returns the features."""
    available = list(columns)
    if spec.label is None and need_label:
        raise TableError(f"table {path}: give the label column (--label); the columns are {available}")
    for role, name in (("label", spec.label if need_label else None), ("weight", spec.weight)):
        if name is not None and name not in columns:
            raise TableError(f"table {path} has no {role} column {name!r}; its columns are {available}")
    groups = UCI_FEATURE_GROUPS.get(spec.format, {})
    if spec.features is None:
        features = tuple(n for n in available if n not in (spec.label, spec.weight))
    elif len(spec.features) == 1 and spec.features[0] in groups:
        features = groups[spec.features[0]]
    else:
        features = spec.features
    missing = [name for name in features if name not in columns]
    if missing:
        raise TableError(f"table {path}: feature column(s) {missing} are not in the table; its columns are {available}")
    clash = [name for name in features if name in (spec.label, spec.weight)]
    if clash:
        raise TableError(f"table {path}: column(s) {clash} cannot be a feature and the label or weight at once")
    if not features:
        raise TableError(f"table {path}: no feature columns are left besides the label and weight")
    label = spec.label if need_label else None
    if label is not None and not spec.signal_classes and not _numeric_type(columns[label]):
        raise TableError(f"table {path}: label column {label!r} is not numeric (type {columns[label]}); give its "
                         f"class values with --signal-class and --background-class")
    for name in (*features, spec.weight):
        if name is not None and not _numeric_type(columns[name]):
            raise TableError(f"table {path}: column {name!r} is not numeric (type {columns[name]}); "
                             f"features and weights must be numbers")
    return tuple(features)


def _numeric_type(kind: pa.DataType) -> bool:
    return pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind) or pa.types.is_null(kind)


def _batches(path: Path, spec: TableSpec, features, need_label: bool) -> Iterator[pa.RecordBatch]:
    label = spec.label if need_label else None
    wanted = [name for name in (label, spec.weight, *features) if name is not None]
    if spec.format == "parquet":
        for file in _parquet_files(path):
            yield from pq.ParquetFile(file).iter_batches(batch_size=_BATCH_ROWS, columns=wanted)
        return
    types = {name: pa.float64() for name in wanted}
    if label is not None and spec.signal_classes:
        types[label] = pa.string()
    with pcsv.open_csv(path, *_csv_options(spec, types, wanted)) as reader:
        yield from reader


def _conversion_error(path: Path, spec: TableSpec, header: Sequence[str], error: Exception) -> TableError:
    """A TableError naming the column of an Arrow CSV conversion error (a non-numeric cell)."""
    text = str(error)
    match = re.search(r"CSV column #(\d+)", text)
    if match and int(match.group(1)) < len(header) and "conversion error" in text:
        value = re.search(r"invalid value (.*)$", text)
        name = header[int(match.group(1))]
        cell = value.group(1) if value else "?"
        if name == spec.label:
            return TableError(f"table {path}: label column {name!r} is not numeric (cell {cell}); give its class "
                              f"values with --signal-class and --background-class")
        return TableError(f"table {path}: column {name!r} is not numeric (cell {cell}); features and weights "
                          f"must be numbers")
    return TableError(f"cannot read table {path}: {text}")


def _floats(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """float64 numpy copy of a numeric Arrow column, nulls as NaN."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if pa.types.is_null(array.type):
        return np.full(len(array), np.nan)
    return pc.cast(array, pa.float64()).to_numpy(zero_copy_only=False)


class _Problems:
    """Bad label / weight values counted over the whole table (raised after the last chunk)."""

    def __init__(self) -> None:
        self.count: dict[str, int] = {}
        self.first: dict[str, int] = {}
        self.examples: dict[str, set] = {}

    def add(self, what: str, bad: np.ndarray, offset: int, values: np.ndarray | None = None) -> None:
        if not bad.any():
            return
        self.count[what] = self.count.get(what, 0) + int(bad.sum())
        self.first.setdefault(what, offset + int(np.argmax(bad)))
        if values is not None:
            examples = self.examples.setdefault(what, set())
            for value in values[bad][:50]:
                if len(examples) < 5:
                    examples.add(value)

    def raise_if_any(self, path: Path, spec: TableSpec) -> None:
        if not self.count:
            return
        lines = []
        for what, count in self.count.items():
            examples = sorted(self.examples.get(what, ()), key=str)
            shown = f" (e.g. {', '.join(map(str, examples))})" if examples else ""
            lines.append(f"{count} row(s) {what}{shown}, first at row {self.first[what]}")
        hint = ""
        if any("label" in what for what in self.count):
            hint = ("; a label must be 0 (background) or 1 (signal), or give its class values with "
                    "--signal-class and --background-class")
        raise TableError(f"table {path}: " + "; ".join(lines) + hint)


def _labels(column: pa.Array, spec: TableSpec, offset: int, problems: _Problems, path: Path) -> np.ndarray:
    """int8 label (1 signal, 0 background, -1 bad: counted in ``problems``) of a label column."""
    name = spec.label
    if spec.signal_classes:
        text = pc.cast(column, pa.string()).to_numpy(zero_copy_only=False).astype(object)
        signal = np.isin(text, list(spec.signal_classes))
        known = signal | np.isin(text, list(spec.background_classes))
        problems.add(f"of label column {name!r} with a value that is neither a signal class "
                     f"{list(spec.signal_classes)} nor a background class {list(spec.background_classes)}",
                     ~known, offset, np.array([repr(v) for v in text], dtype=object))
        return np.where(known, signal, -1).astype(np.int8)
    if not _numeric_type(column.type):
        raise TableError(f"table {path}: label column {name!r} is not numeric (type {column.type}); give the class "
                         f"values with --signal-class and --background-class")
    values = _floats(column)
    bad = ~((values == 0) | (values == 1))
    problems.add(f"of label column {name!r} that are not 0 or 1", bad, offset, values)
    return np.where(bad, -1, values).astype(np.int8)


def _weights(column: pa.Array, spec: TableSpec, offset: int, problems: _Problems) -> np.ndarray:
    values = _floats(column)
    problems.add(f"of weight column {spec.weight!r} that are NaN, inf or missing", ~np.isfinite(values), offset)
    problems.add(f"of weight column {spec.weight!r} that are negative", values < 0, offset, values)
    return values


def table_features(path: str | Path, spec: TableSpec, need_label: bool = True,
                   features: Sequence[str] | None = None) -> tuple[str, ...]:
    """The feature columns of the table at ``path`` read with ``spec`` (or the given
    ``features``), checked to exist and to be numeric, as are the label and weight columns."""
    path = Path(path)
    if features is not None:
        spec = dataclasses.replace(spec, features=tuple(features))
    return resolve_columns(path, spec, table_columns(path, spec), need_label)


def iter_table_chunks(path: str | Path, spec: TableSpec, need_label: bool = True,
                      features: Sequence[str] | None = None) -> Iterator[TableChunk]:
    """Stream the table at ``path`` as :class:`TableChunk` s (see the module doc).

    ``need_label``: read and check the label column (``False``: ignore it, e.g. for scoring an
    unlabelled table).  ``features``: the feature columns (default: from ``spec``; checked with
    :func:`table_features`).  Non-finite feature cells are only counted here (``finite``,
    ``bad_cells``); the caller refuses or drops.  Bad labels and weights are counted over the
    whole table and raised as one :class:`TableError` after the last chunk.
    """
    path = Path(path)
    features = table_features(path, spec, need_label, features)
    header = list(table_columns(path, spec))
    problems = _Problems()
    offset = 0
    batches = _batches(path, spec, features, need_label)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            break
        except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
            raise _conversion_error(path, spec, header, error) from None
        except (pa.ArrowException, OSError) as error:
            raise TableError(f"cannot read table {path}: {error}") from None
        n = batch.num_rows
        x = np.empty((n, len(features)), dtype=np.float32)
        bad_cells, first_bad = {}, {}
        finite = np.ones(n, dtype=bool)
        for j, name in enumerate(features):
            values = _floats(batch.column(name))
            ok = np.isfinite(values)
            if not ok.all():
                bad_cells[name] = int((~ok).sum())
                first_bad[name] = offset + int(np.argmin(ok))
                finite &= ok
            x[:, j] = values
        label = _labels(batch.column(spec.label), spec, offset, problems, path) if need_label else None
        weight = _weights(batch.column(spec.weight), spec, offset, problems) if spec.weight is not None else None
        yield TableChunk(x, label, weight, np.arange(offset, offset + n, dtype=np.int64), finite, bad_cells, first_bad)
        offset += n
    problems.raise_if_any(path, spec)


def nonfinite_message(path: Path, bad_cells: dict[str, int], first_bad: dict[str, int]) -> str:
    """The text of the 'NaN/inf cells' error (per column: count and first row)."""
    listing = ", ".join(f"{name!r}: {count} (first at row {first_bad[name]})" for name, count in bad_cells.items())
    return (f"table {path} has NaN, inf or missing feature cells -- {listing}; fix the table, or drop those rows "
            f"with --nonfinite drop (they are counted and reported)")


def read_table(path: str | Path, spec: TableSpec, need_label: bool = True) -> LabelledTable:
    """Read the whole table at ``path`` into a :class:`LabelledTable` (chunk by chunk).

    NaN/inf/missing feature cells are counted over the whole file first; then ``spec.nonfinite
    == "refuse"`` raises :class:`TableError` naming every such column with its count and first
    row, and ``"drop"`` drops those rows and logs (and records) the counts.
    """
    path = Path(path)
    features = table_features(path, spec, need_label)
    parts: list[TableChunk] = []
    bad_cells: dict[str, int] = {}
    first_bad: dict[str, int] = {}
    n_input = 0
    for chunk in iter_table_chunks(path, spec, need_label, features):
        n_input += len(chunk.row)
        for name, count in chunk.bad_cells.items():
            bad_cells[name] = bad_cells.get(name, 0) + count
            first_bad.setdefault(name, chunk.first_bad_row[name])
        if chunk.bad_cells and spec.nonfinite == "drop":
            keep = chunk.finite
            chunk = TableChunk(chunk.features[keep], None if chunk.label is None else chunk.label[keep],
                               None if chunk.weight is None else chunk.weight[keep], chunk.row[keep], keep[keep], {}, {})
        parts.append(chunk)
    if bad_cells and spec.nonfinite == "refuse":
        raise TableError(nonfinite_message(path, bad_cells, first_bad))

    def stack(arrays, dtype):
        return np.concatenate(arrays) if arrays else np.zeros(0, dtype)

    table = LabelledTable(
        features=np.concatenate([c.features for c in parts]) if parts else np.zeros((0, len(features)), np.float32),
        feature_names=features,
        label=stack([c.label for c in parts], np.int8) if need_label else None,
        weight=stack([c.weight for c in parts], np.float64) if spec.weight is not None else None,
        row=stack([c.row for c in parts], np.int64),
        n_input_rows=n_input,
        source=path,
        spec=spec,
        dropped=dict(bad_cells),
        n_dropped=n_input - int(sum(len(c.row) for c in parts)),
    )
    if table.n_dropped:
        log.warning("table %s: dropped %d of %d rows with NaN/inf/missing feature cells (cells per column: %s)",
                    path, table.n_dropped, n_input, bad_cells)
    if len(table) == 0:
        raise TableError(f"table {path} has no rows{' left after dropping the non-finite ones' if n_input else ''}")
    return table
