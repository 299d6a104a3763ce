"""The ``scan`` and ``fit`` sections: significance scans and likelihood fits."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    Field,
    StrictInt,
    field_validator,
)

from analysis.core.config.base import _Section


class ScanConfig(_Section):
    """Significance scan settings (ATLAS Asimov formula with background uncertainty)."""

    relative_background_uncertainty: float = Field(default=0.3, ge=0)
    include_mc_stat_uncertainty: bool = Field(
        default=True, description="sigma_b^2 = (f b)^2 + sum w^2: the background's MC statistics above the threshold"
    )
    min_signal: float = Field(default=3.0, ge=0, description="minimum expected signal events above a threshold")
    min_background: float = Field(default=3.0, ge=0, description="minimum expected background events above a threshold")
    min_background_ess: float = Field(
        default=10.0, ge=0,
        description="a threshold counts only where the background's effective sample size (sum w)^2 / sum w^2 "
        "above it reaches this",
    )
    score_bins: StrictInt = Field(default=100, ge=10)
    luminosities_fb: list[float] = Field(default_factory=lambda: [139.0, 300.0, 3000.0])


class FitConfig(_Section):
    """Binned profile-likelihood fits with pyhf: the ``fit`` stage (``analysis/stages/fit.py``).

    Per grid point: a HistFactory model of the test-split score histogram (one signal sample,
    one sample per background process), rebinned from the high-score end until every bin's
    background effective sample size reaches ``min_background_ess``. Nuisance parameters: MC
    statistics (staterror), the background uncertainty (``total``: one Gaussian-constrained
    parameter per bin shared by all backgrounds, width ``relative_background_uncertainty`` x the
    bin's total background; ``per_process``: a Poisson-constrained shapesys per process and
    bin), the signal cross-section uncertainty and optional per-process normalisations (normsys).
    """

    enabled: bool = Field(default=True, description="run the fit stage in the default chain")
    min_background_ess: float = Field(
        default=10.0, ge=0, description="merge score bins from the high end until each bin's background ESS reaches this; 0: keep the bins"
    )
    max_bins: int | None = Field(
        default=6, ge=1, description="at most this many bins: the groups below the highest max_bins - 1 are merged into one; null: no limit"
    )
    relative_background_uncertainty: float | None = Field(
        default=None, ge=0, lt=1, description="sigma_b / b per bin; default: scan.relative_background_uncertainty"
    )
    background_uncertainty: Literal["total", "per_process"] = "total"
    mc_stat_uncertainty: bool = Field(default=True, description="staterror from the MC sum of squared weights")
    signal_xsec_uncertainty: float = Field(
        default=0.05, ge=0, lt=1, description="relative signal cross-section uncertainty (normsys) where the sample's metadata has no xsec_uncertainty"
    )
    process_normalisation_uncertainties: dict[str, float] = Field(
        default_factory=dict, description="background process -> relative normalisation uncertainty (normsys)"
    )
    poi_bounds: tuple[float, float] = Field(default=(0.0, 100.0), description="range of the signal strength mu")
    backend: Literal["numpy", "jax"] = Field(default="numpy", description="pyhf tensor backend of the fits")
    max_iterations: StrictInt = Field(default=100_000, gt=0, description="minimiser (scipy SLSQP) iterations per fit")

    @field_validator("process_normalisation_uncertainties")
    @classmethod
    def _relative_uncertainties(cls, values: dict[str, float]) -> dict[str, float]:
        for process, value in values.items():
            if not process:
                raise ValueError("a process name is empty")
            if not 0 <= value < 1:
                raise ValueError(f"{process}: a relative normalisation uncertainty must lie in [0, 1)")
        return values

    @field_validator("poi_bounds")
    @classmethod
    def _poi_bounds(cls, bounds: tuple[float, float]) -> tuple[float, float]:
        low, high = bounds
        if not 0 <= low < 1 < high:
            raise ValueError("poi_bounds (low, high) need 0 <= low < 1 < high (mu = 1 is the signal hypothesis)")
        return bounds
