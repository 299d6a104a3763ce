"""What the batch steps share: the results layout with its work area, the error type, the chunk
steps and the fileset a batch run analyses."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from analysis.core.config import AnalysisConfig
from analysis.core.errors import UserError
from analysis.core.fileset import load_fileset
from analysis.core.layout import ResultsLayout

from ..generate import MANIFEST_NAME, output_directory

#: Steps that take ``--slot`` / ``--slots`` (the chunk nodes) and their merges (``--slots``).
CHUNK_STEPS = ("process", "score")
MERGE_STEPS = ("merge-process", "merge-score")


class BatchError(UserError, RuntimeError):
    """A batch step cannot run: a missing input, an unknown job; the message says which."""


@dataclass(frozen=True)
class BatchPaths(ResultsLayout):
    """Where the batch steps read and write: the pipeline's results layout plus a work area."""

    @property
    def work(self) -> Path:
        return self.outdir / "batch"

    @property
    def plan(self) -> Path:
        return self.work / "plan.json"

    def partials(self, step: str) -> Path:
        """The directory of the chunk outputs of ``process`` or ``score``."""
        return self.work / step


def chunk_node_name(step: str, slot: int) -> str:
    """The DAG node name of chunk node ``slot`` of ``step`` (``process_0003``)."""
    return f"{step}_{slot:04d}"


def analysis_fileset(config: AnalysisConfig) -> dict:
    """The fileset the batch run analyses: the user's ``samples.fileset`` (``jobs.submit --fileset``
    sets it in the frozen config every job reads) or the generated manifest."""
    if config.samples.fileset is not None:
        return load_fileset(config.samples.fileset)
    manifest = output_directory(config) / MANIFEST_NAME
    if not manifest.exists():
        raise BatchError(f"no sample manifest {manifest}: run the generate stage first")
    return load_fileset(manifest)
