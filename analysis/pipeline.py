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
    fits = pipeline.fit()                              # -> FitSummary (pyhf: Z, CLs limits, workspaces)
    pipeline.report()                                  # -> results/index.html

Each method is a thin call of one stage function of :mod:`analysis.stages` (the HTCondor batch
jobs of :mod:`jobs.batch` call the same functions). ``fileset=`` (``--fileset``) analyses a
user's fileset instead of the config's inputs. :meth:`Pipeline.run` logs first what it runs on
and the selection in force; without signal (collision data, or simulation without
``is_signal``) it runs processing, control histograms and the report and skips training,
scoring and the scan, saying why. Each stage writes its output under
``outdir`` (:class:`~analysis.core.layout.ResultsLayout`) and a later stage reads it from there
when it was not run in the same session, so ``--stages scan,report`` re-runs just the end.
"""

from __future__ import annotations

import json
import logging
import time
from contextlib import nullcontext
from pathlib import Path

from analysis.core.cli import check_interrupt
from analysis.core.config import AnalysisConfig
from analysis.core.executors import DASK_EXECUTORS, dask_client
from analysis.core.fileset import NoSignalError
from analysis.core.layout import ResultsLayout
from analysis.core.lock import folder_lock
from analysis.results.scan import ScanSummary
from analysis.stages.control import log_selection, no_signal_reason
from analysis.stages.fit import FitSummary, fit_inputs_from_fileset, run_fit
from analysis.stages.generate import (
    has_signal,
    log_inputs,
    resolve_fileset,
    with_fileset,
)
from analysis.stages.process import ProcessingResult, run_processing
from analysis.stages.report import run_report
from analysis.stages.scan import run_scan
from analysis.stages.score import (
    ScoringResult,
    load_histograms,
    run_scoring,
    save_histograms,
)
from analysis.stages.train import check_model_is_current, model_points, run_training
from processors import WORKER_MODULES

STAGES = ("generate", "process", "train", "score", "scan", "fit", "report")
#: Stages that need signal: skipped (with a message) when the analysis has none.
SIGNAL_STAGES = ("train", "score", "scan", "fit")

log = logging.getLogger(__name__)


def parse_stages(text: str) -> tuple[str, ...]:
    """Stages from a comma-separated list (``"scan,report"``); unknown names are refused."""
    stages = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [stage for stage in stages if stage not in STAGES]
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}; stages are {','.join(STAGES)}")
    return stages


class Pipeline:
    """The analysis chain: generate -> process -> train -> score -> scan -> fit -> report.

    ``executor`` (default: the config's) runs the columnar stages; ``client`` is an existing
    ``distributed.Client`` to use for them (interactive sessions); otherwise ``scheduler`` is
    attached to, or a LocalCluster of ``workers`` is started for each Dask stage.
    ``allow_stale_model``: score with a model trained on data another selection made (refused
    by default, see :func:`~analysis.stages.train.check_model_is_current`). ``fileset``: a
    fileset JSON to analyse instead of the config's inputs (sets ``samples.fileset`` for every
    stage). :attr:`skipped` maps each stage :meth:`run` left out to the reason.
    """

    def __init__(self, config: AnalysisConfig, outdir: str | Path, *, executor: str | None = None, client=None,
                 workers: int | None = None, scheduler: str | None = None, show_progress: bool = False,
                 allow_stale_model: bool = False, fileset: str | Path | None = None):
        config = with_fileset(config, fileset)
        self.config = config
        self.skipped: dict[str, str] = {}
        self.allow_stale_model = allow_stale_model
        self._trained = False
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
        self.fit_summary: FitSummary | None = None

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
        """Selection, features, weights, cutflow and control histograms; writes the feature store."""
        self.processing = run_processing(self.config, self.store, fileset=self.fileset(), describe=False,
                                         **self.run_options)
        return self.processing

    def train(self) -> Path:
        """Train the classifier on the feature store (or take a search's best model); returns
        the model directory."""
        model_dir = run_training(self.config, self.layout)
        self._trained = True
        return model_dir

    def points(self) -> list[tuple[float, float]]:
        """The signal grid points the model is evaluated at."""
        return model_points(self.model_dir)

    def score(self) -> ScoringResult:
        """Score every selected event at every grid point, in one pass: the score histograms and
        the control histograms (with a score axis)."""
        if not self._trained and not self.allow_stale_model:
            check_model_is_current(self.model_dir, self.config)  # a model of an earlier run: same selection?
        self.scores = run_scoring(self.config, self.model_dir, self.fileset(), self.points(), **self.run_options)
        save_histograms(self.layout.histograms, self.scores)
        return self.scores

    def scan(self) -> ScanSummary:
        """Threshold scans per grid point, standard threshold, luminosity projection (from the
        histograms only: nothing is scored again)."""
        scores = self.scores or load_histograms(self.layout.histograms)
        self.scan_summary = run_scan(self.config, scores.score, self.points(), self.layout.scan)
        return self.scan_summary

    def fit(self) -> FitSummary | None:
        """Binned likelihood fits with pyhf, one task per grid point on the run's Dask cluster
        (inline for the other executors): discovery Z, CLs limits, ``workspaces/<point>.json``
        and ``fit.json``. None when ``fit.enabled`` is false."""
        scores = self.scores or load_histograms(self.layout.histograms)
        data, xsec_uncertainties = fit_inputs_from_fileset(self.fileset())
        client = self.run_options["client"] if self.executor in DASK_EXECUTORS else None
        self.fit_summary = run_fit(self.config, scores.score, self.points(), self.outdir, client=client,
                                   data_processes=data, signal_xsec_uncertainties=xsec_uncertainties,
                                   observed=scores.observed)
        return self.fit_summary

    def report(self) -> Path:
        """Plots, ``summary.json`` and ``index.html``; returns the HTML path."""
        with_scan = False if any(stage in self.skipped for stage in SIGNAL_STAGES) else None
        return run_report(self.config, self.layout, executor=self.executor, timings=self.timings, scores=self.scores,
                          summary=self.scan_summary, with_scan=with_scan, skipped=self.skipped)

    def run(self, stages=STAGES) -> dict:
        """Run ``stages`` in order (timed); returns the summary of the report stage if it ran.

        Holds the lock of the results folder throughout (a second run into it is refused,
        naming this one's PID). Logs first what it runs on and the selection in force, and checks
        before any work whether there is signal: without, the stages that need it are skipped
        with a message (:class:`NoSignalError` if nothing else was asked for).
        """
        unknown = [stage for stage in stages if stage not in STAGES]
        if unknown:
            raise ValueError(f"unknown stage(s) {unknown}; stages are {', '.join(STAGES)}")
        log_inputs(self.config)
        log_selection(self.config)
        if not has_signal(self.config):
            where = ("samples.signal_grid is empty" if self.config.samples.fileset is None
                     else f"fileset {self.config.samples.fileset} has no dataset with is_signal: true")
            self._skip_signal_stages(stages, f"no signal ({where})")
        elif "process" not in stages and (self.store / "cutflow.json").exists():  # the selection of an earlier run
            reason = no_signal_reason(json.loads((self.store / "cutflow.json").read_text()))
            if reason:
                self._skip_signal_stages(stages, f"{reason} ({self.store / 'cutflow.json'})")
        if stages and all(stage in self.skipped for stage in stages):
            raise NoSignalError(f"nothing to run: {', '.join(stages)} need(s) signal, and {self.skipped[stages[0]]}")
        with folder_lock(self.outdir, "results folder"):
            return self._run_locked(stages)

    def _skip_signal_stages(self, stages, reason: str) -> None:
        skipped = [stage for stage in SIGNAL_STAGES if stage in stages and stage not in self.skipped]
        for stage in skipped:
            self.skipped[stage] = reason
        if skipped:
            log.warning("%s: %s skipped; processing, control histograms and the report run", reason,
                        ", ".join(skipped))

    def _run_locked(self, stages) -> dict:
        options = self.run_options
        needs_cluster = self.executor in DASK_EXECUTORS and options["client"] is None
        cluster_config = self.config.cluster if self.executor == "condor" else None  # HTCondorCluster, not LocalCluster
        cluster = dask_client(options["workers"], options["scheduler"], cluster_config=cluster_config,
                              preload=WORKER_MODULES) if needs_cluster else nullcontext()
        with cluster as client:
            if needs_cluster:  # one cluster for every stage of this run
                options["client"] = client
            try:
                for stage in STAGES:
                    if stage in stages and stage not in self.skipped:
                        check_interrupt()  # a Ctrl-C some library swallowed still stops the run here
                        start = time.perf_counter()
                        getattr(self, stage)()
                        self.timings[stage] = round(time.perf_counter() - start, 2)
                        if stage == "process" and not self.processing.signal_selected:
                            self._skip_signal_stages(stages, "the selection kept no signal event")
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
