"""The feature store: the selected events' features, written as Parquet, one part per chunk.

Layout of a store directory::

    <store>/parts/<dataset>__<file name>__<entry start>-<entry stop>__<path hash>.parquet
    <store>/schema.json     feature names, feature set, per-dataset process / label / grid point

Each part holds one float32 column per feature plus ``weight`` (float64), ``label`` (int8:
1 signal, 0 background), ``dataset`` and ``process`` (strings), ``m_slepton`` and ``dm``
(float32, NaN for background) and ``event`` (uint64). Parts are written by the workers
(nothing is gathered in the driver's memory), each under a temporary name and renamed when
complete; a part's name depends only on its chunk, so every executor writes the same files.
``nn.data.read_feature_store`` reads a store back as float32 arrays.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

PARTS = "parts"
SCHEMA = "schema.json"


def part_name(dataset: str, filename: str, entry_start: int, entry_stop: int) -> str:
    """The deterministic file name of the part of one chunk.

    Parts sort by dataset, input file name and entry range, whatever folder the inputs are
    in (the row order of the store, and so training, must not depend on where the samples
    are cached); a short hash of the full path only tells apart equal file names.
    """
    path = Path(str(filename))
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in path.stem)[:80]
    path_hash = hashlib.sha1(str(filename).encode()).hexdigest()[:8]
    return f"{dataset}__{stem}__{entry_start:012d}-{entry_stop:012d}__{path_hash}.parquet"


def write_part(store: str | Path, name: str, features: dict[str, np.ndarray], payload: dict[str, np.ndarray]) -> Path:
    """Write one chunk's features (float32) and per-event payload columns atomically."""
    directory = Path(store) / PARTS
    directory.mkdir(parents=True, exist_ok=True)
    columns = {key: pa.array(np.asarray(values, dtype=np.float32)) for key, values in features.items()}
    columns.update({key: pa.array(values) for key, values in payload.items()})
    table = pa.table(columns)
    path = directory / name
    tmp = directory / f".{name}.tmp-{os.getpid()}"
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)
    return path


def clear_store(store: str | Path) -> None:
    """Remove the parts and schema of a previous run (a new run starts from an empty store)."""
    directory = Path(store) / PARTS
    if directory.is_dir():
        for path in directory.iterdir():
            path.unlink()
    schema = Path(store) / SCHEMA
    if schema.exists():
        schema.unlink()


def write_schema(store: str | Path, feature_names: list[str], feature_set: str, datasets: dict[str, dict]) -> Path:
    """Write ``schema.json``: feature names and per-dataset process, label and grid point."""
    path = Path(store) / SCHEMA
    payload = {"feature_names": list(feature_names), "feature_set": feature_set, "datasets": datasets}
    tmp = path.with_name(f".{SCHEMA}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True))
    os.replace(tmp, path)
    return path
