"""The generate stage: the fileset an analysis runs on, and what it holds.

Either the user's own fileset (``samples.fileset``, or ``--fileset`` on the commands, which sets
it), or bsmscan's built-in samples, produced with Pythia 8 by :mod:`jobs.generate` when the
cache lacks them. :func:`describe_inputs` says which, before anything runs (every run logs it
first), and :func:`fileset_kinds` what the datasets are: collision data, simulation, signal.
"""

from __future__ import annotations

import logging
from pathlib import Path

from analysis.core.config import AnalysisConfig
from analysis.core.fileset import dataset_flags, load_fileset
from jobs.generate import MANIFEST_NAME, ensure_samples, output_directory

log = logging.getLogger(__name__)


def with_fileset(config: AnalysisConfig, fileset: str | Path | None) -> AnalysisConfig:
    """``config`` analysing the fileset JSON ``fileset`` (``--fileset``) instead of its own
    inputs; unchanged when ``fileset`` is None. Every stage reads ``samples.fileset``."""
    if fileset is None:
        return config
    samples = config.samples.model_copy(update={"fileset": Path(fileset).expanduser().resolve()})
    return config.model_copy(update={"samples": samples})


def resolve_fileset(config: AnalysisConfig, **generate_options) -> dict:
    """The fileset of the analysis: the user's ``samples.fileset`` or the generated samples."""
    if config.samples.fileset is not None:
        return load_fileset(config.samples.fileset)
    return load_fileset(ensure_samples(config, **generate_options))


def fileset_kinds(fileset: dict) -> dict[str, tuple[bool, bool]]:
    """dataset -> ``(is_data, is_signal)`` of a (normalised) fileset; bad flags are a
    :class:`~analysis.core.fileset.FilesetError` naming the dataset."""
    return {name: dataset_flags(name, entry.get("metadata", {})) for name, entry in fileset.items()}


def has_signal(config: AnalysisConfig, fileset: dict | None = None) -> bool:
    """Whether the analysis has signal to train on and scan: a signal grid point (built-in
    samples) or a dataset with ``is_signal: true`` (a user fileset)."""
    if config.samples.fileset is None and fileset is None:
        return bool(config.samples.signal_grid)
    fileset = fileset if fileset is not None else load_fileset(config.samples.fileset)
    return any(is_signal for _, is_signal in fileset_kinds(fileset).values())


def describe_inputs(config: AnalysisConfig) -> list[str]:
    """What the run analyses, one line each: the built-in samples and their cache folder, or the
    user's fileset and its datasets (kind, process, files)."""
    samples = config.samples
    if samples.fileset is None:
        folder = output_directory(config)
        state = "cached" if (folder / MANIFEST_NAME).exists() else "generated first (not in the cache yet)"
        points = ", ".join(point.name for point in samples.signal_grid) or "none"
        return [f"inputs: bsmscan's built-in Pythia 8 samples, {state}, in {folder}",
                f"inputs: signal grid points: {points}; backgrounds: {', '.join(samples.backgrounds) or 'none'}"]
    fileset = load_fileset(samples.fileset)
    lines = [f"inputs: the user's fileset {samples.fileset} ({len(fileset)} dataset(s))"]
    for name, entry in fileset.items():
        is_data, is_signal = dataset_flags(name, entry["metadata"])
        kind = "collision data" if is_data else "signal simulation" if is_signal else "simulation"
        metadata = entry["metadata"]
        xsec = f", xsec {metadata['xsec_pb']:g} pb" if not is_data and metadata.get("xsec_pb") is not None else ""
        lines.append(f"inputs: dataset {name}: {kind}, process {metadata.get('process', name)}{xsec}, "
                     f"{len(entry['files'])} file(s)")
    return lines


def log_inputs(config: AnalysisConfig) -> None:
    """Log :func:`describe_inputs` at INFO level."""
    for line in describe_inputs(config):
        log.info("%s", line)
