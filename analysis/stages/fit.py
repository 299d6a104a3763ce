"""The fit stage: a binned profile-likelihood fit of every grid point with pyhf.

One task per grid point (:func:`analysis.results.inference.fit_point`), on the Dask cluster when
a ``distributed.Client`` is given (a LocalCluster, a remote scheduler or HTCondor workers alike),
inline otherwise; the results are identical. It reads the score histograms and writes

- ``<outdir>/workspaces/<point>.json``: the pyhf workspace of each point (refit it with
  ``pyhf cls <outdir>/workspaces/<point>.json``);
- ``<outdir>/fit.json``: the settings and every point's result (:class:`FitSummary`).

A point whose input is bad or whose fit fails is reported in ``fit.json`` (``status``,
``message`` naming the point, ``failures``) and logged; the other points go on.
"""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path

import hist

from analysis.core.atomic import write_json_atomic
from analysis.core.config import AnalysisConfig
from analysis.core.errors import UserError
from analysis.core.layout import ResultsLayout
from analysis.core.names import point_name
from analysis.results.inference import fit_point
from analysis.results.likelihood import (
    DATA_PROCESS,
    FitInputError,
    FitPoint,
    FitSettings,
    FitSummary,
    point_inputs,
    with_observed,
)
from processors.processor import process_label

log = logging.getLogger(__name__)


class FitConfigError(UserError, ValueError):
    """The ``fit`` section does not fit the histograms or the fileset (the message says why)."""


def fit_inputs_from_fileset(fileset: dict) -> tuple[list[str], dict[str, float]]:
    """``(data process labels, {grid point: relative signal cross-section uncertainty})``.

    Datasets with ``is_data: true`` are collision data (their process label, as the scoring
    processor fills it); signal datasets may carry ``xsec_uncertainty`` (relative, in [0, 1))
    in their metadata. Where several datasets of one point give one, the largest is used.
    """
    data, uncertainties = set(), {}
    for dataset, entry in fileset.items():
        metadata = entry.get("metadata") or {}
        if metadata.get("is_data", False):
            data.add(process_label(dataset, metadata))
        elif metadata.get("is_signal", False) and metadata.get("xsec_uncertainty") is not None:
            value = metadata["xsec_uncertainty"]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise FitConfigError(f"dataset {dataset}: metadata xsec_uncertainty must be a relative "
                                     f"uncertainty in [0, 1), got {value!r}")
            label = process_label(dataset, metadata)
            uncertainties[label] = max(float(value), uncertainties.get(label, 0.0))
    return sorted(data), uncertainties


def _error_record(label: str, m_slepton: float, dm: float, error: BaseException) -> tuple[FitPoint, None]:
    message = f"{label}: {type(error).__name__}: {error}"
    return FitPoint(label, m_slepton, dm, status="error", message=message), None


def _fit_inline(tasks: list, settings: FitSettings) -> list:
    results = []
    for label, m_slepton, dm, inputs in tasks:
        if isinstance(inputs, FitPoint):  # bad input found while reading the histogram
            results.append((inputs, None))
            continue
        try:
            results.append(fit_point(inputs, settings))
        except Exception as error:  # one point's unexpected failure must not stop the others
            log.exception("fit of %s", label)
            results.append(_error_record(label, m_slepton, dm, error))
    return results


def _fit_on_cluster(client, tasks: list, settings: FitSettings) -> list:
    token = uuid.uuid4().hex[:8]
    futures = {label: client.submit(fit_point, inputs, settings, key=f"fit-{label}-{token}", pure=False)
               for label, _, _, inputs in tasks if not isinstance(inputs, FitPoint)}
    results = []
    for label, m_slepton, dm, inputs in tasks:
        if isinstance(inputs, FitPoint):
            results.append((inputs, None))
            continue
        try:
            results.append(futures[label].result())
        except Exception as error:  # a worker lost or a task error: name the point, go on
            log.exception("fit task of %s", label)
            results.append(_error_record(label, m_slepton, dm, error))
    return results


def run_fit(config: AnalysisConfig, score_hist: hist.Hist, points: list[tuple[float, float]], outdir: str | Path,
            client=None, *, data_processes: list[str] | None = None,
            signal_xsec_uncertainties: dict[str, float] | None = None,
            observed: hist.Hist | None = None) -> FitSummary | None:
    """Fit every grid point ``(m_slepton, dm)`` of ``points``; write the workspaces and ``fit.json``.

    ``score_hist``: split x process x point x score (the scoring stage's). Background: every
    process that is neither a grid point nor data. ``data_processes``: labels of collision data
    on the process axis (default: ``"data"`` where present; see :func:`fit_inputs_from_fileset`).
    ``signal_xsec_uncertainties``: ``{point: relative uncertainty}`` overriding
    ``fit.signal_xsec_uncertainty``. ``client``: a ``distributed.Client`` to run one task per
    point on. Returns None (and writes nothing) when ``fit.enabled`` is false.
    """
    if not config.fit.enabled:
        log.info("fit stage skipped: fit.enabled is false")
        return None
    settings = FitSettings.from_config(config)
    if observed is not None:
        clash = sorted(set(observed.axes["process"]) & set(score_hist.axes["process"]))
        if clash:
            raise FitConfigError(f"collision data and simulation share the process label(s) {clash}: give the "
                                 "data datasets a process of their own in the fileset metadata (e.g. \"data\")")
    score_hist = with_observed(score_hist, observed)
    labels = [point_name(m, d) for m, d in points]
    processes = list(score_hist.axes["process"])
    data = [p for p in (data_processes if data_processes is not None else [DATA_PROCESS]) if p in processes]
    background = [p for p in processes if p not in labels and p not in data]
    unknown = sorted(set(dict(settings.process_normalisation_uncertainties)) - set(background))
    if unknown:
        raise FitConfigError(f"fit.process_normalisation_uncertainties names {unknown}, which are not background "
                             f"processes of the score histograms (background: {background})")
    uncertainties = signal_xsec_uncertainties or {}
    split_fraction = config.training.scored_fraction
    tasks = []
    for label, (m_slepton, dm) in zip(labels, points):
        try:
            inputs = point_inputs(score_hist, label, m_slepton, dm, background, data, "test", split_fraction,
                                  uncertainties.get(label))
        except FitInputError as error:
            inputs = FitPoint(label, float(m_slepton), float(dm), status=error.status, message=str(error))
        tasks.append((label, float(m_slepton), float(dm), inputs))
    results = _fit_on_cluster(client, tasks, settings) if client is not None else _fit_inline(tasks, settings)

    layout = ResultsLayout(Path(outdir))
    for record, spec in results:
        path = layout.workspaces / f"{record.label}.json"
        if spec is not None:
            write_json_atomic(path, spec, indent=1, allow_nan=False)
            record.workspace = path.relative_to(layout.outdir).as_posix()
        else:
            path.unlink(missing_ok=True)  # no stale workspace of an earlier run stands for this one
    summary = FitSummary(settings.to_json(), [record for record, _ in results], background, data)
    write_json_atomic(layout.fit, summary.to_json(), indent=1, allow_nan=False)
    ok = sum(point.ok for point in summary.points)
    log.info("fit: %d of %d grid points fitted; workspaces in %s", ok, len(summary.points), layout.workspaces)
    for label, reason in summary.failures.items():
        log.warning("fit of %s: %s", label, reason)
    return summary


def load_fit(path: str | Path) -> FitSummary:
    """The :class:`FitSummary` of a ``fit.json``."""
    return FitSummary.from_json(json.loads(Path(path).read_text()))
