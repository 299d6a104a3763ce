"""The report stage: gather every stage's output from the results directory into plots,
``summary.json`` and ``index.html``."""

from __future__ import annotations

import json
import math
from pathlib import Path

from analysis.core.provenance import collect_provenance
from analysis.results.html import write_report
from analysis.results.plots import make_all_plots, overtraining_ks, roc_aucs
from analysis.results.scan import ScanSummary
from analysis.stages.score import load_histograms


def _model_record(model_dir: Path) -> dict:
    path = model_dir / "model.json"
    return json.loads(path.read_text()) if path.exists() else {}


def build_report(pipeline) -> Path:
    """Write ``plots/*.png``, ``summary.json`` and ``index.html`` for a :class:`~analysis.pipeline.Pipeline`.

    Reads what the earlier stages left in the results directory, so it also works in a
    later session (``--stages report``).
    """
    outdir = pipeline.outdir
    config = pipeline.config
    scores = pipeline.scores or load_histograms(pipeline.layout.histograms)
    control_path = pipeline.layout.control_histograms
    control = load_histograms(control_path).control if control_path.exists() else scores.control
    summary = pipeline.scan_summary or ScanSummary.from_json(json.loads(pipeline.layout.scan.read_text()))
    labels = [point.label for point in summary.points]
    background = [p for p in scores.score.axes["process"] if p not in labels]
    model = _model_record(pipeline.model_dir)
    cutflow_path = pipeline.store / "cutflow.json"
    processing = json.loads(cutflow_path.read_text()) if cutflow_path.exists() else {}

    images = make_all_plots(outdir / "plots", scores.score, control, model.get("history"), summary, background)
    finite = [p for p in summary.points if math.isfinite(p.best_z)]
    report = {
        "analysis": config.name,
        "stages_run": dict(pipeline.timings),
        "events": {
            "input": processing.get("n_input", {}),
            "processed": processing.get("n_processed", {}),
            "selected": processing.get("n_selected", {}),
            "scored": scores.n_scored,
            "skipped_files": processing.get("skipped_files", []),
        },
        "steps": processing.get("steps", []),
        "cutflow": processing.get("cutflow", {}),
        "aucs": {"test (from histograms)": roc_aucs(scores.score, background, labels, split="test"),
                 **{k: v for k, v in model.get("metrics", {}).items() if "auc" in k.lower()}},
        "overtraining_ks": {label: overtraining_ks(scores.score, label, background) for label in labels},
        "best_z": {p.label: p.best_z for p in summary.points},
        "best_point": max(finite, key=lambda p: p.best_z).label if finite else None,
        "scan": summary.to_json(),
        "luminosity_projection": summary.z_vs_luminosity,
        "provenance": collect_provenance(config, {"global": config.seed, "training": model.get("seed", config.seed)},
                                         pipeline.executor),
    }
    return write_report(outdir, report, {caption: str(path) for caption, path in images.items()})
