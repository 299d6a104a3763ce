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

import jax
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
    """Use pyhf backend ``name`` with a scipy optimizer of ``max_iterations`` inside; restore after.

    pyhf's JAX backend switches JAX to float64 for the whole process; the previous setting is
    restored on exit, so that a fit never changes how a later training in the same process
    (an interactive session, a Dask worker) draws its random numbers.
    """
    previous = pyhf.get_backend()
    x64 = jax.config.read("jax_enable_x64")
    pyhf.set_backend(name, pyhf.optimize.scipy_optimizer(maxiter=max_iterations))
    try:
        yield
    finally:
        pyhf.set_backend(*previous)
        jax.config.update("jax_enable_x64", x64)


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
    """Z of the background-only hypothesis on ``data``: sqrt(q0) (profile likelihood, mu >= 0).

    This is exactly what ``pyhf.infer.hypotest(0, data, model, test_stat="q0")`` converts to
    its asymptotic p-value (p0 = 1 - Phi(sqrt(q0))), without the three extra fits hypotest makes
    for the Asimov dataset. On :func:`asimov_data` at mu = 1 it is the expected (median)
    discovery significance.
    """
    config = model.config
    q0 = pyhf.infer.test_statistics.q0(0.0, data, model, config.suggested_init(), config.suggested_bounds(),
                                       config.suggested_fixed())
    return float(math.sqrt(max(float(q0), 0.0)))


def cls_at(model, data, mu: float = 1.0, init_pars=None) -> tuple[float, list[float]]:
    """Observed CLs and the expected CLs at -2..+2 sigma for signal strength ``mu`` (qtilde).

    ``init_pars``: where the fits start (default: the model's suggested values, as ``pyhf cls``).
    """
    observed, expected = pyhf.infer.hypotest(mu, data, model, test_stat="qtilde", return_expected_set=True,
                                             init_pars=init_pars)
    return float(observed), [float(value) for value in expected]


class _CLsCurves:
    """Observed and expected CLs at each tested mu, shared by the six limit searches."""

    def __init__(self, model, data, known: dict[float, list[float]]):
        self.model, self.data = model, data
        self.values = dict(known)
        # Fits start at the background-only nominal point, where the free fits of a background-only
        # Asimov dataset already are: half the time of starting at mu = 1 (same CLs to ~1e-7).
        self.init = list(model.config.suggested_init())
        self.init[model.config.poi_index] = 0.0

    def __call__(self, mu: float) -> list[float]:
        mu = float(mu)
        if mu not in self.values:
            observed, expected = cls_at(self.model, self.data, mu, init_pars=self.init)
            self.values[mu] = [observed, *expected]
        return self.values[mu]

    def transformed(self, mu: float, band: int) -> float:
        """y = Phi^-1(1 - CLs/2) - Phi^-1(1 - 0.05/2): increasing in mu, zero at the limit and
        close to linear (for the median expected band, y + const = sqrt(q_mu,A) ~ mu / sigma)."""
        cls = min(max(self(mu)[band], 1e-300), 1.0)
        return float(norm.isf(cls / 2.0) - norm.isf(CLS_LEVEL / 2.0))


def _bracket_top(curves: _CLsCurves, high_bound: float) -> float:
    """The smallest 2**k (capped at the upper POI bound) where every band has CLs <= 0.05.

    Fits far above the limit are hard (the nuisances run to their bounds), so the bracket grows
    from mu = 1 instead of starting at the POI bound. Raises :class:`LimitOutOfRange` when
    even the upper POI bound leaves a band above 0.05.
    """
    mu = min(1.0, high_bound)
    while max(curves(mu)) > CLS_LEVEL:
        if mu >= high_bound:
            raise LimitOutOfRange(f"CLs at the upper POI bound mu = {high_bound:g} is {max(curves(mu)):.3g} > "
                                  f"{CLS_LEVEL}: the 95% CL limit lies above fit.poi_bounds")
        mu = min(2.0 * mu, high_bound)
    return mu


def _band_limit(curves: _CLsCurves, band: int, rtol: float, max_steps: int = 40) -> float:
    """The mu where band ``band`` crosses CLs = 0.05: false position on the transformed CLs between
    the closest tested points on either side (bisection when a step would not shrink the bracket);
    done when the estimate lies within ``rtol`` of a tested point or the bracket is that narrow."""
    for _ in range(max_steps):
        points = sorted((mu, curves.transformed(mu, band)) for mu in curves.values)
        a, ya = max((p for p in points if p[1] < 0), key=lambda p: p[0])
        b, yb = min((p for p in points if p[1] >= 0 and p[0] > a), key=lambda p: p[0])
        x = a - ya * (b - a) / (yb - ya) if math.isfinite(yb) else 0.5 * (a + b)
        if b - a <= rtol * x or min(x - a, b - x) <= rtol * x:
            return float(x)
        if not a + 0.01 * (b - a) < x < b - 0.01 * (b - a):
            x = 0.5 * (a + b)
        curves(x)
    raise LimitOutOfRange(f"the CLs = {CLS_LEVEL} crossing of band {band} did not converge in {max_steps} steps")


def upper_limits(model, data, rtol: float = LIMIT_RTOL, cls_at_one: list[float] | None = None) -> tuple[float, list[float]]:
    """Observed and expected (-2..+2 sigma) 95% CL upper limits on mu (CLs, qtilde, asymptotics).

    Every CLs comes from ``pyhf.infer.hypotest`` (as in ``pyhf.infer.intervals.upper_limits``);
    the six crossings share their hypothesis tests and are found by false position on a
    transformed CLs that is nearly linear in mu, which needs about a fifth of the tests of pyhf's
    six separate TOMS 748 searches (and works on the JAX backend, where pyhf 0.7's search does
    not). ``cls_at_one``: the observed and expected CLs at mu = 1 when already computed.
    CLs = 1 at mu = 0 (qtilde is 0 there). Raises :class:`LimitOutOfRange` when the POI range
    does not bracket every band.
    """
    low, high = model.config.suggested_bounds()[model.config.poi_index]
    known = {1.0: list(cls_at_one)} if cls_at_one is not None else {}
    if low == 0:
        known[0.0] = [1.0] * 6
    curves = _CLsCurves(model, data, known)
    curves(low)
    _bracket_top(curves, high)
    limits = [_band_limit(curves, band, rtol) for band in (3, 0, 2, 4, 1, 5)]
    observed, expected = limits[1], [limits[4], limits[2], limits[0], limits[3], limits[5]]
    return observed, expected


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
        if target == settings.luminosity_fb:
            record.z_vs_luminosity[key] = record.expected_z
            continue
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
