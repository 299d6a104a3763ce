"""The results directory: ``summary.json`` and one self-contained ``index.html`` with the plots.

:func:`write_report` takes the run's summary dict and the PNGs made by :mod:`analysis.results.plots`.
The summary is free-form JSON, but these keys are shown as tables when present:

* ``name`` -- the page title;
* ``scan`` -- :meth:`analysis.results.scan.ScanSummary.to_json` (or the ``ScanSummary`` itself): a table
  of grid points (m, dm, best threshold, best Z, Z at the standard threshold, Z per luminosity);
* ``aucs`` -- ``{grid point: ROC AUC}`` (also added as a column of the grid-point table);
* ``cutflow`` -- ``{dataset: {"raw": [...], "sumw": [...], ...}}`` with the step names under
  ``steps`` (top level, as in ``ProcessingResult.to_json``, inside ``cutflow``, or per dataset);
* ``provenance`` -- :func:`analysis.core.provenance.collect_provenance`.

Every other key is shown as a generic table. NaN and infinities become ``null`` in the JSON
(and "n/a" on the page), so the file is strict JSON any reader accepts. The page uses no
external CSS, JavaScript or fonts; images are referenced relative to the results directory, and
every piece of text is escaped.
"""

from __future__ import annotations

import dataclasses
import html
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

__all__ = ["render_html", "to_json_safe", "write_report"]

_HANDLED_KEYS = ("name", "scan", "aucs", "cutflow", "steps", "provenance")

_CSS = """
body { font-family: Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; border-bottom: 1px solid #ccc; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { display: inline-block; margin: 0.8em; max-width: 100%; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.9em; color: #444; }
"""


# --------------------------------------------------------------------------- JSON


def to_json_safe(value: Any) -> Any:
    """``value`` as plain JSON types: NaN and +-inf -> None, numpy -> Python, dataclasses ->
    dicts, tuples/sets -> lists, dict keys -> str, anything else -> ``str(value)``."""
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, np.generic):
        return to_json_safe(value.item())
    if isinstance(value, np.ndarray):
        return to_json_safe(value.tolist())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_json_safe(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(key): to_json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_json_safe(item) for item in value]
    return str(value)


# ------------------------------------------------------------------------ helpers


def _text(value: Any) -> str:
    """A scalar as escaped page text (None -> "n/a", floats to 4 significant digits)."""
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return html.escape(f"{value:.4g}")
    return html.escape(str(value))


def _cell(value: Any) -> str:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return f'<td class="num">{_text(value)}</td>' if number else f"<td>{_value_html(value)}</td>"


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(name))}</th>" for name in header)
    body = "".join("<tr>" + "".join(_cell(value) for value in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _value_html(value: Any) -> str:
    """Any JSON value as escaped HTML: dicts as two-column tables, lists inline or as lists."""
    if isinstance(value, Mapping):
        rows = "".join(f"<tr><th>{html.escape(str(k))}</th>{_cell(v)}</tr>" for k, v in value.items())
        return f"<table>{rows}</table>"
    if isinstance(value, list):
        if all(not isinstance(item, (Mapping, list)) for item in value):
            return ", ".join(_text(item) for item in value)
        return "<ol>" + "".join(f"<li>{_value_html(item)}</li>" for item in value) + "</ol>"
    return _text(value)


def _section(title: str, content: str) -> str:
    return f"<section><h2>{html.escape(title)}</h2>{content}</section>"


# ---------------------------------------------------------------------- sections


def _scan_section(scan: Mapping, aucs: Mapping) -> str:
    """Overview numbers and the grid-point table of a ``ScanSummary.to_json()`` dict."""
    overview = {key: scan[key] for key in ("split", "luminosity_fb", "relative_background_uncertainty",
                                           "standard_threshold") if key in scan}
    projection = scan.get("z_vs_luminosity") or {}
    luminosities = sorted({lumi for values in projection.values() for lumi in values}, key=_as_number)
    header = ["grid point", "m(slepton) [GeV]", "dm [GeV]", "best threshold", "best Z", "Z at standard threshold"]
    header += ["ROC AUC"] if aucs else []
    header += [f"Z at {lumi} fb^-1 (standard threshold)" for lumi in luminosities]
    rows = []
    for point in scan.get("points", []):
        label = point.get("label")
        row = [label, point.get("m_slepton"), point.get("dm"), point.get("best_threshold"),
               point.get("best_z"), point.get("z_at_standard")]
        row += [aucs.get(label)] if aucs else []
        row += [projection.get(label, {}).get(lumi) for lumi in luminosities]
        rows.append(row)
    return _section("Significance scan", _value_html(overview) + _table(header, rows))


def _as_number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.inf


def _cutflow_steps(summary: Mapping, cutflow: Mapping, row: Mapping, n_steps: int) -> list[str]:
    for steps in (row.get("steps"), cutflow.get("steps"), summary.get("steps")):
        if isinstance(steps, list) and len(steps) == n_steps:
            return [str(step) for step in steps]
    return [f"step {i + 1}" for i in range(n_steps)]


def _cutflow_section(summary: Mapping, cutflow: Mapping) -> str:
    """One table per dataset: step, raw events, sum of weights (then any other per-step column)."""
    tables = []
    for dataset, row in cutflow.items():
        if not isinstance(row, Mapping):
            continue  # e.g. the "steps" list kept inside the cutflow
        columns = [key for key, values in row.items() if key != "steps" and isinstance(values, list)]
        columns.sort(key=lambda key: ("raw", "sumw").index(key) if key in ("raw", "sumw") else 2)
        n_steps = max((len(row[key]) for key in columns), default=0)
        steps = _cutflow_steps(summary, cutflow, row, n_steps)
        rows = [[step, *(row[key][i] if i < len(row[key]) else None for key in columns)] for i, step in enumerate(steps)]
        tables.append(f"<h3>{html.escape(str(dataset))}</h3>" + _table(["step", *columns], rows))
    return _section("Cutflow", "".join(tables))


def _image_source(outdir: Path, caption: str, path: str | Path) -> str:
    """``path`` relative to ``outdir`` (POSIX form); relative paths are looked up in ``outdir``
    first, then in the working directory. Raises ``FileNotFoundError`` for a missing image."""
    path = Path(path)
    candidates = [path] if path.is_absolute() else [outdir / path, path]
    for candidate in candidates:
        if candidate.is_file():
            return Path(os.path.relpath(candidate.resolve(), outdir.resolve())).as_posix()
    raise FileNotFoundError(f"image {caption!r}: no file at {path}")


def _figures_section(sources: Mapping[str, str]) -> str:
    figures = "".join(
        f'<figure><img src="{html.escape(quote(source))}" alt="{html.escape(caption)}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        for caption, source in sources.items()
    )
    return _section("Figures", figures)


def render_html(summary: Mapping, image_sources: Mapping[str, str]) -> str:
    """The report page for a JSON-safe ``summary`` and ``{caption: path relative to the page}``."""
    title = str(summary.get("name") or "bsmscan results")
    parts = [f"<h1>{html.escape(title)}</h1>", '<p>All numbers: <a href="summary.json">summary.json</a></p>']
    aucs = summary.get("aucs") if isinstance(summary.get("aucs"), Mapping) else {}
    if isinstance(summary.get("scan"), Mapping):
        parts.append(_scan_section(summary["scan"], aucs))
    if aucs:
        parts.append(_section("ROC AUC per grid point", _value_html(aucs)))
    if isinstance(summary.get("cutflow"), Mapping):
        parts.append(_cutflow_section(summary, summary["cutflow"]))
    others = {key: value for key, value in summary.items() if key not in _HANDLED_KEYS}
    if others:
        parts.append(_section("Further results", _value_html(others)))
    if image_sources:
        parts.append(_figures_section(image_sources))
    if "provenance" in summary:
        parts.append(_section("Provenance", _value_html(summary["provenance"])))
    body = "\n".join(parts)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head>\n<body>\n{body}\n</body></html>\n"
    )


def write_report(outdir: str | Path, summary: dict, images: dict[str, str]) -> Path:
    """Write ``summary.json`` and ``index.html`` into ``outdir``; return the page's path.

    ``summary`` is converted with :func:`to_json_safe` (NaN -> null) and written as strict
    JSON. ``images`` maps a caption to a PNG path (absolute, or relative to ``outdir`` or to
    the working directory); the page embeds each with ``<img src>`` relative to ``outdir``.
    Raises ``FileNotFoundError`` if an image is missing.
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    safe = to_json_safe(summary)
    sources = {str(caption): _image_source(outdir, str(caption), path) for caption, path in images.items()}
    (outdir / "summary.json").write_text(json.dumps(safe, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    page = outdir / "index.html"
    page.write_text(render_html(safe, sources), encoding="utf-8")
    return page
