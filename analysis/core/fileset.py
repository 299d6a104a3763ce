"""Filesets: load them, check every file before processing, complete their metadata.

A fileset is coffea's format, ``{dataset: {"files": {path: treename} | [paths], "metadata": {...}}}``
(the generator's ``fileset.json`` or a user's own). Before any chunk is processed, every
file is opened once on the driver: an unreadable or corrupt file, a file without the tree or
a required branch (the object kinematics, the working points, MET flavour, triggers and flags
of the config, and the input branches that cuts, features and control histograms name, each
with the setting that needs it), or an empty file raises :class:`BadInputFileError` naming the
file (and the branch). A dataset mixing collision data and simulation (files without and with
``genWeight``), or collision data not marked ``is_data``, is a :class:`FilesetError`. A
truncated ROOT file (shorter than the end its header records, e.g. a copy that stopped
half-way) is bad as well, before any chunk tries to read the missing baskets.

Over 400 lines because every check of an input file lives here, next to the one pass that
opens each file; splitting them would open the files twice or scatter the bad-input rules.

With ``skip_bad_files`` (or ``executor.on_bad_files: skip``) such files are left out instead
and listed, with the number of events they hold where it can be read; the events and sum of
generator weights lost per dataset are reported (:class:`DatasetLoss`, from the fileset's
``nevents`` / ``sum_genweight`` metadata when a file cannot be read at all), and simulation
is normalised to the files that are read: ``sum_genweight`` becomes the sum of ``genWeight``
over the good files, so yields keep their expected value (with fewer MC events) instead of
falling by the fraction skipped. Nothing is dropped silently.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import uproot

from analysis.core.config import AnalysisConfig
from analysis.core.errors import UserError

log = logging.getLogger(__name__)


class BadInputFileError(UserError, ValueError):
    """An input file that cannot be processed; the message names the file (and branch)."""

    def __init__(self, path: str, reason: str, n_events: int | None = None):
        super().__init__(f"bad input file {path}: {reason}")
        self.path, self.reason, self.n_events = path, reason, n_events

    def __reduce__(self):  # pickled between Dask workers and the driver: keep every field
        return type(self), (self.path, self.reason, self.n_events)


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
class DatasetLoss:
    """What skipping bad files cost one dataset, and how its weights were normalised.

    ``events_lost`` counts the skipped files' events (their own count where the header is
    readable, else the fileset's ``nevents`` minus the events of the readable files; None when
    neither is known). ``sum_genweight_fileset`` is the metadata's sum of generator weights
    (None if absent), ``sum_genweight_read`` the sum over the files read, which the event
    weights are normalised to.
    """

    dataset: str
    files_skipped: int
    files_read: int
    events_read: int
    events_lost: int | None
    sum_genweight_fileset: float | None
    sum_genweight_read: float | None
    is_data: bool = False

    @property
    def fraction_lost(self) -> float | None:
        """Fraction of the dataset's generator weight (data: events) in the skipped files."""
        if self.is_data or self.sum_genweight_fileset is None or self.sum_genweight_read is None:
            total = None if self.events_lost is None else self.events_read + self.events_lost
            return None if not total else self.events_lost / total
        return None if not self.sum_genweight_fileset else 1.0 - self.sum_genweight_read / self.sum_genweight_fileset

    def describe(self) -> str:
        """One plain sentence: what was skipped, what was lost, what the weights are normalised to."""
        lost = "an unknown number of events" if self.events_lost is None else f"{self.events_lost} events"
        fraction = self.fraction_lost
        share = "" if fraction is None else f", {fraction:.1%} of the dataset"
        text = (f"{self.dataset}: {self.files_skipped} of {self.files_skipped + self.files_read} files skipped "
                f"({lost} lost{share}); {self.events_read} events read")
        if self.is_data:
            return text + "; collision data: the luminosity is not corrected for the skipped files"
        if self.sum_genweight_read is None:
            return text
        was = "" if self.sum_genweight_fileset is None else f" instead of {self.sum_genweight_fileset:.6g} in the fileset"
        return text + f"; weights normalised to the files read (sum of generator weights {self.sum_genweight_read:.6g}{was})"

    def to_json(self) -> dict:
        """A JSON-ready dict, with ``fraction_lost`` and the plain-words ``summary``."""
        return {**asdict(self), "fraction_lost": self.fraction_lost, "summary": self.describe()}


@dataclass
class InspectedFileset:
    """The usable part of a fileset, the files left out, and event counts per dataset."""

    root: dict = field(default_factory=dict)
    parquet: dict = field(default_factory=dict)
    skipped: list[dict] = field(default_factory=list)
    n_input: dict[str, int] = field(default_factory=dict)
    losses: dict[str, DatasetLoss] = field(default_factory=dict)  # datasets with skipped files
    #: path -> (events, file UUID as coffea's preprocessing records it): lets the Runner skip
    #: opening every file a second time (analysis.core.executors.run_chunks)
    entries: dict[str, tuple[int, bytes]] = field(default_factory=dict)


def file_format(path: str) -> str:
    """``parquet`` for ``*.parquet``/``*.parq`` files, ``root`` otherwise."""
    return "parquet" if str(path).lower().endswith((".parquet", ".parq")) else "root"


def branch_requirements(config: AnalysisConfig, is_data: bool, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The branches the selection stage reads, each with the setting that needs it.

    From the config's object switches and working points (``Muon_tightId`` for
    ``selection.objects.muon_id: tight``, ...), the MET flavour, the triggers and event flags;
    ``extra`` adds branches named by cuts, features or control histograms (branch -> setting),
    which the processors work out from the expressions.
    """
    objects = config.selection.objects
    needs: dict[str, str] = {} if is_data else {"genWeight": "event weights of simulation (is_data is not set)"}
    lepton_fields = ("pt", "eta", "phi", "mass", "charge")

    def add(branches, setting: str) -> None:
        for branch in branches:
            needs.setdefault(branch, setting)

    if objects.use_electrons:
        add([f"Electron_{f}" for f in lepton_fields], "selection.objects.use_electrons")
        if objects.electron_id != "none":
            add(["Electron_cutBased"], f"selection.objects.electron_id: {objects.electron_id}")
        if objects.electron_iso_max is not None:
            add([f"Electron_{objects.electron_iso_branch}"], "selection.objects.electron_iso_max")
    if objects.use_muons:
        add([f"Muon_{f}" for f in lepton_fields], "selection.objects.use_muons")
        if objects.muon_id != "none":
            add([f"Muon_{objects.muon_id}Id"], f"selection.objects.muon_id: {objects.muon_id}")
        if objects.muon_iso_max is not None:
            add([f"Muon_{objects.muon_iso_branch}"], "selection.objects.muon_iso_max")
    if objects.use_jets:
        add([f"Jet_{f}" for f in ("pt", "eta", "phi", "mass")], "selection.objects.use_jets")
        add([f"Jet_{objects.btag_branch}"], f"selection.objects.btag_branch: {objects.btag_branch}")
        if objects.jet_id != "none":
            add(["Jet_jetId"], f"selection.objects.jet_id: {objects.jet_id}")
    if objects.use_met:
        add([f"{objects.met_flavour}_pt", f"{objects.met_flavour}_phi"], f"selection.objects.met_flavour: {objects.met_flavour}")
    add(config.selection.triggers, "selection.triggers")
    add(config.selection.flags, "selection.flags")
    add((extra or {}).keys(), "")
    for branch, setting in (extra or {}).items():
        needs[branch] = needs[branch] or setting
    return needs


def required_branches(config: AnalysisConfig, is_data: bool) -> list[str]:
    """The branches the selection stage reads, given the config's objects and event filters."""
    return list(branch_requirements(config, is_data))


def preload_branches(config: AnalysisConfig, datasets: dict, extra: dict[str, str] | None = None) -> dict[str, list[str]]:
    """dataset -> every branch the selection (or scoring) stage reads from it, plus ``event``:
    read in one go per chunk (coffea's ``preload``) rather than one by one on first access.
    Branches a file lacks are left out there (the inspection has checked the required ones)."""
    return {name: [*branch_requirements(config, dataset_flags(name, entry.get("metadata", {}))[0], extra), "event"]
            for name, entry in datasets.items()}


def _branches_and_entries(path: str, tree: str) -> tuple[set[str], int]:
    return _open_file(path, tree)[:2]


def _open_file(path: str, tree: str) -> tuple[set[str], int, bytes]:
    """Branches, events and the UUID (coffea's: the ROOT file's, an MD5 of the path for Parquet)."""
    if file_format(path) == "parquet":
        try:
            parquet = pq.ParquetFile(path)
        except Exception as error:  # pyarrow raises ArrowInvalid, OSError ... for non-Parquet files
            raise BadInputFileError(path, f"not a readable Parquet file ({error})") from None
        return set(parquet.schema_arrow.names), parquet.metadata.num_rows, hashlib.md5(path.encode()).digest()
    try:
        with uproot.open(path) as file:
            if tree not in file:
                check_complete(path, file)
                raise BadInputFileError(path, f"no tree {tree!r} (contains: {', '.join(file.keys()) or 'nothing'})")
            events = file[tree]
            branches, n_events = set(events.keys()), int(events.num_entries)
            check_complete(path, file, n_events)
            return branches, n_events, file.file.fUUID
    except BadInputFileError:
        raise
    except FileNotFoundError:
        raise BadInputFileError(path, "file not found") from None
    except Exception as error:  # uproot raises many types for corrupt files
        raise BadInputFileError(path, f"not a readable ROOT file ({type(error).__name__}: {error})") from None


def check_complete(path: str, file, n_events: int | None = None) -> None:
    """Raise :class:`BadInputFileError` if an open ROOT ``file`` is shorter than its header says.

    The header's ``fEND`` is where the writer finished; a copy cut short (a full disk, an
    interrupted transfer) is smaller, and its last baskets would only fail when a chunk reads them.
    """
    try:
        expected, size = int(file.file.fEND), int(file.file.source.num_bytes)
    except (AttributeError, TypeError, OSError):  # a source that cannot tell its size: nothing to compare
        return
    if size < expected:
        raise BadInputFileError(path, f"truncated ROOT file: {size} bytes of the {expected} its header records", n_events)


def inspect_file(path: str, tree: str, required) -> int:
    """Open one file, check its tree and branches; return its number of events.

    ``required``: branch names, or a mapping branch -> the setting that needs it (named in the
    error, e.g. ``missing branch(es) 'Muon_tightId' (needed by selection.objects.muon_id: tight)``).
    """
    return _check_file(path, *_branches_and_entries(path, tree), required)


def _check_file(path: str, branches: set[str], n_events: int, required) -> int:
    missing = [branch for branch in required if branch not in branches]
    if missing:
        reasons = sorted({required[b] for b in missing if required[b]}) if isinstance(required, dict) else []
        why = f" (needed by {'; '.join(reasons)})" if reasons else ""
        raise BadInputFileError(path, f"missing branch(es) {', '.join(map(repr, missing))}{why}", n_events)
    if n_events == 0:
        raise BadInputFileError(path, "the file holds no events", 0)
    return n_events


def normalise_fileset(fileset: dict) -> dict:
    """Every dataset as ``{"files": {path: tree}, "metadata": {...}}`` (lists get tree ``Events``)."""
    normalised = {}
    for dataset, entry in fileset.items():
        if isinstance(entry, dict) and "files" not in entry:
            raise FilesetError(f"dataset {str(dataset)[:200]!r}: no 'files' (a list of paths or a mapping path -> tree)")
        files = entry["files"] if isinstance(entry, dict) else entry
        if isinstance(files, (list, tuple)):
            files = {str(path): "Events" for path in files}
        metadata = entry.get("metadata", {}) if isinstance(entry, dict) else {}
        if not isinstance(files, dict) or not all(isinstance(tree, str) for tree in files.values()):
            raise FilesetError(f"dataset {str(dataset)[:200]!r}: 'files' must be a list of paths or a mapping path -> tree")
        if not isinstance(metadata, dict):
            raise FilesetError(f"dataset {str(dataset)[:200]!r}: 'metadata' must be a mapping")
        normalised[dataset] = {"files": dict(files), "metadata": dict(metadata)}
    return normalised


def load_fileset(path: str | Path) -> dict:
    """Read a fileset JSON (plain JSON, nothing executed) and normalise it."""
    path = Path(path)
    try:
        fileset = json.loads(path.read_text())
    except OSError as error:
        raise FileNotFoundError(f"cannot read fileset {path}: {error.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise FilesetError(f"fileset {path} is not valid JSON: {str(error)[:300]}") from None
    if not isinstance(fileset, dict) or not fileset:
        raise FilesetError(f"fileset {path} must be a non-empty mapping of dataset -> files")
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


class FilesetError(UserError, ValueError):
    """A fileset whose datasets are described wrongly (data and simulation mixed, bad flags)."""


def dataset_flags(dataset: str, metadata: dict) -> tuple[bool, bool]:
    """``(is_data, is_signal)`` of a dataset; :class:`FilesetError` unless both are booleans
    (when given) and not both true."""
    flags = []
    for key in ("is_data", "is_signal"):
        value = metadata.get(key, False)
        if not isinstance(value, bool):
            raise FilesetError(f"dataset {dataset!r}: metadata {key!r} must be true or false, got {value!r}")
        flags.append(value)
    if all(flags):
        raise FilesetError(f"dataset {dataset!r}: metadata says both is_data and is_signal; collision data is not signal")
    return flags[0], flags[1]


def _check_data_and_simulation(dataset: str, is_data: bool, seen: dict[str, bool]) -> None:
    """Refuse a dataset that mixes collision-data files (no ``genWeight``) and simulation, or
    simulation that is not marked, naming files; ``seen``: path -> has genWeight (readable files)."""
    with_weight = [p for p, has in seen.items() if has]
    without = [p for p, has in seen.items() if not has]
    if with_weight and without:
        raise FilesetError(
            f"dataset {dataset!r} mixes simulation ({Path(with_weight[0]).name} has a genWeight branch) and "
            f"collision data ({Path(without[0]).name} has none): put them in datasets of their own and mark the data "
            "with \"is_data\": true in its metadata")
    if not is_data and without:
        raise FilesetError(
            f"dataset {dataset!r} is treated as simulation (its metadata has no \"is_data\": true) but "
            f"{without[0]} has no genWeight branch: collision data? set \"is_data\": true in its metadata")
    if is_data and with_weight:
        log.warning("dataset %r is marked is_data but %s has a genWeight branch (simulation used as pseudo-data?): "
                    "its events get weight 1", dataset, Path(with_weight[0]).name)


def inspect_fileset(fileset: dict, config: AnalysisConfig, skip_bad_files: bool = False,
                    extra_branches: dict[str, str] | None = None) -> InspectedFileset:
    """Check every file of ``fileset``; split it by format; fill in missing ``sum_genweight``.

    Simulation needs ``xsec_pb`` in its metadata (collision data: ``is_data: true``);
    ``sum_genweight``, when absent, is the sum of ``genWeight`` over the dataset's good files.
    A dataset that mixes data and simulation files (with and without ``genWeight``), or
    collision data not marked ``is_data``, is a :class:`FilesetError` naming a file.
    ``extra_branches`` (branch -> setting): branches that cuts, features or control histograms
    read, checked in every file like the object branches.
    """
    skip_bad_files = skip_bad_files or config.executor.on_bad_files == "skip"
    result = InspectedFileset()
    for dataset, entry in normalise_fileset(fileset).items():
        metadata = dict(entry["metadata"])
        is_data, _ = dataset_flags(dataset, metadata)
        opened: dict[str, tuple[set[str], int] | BadInputFileError] = {}
        for path, tree in entry["files"].items():  # each file is opened once
            try:
                branches, n_events, file_uuid = _open_file(path, tree)
                opened[path] = branches, n_events
                result.entries[path] = n_events, file_uuid
            except BadInputFileError as error:
                opened[path] = error
        seen = {path: "genWeight" in got[0] for path, got in opened.items() if not isinstance(got, BadInputFileError)}
        _check_data_and_simulation(dataset, is_data, seen)
        if not is_data and metadata.get("xsec_pb") is None:
            raise FilesetError(
                f"dataset {dataset!r}: simulation needs 'xsec_pb' in its fileset metadata "
                "(or 'is_data': true for collision data)"
            )
        required = branch_requirements(config, is_data, extra_branches)
        good, n_input, skipped = {}, 0, []
        for path, tree in entry["files"].items():
            try:
                if isinstance(opened[path], BadInputFileError):
                    raise opened[path]
                n_input += _check_file(path, *opened[path], required)
                good[path] = tree
            except BadInputFileError as error:
                if not skip_bad_files:
                    raise
                skipped.append({"dataset": dataset, "file": path, "reason": error.reason, "n_events": error.n_events})
        result.skipped += skipped
        result.n_input[dataset] = n_input
        if skipped:
            result.losses[dataset] = _renormalise(dataset, metadata, good, skipped, n_input, is_data)
        if not good:
            continue
        if not is_data and metadata.get("sum_genweight") is None:
            metadata["sum_genweight"] = _sum_genweight(good)
        for fmt in ("root", "parquet"):
            files = {p: t for p, t in good.items() if file_format(p) == fmt}
            if files:
                getattr(result, fmt)[dataset] = {"files": files, "metadata": metadata}
    return result


def _renormalise(dataset: str, metadata: dict, good: dict, skipped: list[dict], n_read: int, is_data: bool) -> DatasetLoss:
    """Account for a dataset's skipped files and normalise its weights to the files read.

    Sets ``metadata["sum_genweight"]`` to the sum over the good files (simulation) and keeps
    the fileset's value as ``sum_genweight_fileset``.
    """
    known = [s["n_events"] for s in skipped]
    if all(n is not None for n in known):
        events_lost = int(sum(known))
    elif metadata.get("nevents") is not None:
        events_lost = max(int(metadata["nevents"]) - n_read, 0)
    else:
        events_lost = None
    fileset_sumw = metadata.get("sum_genweight")
    read_sumw = None
    if not is_data and good:
        read_sumw = _sum_genweight(good)
        metadata["sum_genweight_fileset"] = fileset_sumw
        metadata["sum_genweight"] = read_sumw
    loss = DatasetLoss(dataset, len(skipped), len(good), n_read, events_lost,
                       None if fileset_sumw is None else float(fileset_sumw), read_sumw, is_data)
    log.warning("bad files skipped: %s", loss.describe())
    return loss


class NoSignalError(UserError, ValueError):
    """The stages asked for need signal, and the analysis has no signal grid point / signal dataset."""
