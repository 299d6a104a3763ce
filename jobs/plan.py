"""The chunk plan of a batch run, chunk events without a Dask scheduler, and partial outputs.

A batch run (``jobs/batch.py``, driven by the DAG of ``jobs/dag.py``) splits the fileset into
exactly the chunks coffea's ``Runner`` makes for the same ``executor.chunksize``: the split
is coffea's own (``coffea.processor.executor.FileMeta.chunks``, without cluster alignment,
the Runner's default), applied file by file to the event count coffea would read. A chunk's
events are built the way the Runner's work function builds them (``NanoEventsFactory`` in
virtual mode over the chunk's entry range, with the same metadata), so a processor returns
the same keys and the same numbers as under any coffea executor, and the merges, which add
chunks in sorted key order like ``run_processing`` and ``run_scoring``, give bit-identical
results.

The plan (``<outdir>/batch/plan.json``) is written once, after the inputs exist, by the
``plan`` node: the inspected fileset (metadata completed, bad files checked), the events per
dataset, and the sorted list of chunks. Chunk nodes take every ``slots``-th chunk of it
(``chunks[slot::slots]``), so the DAG, written before any sample exists, needs only the
number of chunk nodes, never the chunks themselves.

Every chunk's partial output is one JSON file named after the chunk (uhi serialisation for
histograms; nothing is pickled), written under a temporary name and renamed when complete.
:func:`collect_partials` refuses a missing chunk, a chunk found twice, and a chunk that is not
in the plan, naming it.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

import pyarrow.parquet as pq
import uproot
from coffea.nanoevents import NanoEventsFactory
from coffea.processor.executor import FileMeta

from analysis.core.atomic import write_json_atomic  # noqa: F401 (used by the batch steps)
from analysis.core.errors import UserError
from analysis.core.executors import SCHEMAS
from analysis.core.store import part_name
from processors.processor import chunk_key

PLAN_FORMAT = "bsmscan-chunk-plan-1"
PARTIAL_FORMAT = "bsmscan-partial-1"
#: coffea's Runner default for opening remote files (seconds).
XROOTD_TIMEOUT = 60


class PlanError(UserError, RuntimeError):
    """The chunk plan is missing or does not fit the partial outputs; the message names the chunk."""


@dataclass(frozen=True)
class Chunk:
    """One chunk of one file, as coffea's Runner makes it (``WorkItem``)."""

    key: str
    format: str  # root | parquet
    dataset: str
    filename: str
    treename: str
    entrystart: int
    entrystop: int
    fileuuid: str

    @property
    def output_name(self) -> str:
        """The file name of this chunk's partial output (the feature-store part name, ``.json``)."""
        return part_name(self.dataset, self.filename, self.entrystart, self.entrystop).removesuffix(".parquet") + ".json"

    def describe(self) -> str:
        """Dataset, file and entry range, for error messages."""
        return f"{self.dataset}: {self.filename} entries [{self.entrystart}, {self.entrystop})"


@dataclass
class ChunkPlan:
    """The inspected fileset, its events per dataset and every chunk, in sorted key order."""

    chunksize: int
    schema: str
    datasets: dict[str, dict]  # format -> {dataset: {"files": {path: tree}, "metadata": {...}}}
    n_input: dict[str, int]
    skipped: list[dict]
    chunks: list[Chunk]

    def for_slot(self, slot: int, slots: int) -> list[Chunk]:
        """The chunks of chunk node ``slot`` of ``slots``: every ``slots``-th chunk, from ``slot``."""
        if not 0 <= slot < slots:
            raise ValueError(f"slot {slot} is outside 0..{slots - 1}")
        return self.chunks[slot::slots]

    def metadata(self, chunk: Chunk) -> dict:
        """The user metadata of ``chunk``'s dataset (cross section, sum of weights, grid point ...)."""
        return self.datasets[chunk.format][chunk.dataset]["metadata"]

    def all_datasets(self) -> dict:
        """Every usable dataset, ROOT and Parquet together (as ``{**inspected.root, **inspected.parquet}``)."""
        return {**self.datasets.get("root", {}), **self.datasets.get("parquet", {})}

    def to_json(self) -> dict:
        """A JSON-serialisable dict (read back with :func:`read_plan`)."""
        return {"format": PLAN_FORMAT, "chunksize": self.chunksize, "schema": self.schema, "datasets": self.datasets,
                "n_input": self.n_input, "skipped": self.skipped, "chunks": [asdict(chunk) for chunk in self.chunks]}


def file_chunk_ranges(n_entries: int, chunksize: int) -> list[tuple[int, int]]:
    """The (start, stop) entry ranges coffea's Runner cuts a file of ``n_entries`` into.

    Calls coffea's own splitting (``FileMeta.chunks`` without cluster alignment): the file is
    cut into ``max(round(n / chunksize), 1)`` nearly equal pieces of ``ceil(n / pieces)``
    entries (an empty file gives one empty chunk).
    """
    meta = FileMeta("dataset", "file", "tree", {"numentries": int(n_entries), "uuid": b""})
    return [(item.entrystart, item.entrystop) for item in meta.chunks(chunksize, False)]


def file_entries(path: str, tree: str, fmt: str) -> tuple[int, str]:
    """Events in a file and the file's UUID as coffea's Runner reports them (``fileuuid``)."""
    if fmt == "parquet":
        n_entries = pq.ParquetFile(path).metadata.num_rows
        return n_entries, str(uuid.UUID(bytes=hashlib.md5(path.encode()).digest()))
    with uproot.open({path: None}, timeout=XROOTD_TIMEOUT) as file:
        return int(file[tree].num_entries), str(uuid.UUID(bytes=file.file.fUUID))


def build_plan(inspected, chunksize: int, schema: str = "base") -> ChunkPlan:
    """The chunk plan of an :class:`analysis.core.fileset.InspectedFileset` for ``chunksize``."""
    chunks = []
    datasets = {"root": inspected.root, "parquet": inspected.parquet}
    for fmt, entries in datasets.items():
        for dataset, entry in entries.items():
            for path, tree in entry["files"].items():
                n_entries, file_uuid = file_entries(path, tree, fmt)
                for start, stop in file_chunk_ranges(n_entries, chunksize):
                    key = chunk_key({"dataset": dataset, "filename": path, "entrystart": start, "entrystop": stop})
                    chunks.append(Chunk(key, fmt, dataset, path, tree, start, stop, file_uuid))
    chunks.sort(key=lambda chunk: chunk.key)
    return ChunkPlan(chunksize, schema, datasets, dict(sorted(inspected.n_input.items())), list(inspected.skipped), chunks)


def write_plan(path: str | Path, plan: ChunkPlan) -> Path:
    """Write the plan JSON atomically."""
    return write_json_atomic(Path(path), plan.to_json(), indent=1)


def read_plan(path: str | Path) -> ChunkPlan:
    """Read a plan written by :func:`write_plan` (plain JSON)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise PlanError(f"no chunk plan at {path}: the plan node has not run (or the work directory is wrong)") from None
    if data.get("format") != PLAN_FORMAT:
        raise PlanError(f"{path} is not a bsmscan chunk plan ({PLAN_FORMAT})")
    return ChunkPlan(data["chunksize"], data["schema"], data["datasets"], data["n_input"], data["skipped"],
                     [Chunk(**chunk) for chunk in data["chunks"]])


@contextmanager
def chunk_events(plan: ChunkPlan, chunk: Chunk) -> Iterator:
    """The NanoEvents of one chunk, built as coffea's Runner builds them (same metadata, lazily read)."""
    metadata = {"dataset": chunk.dataset, "filename": chunk.filename, "treename": chunk.treename,
                "entrystart": chunk.entrystart, "entrystop": chunk.entrystop, "fileuuid": chunk.fileuuid}
    metadata.update(plan.metadata(chunk))
    schema = SCHEMAS[plan.schema]
    if chunk.format == "parquet":
        yield NanoEventsFactory.from_parquet(
            file=chunk.filename, schemaclass=schema, metadata=metadata, mode="virtual",
            entry_start=chunk.entrystart, entry_stop=chunk.entrystop,
        ).events()
        return
    with uproot.open({chunk.filename: None}, timeout=XROOTD_TIMEOUT) as file:
        yield NanoEventsFactory.from_root(
            file=file, treepath=chunk.treename, schemaclass=schema, metadata=metadata, mode="virtual",
            entry_start=chunk.entrystart, entry_stop=chunk.entrystop,
        ).events()


def write_partial(directory: str | Path, chunk: Chunk, result: Any, default=None) -> Path:
    """Write one chunk's result as JSON (``default``: a serialiser, e.g. uhi's for histograms)."""
    payload = {"format": PARTIAL_FORMAT, "chunk": chunk.key, "result": result}
    return write_json_atomic(Path(directory) / chunk.output_name, payload, default=default)


def clear_partials(directory: str | Path) -> None:
    """Remove the partial outputs of an earlier run (the plan node starts every stage afresh)."""
    directory = Path(directory)
    if directory.is_dir():
        for path in directory.glob("*.json"):
            path.unlink()


def collect_partials(directory: str | Path, plan: ChunkPlan, *, node_name=None, object_hook=None) -> dict[str, Any]:
    """Every chunk's result from ``directory``, keyed by chunk key, checked against the plan.

    Raises :class:`PlanError` naming the chunk (and, with ``node_name(chunk) -> str``, the node
    that should have written it) when a chunk of the plan has no output, when two files hold
    the same chunk, or when a file holds a chunk the plan does not have.
    """
    directory = Path(directory)
    expected = {chunk.key: chunk for chunk in plan.chunks}
    found: dict[str, list[Path]] = {}
    results: dict[str, Any] = {}
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        try:
            payload = json.loads(path.read_text(), object_hook=object_hook)
        except (OSError, json.JSONDecodeError) as error:
            raise PlanError(f"partial output {path} is unreadable: {error}") from None
        if not isinstance(payload, dict) or payload.get("format") != PARTIAL_FORMAT:
            raise PlanError(f"{path} is not a bsmscan partial output ({PARTIAL_FORMAT})")
        key = payload["chunk"]
        found.setdefault(key, []).append(path)
        results[key] = payload["result"]

    unexpected = sorted(key for key in found if key not in expected)
    if unexpected:
        files = ", ".join(str(found[key][0]) for key in unexpected[:5])
        raise PlanError(f"{len(unexpected)} partial output(s) in {directory} hold a chunk that is not in the plan "
                        f"(left from an earlier run?): {files}")
    duplicated = sorted(key for key, paths in found.items() if len(paths) > 1)
    if duplicated:
        key = duplicated[0]
        raise PlanError(f"chunk {expected[key].describe()} is in {len(found[key])} partial outputs "
                        f"({', '.join(map(str, found[key]))}); {len(duplicated)} duplicated chunk(s) in {directory}")
    missing = [chunk for key, chunk in expected.items() if key not in found]
    if missing:
        names = "; ".join(chunk.describe() + (f" (node {node_name(chunk)})" if node_name else "") for chunk in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise PlanError(f"{len(missing)} chunk(s) of the plan have no output in {directory}: {names}{more}")
    return results
