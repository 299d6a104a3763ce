"""Filesets: load them, check every file before processing, complete their metadata.

A fileset is coffea's format, ``{dataset: {"files": {path: treename} | [paths], "metadata": {...}}}``
(the generator's ``fileset.json`` or a user's own). Before any chunk is processed, every
file is opened once on the driver: an unreadable or corrupt file, a file without the tree or
a required branch, or an empty file raises :class:`BadInputFileError` naming the file (and the
branch). With ``skip_bad_files`` such files are left out instead and listed, with the number
of events they hold where it can be read, so nothing is dropped silently.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import uproot

from analysis.core.config import AnalysisConfig
from analysis.core.errors import UserError


class BadInputFileError(UserError, ValueError):
    """An input file that cannot be processed; the message names the file (and branch)."""

    def __init__(self, path: str, reason: str, n_events: int | None = None):
        super().__init__(f"bad input file {path}: {reason}")
        self.path, self.reason, self.n_events = path, reason, n_events


class LostEventsError(UserError, RuntimeError):
    """A stage counted other numbers of events than the input files hold."""


def check_all_events(n_input: dict[str, int], counted: dict[str, int], what: str) -> None:
    """Raise :class:`LostEventsError` unless every dataset's ``counted`` events equal its input events.

    ``what`` says what was counted (``"processed"``, ``"scored"``) for the message.
    """
    lost = {d: (n, counted.get(d, 0)) for d, n in n_input.items() if n and counted.get(d, 0) != n}
    if lost:
        details = ", ".join(f"{d}: {c} of {n}" for d, (n, c) in lost.items())
        raise LostEventsError(f"{what} events do not match the input files' events ({details})")


@dataclass
class InspectedFileset:
    """The usable part of a fileset, the files left out, and event counts per dataset."""

    root: dict = field(default_factory=dict)
    parquet: dict = field(default_factory=dict)
    skipped: list[dict] = field(default_factory=list)
    n_input: dict[str, int] = field(default_factory=dict)


def file_format(path: str) -> str:
    """``parquet`` for ``*.parquet``/``*.parq`` files, ``root`` otherwise."""
    return "parquet" if str(path).lower().endswith((".parquet", ".parq")) else "root"


def required_branches(config: AnalysisConfig, is_data: bool) -> list[str]:
    """The branches the selection stage reads, given the config's object switches."""
    objects = config.selection.objects
    branches = [] if is_data else ["genWeight"]
    lepton_fields = ("pt", "eta", "phi", "mass", "charge")
    if objects.use_electrons:
        branches += [f"Electron_{f}" for f in lepton_fields]
    if objects.use_muons:
        branches += [f"Muon_{f}" for f in lepton_fields]
    if objects.use_jets:
        branches += [f"Jet_{f}" for f in ("pt", "eta", "phi", "mass", objects.btag_branch)]
    if objects.use_met:
        branches += ["MET_pt", "MET_phi"]
    return branches


def _branches_and_entries(path: str, tree: str) -> tuple[set[str], int]:
    if file_format(path) == "parquet":
        try:
            parquet = pq.ParquetFile(path)
        except Exception as error:  # pyarrow raises ArrowInvalid, OSError ... for non-Parquet files
            raise BadInputFileError(path, f"not a readable Parquet file ({error})") from None
        return set(parquet.schema_arrow.names), parquet.metadata.num_rows
    try:
        with uproot.open(path) as file:
            if tree not in file:
                raise BadInputFileError(path, f"no tree {tree!r} (contains: {', '.join(file.keys()) or 'nothing'})")
            events = file[tree]
            return set(events.keys()), int(events.num_entries)
    except BadInputFileError:
        raise
    except FileNotFoundError:
        raise BadInputFileError(path, "file not found") from None
    except Exception as error:  # uproot raises many types for corrupt files
        raise BadInputFileError(path, f"not a readable ROOT file ({type(error).__name__}: {error})") from None


def inspect_file(path: str, tree: str, required: list[str]) -> int:
    """Open one file, check its tree and branches; return its number of events."""
    branches, n_events = _branches_and_entries(path, tree)
    missing = [branch for branch in required if branch not in branches]
    if missing:
        raise BadInputFileError(path, f"missing branch(es) {', '.join(map(repr, missing))}", n_events)
    if n_events == 0:
        raise BadInputFileError(path, "the file holds no events", 0)
    return n_events


def normalise_fileset(fileset: dict) -> dict:
    """Every dataset as ``{"files": {path: tree}, "metadata": {...}}`` (lists get tree ``Events``)."""
    normalised = {}
    for dataset, entry in fileset.items():
        files = entry["files"] if isinstance(entry, dict) else entry
        if isinstance(files, (list, tuple)):
            files = {str(path): "Events" for path in files}
        metadata = dict(entry.get("metadata", {})) if isinstance(entry, dict) else {}
        normalised[dataset] = {"files": dict(files), "metadata": metadata}
    return normalised


def load_fileset(path: str | Path) -> dict:
    """Read a fileset JSON (plain JSON, nothing executed) and normalise it."""
    path = Path(path)
    try:
        fileset = json.loads(path.read_text())
    except OSError as error:
        raise FileNotFoundError(f"cannot read fileset {path}: {error.strerror}") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"fileset {path} is not valid JSON: {error}") from None
    if not isinstance(fileset, dict) or not fileset:
        raise ValueError(f"fileset {path} must be a non-empty mapping of dataset -> files")
    base = path.parent
    normalised = normalise_fileset(fileset)
    for entry in normalised.values():  # relative paths are relative to the fileset file
        entry["files"] = {str(p if Path(p).is_absolute() else (base / p).resolve()): t for p, t in entry["files"].items()}
    return normalised


def _sum_genweight(files: dict) -> float:
    total = 0.0
    for path, tree in files.items():
        if file_format(path) == "parquet":
            total += float(np.sum(pq.read_table(path, columns=["genWeight"]).column(0).to_numpy(), dtype=np.float64))
        else:
            with uproot.open(path) as file:
                total += float(np.sum(file[tree]["genWeight"].array(library="np"), dtype=np.float64))
    return total


def inspect_fileset(fileset: dict, config: AnalysisConfig, skip_bad_files: bool = False) -> InspectedFileset:
    """Check every file of ``fileset``; split it by format; fill in missing ``sum_genweight``.

    Simulation needs ``xsec_pb`` in its metadata (collision data: ``is_data: true``);
    ``sum_genweight``, when absent, is the sum of ``genWeight`` over the dataset's good files.
    """
    result = InspectedFileset()
    for dataset, entry in normalise_fileset(fileset).items():
        metadata = dict(entry["metadata"])
        is_data = bool(metadata.get("is_data", False))
        if not is_data and metadata.get("xsec_pb") is None:
            raise ValueError(
                f"dataset {dataset!r}: simulation needs 'xsec_pb' in its fileset metadata "
                "(or 'is_data': true for collision data)"
            )
        required = required_branches(config, is_data)
        good, n_input = {}, 0
        for path, tree in entry["files"].items():
            try:
                n_input += inspect_file(path, tree, required)
                good[path] = tree
            except BadInputFileError as error:
                if not skip_bad_files:
                    raise
                result.skipped.append(
                    {"dataset": dataset, "file": path, "reason": error.reason, "n_events": error.n_events}
                )
        result.n_input[dataset] = n_input
        if not good:
            continue
        if not is_data and metadata.get("sum_genweight") is None:
            metadata["sum_genweight"] = _sum_genweight(good)
        for fmt in ("root", "parquet"):
            files = {p: t for p, t in good.items() if file_format(p) == fmt}
            if files:
                getattr(result, fmt)[dataset] = {"files": files, "metadata": metadata}
    return result
