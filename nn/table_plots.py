"""Diagnostic plots of a table training (``DIR/plots/`` of ``python -m nn.train --table``).

The report's figures for a plain table, drawn from per-row scores (the physics chain draws them
from score histograms, :mod:`analysis.results.plots`, which :mod:`nn` does not import):

* ``roc.png`` -- weighted ROC curves of the network and the tree baseline on the test split,
  AUCs in the legend;
* ``scores.png`` -- signal and background score distributions, training split (filled) against
  test split (points), one panel per classifier, with the weighted KS distance;
* ``training.png`` -- loss and ROC AUC per epoch (training and validation), and the baseline's
  log-loss per tree;
* ``confusion.png`` -- the weighted confusion matrix at score 0.5 on the test split, rows
  normalised, one panel per classifier.

Weights are the balanced training weights (each class the same total), as in every metric of
the training.  Figures use an Agg canvas, never pyplot, in mplhep's ATLAS style.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import matplotlib
import mplhep
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from analysis.core.metrics import binned_ks_statistic
from nn.metrics import weighted_roc_auc, weighted_roc_curve

__all__ = ["write_table_plots"]

_EDGES = np.linspace(0.0, 1.0, 41)
_COLOURS = {"signal": "tab:red", "background": "tab:blue"}


@contextlib.contextmanager
def _style() -> Iterator[None]:
    with matplotlib.style.context(mplhep.style.ATLAS):
        yield


def _figure(ncols: int, width: float = 7.0, height: float = 5.5):
    figure = Figure(figsize=(width * ncols, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure, list(figure.subplots(1, ncols, squeeze=False)[0])


def _save(figure: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100, format="png")
    figure.clear()
    return path


def _roc(path: Path, scores: dict[str, np.ndarray], is_signal: np.ndarray, weight: np.ndarray) -> Path:
    with _style():
        figure, (ax,) = _figure(1)
        for name, score in scores.items():
            fpr, tpr, _ = weighted_roc_curve(score, is_signal, weight)
            ax.plot(fpr, tpr, label=f"{name} (AUC = {weighted_roc_auc(score, is_signal, weight):.4f})")
        ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="random (AUC = 0.5)")
        ax.set(xlim=(0, 1), ylim=(0, 1.05), xlabel="background efficiency", ylabel="signal efficiency")
        ax.legend(fontsize="small", loc="lower right")
        ax.set_title("test split", loc="right", fontsize="small")
        return _save(figure, path)


def _shape(score: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    counts = np.histogram(score, _EDGES, weights=weight)[0]
    errors = np.sqrt(np.histogram(score, _EDGES, weights=np.square(weight))[0])
    total = counts.sum() * np.diff(_EDGES)
    return (counts / total, errors / total) if counts.sum() > 0 else (counts, errors)


def _distributions(path: Path, splits: dict[str, dict[str, np.ndarray]]) -> Path:
    names = list(splits["test"]["scores"])
    with _style():
        figure, axes = _figure(len(names))
        for ax, name in zip(axes, names):
            for cls, wanted in (("signal", True), ("background", False)):
                train, test = splits["train"], splits["test"]
                tr = train["is_signal"] == wanted
                te = test["is_signal"] == wanted
                train_shape, _ = _shape(train["scores"][name][tr], train["weight"][tr])
                test_shape, test_error = _shape(test["scores"][name][te], test["weight"][te])
                distance = binned_ks_statistic(np.histogram(train["scores"][name][tr], _EDGES, weights=train["weight"][tr])[0],
                                               np.histogram(test["scores"][name][te], _EDGES, weights=test["weight"][te])[0])
                ax.stairs(train_shape, _EDGES, fill=True, alpha=0.35, color=_COLOURS[cls], label=f"{cls} (train)")
                centres = 0.5 * (_EDGES[1:] + _EDGES[:-1])
                shown = test_shape > 0
                ax.errorbar(centres[shown], test_shape[shown], yerr=test_error[shown], fmt="o", markersize=3,
                            color=_COLOURS[cls], label=f"{cls} (test), KS D = {distance:.3f}")
            ax.set(xlabel=f"{name} score", ylabel="normalised to unit area", xlim=(0, 1))
            ax.legend(fontsize="x-small")
        return _save(figure, path)


def _training(path: Path, history: list[dict], trees: list[dict] | None) -> Path:
    panels = 3 if trees else 2
    with _style():
        figure, axes = _figure(panels, width=6.0, height=5.0)
        epochs = [entry["epoch"] for entry in history]
        for ax, metric, title in ((axes[0], "loss", "loss"), (axes[1], "auc", "ROC AUC")):
            for split, name, line in (("train", "training", "-"), ("val", "validation", "--")):
                values = [entry.get(split, {}).get(metric, np.nan) for entry in history]
                ax.plot(epochs, np.asarray(values, dtype=float), line, marker="o", markersize=2, label=name)
            ax.set(xlabel="epoch", ylabel=f"network {title}")
            ax.legend(fontsize="small")
        if trees:
            number = [entry["tree"] for entry in trees]
            axes[2].plot(number, [entry["train_logloss"] for entry in trees], "-", label="training")
            axes[2].plot(number, [entry["val_logloss"] for entry in trees], "--", label="validation")
            axes[2].set(xlabel="trees", ylabel="xgboost log-loss")
            axes[2].legend(fontsize="small")
        return _save(figure, path)


def _confusion(path: Path, scores: dict[str, np.ndarray], is_signal: np.ndarray, weight: np.ndarray, threshold: float = 0.5) -> Path:
    with _style():
        figure, axes = _figure(len(scores), width=6.0)
        for ax, (name, score) in zip(axes, scores.items()):
            passed = score >= threshold
            matrix = np.array([[weight[is_signal & passed].sum(), weight[is_signal & ~passed].sum()],
                               [weight[~is_signal & passed].sum(), weight[~is_signal & ~passed].sum()]])
            fractions = matrix / np.where(matrix.sum(axis=1, keepdims=True) > 0, matrix.sum(axis=1, keepdims=True), 1.0)
            ax.imshow(fractions, cmap="Blues", vmin=0.0, vmax=1.0)
            for (row, column), fraction in np.ndenumerate(fractions):
                ax.text(column, row, f"{fraction:.3f}\n({matrix[row, column]:.4g})", ha="center", va="center",
                        color="white" if fraction > 0.6 else "black")
            ax.set_xticks([0, 1], [f"score $\\geq$ {threshold:g}", f"score < {threshold:g}"])
            ax.set_yticks([0, 1], ["signal", "background"])
            ax.minorticks_off()
            ax.set(xlabel="predicted", ylabel="true")
            ax.set_title(f"{name}, test split", loc="right", fontsize="small")
        return _save(figure, path)


def write_table_plots(outdir: str | Path, result, network: Callable[[np.ndarray], np.ndarray], baseline=None) -> dict[str, Path]:
    """Write the figures of the module doc for a table training into ``outdir``.

    ``result`` is the :class:`~nn.train.TrainingResult`; ``network`` maps standardised inputs to
    P(signal); ``baseline`` is a :class:`~nn.baseline.BaselineResult` or None.  Returns
    ``{caption: path}``.  A split that the training did not make (no test rows) falls back to
    the validation split.
    """
    outdir = Path(outdir)
    data = result.data
    classifiers = {"network": network}
    if baseline is not None:
        classifiers["xgboost"] = baseline.predict_standardised
    evaluated = {}
    for split in ("train", "test" if "test" in data.splits else "val"):
        part = data.splits[split]
        evaluated["train" if split == "train" else "test"] = {
            "scores": {name: np.asarray(score(part.x), dtype=np.float64) for name, score in classifiers.items()},
            "is_signal": part.is_signal, "weight": part.weight.astype(np.float64)}
    test = evaluated["test"]
    return {
        "ROC curves (test split)": _roc(outdir / "roc.png", test["scores"], test["is_signal"], test["weight"]),
        "score distributions, training vs test split": _distributions(outdir / "scores.png", evaluated),
        "training curves": _training(outdir / "training.png", result.fit.history,
                                     baseline.metadata["history"] if baseline is not None else None),
        "confusion matrix at score 0.5 (test split)": _confusion(outdir / "confusion.png", test["scores"],
                                                                 test["is_signal"], test["weight"]),
    }
