"""The ``samples`` section: the signal grid, backgrounds, generation and its targeting."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import (
    Field,
    StrictInt,
    field_validator,
    model_validator,
)

from analysis.core.config.base import KNOWN_BACKGROUNDS, _Section
from analysis.core.names import point_name


class SignalPoint(_Section):
    """One point of the slepton signal grid.

    ``m_slepton`` is the common mass of the left- and right-handed selectrons and smuons,
    ``dm = m_slepton - m_neutralino`` the mass splitting to the lightest neutralino (GeV).
    """

    m_slepton: float = Field(gt=0, description="slepton mass in GeV")
    dm: float = Field(description="m(slepton) - m(neutralino) in GeV")

    @field_validator("dm")
    @classmethod
    def _dm_positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("dm must be > 0: the slepton must be heavier than the neutralino")
        return value

    @model_validator(mode="after")
    def _neutralino_mass_positive(self) -> "SignalPoint":
        if self.m_slepton - self.dm <= 0:
            raise ValueError(
                f"m_slepton - dm = {self.m_slepton - self.dm} GeV: the neutralino mass must be > 0 "
                f"(m_slepton={self.m_slepton}, dm={self.dm})"
            )
        return self

    @property
    def m_neutralino(self) -> float:
        """Lightest-neutralino mass in GeV."""
        return self.m_slepton - self.dm

    @property
    def name(self) -> str:
        """Sample name of this grid point, e.g. ``slepton_200_50``."""
        return point_name(self.m_slepton, self.dm)


class BackgroundCrossSection(_Section):
    """A background's normalisation instead of Pythia's LO cross section: either the cross
    section of the generated sample (``xsec_pb``: with its decay channels and generator cuts,
    before any generator-level filter) or a ``k_factor`` that multiplies Pythia's LO."""

    xsec_pb: float | None = Field(default=None, gt=0, description="cross section of the generated sample in pb")
    k_factor: float | None = Field(default=None, gt=0, description="multiplies Pythia's LO cross section")
    uncertainty: float = Field(default=0.0, ge=0, description="relative uncertainty of the reference (recorded)")
    source: str = Field(default="", description="where the number comes from (recorded in the manifest)")

    @model_validator(mode="after")
    def _one_of(self) -> BackgroundCrossSection:
        if (self.xsec_pb is None) == (self.k_factor is None):
            raise ValueError("give exactly one of xsec_pb or k_factor")
        return self


class TruthMetFilterConfig(_Section):
    """The generator-level filter on the truth MET an event can still reach (``jobs/hooks.py``,
    ``truth_met``): decided when the shower has evolved down to ``veto_scale_gev``; events whose
    bound is below ``min_gev`` are dropped before the rest of the shower and the detector, and the
    filter efficiency is folded into the cross section. Keep ``min_gev`` below the analysis's MET
    cut by the detector resolution and the softer emissions to come (README, "Targeted production")."""

    enabled: bool = Field(default=False, description="on in the built-in analysis; tune min_gev to your selection first")
    min_gev: float = Field(default=125.0, ge=0, le=5000, description="keep events whose reachable truth MET is >= this")
    min_gev_per_sample: dict[str, float] = Field(
        default_factory=dict, description="min_gev per background process or 'signal', overriding min_gev"
    )
    veto_scale_gev: float = Field(default=30.0, gt=0, le=1000, description="shower pT scale at which the filter decides")
    dilepton_pt_min_gev: float = Field(
        default=8.0, ge=0, le=1000,
        description="also require an opposite-charge, possibly same-flavour pair of hard-process leptons (tau: e or mu) "
        "with pT >= this (0: no lepton condition); below the selection's lepton pT cut by the resolution",
    )
    samples: list[str] | None = Field(
        default=None, description="where it applies: background process names and/or 'signal'; null: every sample"
    )
    record_only: bool = Field(
        default=False, description="veto nothing, write the bound per event (GenFilter_metBound): a reference sample"
    )

    @field_validator("min_gev_per_sample")
    @classmethod
    def _known_min_samples(cls, values: dict[str, float]) -> dict[str, float]:
        unknown = [name for name in values if name != "signal" and name not in KNOWN_BACKGROUNDS]
        if unknown:
            raise ValueError(f"unknown sample kind(s) {unknown}; use 'signal' or background processes {list(KNOWN_BACKGROUNDS)}")
        bad = {name: value for name, value in values.items() if not 0 <= value <= 5000}
        if bad:
            raise ValueError(f"min_gev must lie in [0, 5000] GeV (got {bad})")
        return values

    def min_for(self, process: str, is_signal: bool) -> float:
        """The filter threshold of a sample of ``process``."""
        return self.min_gev_per_sample.get("signal" if is_signal else process, self.min_gev)

    @field_validator("samples")
    @classmethod
    def _known_samples(cls, names: list[str] | None) -> list[str] | None:
        if names is None:
            return names
        unknown = [name for name in names if name != "signal" and name not in KNOWN_BACKGROUNDS]
        if unknown:
            raise ValueError(f"unknown sample kind(s) {unknown}; use 'signal' or background processes {list(KNOWN_BACKGROUNDS)}")
        return names

    def applies_to(self, process: str, is_signal: bool) -> bool:
        """Whether the filter runs for a sample of ``process`` (a background name, or any signal)."""
        return self.enabled and (self.samples is None or ("signal" if is_signal else process) in self.samples)


def plain_production(samples: dict) -> dict:
    """Overrides of a ``samples`` section (as a dict) that turn the targeted production off: no
    generator filter, natural tau decays, random b-tagging, no per-process event counts or pT-hat
    bias powers (``pt_bias_power`` is left to the caller). For tests and benchmarks that measure
    something other than the targeting, with samples that are quick to make."""
    return {"truth_met_filter": {**samples["truth_met_filter"], "enabled": False}, "leptonic_taus": [],
            "btag_veto_weights": [], "background_events_per_process": {}, "pt_bias_power_per_process": {}}


class SamplesConfig(_Section):
    """Monte Carlo production (``python -m jobs.generate``) or a user-supplied fileset."""

    fileset: Path | None = Field(
        default=None,
        description="a coffea fileset JSON to analyse instead of generating the built-in samples "
        "(a relative path is relative to the config file)",
    )
    cache_dir: Path = Field(
        default=Path("~/.cache/bsmscan/samples"),
        description="where generated samples are written and found again (one sub-folder per generation-config hash)",
    )
    sqrt_s_gev: float = Field(default=13000.0, gt=0)
    signal_grid: list[SignalPoint] = Field(min_length=0)
    backgrounds: list[str] = Field(default_factory=lambda: list(KNOWN_BACKGROUNDS))
    signal_events: StrictInt = Field(default=5000, gt=0, description="events generated (kept by the filters) per signal grid point")
    background_events: StrictInt = Field(default=50000, gt=0, description="events generated per background process")
    events_per_job: StrictInt = Field(default=5000, gt=0, description="events per (sample x chunk) generation job")
    hadronisation: bool = Field(default=False, description="string fragmentation and hadron decays (slow)")
    mpi: bool = Field(default=False, description="multiparton interactions (underlying event; slow)")
    tau_spin_correlations: bool = Field(
        default=False,
        description="spin-correlated tau decays (Pythia TauDecays:mode = 1, 5-10x slower for tau-rich "
        "samples); off: isotropic tau decays",
    )
    pt_bias_power: float = Field(
        default=0.0,
        ge=0,
        description="backgrounds are generated with a weight-compensated pT-hat bias (pTHat/ref)^power "
        "to populate the high-MET tail; 0 turns it off",
    )
    signal_pt_bias_power: float = Field(
        default=0.0, ge=0, description="the same for the signal (off by default: it lowers the effective sample size)"
    )
    pt_bias_reference_gev: float = Field(default=50.0, gt=0)
    background_events_per_process: dict[str, StrictInt] = Field(
        default_factory=dict, description="events per background process, overriding background_events"
    )
    pt_bias_power_per_process: dict[str, float] = Field(
        default_factory=dict, description="pT-hat bias power per background process, overriding pt_bias_power"
    )
    truth_met_filter: TruthMetFilterConfig = Field(default_factory=TruthMetFilterConfig)
    leptonic_taus: list[str] = Field(
        default_factory=list,
        description="backgrounds whose tau decays are forced to e/mu, each event weighted by BR^(number of taus): "
        "for selections that need two light leptons from the hard process",
    )
    btag_veto_weights: list[str] = Field(
        default_factory=list,
        description="backgrounds generated with truth tagging: no jet b-tagged, each event weighted by P(no jet "
        "tagged); only for a selection with a b-veto (n_bjet == 0)",
    )
    signal_xsec: Literal["nlo_nll", "lo"] = Field(
        default="nlo_nll",
        description="signal normalisation: the LHC SUSY cross-section working group's NLO+NLL table "
        "(jobs/data/slepton_xsec_13TeV.json; grid points outside it are refused) or Pythia's LO",
    )
    background_xsec: dict[str, BackgroundCrossSection] = Field(
        default_factory=dict,
        description="per background: a reference cross section or K-factor instead of Pythia's LO",
    )

    @field_validator("background_events_per_process", "pt_bias_power_per_process")
    @classmethod
    def _per_process(cls, values: dict, info) -> dict:
        unknown = [name for name in values if name not in KNOWN_BACKGROUNDS]
        if unknown:
            raise ValueError(f"unknown background process(es) {unknown}; known: {list(KNOWN_BACKGROUNDS)}")
        if info.field_name == "background_events_per_process":
            bad = {name: n for name, n in values.items() if n <= 0}
            if bad:
                raise ValueError(f"event counts must be > 0 (got {bad})")
        else:
            bad = {name: power for name, power in values.items() if not 0 <= power <= 8}
            if bad:
                raise ValueError(f"a pT-hat bias power must lie in [0, 8] (got {bad})")
        return values

    @field_validator("backgrounds", "leptonic_taus", "btag_veto_weights", "background_xsec")
    @classmethod
    def _known_backgrounds(cls, names: list[str] | dict, info) -> list[str] | dict:
        unknown = [name for name in names if name not in KNOWN_BACKGROUNDS]
        if unknown:
            raise ValueError(f"unknown background process(es) {unknown}; known: {list(KNOWN_BACKGROUNDS)}")
        if info.field_name == "backgrounds" and len(set(names)) != len(names):
            raise ValueError("a background process is listed twice")
        return names

    @field_validator("signal_grid")
    @classmethod
    def _unique_points(cls, points: list[SignalPoint]) -> list[SignalPoint]:
        names = [point.name for point in points]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"signal grid points listed twice: {duplicates}")
        return points

    def resolved_cache_dir(self) -> Path:
        """The cache directory with ``~`` expanded."""
        return Path(self.cache_dir).expanduser()
