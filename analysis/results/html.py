"""The results directory: ``summary.json`` and one self-contained ``index.html`` with the plots.

:func:`write_report` takes the run's summary dict and the PNGs made by :mod:`analysis.results.plots`;
the page is the jinja2 template ``templates/index.html.j2`` (shipped as package data), rendered
with autoescaping, so every name and number from the summary is escaped. The summary is
free-form JSON, but these keys are shown as tables when present:

* ``name`` (else ``analysis``, the config's analysis name) -- the page title;
* ``scan`` -- :meth:`analysis.results.scan.ScanSummary.to_json` (or the ``ScanSummary`` itself): a table
  of grid points (m, dm, best threshold, best Z, Z at the standard threshold, ROC AUC of the
  test split, Z per luminosity);
* ``fit`` -- :meth:`analysis.results.likelihood.FitSummary.report`: a table of grid points (bins,
  expected and observed discovery Z, 95% CL upper limits on mu with their bands, Z per luminosity,
  the fit status);
* ``aucs`` -- ``{grid point: ROC AUC}`` of the test split, from the score histograms
  (:func:`analysis.results.plots.report_aucs`); also the AUC column of the grid-point table;
* ``model_aucs`` -- ``{split: {grid point: ROC AUC}}`` from the training's unbinned evaluation,
  shown next to ``aucs``;
* ``cutflow`` -- ``{dataset: {"raw": [...], "sumw": [...], ...}}`` with the step names under
  ``steps`` (top level, as in ``ProcessingResult.to_json``, inside ``cutflow``, or per dataset);
* ``provenance`` -- :func:`analysis.core.provenance.collect_provenance`.

Every other key is shown as a generic table. NaN and infinities become ``null`` in the JSON
(and "n/a" on the page), so the file is strict JSON any reader accepts. The page uses no
external CSS, JavaScript or fonts; images are referenced relative to the results directory.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jinja2
import numpy as np

__all__ = ["render_html", "to_json_safe", "write_report"]

_HANDLED_KEYS = ("scan", "fit", "aucs", "model_aucs", "cutflow", "steps", "provenance")
_TEMPLATES = Path(__file__).resolve().parent / "templates"


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


# ------------------------------------------------------------------- template


def _page_text(value: Any) -> str:
    """A scalar as page text: None -> "n/a", floats to 4 significant digits (escaped by jinja2)."""
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _is_numeric(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_container(value: Any) -> bool:
    return isinstance(value, (Mapping, list))


@functools.cache
def _environment() -> jinja2.Environment:
    """The template environment: autoescaping for ``*.html.j2``, undefined names are errors."""
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_TEMPLATES),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2"), default_for_string=True),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    environment.filters["fmt"] = _page_text
    environment.tests["numeric"] = _is_numeric
    environment.tests["container"] = _is_container
    return environment


# ---------------------------------------------------------------------- sections


def _as_number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.inf


def _scan_table(scan: Mapping, aucs: Mapping) -> dict:
    """Overview numbers and the grid-point table of a ``ScanSummary.to_json()`` dict."""
    overview = {key: scan[key] for key in ("split", "luminosity_fb", "relative_background_uncertainty",
                                           "include_mc_stat_uncertainty", "min_background_ess",
                                           "standard_threshold") if key in scan}
    projection = scan.get("z_vs_luminosity") or {}
    luminosities = sorted({lumi for values in projection.values() for lumi in values}, key=_as_number)
    header = ["grid point", "m(slepton) [GeV]", "dm [GeV]", "best threshold", "best Z", "MC spread of best Z",
              "background ESS at best", "Z at standard threshold", "minimums (yields, background ESS)"]
    header += ["ROC AUC (test split)"] if aucs else []
    header += [f"Z at {lumi} fb^-1 (standard threshold)" for lumi in luminosities]
    rows = []
    for point in scan.get("points", []):
        label = point.get("label")
        row = [label, point.get("m_slepton"), point.get("dm"), point.get("best_threshold"),
               point.get("best_z"), point.get("best_z_mc_error"), point.get("background_ess_at_best"),
               point.get("z_at_standard"), "passed" if point.get("status", "ok") == "ok" else f"FAILED: {point['status']}"]
        row += [aucs.get(label)] if aucs else []
        row += [projection.get(label, {}).get(lumi) for lumi in luminosities]
        rows.append(row)
    return {"overview": overview, "header": header, "rows": rows}


def _fit_table(fit: Mapping) -> dict:
    """Settings and the grid-point table of a ``FitSummary.report()`` dict (the pyhf fits); a
    point without a result shows its status and message, never a number."""
    settings = fit.get("settings") or {}
    overview = {key: settings[key] for key in ("luminosity_fb", "relative_background_uncertainty",
                                               "background_uncertainty", "mc_stat_uncertainty",
                                               "signal_xsec_uncertainty", "min_background_ess", "max_bins",
                                               "backend") if key in settings}
    overview["workspaces"] = "workspaces/<grid point>.json (refit: pyhf cls workspaces/<grid point>.json)"
    luminosities = sorted({lumi for p in fit.get("points", []) for lumi in (p.get("z_vs_luminosity") or {})},
                          key=_as_number)
    header = ["grid point", "m(slepton) [GeV]", "dm [GeV]", "bins", "expected Z", "observed Z",
              "expected mu_up", "-1 sigma", "+1 sigma", "-2 sigma", "+2 sigma", "observed mu_up",
              *(f"expected Z at {lumi} fb^-1" for lumi in luminosities), "fit"]
    rows = []
    for point in fit.get("points", []):
        limits = point.get("expected_limit") or [None] * 5
        projection = point.get("z_vs_luminosity") or {}
        status = "ok" if point.get("status") == "ok" else f"FAILED ({point.get('status')}): {point.get('message')}"
        rows.append([point.get("label"), point.get("m_slepton"), point.get("dm"), point.get("bins"),
                     point.get("expected_z"), point.get("observed_z"), limits[2], limits[1], limits[3], limits[0],
                     limits[4], point.get("observed_limit"), *(projection.get(lumi) for lumi in luminosities), status])
    return {"overview": overview, "header": header, "rows": rows}


def _auc_table(aucs: Mapping, model_aucs: Mapping) -> dict | None:
    """Grid point x (test split from the histograms, then each split of the model's evaluation)."""
    model_aucs = {split: values for split, values in model_aucs.items() if isinstance(values, Mapping)}
    points = list(aucs) + [p for values in model_aucs.values() for p in values if p not in aucs]
    points = list(dict.fromkeys(points))
    if not points:
        return None
    header = ["grid point", *(["test split (score histograms)"] if aucs else []),
              *(f"{split} split (model, unbinned)" for split in model_aucs)]
    rows = [[point, *([aucs.get(point)] if aucs else []), *(values.get(point) for values in model_aucs.values())]
            for point in points]
    return {"header": header, "rows": rows}


def _cutflow_steps(summary: Mapping, cutflow: Mapping, row: Mapping, n_steps: int) -> list[str]:
    for steps in (row.get("steps"), cutflow.get("steps"), summary.get("steps")):
        if isinstance(steps, list) and len(steps) == n_steps:
            return [str(step) for step in steps]
    return [f"step {i + 1}" for i in range(n_steps)]


def _cutflow_tables(summary: Mapping, cutflow: Mapping) -> list[dict]:
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
        tables.append({"name": str(dataset), "header": ["step", *columns], "rows": rows})
    return tables


def _image_source(outdir: Path, caption: str, path: str | Path) -> str:
    """``path`` relative to ``outdir`` (POSIX form); relative paths are looked up in ``outdir``
    first, then in the working directory. Raises ``FileNotFoundError`` for a missing image."""
    path = Path(path)
    candidates = [path] if path.is_absolute() else [outdir / path, path]
    for candidate in candidates:
        if candidate.is_file():
            return Path(os.path.relpath(candidate.resolve(), outdir.resolve())).as_posix()
    raise FileNotFoundError(f"image {caption!r}: no file at {path}")


def render_html(summary: Mapping, image_sources: Mapping[str, str]) -> str:
    """The report page for a JSON-safe ``summary`` and ``{caption: path relative to the page}``."""
    aucs = summary.get("aucs") if isinstance(summary.get("aucs"), Mapping) else {}
    model_aucs = summary.get("model_aucs") if isinstance(summary.get("model_aucs"), Mapping) else {}
    scan = summary.get("scan")
    cutflow = summary.get("cutflow")
    title_key = "name" if summary.get("name") else "analysis" if summary.get("analysis") else None
    handled = (*_HANDLED_KEYS, "name", *(["analysis"] if title_key == "analysis" else []))
    context = {
        "title": str(summary[title_key]) if title_key else "bsmscan results",
        "scan": _scan_table(scan, aucs) if isinstance(scan, Mapping) else None,
        "fit": _fit_table(summary["fit"]) if isinstance(summary.get("fit"), Mapping) and "points" in summary["fit"] else None,
        "aucs": _auc_table(aucs, model_aucs),
        "cutflow": _cutflow_tables(summary, cutflow) if isinstance(cutflow, Mapping) else [],
        "others": {key: value for key, value in summary.items() if key not in handled},
        "figures": [(str(caption), str(source)) for caption, source in image_sources.items()],
        "has_provenance": "provenance" in summary,
        "provenance": summary.get("provenance"),
    }
    return _environment().get_template("index.html.j2").render(**context)


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
