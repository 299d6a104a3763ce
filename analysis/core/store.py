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

from analysis.core.atomic import remove_stale_temporaries

PARTS = "parts"
SCHEMA = "schema.json"


def safe_component(name: str, limit: int = 60) -> str:
    """``name`` made safe as one path component: letters, digits, ``-``, ``_`` and ``.`` kept,
    anything else (``/``, ``..``, spaces, NUL) replaced by ``_``, no leading dot, at most ``limit``
    characters. Never empty, never ``.`` or ``..``: different names can collide, so callers add
    a hash of the full name."""
    cleaned = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in str(name))
    cleaned = cleaned.lstrip(".")[:limit]
    return cleaned or "_"


def part_name(dataset: str, filename: str, entry_start: int, entry_stop: int) -> str:
    """The deterministic file name of the part of one chunk (one path component, whatever the names).

    Parts sort by dataset, input file name and entry range, whatever folder the inputs are
    in (the row order of the store, and so training, must not depend on where the samples
    are cached). The dataset and file names are sanitised (:func:`safe_component`: a CMS name
    like ``/DYJetsToLL_M-50/RunIISummer20UL18NanoAODv9-v1/NANOAODSIM`` or ``../../x`` cannot
    leave the store); a short hash of the full dataset name and path tells apart names that
    sanitise alike.
    """
    path = Path(str(filename))
    stem = safe_component(path.stem, 80)
    dataset_part = safe_component(dataset, 60)
    path_hash = hashlib.sha1(f"{dataset}\0{filename}".encode()).hexdigest()[:8]
    return f"{dataset_part}__{stem}__{entry_start:012d}-{entry_stop:012d}__{path_hash}.parquet"


def write_part(store: str | Path, name: str, features: dict[str, np.ndarray], payload: dict[str, np.ndarray]) -> Path:
    """Write one chunk's features (float32) and per-event payload columns atomically."""
    directory = Path(store) / PARTS
    directory.mkdir(parents=True, exist_ok=True)
    columns = {key: pa.array(np.asarray(values, dtype=np.float32)) for key, values in features.items()}
    columns.update({key: pa.array(values) for key, values in payload.items()})
    table = pa.table(columns)
    if Path(name).name != name or name in (".", ".."):
        raise ValueError(f"feature-store part name {name!r} is not a plain file name")
    path = directory / name
    tmp = directory / f".{name}.tmp-{os.getpid()}"
    # dictionary encoding for the string columns only: the float features rarely repeat, and
    # trying it on every column costs a third of the write (measured on 3k-row parts)
    strings = [key for key, column in columns.items() if pa.types.is_string(column.type)]
    pq.write_table(table, tmp, compression="zstd", use_dictionary=strings)
    os.replace(tmp, path)
    return path


def clear_store(store: str | Path) -> None:
    """Remove the parts and schema of a previous run (a new run starts from an empty store),
    and the temporary files that killed writers left in the store folder."""
    remove_stale_temporaries(store)
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
