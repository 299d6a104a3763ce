"""pyhf inference on one grid point's workspace: discovery significance, CLs, upper limits.

:func:`fit_point` is the task the fit stage runs per grid point (inline or on a Dask worker):
inputs -> :func:`analysis.results.likelihood.prepare_point` (ESS binning, checks) ->
:func:`analysis.results.likelihood.build_spec` -> :func:`load_workspace` (pyhf schema) ->

* expected discovery significance: ``hypotest(0, asimov(mu=1), test_stat="q0")``, Z = Phi^-1(1 - p0)
  (:func:`discovery_significance`); observed with data;
* CLs at mu = 1 with its expected band, exactly as ``pyhf cls workspace.json`` computes it
  (``qtilde``, asymptotics, the CLI's interpolation codes) (:func:`cls_at`);
* the 95% CL upper limit on mu, observed and expected at -2..+2 sigma (:func:`upper_limits`,
  pyhf's TOMS 748 root finding, after checking that the POI range brackets every band);
* Z at every projected luminosity (yields x L / L0, MC-stat sumw2 x (L / L0)^2).

The global pyhf backend is set for the fit and restored afterwards (:func:`pyhf_backend`).
"""

from __future__ import annotations

import contextlib
import logging
import math

import numpy as np
import pyhf
from scipy.stats import norm

from analysis.results.likelihood import (
    MODIFIER_SETTINGS,
    FitInputError,
    FitPoint,
    FitSettings,
    PointInputs,
    build_spec,
    prepare_point,
)

log = logging.getLogger(__name__)

#: CLs of the exclusion (95% CL).
CLS_LEVEL = 0.05
#: Relative tolerance of the upper-limit root finding.
LIMIT_RTOL = 1e-3
#: Exceptions of pyhf and scipy that mean "this fit failed" (anything else is a bug).
_FIT_ERRORS = (ValueError, FloatingPointError, ZeroDivisionError, np.linalg.LinAlgError)


class LimitOutOfRange(ValueError):
    """The POI range does not bracket the CLs = 0.05 crossing of every band."""


@contextlib.contextmanager
def pyhf_backend(name: str = "numpy", max_iterations: int = 100_000):
    """Use pyhf backend ``name`` with a scipy optimizer of ``max_iterations`` inside; restore after."""
    previous = pyhf.get_backend()
    pyhf.set_backend(name, pyhf.optimize.scipy_optimizer(maxiter=max_iterations))
    try:
        yield
    finally:
        pyhf.set_backend(*previous)


def load_workspace(spec: dict, label: str):
    """``(pyhf.Workspace, pyhf.Model)`` of ``spec``; a schema or model error becomes a
    :class:`FitInputError` with status ``invalid_workspace`` naming the point."""
    try:
        workspace = pyhf.Workspace(spec)
        model = workspace.model(modifier_settings=MODIFIER_SETTINGS)
    except (pyhf.exceptions.InvalidSpecification, pyhf.exceptions.InvalidModel,
            pyhf.exceptions.InvalidModifier) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise FitInputError(label, f"the workspace fails pyhf's schema: {message}", status="invalid_workspace") from None
    return workspace, model


def asimov_data(model, mu: float):
    """The expected data (main + auxiliary) at signal strength ``mu``, nuisances at nominal."""
    pars = list(model.config.suggested_init())
    pars[model.config.poi_index] = mu
    return model.expected_data(pyhf.tensorlib.astensor(pars))


def discovery_significance(model, data) -> float:
    """Z = Phi^-1(1 - p0) of the background-only hypothesis (q0, asymptotics) on ``data``.

    On :func:`asimov_data` at mu = 1 it is the expected (median) discovery significance.
    """
    p0 = float(pyhf.infer.hypotest(0.0, data, model, test_stat="q0"))
    return float(norm.isf(p0))


def cls_at(model, data, mu: float = 1.0) -> tuple[float, list[float]]:
    """Observed CLs and the expected CLs at -2..+2 sigma for signal strength ``mu`` (qtilde)."""
    observed, expected = pyhf.infer.hypotest(mu, data, model, test_stat="qtilde", return_expected_set=True)
    return float(observed), [float(value) for value in expected]


def limit_bracket(model, data, start: float = 1.0, cls_at_start: list[float] | None = None) -> float:
    """The smallest ``start * 2**k`` (capped at the upper POI bound) where every band has CLs <= 0.05.

    ``cls_at_start``: the observed and expected CLs at ``start`` when already known. Fits at a
    signal strength far above the limit are hard (the nuisances run to their bounds), so the
    bracket grows from ``start`` instead of starting at the POI bound. Raises
    :class:`LimitOutOfRange` when even the upper POI bound leaves a band above 0.05.
    """
    high = model.config.suggested_bounds()[model.config.poi_index][1]
    mu = min(start, high)
    values = cls_at_start if cls_at_start is not None and mu == start else None
    while True:
        if values is None:
            observed, expected = cls_at(model, data, mu)
            values = [observed, *expected]
        if max(values) <= CLS_LEVEL:
            return mu
        if mu >= high:
            raise LimitOutOfRange(f"CLs at the upper POI bound mu = {high:g} is {max(values):.3g} > "
                                  f"{CLS_LEVEL}: the 95% CL limit lies above fit.poi_bounds")
        mu, values = min(2.0 * mu, high), None


def upper_limits(model, data, rtol: float = LIMIT_RTOL, cls_at_one: list[float] | None = None) -> tuple[float, list[float]]:
    """Observed and expected (-2..+2 sigma) 95% CL upper limits on mu (CLs, qtilde).

    pyhf's TOMS 748 root finding (``pyhf.infer.intervals.upper_limits.toms748_scan``) between the
    lower POI bound and :func:`limit_bracket`. Raises :class:`LimitOutOfRange` when the upper POI
    bound does not bracket every band.
    """
    low = model.config.suggested_bounds()[model.config.poi_index][0]
    high = limit_bracket(model, data, 1.0, cls_at_one)
    observed_limit, expected_limits = pyhf.infer.intervals.upper_limits.toms748_scan(
        data, model, low, high, level=CLS_LEVEL, rtol=rtol, test_stat="qtilde")
    return float(observed_limit), [float(value) for value in expected_limits]


def _expected_z_at_scale(inputs: PointInputs, settings: FitSettings, scale: float) -> float:
    _, model = load_workspace(build_spec(inputs, settings, scale=scale), inputs.label)
    return discovery_significance(model, asimov_data(model, 1.0))


def _finite(*values) -> bool:
    flat = []
    for value in values:
        flat.extend(value if isinstance(value, list) else [value])
    return all(value is not None and math.isfinite(value) for value in flat)


def _compute(record: FitPoint, binned: PointInputs, spec: dict, settings: FitSettings) -> None:
    workspace, model = load_workspace(spec, binned.label)
    data = workspace.data(model)
    record.n_parameters = int(model.config.npars)
    record.expected_z = discovery_significance(model, asimov_data(model, 1.0))
    cls_observed, cls_expected = cls_at(model, data, 1.0)
    record.cls_mu1_workspace = {"CLs_obs": cls_observed, "CLs_exp": cls_expected}
    observed_limit, record.expected_limit = upper_limits(model, data, cls_at_one=[cls_observed, *cls_expected])
    if record.has_data:
        record.observed_z = discovery_significance(model, data)
        record.observed_limit = observed_limit
    if not _finite(record.expected_z, record.expected_limit, cls_observed, cls_expected,
                   *([record.observed_z, record.observed_limit] if record.has_data else [])):
        raise FloatingPointError("a fit result is not finite")
    notes = []
    for target in settings.luminosities_fb:
        key = f"{target:g}"
        try:
            z = _expected_z_at_scale(binned, settings, target / settings.luminosity_fb)
        except (pyhf.exceptions.FailedMinimization, *_FIT_ERRORS) as error:
            z = None
            notes.append(f"Z at {key} fb^-1: {_reason(error)}")
        record.z_vs_luminosity[key] = z if z is not None and math.isfinite(z) else None
    if notes:
        record.message = f"{binned.label}: " + "; ".join(notes)


def _reason(error: Exception) -> str:
    if isinstance(error, pyhf.exceptions.FailedMinimization):
        return f"the fit did not converge (minimiser status: {error.result.message})"
    return str(error) or type(error).__name__


def _failed(record: FitPoint, status: str, message: str) -> FitPoint:
    """``record`` with its status and message and no result numbers (its binning is kept)."""
    kept = {name: getattr(record, name) for name in ("edges", "background_ess", "signal", "background")}
    failed = FitPoint(record.label, record.m_slepton, record.dm, status=status, message=message,
                      has_data=record.has_data, **kept)
    log.warning("fit of %s failed (%s): %s", record.label, status, message)
    return failed


def fit_point(inputs: PointInputs, settings: FitSettings) -> tuple[FitPoint, dict | None]:
    """Fit one grid point; returns its :class:`FitPoint` and its workspace spec.

    Never raises for bad input or a failed fit: the record's ``status`` is ``bad_input``,
    ``invalid_workspace`` (the spec is then None), ``fit_failed``, ``limit_out_of_range`` or
    ``non_finite``, with a message naming the point. The spec is returned whenever it validates,
    so a failed fit can be rerun with the pyhf CLI.
    """
    record = FitPoint(inputs.label, inputs.m_slepton, inputs.dm)
    spec = None
    try:
        binned, record = prepare_point(inputs, settings)
        spec = build_spec(binned, settings)
        with pyhf_backend(settings.backend, settings.max_iterations):
            _compute(record, binned, spec, settings)
    except FitInputError as error:
        return _failed(record, error.status, str(error)), (None if error.status == "invalid_workspace" else spec)
    except pyhf.exceptions.FailedMinimization as error:
        return _failed(record, "fit_failed", f"{inputs.label}: {_reason(error)}"), spec
    except LimitOutOfRange as error:
        return _failed(record, "limit_out_of_range", f"{inputs.label}: {error}"), spec
    except FloatingPointError as error:
        return _failed(record, "non_finite", f"{inputs.label}: {error}"), spec
    except _FIT_ERRORS as error:
        return _failed(record, "fit_failed", f"{inputs.label}: {_reason(error)}"), spec
    return record, spec
