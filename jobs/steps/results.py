"""The steps after the selection: ``train``, ``score`` (a chunk node), ``merge-score``, ``scan``,
``fit`` and ``report``. The signal steps do nothing (and say why) when the selection kept no signal."""

from __future__ import annotations

import json

import hist
import uhi.io.json as uhi_json

from analysis.core.config import AnalysisConfig
from analysis.stages.control import no_signal_reason
from analysis.stages.fit import fit_inputs_from_fileset, run_fit
from analysis.stages.report import run_report
from analysis.stages.scan import run_scan
from analysis.stages.score import (
    load_histograms,
    merge_scoring,
    save_histograms,
    scoring_processor,
)
from analysis.stages.train import model_points, run_training

from ..plan import collect_partials, read_plan
from .chunks import run_node_chunks, slot_namer
from .common import (
    BatchError,
    BatchPaths,
    analysis_fileset,
)


def run_score(config: AnalysisConfig, paths: BatchPaths, slot: int, slots: int) -> int:
    """Score this node's chunks and write their histograms."""
    plan = read_plan(paths.plan)
    scorer = scoring_processor(config, paths.model_dir, model_points(paths.model_dir), plan.all_datasets())
    return run_node_chunks(scorer, plan, slot, slots, paths.partials("score"), default=uhi_json.default)


def run_merge_score(config: AnalysisConfig, paths: BatchPaths, slots: int | None = None):
    """The stage's :func:`~analysis.stages.score.merge_scoring` over the chunk nodes' outputs;
    writes histograms.json."""
    plan = read_plan(paths.plan)
    raw = collect_partials(paths.partials("score"), plan, node_name=slot_namer(plan, "score", slots),
                           object_hook=uhi_json.object_hook)
    chunks = {key: {"score": hist.Hist(value["score"]), "observed": hist.Hist(value["observed"]),
                    "control": {name: hist.Hist(h) for name, h in value["control"].items()},
                    "n_events": value["n_events"], "n_scored": value["n_scored"]} for key, value in raw.items()}
    scorer = scoring_processor(config, paths.model_dir, model_points(paths.model_dir), plan.all_datasets())
    result = merge_scoring(scorer, chunks, plan.n_input)
    save_histograms(paths.histograms, result)
    return result


def run_batch_fit(config: AnalysisConfig, paths: BatchPaths):
    """The fit stage on histograms.json, every grid point in this one job (as the Pipeline's
    ``fit`` without a Dask cluster); writes the workspaces and fit.json."""
    data, xsec_uncertainties = fit_inputs_from_fileset(analysis_fileset(config))
    scores = load_histograms(paths.histograms)
    return run_fit(config, scores.score, model_points(paths.model_dir), paths.outdir, data_processes=data,
                   signal_xsec_uncertainties=xsec_uncertainties, observed=scores.observed)


def run_batch_scan(config: AnalysisConfig, paths: BatchPaths):
    """The scan stage on histograms.json; writes scan.json."""
    return run_scan(config, load_histograms(paths.histograms).score, model_points(paths.model_dir), paths.scan)


#: Steps that need signal: they do nothing (and say why) when the selection has none.
SIGNAL_STEPS = ("train", "score", "merge-score", "scan", "fit")


def signal_missing(paths: BatchPaths) -> str | None:
    """Why the signal steps have nothing to do (no signal dataset, no selected signal event),
    from the merged ``store/cutflow.json``; None when there is signal or no cutflow yet."""
    cutflow = paths.store / "cutflow.json"
    return no_signal_reason(json.loads(cutflow.read_text())) if cutflow.exists() else None


def run_step(step: str, config: AnalysisConfig, paths: BatchPaths, *, slot: int | None = None,
             slots: int | None = None, **_) -> str:
    """Run one of the steps after the selection; returns the one-line summary (a signal step
    without signal does nothing and says so: the report then shows the selection and control
    histograms)."""
    if step in SIGNAL_STEPS:
        reason = signal_missing(paths)
        if reason:
            return f"{step} skipped: {reason}"
    if step == "score":
        if slot is None or not slots:
            raise BatchError("score needs --slot and --slots")
        return f"score node {slot} of {slots}: {run_score(config, paths, slot, slots)} chunk(s)"
    if step == "merge-score":
        run_merge_score(config, paths, slots)
        return f"histograms {paths.histograms}"
    if step == "train":
        return f"model {run_training(config, paths)}"
    if step == "scan":
        run_batch_scan(config, paths)
        return f"scan {paths.scan}"
    if step == "fit":
        summary = run_batch_fit(config, paths)
        return f"fit {paths.outdir / 'fit.json'}" if summary is not None else "fit: disabled (fit.enabled: false)"
    return f"report {run_report(config, paths, executor='condor-dag')}"
