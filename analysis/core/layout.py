"""The results folder: where each stage writes, for the pipeline, the report and the batch jobs alike."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ResultsLayout:
    """Where each stage writes under a results directory (shared with the batch jobs)."""

    outdir: Path

    @property
    def store(self) -> Path:
        return self.outdir / "store"

    @property
    def model_dir(self) -> Path:
        return self.outdir / "model"

    @property
    def histograms(self) -> Path:
        return self.outdir / "histograms.json"

    @property
    def scan(self) -> Path:
        return self.outdir / "scan.json"

    @property
    def fit(self) -> Path:
        return self.outdir / "fit.json"

    @property
    def workspaces(self) -> Path:
        """One pyhf JSON workspace per grid point (``<point>.json``)."""
        return self.outdir / "workspaces"

    @property
    def summary(self) -> Path:
        return self.outdir / "summary.json"
