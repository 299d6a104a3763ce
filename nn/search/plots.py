"""Plots of a hyperparameter search: objective vs each hyperparameter, 2-D heat maps of pairs,
and a self-contained parallel-coordinates HTML page (inline SVG + a few lines of inline JS, no
external resources).

Figures use an Agg canvas (no pyplot state), as :mod:`analysis.results.plots` does.
"""

from __future__ import annotations

import html
import itertools
import json
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["parallel_coordinates_html", "write_search_plots"]


def _ok(records: Sequence[dict]) -> list[dict]:
    unique = {r["key"]: r for r in records if r.get("status") == "ok"}
    return list(unique.values())


def _is_numeric(values: Sequence[Any]) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


def _log_scale(values: Sequence[float]) -> bool:
    positive = [v for v in values if v > 0]
    return len(positive) == len(values) and len(values) > 1 and max(positive) / min(positive) > 50


def _axis_codes(values: Sequence[Any], bins: int = 6) -> tuple[np.ndarray, list[str]]:
    """Bin index per value and the bin labels (categories or numeric bins, log where wide)."""
    distinct = sorted(set(values), key=lambda v: (str(type(v)), v))
    if not _is_numeric(values) or len(distinct) <= bins:
        index = {v: i for i, v in enumerate(distinct)}
        return np.array([index[v] for v in values]), [_label(v) for v in distinct]
    x = np.asarray(values, dtype=float)
    log = _log_scale(list(x))
    t = np.log10(x) if log else x
    edges = np.linspace(t.min(), t.max(), bins + 1)
    codes = np.clip(np.digitize(t, edges[1:-1]), 0, bins - 1)
    centres = 0.5 * (edges[1:] + edges[:-1])
    return codes, [_label(10**c if log else c) for c in centres]


def _label(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _save(figure: Figure, path: Path) -> str:
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=100)
    return str(path)


def objective_vs_parameter(records: Sequence[dict], name: str, objective: str) -> Figure:
    """Objective of every trial vs one hyperparameter, with the mean per value / bin (averaged
    over the other hyperparameters)."""
    ok = _ok(records)
    values = [r["params"][name] for r in ok]
    y = np.array([r["objective"] for r in ok])
    figure = Figure(figsize=(5, 3.6), layout="constrained")
    ax = figure.add_subplot()
    codes, labels = _axis_codes(values)
    jitter = np.random.default_rng(0).uniform(-0.15, 0.15, len(codes))
    ax.scatter(codes + jitter, y, s=14, alpha=0.6, label="trials")
    means = [y[codes == i].mean() if np.any(codes == i) else np.nan for i in range(len(labels))]
    ax.plot(range(len(labels)), means, "o-", color="C3", label="mean")
    ax.set_xticks(range(len(labels)), labels, rotation=30 if len(labels) > 4 else 0)
    ax.set_xlabel(name)
    ax.set_ylabel(objective)
    ax.legend(fontsize=8)
    return figure


def pair_heatmap(records: Sequence[dict], first: str, second: str, objective: str) -> Figure:
    """Mean objective in bins of two hyperparameters (empty cells blank)."""
    ok = _ok(records)
    cx, lx = _axis_codes([r["params"][first] for r in ok], bins=5)
    cy, ly = _axis_codes([r["params"][second] for r in ok], bins=5)
    y = np.array([r["objective"] for r in ok])
    total = np.zeros((len(ly), len(lx)))
    count = np.zeros_like(total)
    np.add.at(total, (cy, cx), y)
    np.add.at(count, (cy, cx), 1)
    mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    figure = Figure(figsize=(5, 4), layout="constrained")
    ax = figure.add_subplot()
    image = ax.imshow(np.ma.masked_invalid(mean), origin="lower", aspect="auto", cmap="viridis")
    figure.colorbar(image, ax=ax, label=f"mean {objective}")
    ax.set_xticks(range(len(lx)), lx, rotation=30 if len(lx) > 4 else 0)
    ax.set_yticks(range(len(ly)), ly)
    ax.set_xlabel(first)
    ax.set_ylabel(second)
    return figure


def write_search_plots(records: Sequence[dict], out: str | Path, objective: str = "objective") -> dict[str, str]:
    """Write ``plots/objective_vs_<name>.png``, ``plots/heatmap_<a>_vs_<b>.png`` and
    ``parallel.html`` to ``out``; returns ``{label: path}``. Nothing is plotted without a
    successful trial."""
    out = Path(out)
    ok = _ok(records)
    files: dict[str, str] = {}
    (out / "parallel.html").write_text(parallel_coordinates_html(records, objective))
    files["parallel"] = str(out / "parallel.html")
    if not ok:
        return files
    plots = out / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    names = list(ok[0]["params"])
    for name in names:
        files[f"objective_vs_{name}"] = _save(objective_vs_parameter(ok, name, objective), plots / f"objective_vs_{name}.png")
    for first, second in itertools.combinations(names, 2):
        label = f"heatmap_{first}_vs_{second}"
        files[label] = _save(pair_heatmap(ok, first, second, objective), plots / f"{label}.png")
    return files


# ------------------------------------------------------------------ parallel coordinates


def _colour(t: float) -> str:
    """A viridis-like colour for t in [0, 1]."""
    stops = [(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)]
    t = min(max(t, 0.0), 1.0) * (len(stops) - 1)
    i = min(int(t), len(stops) - 2)
    f = t - i
    r, g, b = (round(stops[i][k] + f * (stops[i + 1][k] - stops[i][k])) for k in range(3))
    return f"#{r:02x}{g:02x}{b:02x}"


def parallel_coordinates_html(records: Sequence[dict], objective: str = "objective") -> str:
    """A self-contained HTML page: one vertical axis per hyperparameter plus the objective, one
    polyline per successful trial coloured by the objective; hovering a line shows the trial,
    a slider hides trials below an objective threshold; a table lists every trial (failed ones
    with their error)."""
    ok = sorted(_ok(records), key=lambda r: r["objective"])
    names = list(ok[0]["params"]) if ok else []
    axes = names + ["epochs", objective]
    width, height, top, bottom, left = max(640, 130 * len(axes)), 420, 30, 60, 60
    xs = [left + i * (width - 2 * left) / max(1, len(axes) - 1) for i in range(len(axes))]
    columns: dict[str, list] = {name: [r["params"][name] for r in ok] for name in names}
    columns["epochs"] = [r["epochs"] for r in ok]
    columns[objective] = [r["objective"] for r in ok]
    positions, ticks = {}, {}
    for axis in axes:
        values = columns[axis]
        if _is_numeric(values) and len(set(values)) > 1:
            x = np.asarray(values, dtype=float)
            log = _log_scale(list(x))
            t = np.log10(x) if log else x
            lo, hi = float(t.min()), float(t.max())
            positions[axis] = list((t - lo) / (hi - lo))
            ticks[axis] = [(k / 4, _label(10 ** (lo + k / 4 * (hi - lo)) if log else lo + k / 4 * (hi - lo))) for k in range(5)]
        else:
            distinct = sorted(set(values), key=lambda v: (str(type(v)), v))
            slot = {v: (i + 0.5) / len(distinct) for i, v in enumerate(distinct)}
            positions[axis] = [slot[v] for v in values]
            ticks[axis] = [(slot[v], _label(v)) for v in distinct]
    objective_values = np.asarray(columns[objective], dtype=float) if ok else np.zeros(0)
    lo, hi = (float(objective_values.min()), float(objective_values.max())) if ok else (0.0, 1.0)
    span = (hi - lo) or 1.0

    def y_of(fraction: float) -> float:
        return top + (1.0 - fraction) * (height - top - bottom)

    parts = [f'<svg id="pc" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">']
    for i, r in enumerate(ok):
        points = " ".join(f"{xs[a]:.1f},{y_of(positions[axis][i]):.1f}" for a, axis in enumerate(axes))
        title = html.escape(f"trial {r['index']} ({r['epochs']} epochs): {objective} {r['objective']:.5g}; " + json.dumps(r["params"]))
        colour = _colour((r["objective"] - lo) / span)
        parts.append(f'<polyline class="trial" data-objective="{r["objective"]:.9g}" points="{points}" fill="none" stroke="{colour}" stroke-width="1.6" stroke-opacity="0.8"><title>{title}</title></polyline>')
    for a, axis in enumerate(axes):
        parts.append(f'<line x1="{xs[a]:.1f}" y1="{top}" x2="{xs[a]:.1f}" y2="{height - bottom}" stroke="#333"/>')
        parts.append(f'<text x="{xs[a]:.1f}" y="{height - bottom + 30}" text-anchor="middle" font-weight="bold">{html.escape(axis)}</text>')
        for fraction, label in ticks[axis]:
            parts.append(f'<text x="{xs[a] + 4:.1f}" y="{y_of(fraction) + 4:.1f}" fill="#333">{html.escape(label)}</text>')
    parts.append("</svg>")
    rows = []
    for r in sorted(records, key=lambda r: (r.get("status") != "ok", -r.get("score", -math.inf) if r.get("status") == "ok" else 0, r["index"])):
        if r.get("status") == "ok":
            value = f"{r['objective']:.5g}"
        else:
            value = html.escape(f"{r.get('status', 'failed')}: " + str(r.get("error", "")).splitlines()[0][:100])
        cells = "".join(f"<td>{html.escape(_label(r['params'].get(n)))}</td>" for n in names)
        rows.append(f"<tr><td>{r['index']}</td><td>{r['epochs']}</td><td>{value}</td>{cells}</tr>")
    header = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    script = (
        "const s=document.getElementById('cut'),o=document.getElementById('cutv');"
        "s.oninput=()=>{const t=parseFloat(s.value);o.textContent=t.toPrecision(4);"
        "document.querySelectorAll('#pc .trial').forEach(l=>{l.style.display=parseFloat(l.dataset.objective)>=t?'':'none';});};"
        "document.querySelectorAll('#pc .trial').forEach(l=>{l.onmouseenter=()=>l.setAttribute('stroke-width','4');"
        "l.onmouseleave=()=>l.setAttribute('stroke-width','1.6');});"
    )
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>bsmscan hyperparameter search</title>"
        "<style>body{font-family:sans-serif;margin:1em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;font-size:12px}</style>"
        f"</head><body><h2>Hyperparameter search: {len(ok)} successful of {len(records)} trial(s)</h2>"
        f"<p>Show trials with {html.escape(objective)} &ge; <input id='cut' type='range' min='{lo}' max='{hi}' step='{span / 200}' value='{lo}'> <span id='cutv'>{lo:.4g}</span>"
        " (hover a line for its hyperparameters)</p>"
        + "".join(parts)
        + f"<h3>All trials</h3><table><tr><th>trial</th><th>epochs</th><th>{html.escape(objective)}</th>{header}</tr>{''.join(rows)}</table>"
        + f"<script>{script}</script></body></html>"
    )
