"""The whole analysis chain as one object, for ``python -m analysis.run`` and interactive sessions.

::

    from distributed import Client
    from analysis.core.config import default_config
    from analysis.pipeline import Pipeline

    client = Client("tcp://scheduler:8786")            # or a LocalCluster's client
    pipeline = Pipeline(default_config(), "results", executor="dask", client=client)
    pipeline.process()                                 # -> ProcessingResult (cutflows)
    pipeline.train()                                   # -> model directory
    scores = pipeline.score()                          # -> ScoringResult (hist.Hist objects)
    summary = pipeline.scan()                          # -> ScanSummary (Z per grid point)
    pipeline.report()                                  # -> results/index.html

Each method is a thin call of one stage function of :mod:`analysis.stages` (the HTCondor batch
jobs of :mod:`jobs.batch` call the same functions). Each stage writes its output under
``outdir`` (:class:`~analysis.core.layout.ResultsLayout`) and a later stage reads it from there
when it was not run in the same session, so ``--stages scan,report`` re-runs just the end.
"""

from __future__ import annotations

import json
import time
from contextlib import nullcontext
from pathlib import Path

from analysis.core.config import AnalysisConfig
from analysis.core.executors import DASK_EXECUTORS, dask_client
from analysis.core.layout import ResultsLayout
from analysis.results.scan import ScanSummary
from analysis.stages.generate import resolve_fileset
from analysis.stages.process import ProcessingResult, run_processing
from analysis.stages.report import run_report
from analysis.stages.scan import run_scan
from analysis.stages.score import (
    ScoringResult,
    load_histograms,
    run_scoring,
    save_histograms,
)
from analysis.stages.train import model_points, run_training

STAGES = ("generate", "process", "train", "score", "scan", "report")


def parse_stages(text: str) -> tuple[str, ...]:
    """Stages from a comma-separated list (``"scan,report"``); unknown names are refused."""
    stages = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [stage for stage in stages if stage not in STAGES]
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}; stages are {','.join(STAGES)}")
    return stages


class Pipeline:
    """The analysis chain: generate -> process -> train -> score -> scan -> report.

    ``executor`` (default: the config's) runs the columnar stages; ``client`` is an existing
    ``distributed.Client`` to use for them (interactive sessions); otherwise ``scheduler`` is
    attached to, or a LocalCluster of ``workers`` is started for each Dask stage.
    """

    def __init__(self, config: AnalysisConfig, outdir: str | Path, *, executor: str | None = None, client=None,
                 workers: int | None = None, scheduler: str | None = None, show_progress: bool = False):
        self.config = config
        self.outdir = Path(outdir)
        self.outdir.mkdir(parents=True, exist_ok=True)
        self.layout = ResultsLayout(self.outdir)
        self.executor = executor or config.executor.name
        self.run_options = {"executor": self.executor, "client": client, "workers": workers, "scheduler": scheduler,
                            "show_progress": show_progress}
        self.timings: dict[str, float] = {}
        self._fileset: dict | None = None
        self.processing: ProcessingResult | None = None
        self.scores: ScoringResult | None = None
        self.scan_summary: ScanSummary | None = None

    # -- paths -------------------------------------------------------------------------
    @property
    def store(self) -> Path:
        return self.layout.store

    @property
    def model_dir(self) -> Path:
        return self.layout.model_dir

    # -- stages ------------------------------------------------------------------------
    def generate(self) -> dict:
        """Generate the config's samples if the cache lacks them (no-op for a user fileset)."""
        client = self.run_options["client"] if self.executor in DASK_EXECUTORS else None
        self._fileset = resolve_fileset(self.config, workers=self.run_options["workers"], client=client)
        return self._fileset

    def fileset(self) -> dict:
        """The fileset of the analysis (generating the samples first if needed)."""
        return self._fileset if self._fileset is not None else self.generate()

    def process(self) -> ProcessingResult:
        """Selection, features, weights and cutflow; writes the feature store."""
        self.processing = run_processing(self.config, self.store, fileset=self.fileset(), **self.run_options)
        return self.processing

    def train(self) -> Path:
        """Train the classifier on the feature store (or take a search's best model); returns
        the model directory."""
        return run_training(self.config, self.layout)

    def points(self) -> list[tuple[float, float]]:
        """The signal grid points the model is evaluated at."""
        return model_points(self.model_dir)

    def score(self) -> ScoringResult:
        """Score every selected event at every grid point, in one pass: the score histograms and
        the control histograms (with a score axis)."""
        self.scores = run_scoring(self.config, self.model_dir, self.fileset(), self.points(), **self.run_options)
        save_histograms(self.layout.histograms, self.scores)
        return self.scores

    def scan(self) -> ScanSummary:
        """Threshold scans per grid point, standard threshold, luminosity projection (from the
        histograms only: nothing is scored again)."""
        scores = self.scores or load_histograms(self.layout.histograms)
        self.scan_summary = run_scan(self.config, scores.score, self.points(), self.layout.scan)
        return self.scan_summary

    def report(self) -> Path:
        """Plots, ``summary.json`` and ``index.html``; returns the HTML path."""
        return run_report(self.config, self.layout, executor=self.executor, timings=self.timings, scores=self.scores,
                          summary=self.scan_summary)

    def run(self, stages=STAGES) -> dict:
        """Run ``stages`` in order (timed); returns the summary of the report stage if it ran."""
        unknown = [stage for stage in stages if stage not in STAGES]
        if unknown:
            raise ValueError(f"unknown stage(s) {unknown}; stages are {', '.join(STAGES)}")
        options = self.run_options
        needs_cluster = self.executor in DASK_EXECUTORS and options["client"] is None
        cluster_config = self.config.cluster if self.executor == "condor" else None  # HTCondorCluster, not LocalCluster
        with dask_client(options["workers"], options["scheduler"], cluster_config=cluster_config) if needs_cluster else nullcontext() as client:
            if needs_cluster:  # one cluster for every stage of this run
                options["client"] = client
            try:
                for stage in STAGES:
                    if stage in stages:
                        start = time.perf_counter()
                        getattr(self, stage)()
                        self.timings[stage] = round(time.perf_counter() - start, 2)
            finally:
                if needs_cluster:
                    options["client"] = None
        summary_path = self.layout.summary
        if "report" not in stages or not summary_path.exists():
            return {}
        summary = json.loads(summary_path.read_text())
        summary["stages_run"] = dict(self.timings)  # now with the report stage's own time
        summary_path.write_text(json.dumps(summary, indent=1, allow_nan=False))
        return summary
