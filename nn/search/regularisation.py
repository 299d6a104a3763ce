"""The regularisation study: one fixed network, a sweep of its L1, L2 or L1+L2 constant.

Command line::

    python -m nn.search.regularisation --store DIR --out DIR --penalty l1|l2|l1+l2
                                       --values 0,1e-5,1e-4,1e-3,1e-2 [--config FILE]
                                       [--executor iterative|dask] [--workers N] [--bins 40]

A small front end over the search (:func:`~nn.search.run.run_search`, ``grid`` strategy): one
trial per constant ``c`` (``l1 = c``, ``l2 = c``, or both ``= c``), every other setting from the
config's ``model`` and ``training`` sections and *the same training seed for every constant*, so
the constant is the only difference (and ``c = 0`` is exactly the plain training of the config).
The trials share one compiled training step (the constants are runtime values) and run on the
Dask cluster like any search. Besides the search outputs, ``OUT`` gets ``regularisation.json``
(per constant: validation and test AUC, the weights' sum |W| and sum W^2, and the discriminant
histograms) and ``plots/discriminant.png`` (the validation-split discriminant of signal and
background, training-weighted and normalised, for each constant) and
``plots/auc_vs_constant.png``.
"""

from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path
from typing import Any, Sequence

import jax
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from analysis.core.cli import (
    add_config_option,
    config_from_args,
    positive_int,
    run_command,
)
from analysis.core.config import config_from_dict
from nn.data import read_schema
from nn.model import signal_probability_numpy
from nn.search.run import SearchError, run_search
from nn.search.trial import train_trial
from nn.search.workers import search_client
from nn.trainer import compiled_apply, predict_logits

__all__ = ["PENALTIES", "main", "plot_study", "regularisation_trial", "run_regularisation_study"]

#: The hyperparameters each ``--penalty`` sets to the swept constant.
PENALTIES = {"l1": ("l1",), "l2": ("l2",), "l1+l2": ("l1", "l2")}
STUDY_FILE = "regularisation.json"


def _kernels(params) -> list[np.ndarray]:
    return [np.asarray(leaf) for path, leaf in jax.tree_util.tree_leaves_with_path(params) if path[-1].key == "kernel"]


def regularisation_trial(store: str, config_data: dict, trial: dict, bins: int = 40) -> dict[str, Any]:
    """:func:`~nn.search.trial.run_trial` plus what the study plots: the validation discriminant
    histograms in ``bins`` bins, the test AUC and the weight norms."""
    record, result, config = train_trial(store, config_data, trial)
    if result is None:
        return record
    part = result.data.splits["val"]
    score = signal_probability_numpy(predict_logits(compiled_apply(result.network), result.params, part.x, config.training.eval_batch_size))
    edges = np.linspace(0.0, 1.0, int(bins) + 1)
    histograms = {}
    for name, rows in (("signal", part.is_signal), ("background", ~part.is_signal)):
        counts, _ = np.histogram(np.clip(score[rows], 0.0, 1.0), bins=edges, weights=part.weight[rows])
        histograms[name] = (counts / max(counts.sum(), 1e-300)).tolist()
    kernels = _kernels(result.params)
    record.update(
        discriminant={"edges": edges.tolist(), **histograms},
        test_auc=float(result.metrics["test"]["auc"]) if "test" in result.metrics else None,
        weight_norms={"l1": float(sum(np.abs(k).sum() for k in kernels)), "l2": float(sum((k * k).sum() for k in kernels))},
        _artifact={"params": jax.device_get(result.params), "metadata": result.metadata},
    )
    return record


def run_regularisation_study(config, store: str | Path, out: str | Path, penalty: str, values: Sequence[float],
                             client=None, bins: int = 40) -> dict[str, Any]:
    """Train the config's network once per constant in ``values`` with ``penalty`` (a key of
    :data:`PENALTIES`) set to it; writes the search outputs, ``regularisation.json`` and the plots
    into ``out`` and returns the study's summary (what ``regularisation.json`` holds)."""
    if penalty not in PENALTIES:
        raise SearchError(f"--penalty: unknown penalty {penalty!r}; use {', '.join(PENALTIES)}")
    constants = [float(v) for v in values]
    if not constants or any(not np.isfinite(c) or c < 0 for c in constants) or len(set(constants)) != len(constants):
        raise SearchError(f"--values: the constants must be distinct, finite and >= 0 (got {list(values)})")
    read_schema(store)  # a missing or broken store: one clear error, not one failed trial per constant
    names = PENALTIES[penalty]
    data = config.model_dump(mode="json")
    data["search"].update(strategy="grid", space={name: {"type": "choice", "values": constants} for name in names})
    study_config = config_from_dict(data, "regularisation study")
    configurations = [{name: c for name in names} for c in constants]
    out = Path(out)
    result = run_search(study_config, store, out, client=client, plots=False, configurations=configurations,
                        trial_fn=functools.partial(regularisation_trial, bins=int(bins)))
    by_constant = {r["params"][names[0]]: r for r in result.records}
    failed = [c for c in constants if by_constant[c].get("status") != "ok"]
    if failed:
        raise SearchError(f"the trainings with {penalty} = {failed} failed: {by_constant[failed[0]].get('error')}")
    ordered = [by_constant[c] for c in constants]
    summary = {
        "penalty": penalty,
        "constants": constants,
        "val_auc": [r["metrics"]["val_auc"] for r in ordered],
        "test_auc": [r.get("test_auc") for r in ordered],
        "weight_l1": [r["weight_norms"]["l1"] for r in ordered],
        "weight_l2": [r["weight_norms"]["l2"] for r in ordered],
        "edges": ordered[0]["discriminant"]["edges"],
        "signal": [r["discriminant"]["signal"] for r in ordered],
        "background": [r["discriminant"]["background"] for r in ordered],
        "seed": ordered[0]["seed"],
    }
    (out / STUDY_FILE).write_text(json.dumps(summary, indent=1))
    summary["files"] = plot_study(summary, out / "plots")
    return summary


def plot_study(summary: dict[str, Any], directory: str | Path) -> dict[str, str]:
    """``discriminant.png`` and ``auc_vs_constant.png`` of a study summary into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    constants, edges = summary["constants"], np.asarray(summary["edges"])
    colours = [f"C{i % 10}" for i in range(len(constants))]
    label = summary["penalty"].upper().replace("+", " + ")
    figure = Figure(figsize=(10, 4), layout="constrained")
    for ax, name in zip(figure.subplots(1, 2), ("signal", "background")):
        for c, colour, counts in zip(constants, colours, summary[name]):
            ax.stairs(counts, edges, color=colour, label=f"{label} = {c:g}")
        ax.set_xlabel("discriminant (validation split)")
        ax.set_ylabel("fraction of events (training weights)")
        ax.set_yscale("log")
        ax.set_title(name)
        ax.legend(fontsize=7)
    files = {"discriminant": str(directory / "discriminant.png")}
    FigureCanvasAgg(figure)
    figure.savefig(files["discriminant"], dpi=100)

    figure = Figure(figsize=(5, 3.6), layout="constrained")
    ax = figure.add_subplot()
    ax.plot(constants, summary["val_auc"], "o-", label="validation")
    if all(v is not None for v in summary["test_auc"]):
        ax.plot(constants, summary["test_auc"], "s--", label="test")
    positive = [c for c in constants if c > 0]
    if positive:
        ax.set_xscale("symlog", linthresh=min(positive))
    ax.set_xlabel(f"{label} constant")
    ax.set_ylabel("weighted ROC AUC")
    ax.legend(fontsize=8)
    files["auc"] = str(directory / "auc_vs_constant.png")
    FigureCanvasAgg(figure)
    figure.savefig(files["auc"], dpi=100)
    return files


def _constants(text: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (``python -m nn.search.regularisation``); returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m nn.search.regularisation",
                                     description="Sweep the L1 / L2 constant of one network; plot discriminants and AUC.")
    add_config_option(parser)
    parser.add_argument("--store", required=True, help="feature-store directory")
    parser.add_argument("--out", required=True, help="output directory (rerun with the same one to resume)")
    parser.add_argument("--penalty", required=True, choices=sorted(PENALTIES))
    parser.add_argument("--values", required=True, type=_constants, help="the constants, comma-separated (0 included for reference)")
    parser.add_argument("--bins", type=positive_int, default=40, help="bins of the discriminant histograms")
    parser.add_argument("--executor", choices=["iterative", "dask"], default="dask")
    parser.add_argument("--workers", type=positive_int, help="local Dask workers (default: one per core)")
    parser.add_argument("--scheduler", help="address of a running Dask scheduler")
    args = parser.parse_args(argv)

    def body() -> int:
        config = config_from_args(args)
        if args.executor == "iterative":
            summary = run_regularisation_study(config, args.store, args.out, args.penalty, args.values, bins=args.bins)
        else:
            with search_client(args.workers, args.scheduler) as client:
                summary = run_regularisation_study(config, args.store, args.out, args.penalty, args.values, client, args.bins)
        for c, auc, l2 in zip(summary["constants"], summary["val_auc"], summary["weight_l2"]):
            print(f"{args.penalty} = {c:<10g} validation AUC {auc:.4f}   sum W^2 {l2:.4g}")
        print(f"plots in {Path(args.out) / 'plots'}")
        return 0

    return run_command(body, verbose=args.verbose, name="nn.search.regularisation")


if __name__ == "__main__":
    raise SystemExit(main())
