"""The report stage: gather every stage's output from the results directory into plots,
``summary.json`` and ``index.html``."""

from __future__ import annotations

import json
import math
from pathlib import Path

from analysis.core.config import AnalysisConfig
from analysis.core.layout import ResultsLayout
from analysis.core.provenance import collect_provenance
from analysis.results.control import control_at_thresholds
from analysis.results.html import write_report
from analysis.results.plots import make_all_plots, overtraining_ks, report_aucs
from analysis.results.scan import ScanSummary
from analysis.stages.scan import best_thresholds
from analysis.stages.score import ScoringResult, load_histograms


def _model_record(model_dir: Path) -> dict:
    path = model_dir / "model.json"
    return json.loads(path.read_text()) if path.exists() else {}


def run_report(config: AnalysisConfig, layout: ResultsLayout, *, executor: str, timings: dict[str, float] | None = None,
               scores: ScoringResult | None = None, summary: ScanSummary | None = None) -> Path:
    """Write ``plots/*.png``, ``summary.json`` and ``index.html``; returns the HTML path.

    Reads what the earlier stages left in ``layout`` unless ``scores`` / ``summary`` are given,
    so it also works in a later session (``--stages report``) and as a batch job.
    """
    outdir = layout.outdir
    scores = scores or load_histograms(layout.histograms)
    summary = summary or ScanSummary.from_json(json.loads(layout.scan.read_text()))
    control = control_at_thresholds(scores.control, best_thresholds(summary))
    labels = [point.label for point in summary.points]
    background = [p for p in scores.score.axes["process"] if p not in labels]
    model = _model_record(layout.model_dir)
    cutflow_path = layout.store / "cutflow.json"
    processing = json.loads(cutflow_path.read_text()) if cutflow_path.exists() else {}

    images = make_all_plots(outdir / "plots", scores.score, control, model.get("history"), summary, background)
    finite = [p for p in summary.points if math.isfinite(p.best_z)]
    report = {
        "analysis": config.name,
        "stages_run": dict(timings or {}),
        "events": {
            "input": processing.get("n_input", {}),
            "processed": processing.get("n_processed", {}),
            "selected": processing.get("n_selected", {}),
            "scored": scores.n_scored,
            "skipped_files": processing.get("skipped_files", []),
        },
        "steps": processing.get("steps", []),
        "cutflow": processing.get("cutflow", {}),
        **report_aucs(scores.score, background, labels, model.get("metrics")),
        "overtraining_ks": {label: overtraining_ks(scores.score, label, background) for label in labels},
        "best_z": {p.label: p.best_z for p in summary.points},
        "best_point": max(finite, key=lambda p: p.best_z).label if finite else None,
        "scan": summary.to_json(),
        "luminosity_projection": summary.z_vs_luminosity,
        "provenance": collect_provenance(config, {"global": config.seed, "training": model.get("seed", config.seed)},
                                         executor),
    }
    return write_report(outdir, report, {caption: str(path) for caption, path in images.items()})
