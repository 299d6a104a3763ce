"""The report stage: gather every stage's output from the results directory into plots,
``summary.json`` and ``index.html``.

Always: the inputs, the cutflow and the object cutflow, and the control histograms after the
preselection (data over the stacked simulation with a ratio panel where both are present,
:mod:`analysis.results.plots.datamc`), with their yields, means and peaks. With signal: the
classifier and scan results as well. Without (a data-only run, or the signal stages skipped),
those parts are left out and the summary says why; scan outputs of an earlier run in the same
folder are not picked up (the store's ``cutflow.json`` says whether this selection had signal).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

from analysis.core.config import AnalysisConfig
from analysis.core.layout import ResultsLayout
from analysis.core.provenance import collect_provenance
from analysis.results.baseline_plots import make_baseline_plots
from analysis.results.control import control_at_thresholds
from analysis.results.fit_plots import make_fit_plots
from analysis.results.html import write_report
from analysis.results.plots import (
    control_statistics,
    make_all_plots,
    overtraining_ks,
    plot_data_mc_all,
    report_aucs,
)
from analysis.results.scan import ScanSummary
from analysis.stages.control import CONTROL_FILE, load_control, no_signal_reason
from analysis.stages.fit import load_fit
from analysis.stages.scan import best_thresholds
from analysis.stages.score import ScoringResult, load_histograms

log = logging.getLogger(__name__)


def _model_record(model_dir: Path) -> dict:
    path = model_dir / "model.json"
    return json.loads(path.read_text()) if path.exists() else {}


def scan_results_apply(layout: ResultsLayout, processing: dict) -> tuple[bool, str]:
    """Whether the score histograms and the scan in ``layout`` belong to this selection, and
    if not why: its cutflow must have selected signal events, and both files must exist."""
    reason = no_signal_reason(processing)
    if reason:
        return False, reason
    missing = [path.name for path in (layout.histograms, layout.scan) if not path.exists()]
    if missing:
        return False, f"no {' or '.join(missing)} in {layout.outdir} (the score and scan stages did not run)"
    return True, ""


def run_report(config: AnalysisConfig, layout: ResultsLayout, *, executor: str, timings: dict[str, float] | None = None,
               scores: ScoringResult | None = None, summary: ScanSummary | None = None, with_scan: bool | None = None,
               skipped: dict[str, str] | None = None) -> Path:
    """Write ``plots/*.png``, ``summary.json`` and ``index.html``; returns the HTML path.

    Reads what the earlier stages left in ``layout`` unless ``scores`` / ``summary`` are given,
    so it also works in a later session (``--stages report``) and as a batch job. ``with_scan``:
    include the classifier and scan results (None: when :func:`scan_results_apply`);
    ``skipped``: stage -> why it was skipped, recorded in the summary.
    """
    outdir = layout.outdir
    cutflow_path = layout.store / "cutflow.json"
    processing = json.loads(cutflow_path.read_text()) if cutflow_path.exists() else {}
    why_not = "the signal stages were skipped"
    if with_scan is None:
        with_scan, why_not = (True, "") if scores is not None and summary is not None else scan_results_apply(layout, processing)
    report = {
        "analysis": config.name,
        "stages_run": dict(timings or {}),
        "events": {
            "input": processing.get("n_input", {}),
            "processed": processing.get("n_processed", {}),
            "selected": processing.get("n_selected", {}),
            "skipped_files": processing.get("skipped_files", []),
            "bad_files": [loss["summary"] for loss in processing.get("losses", {}).values()],  # in plain words
        },
        "datasets": processing.get("datasets", {}),
        "steps": processing.get("steps", []),
        "cutflow": processing.get("cutflow", {}),
        "object_cutflow": processing.get("object_cutflow", {}),
    }
    images: dict[str, Path] = {}
    if with_scan:
        images.update(_scan_part(config, layout, report, scores, summary, executor))
        images.update(_fit_part(layout, report))
    else:
        report["skipped"] = dict(skipped or {}) or {"train, score, scan": why_not}
        report["provenance"] = collect_provenance(config, {"global": config.seed}, executor)
        log.info("report without classifier and scan results: %s", "; ".join(dict.fromkeys(report["skipped"].values())))
    images.update(_control_part(config, layout, report))
    return write_report(outdir, report, {caption: str(path) for caption, path in images.items()})


def _control_part(config: AnalysisConfig, layout: ResultsLayout, report: dict) -> dict[str, Path]:
    """The selection stage's control histograms: data/MC figures and their numbers."""
    control = load_control(layout.store / CONTROL_FILE)
    if control is None:
        log.warning("no %s in %s: the report has no control histograms after the preselection", CONTROL_FILE,
                    layout.store)
        return {}
    paths = plot_data_mc_all(control.histograms, layout.outdir / "plots", data=control.data,
                             simulation=control.simulation, signal=control.signal, specs=control.specs,
                             normalise_mc_to_data=config.control.normalise_mc_to_data)
    report["control"] = {name: control_statistics(h, control.data, control.simulation, control.signal)
                         for name, h in control.histograms.items()}
    kind = " / ".join(word for word, present in (("data", control.data), ("simulation", control.simulation)) if present)
    return {f"{name} after the preselection ({kind})": path for name, path in paths.items()}


def _fit_part(layout: ResultsLayout, report: dict) -> dict[str, Path]:
    """The likelihood fits of the fit stage (``fit.json``): the table, Brazil bands and exclusion
    contour. Left out, with the reason, when the fit did not run or predates the histograms."""
    if not layout.fit.exists():
        return {}
    if layout.histograms.exists() and layout.fit.stat().st_mtime < layout.histograms.stat().st_mtime:
        report["fit_left_out"] = f"{layout.fit.name} predates {layout.histograms.name}: rerun the fit stage"
        log.warning("report without the likelihood fits: %s", report["fit_left_out"])
        return {}
    fit = load_fit(layout.fit)
    report["fit"] = fit.report()
    return make_fit_plots(layout.outdir / "plots", fit)


def _scan_part(config: AnalysisConfig, layout: ResultsLayout, report: dict, scores: ScoringResult | None,
               summary: ScanSummary | None, executor: str) -> dict[str, Path]:
    """The classifier and scan results: score plots, AUCs, overtraining, Z per point."""
    scores = scores or load_histograms(layout.histograms)
    summary = summary or ScanSummary.from_json(json.loads(layout.scan.read_text()))
    control = control_at_thresholds(scores.control, best_thresholds(summary))
    labels = [point.label for point in summary.points]
    background = [p for p in scores.score.axes["process"] if p not in labels]
    model = _model_record(layout.model_dir)
    images = make_all_plots(layout.outdir / "plots", scores.score, control, model.get("history"), summary, background)
    baseline_images, baseline = make_baseline_plots(layout.model_dir, layout.outdir / "plots", config.scan)  # trees, if trained
    images.update(baseline_images)
    finite = [p for p in summary.points if math.isfinite(p.best_z)]
    report["events"]["scored"] = scores.n_scored
    report.update({
        **report_aucs(scores.score, background, labels, model.get("metrics")),
        "overtraining_ks": {label: overtraining_ks(scores.score, label, background) for label in labels},
        "cross_training": model.get("cross_training"),  # per-fold train and test AUC (None: one network)
        "best_z": {p.label: p.best_z for p in summary.points},
        "best_point": max(finite, key=lambda p: p.best_z).label if finite else None,
        "scan": summary.to_json(),
        "luminosity_projection": summary.z_vs_luminosity,
        "provenance": collect_provenance(config, {"global": config.seed, "training": model.get("seed", config.seed)},
                                         executor),
        **baseline,
    })
    return images
