"""The generate stage: the fileset an analysis runs on.

Either the user's own fileset (``samples.fileset`` or ``--fileset``), or bsmscan's built-in
samples, produced with Pythia 8 by :mod:`jobs.generate` when the cache lacks them.
"""

from __future__ import annotations

from analysis.core.config import AnalysisConfig
from analysis.core.fileset import load_fileset
from jobs.generate import ensure_samples


def resolve_fileset(config: AnalysisConfig, **generate_options) -> dict:
    """The fileset of the analysis: the user's ``samples.fileset`` or the generated samples."""
    if config.samples.fileset is not None:
        return load_fileset(config.samples.fileset)
    return load_fileset(ensure_samples(config, **generate_options))
