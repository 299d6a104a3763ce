"""The selection steps: ``plan`` (the chunk plan), ``process`` (a chunk node) and ``merge-process``."""

from __future__ import annotations

import hist
import uhi.io.json as uhi_json

from analysis.core.chunking import chunk_size
from analysis.core.config import AnalysisConfig
from analysis.core.fileset import inspect_fileset
from analysis.core.store import clear_store
from analysis.stages.control import log_selection
from analysis.stages.generate import log_inputs
from analysis.stages.process import merge_processing
from processors.processor import SelectionProcessor

from ..plan import build_plan, clear_partials, collect_partials, read_plan, write_plan
from .chunks import run_node_chunks, slot_namer
from .common import (
    CHUNK_STEPS,
    BatchError,
    BatchPaths,
    analysis_fileset,
)


def run_plan(config: AnalysisConfig, paths: BatchPaths, schema: str = "base", skip_bad_files: bool = False):
    """Inspect the fileset, write the chunk plan, and clear the outputs of an earlier run.

    Logs what the run analyses and the selection in force, as the Dask pipeline does."""
    log_inputs(config)
    selection = SelectionProcessor(config, None)
    log_selection(config, selection)
    inspected = inspect_fileset(analysis_fileset(config), config, skip_bad_files,
                                extra_branches=selection.columns.required_branches())
    plan = build_plan(inspected, chunk_size(config, sum(inspected.n_input.values()), "condor"), schema)
    clear_store(paths.store)
    for step in CHUNK_STEPS:
        clear_partials(paths.partials(step))
    write_plan(paths.plan, plan)
    return plan


def run_process(config: AnalysisConfig, paths: BatchPaths, slot: int, slots: int) -> int:
    """Selection of this node's chunks: feature-store parts and one cutflow JSON per chunk."""
    plan = read_plan(paths.plan)
    return run_node_chunks(SelectionProcessor(config, str(paths.store.resolve())), plan, slot, slots,
                       paths.partials("process"), default=uhi_json.default)  # control histograms: uhi JSON


def run_merge_process(config: AnalysisConfig, paths: BatchPaths, slots: int | None = None):
    """The stage's :func:`~analysis.stages.process.merge_processing` over the chunk nodes' outputs."""
    plan = read_plan(paths.plan)
    chunks = collect_partials(paths.partials("process"), plan, node_name=slot_namer(plan, "process", slots),
                              object_hook=uhi_json.object_hook)
    for chunk in chunks.values():
        chunk["control"] = {name: hist.Hist(h) for name, h in (chunk.get("control") or {}).items()}
    return merge_processing(config, chunks, plan.n_input, plan.all_datasets(), plan.skipped, paths.store, "condor-dag")


def run_step(step: str, config: AnalysisConfig, paths: BatchPaths, *, slot: int | None = None,
             slots: int | None = None, **_) -> str:
    """Run ``plan``, ``process`` or ``merge-process``; returns the one-line summary."""
    if step == "plan":
        plan = run_plan(config, paths)
        return f"chunk plan {paths.plan}: {len(plan.chunks)} chunk(s) of {sum(plan.n_input.values())} events"
    if step == "process":
        if slot is None or not slots:
            raise BatchError("process needs --slot and --slots")
        return f"process node {slot} of {slots}: {run_process(config, paths, slot, slots)} chunk(s)"
    result = run_merge_process(config, paths, slots)
    return f"cutflow {paths.store / 'cutflow.json'}: {sum(result.n_selected.values())} selected events"
