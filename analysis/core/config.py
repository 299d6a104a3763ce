"""The analysis configuration: one validated object, passed explicitly to every stage.

A config is a YAML file (or a dict) checked by the pydantic models below. Unknown keys,
wrong types and unphysical values are refused with an error that names the offending
field, e.g. ``samples.signal_grid[2].dm: dm must be > 0 (got -5.0)``. Nothing is read at
import time: call :func:`load_config` (a file) or :func:`default_config` (the built-in
slepton analysis, ``analysis/core/default.yaml``).

Sections, in the order the data flows:

- ``samples``     what to generate with Pythia 8 (signal grid, backgrounds, sizes, cache),
                  or a user ``fileset`` of ROOT/Parquet files to analyse instead;
- ``luminosity_fb`` integrated luminosity that event weights are normalised to;
- ``selection``   object definitions (NanoAOD working points), triggers, event flags and
                  preselection cuts (safe expression strings);
- ``features``    which features feed the classifier (a set, names, expressions);
- ``control``     control histograms after the preselection (data and simulation);
- ``model``, ``training``  the neural network and how it is trained;
- ``scan``        significance scan settings;
- ``fit``         binned likelihood fits with pyhf (discovery Z, CLs limits, workspaces);
- ``executor``    where the columnar stages run (iterative, futures, dask, condor);
- ``cluster``     an HTCondor pool: resources per job and worker environment.
"""

from __future__ import annotations

import hashlib
import json
import re
import reprlib
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from dask.utils import parse_bytes
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from analysis.core.errors import UserError
from analysis.core.names import point_name

#: Background processes the generator knows (see ``jobs/samples.py`` for their Pythia settings).
KNOWN_BACKGROUNDS = ("WW", "WZ", "ZZ", "ttbar", "Ztautau")

#: The names of the network and training options: the one list of each, used to validate
#: ``model``, ``training`` and ``search.space``; ``nn`` maps every name to its function
#: (``nn.model.ACTIVATION_FUNCTIONS``, ``nn.optimizers.OPTIMIZERS`` / ``SCHEDULES``,
#: ``nn.losses.make_loss``) and tests check that both sides agree.
ACTIVATIONS = ("relu", "tanh", "sigmoid", "elu", "gelu", "selu", "leaky_relu")
OPTIMIZERS = ("adam", "adamw", "rmsprop", "sgd")
SCHEDULES = ("constant", "cosine", "exponential", "warmup_cosine")
LOSSES = ("bce", "focal", "asimov")
#: ``training.resample``: the imbalanced-learn methods of :mod:`nn.resampling`.
RESAMPLING_METHODS = ("none", "undersample", "oversample", "smote")
#: ``training.sampling_strategy``: imbalanced-learn's string strategies.
SAMPLING_STRATEGIES = ("auto", "minority", "not minority", "not majority", "all")
#: Hyperparameter-search strategies, Optuna samplers and pruners (``nn.search``), and objectives.
SEARCH_STRATEGIES = ("random", "hyperband", "genetic", "bayesian", "grid")
SEARCH_SAMPLERS = ("tpe", "random", "cmaes")
SEARCH_PRUNERS = ("none", "median", "hyperband")
SEARCH_OBJECTIVES = ("auc", "loss", "asimov")


class ConfigError(UserError, ValueError):
    """A configuration problem; the message names the field (dotted path) that is wrong."""


class _Section(BaseModel):
    """Base of all config sections: unknown keys are errors, values are validated on assignment."""

    # allow_inf_nan=False: .inf / .nan are refused for every float (luminosity, cuts, uncertainties)
    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False, allow_inf_nan=False)


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

    @field_validator("leptonic_taus", "btag_veto_weights")
    @classmethod
    def _known_leptonic_taus(cls, names: list[str]) -> list[str]:
        unknown = [name for name in names if name not in KNOWN_BACKGROUNDS]
        if unknown:
            raise ValueError(f"unknown background process(es) {unknown}; known: {list(KNOWN_BACKGROUNDS)}")
        return names

    @field_validator("background_xsec")
    @classmethod
    def _known_background_xsec(cls, entries: dict) -> dict:
        unknown = [name for name in entries if name not in KNOWN_BACKGROUNDS]
        if unknown:
            raise ValueError(f"unknown background process(es) {unknown}; known: {list(KNOWN_BACKGROUNDS)}")
        return entries

    @field_validator("backgrounds")
    @classmethod
    def _known_backgrounds(cls, names: list[str]) -> list[str]:
        unknown = [name for name in names if name not in KNOWN_BACKGROUNDS]
        if unknown:
            raise ValueError(f"unknown background process(es) {unknown}; known: {list(KNOWN_BACKGROUNDS)}")
        if len(set(names)) != len(names):
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


#: NanoAOD working points: muon IDs (boolean branches ``Muon_<id>Id``), electron cut-based
#: levels (``Electron_cutBased >= level``) and jet-ID bits (``Jet_jetId & bit``).
MUON_IDS = ("none", "loose", "medium", "tight")
ELECTRON_IDS = {"none": 0, "veto": 1, "loose": 2, "medium": 3, "tight": 4}
JET_IDS = {"none": 0, "loose": 1, "tight": 2, "tight_lepton_veto": 4}
_BRANCH_FIELD = r"^[A-Za-z_][A-Za-z0-9_]*$"


class ObjectSelection(_Section):
    """Object definitions applied before the event preselection.

    The b-tag is ``Jet_<btag_branch> > btag_threshold``: ``btag`` > 0.5 for the generator's
    boolean flag; for CMS NanoAOD e.g. ``btagDeepFlavB`` > 0.2783 (DeepJet medium, 2018).
    Collections can be switched off for inputs that lack them (a muon-only dataset).
    NanoAOD working points: ``muon_id`` (``Muon_tightId`` ...), ``muon_iso_max`` (on
    ``Muon_pfRelIso04_all``), ``electron_id`` (``Electron_cutBased`` level), ``electron_iso_max``,
    ``jet_id`` (a ``Jet_jetId`` bit) and ``met_flavour`` (``MET``, ``PuppiMET``); every field left
    out keeps its default, which the run logs (``(default)``) before it starts.
    """

    use_electrons: bool = True
    use_muons: bool = True
    use_jets: bool = True
    use_met: bool = True
    electron_pt_min: float = Field(default=10.0, ge=0)
    electron_abs_eta_max: float = Field(default=2.47, gt=0)
    muon_pt_min: float = Field(default=10.0, ge=0)
    muon_abs_eta_max: float = Field(default=2.5, gt=0)
    jet_pt_min: float = Field(default=20.0, ge=0)
    jet_abs_eta_max: float = Field(default=4.5, gt=0)
    bjet_pt_min: float = Field(default=20.0, ge=0)
    btag_branch: str = Field(default="btag", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    btag_threshold: float = 0.5
    jet_lepton_overlap_dr: float = Field(default=0.4, ge=0, description="jets this close to a selected lepton are removed")
    # NanoAOD identification and isolation working points (processors/identification.py); "none" / null: not applied
    muon_id: Literal[MUON_IDS] = Field(default="none", description="Muon_<id>Id must be true (NanoAOD looseId, mediumId, tightId)")
    muon_iso_max: float | None = Field(default=None, gt=0, description="Muon_<muon_iso_branch> < this (relative isolation)")
    muon_iso_branch: str = Field(default="pfRelIso04_all", pattern=_BRANCH_FIELD)
    electron_id: Literal[tuple(ELECTRON_IDS)] = Field(
        default="none", description="Electron_cutBased >= the level (veto 1, loose 2, medium 3, tight 4)")
    electron_iso_max: float | None = Field(default=None, gt=0, description="Electron_<electron_iso_branch> < this")
    electron_iso_branch: str = Field(default="pfRelIso03_all", pattern=_BRANCH_FIELD)
    jet_id: Literal[tuple(JET_IDS)] = Field(
        default="none", description="bit of Jet_jetId that must be set (loose 1, tight 2, tight_lepton_veto 4)")
    met_flavour: str = Field(default="MET", pattern=r"^[A-Za-z][A-Za-z0-9]*$",
                             description="the MET collection: MET (MET_pt, MET_phi), PuppiMET, ChsMET, ...")


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def _check_names(names, what: str) -> None:
    bad = [name for name in names if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name)]
    if bad:
        raise ValueError(f"{what} must be names of letters, digits and '_' (not starting with a digit, at most 64 "
                         f"characters); got {bad}")


class SelectionConfig(_Section):
    """Objects, event filters and the ordered preselection cuts (safe expressions).

    ``triggers``: HLT branches of which at least one must be true (``HLT_IsoMu24``);
    ``flags``: event-filter branches that must all be true (``Flag_goodVertices``). Each is a
    counted cutflow step before the cuts. Cuts are safe expressions over the derived columns
    (features, object counts) and event-level input branches (``nMuon == 2``, ``PV_npvs > 0``).
    """

    objects: ObjectSelection = Field(default_factory=ObjectSelection)
    triggers: list[str] = Field(default_factory=list, description="HLT_* branches, OR: an event passes if any is true")
    flags: list[str] = Field(default_factory=list, description="Flag_* (event filter) branches, AND: all must be true")
    cuts: dict[str, str] = Field(default_factory=dict, description="name -> cut expression, applied in order")

    @field_validator("triggers", "flags")
    @classmethod
    def _branch_names(cls, names: list[str], info) -> list[str]:
        _check_names(names, info.field_name)
        if len(set(names)) != len(names):
            raise ValueError(f"a branch is listed twice: {names}")
        return names


class FeaturesConfig(_Section):
    """The classifier's inputs: a feature set, or features chosen by name, plus expressions.

    ``names`` (instead of ``set``) lists the features of the store in order: any derived
    column (the thesis and Baldi features, object counts), an event-level input branch or a
    name of ``expressions``, which defines new features as safe expressions over those columns
    (``pt_ratio: "lep2_pt / lep1_pt"``). Without ``names`` the store holds ``set`` followed by
    the ``expressions``.
    """

    set: Literal["thesis", "baldi", "all"] = "thesis"
    names: list[str] | None = Field(default=None, min_length=1, description="features by name (replaces set)")
    expressions: dict[str, str] = Field(default_factory=dict, description="name -> safe expression: new features")

    @field_validator("names")
    @classmethod
    def _unique_names(cls, names: list[str] | None) -> list[str] | None:
        if names is not None:
            _check_names(names, "feature names")
            repeated = sorted({name for name in names if names.count(name) > 1})
            if repeated:
                raise ValueError(f"feature(s) listed twice: {repeated}")
        return names

    @field_validator("expressions")
    @classmethod
    def _expression_names(cls, expressions: dict[str, str]) -> dict[str, str]:
        _check_names(list(expressions), "expression names")
        return expressions


class ControlHistogram(_Section):
    """One control histogram: a column (``variable``, default: the histogram's name) or a safe
    ``expression``, ``bins`` regular bins over ``range``, optionally with log axes."""

    variable: str | None = Field(default=None, description="the column filled; default: the histogram's name")
    expression: str | None = Field(default=None, description="a safe expression filled instead of a column")
    bins: StrictInt = Field(default=30, gt=0, le=10_000)
    range: tuple[float, float]
    label: str | None = Field(default=None, max_length=200, description="the axis label (default: the variable)")
    log_x: bool = Field(default=False, description="bins regular in log(x) (range low > 0)")
    log_y: bool = Field(default=False, description="log scale for the event counts")

    @model_validator(mode="after")
    def _valid(self) -> ControlHistogram:
        low, high = self.range
        if not low < high:
            raise ValueError(f"range [{low:g}, {high:g}] is empty: the low edge must be below the high edge")
        if self.log_x and low <= 0:
            raise ValueError(f"log_x needs a range above 0 (got low edge {low:g})")
        if self.variable is not None and self.expression is not None:
            raise ValueError("give a variable or an expression, not both")
        if self.variable is not None:
            _check_names([self.variable], "variable")
        return self

    def column(self, name: str) -> str:
        """The column this histogram fills (its expression is registered under ``name``)."""
        return self.variable or name


class ControlConfig(_Section):
    """Control histograms filled after the preselection, for every dataset (data and simulation).

    ``histograms`` maps a histogram name to its definition; left out, a default set fitting
    the objects in use is filled (:func:`control_histograms`). ``normalise_mc_to_data``: scale
    the simulation stack to the data yield in the data/MC figures (a shape comparison).
    """

    histograms: dict[str, ControlHistogram] | None = Field(
        default=None, description="name -> histogram; null: the defaults (m_ll, lepton pT, MET)")
    normalise_mc_to_data: bool = False

    @field_validator("histograms")
    @classmethod
    def _names(cls, histograms: dict | None) -> dict | None:
        if histograms is not None:
            _check_names(list(histograms), "control histogram names")
        return histograms


def control_histograms(config: AnalysisConfig) -> dict[str, ControlHistogram]:
    """The control histograms of ``config``: its ``control.histograms``, or the defaults
    (m_ll, both lepton pTs, and MET where MET is used)."""
    if config.control.histograms is not None:
        return dict(config.control.histograms)
    defaults = {
        "mll": ControlHistogram(bins=60, range=(0.0, 300.0), label=r"$m_{\ell\ell}$ [GeV]"),
        "lep1_pt": ControlHistogram(bins=40, range=(0.0, 400.0), label=r"$p_T(\ell_1)$ [GeV]"),
        "lep2_pt": ControlHistogram(bins=40, range=(0.0, 200.0), label=r"$p_T(\ell_2)$ [GeV]"),
    }
    if config.selection.objects.use_met:
        defaults["met"] = ControlHistogram(bins=40, range=(0.0, 800.0), label=r"$E_T^{miss}$ [GeV]")
    return defaults


class ModelConfig(_Section):
    """Multilayer perceptron shape (``nn/model.py``).

    ``output: binary`` is one sigmoid unit (signal probability); ``multiclass`` a softmax over
    signal and each background process (the signal probability is its first output).
    ``parametrised`` adds the signal grid parameters (m_slepton, dm) as inputs (Baldi et al.
    2016); background events get values drawn from the signal parameter distribution.
    """

    hidden_layers: list[StrictInt] = Field(default_factory=lambda: [128, 128, 128], min_length=1)
    activation: Literal[ACTIVATIONS] = "relu"
    dropout: float = Field(default=0.025, ge=0, lt=1)
    l1: float = Field(default=0.0, ge=0, description="L1 penalty on the weight matrices (sum |w|)")
    l2: float = Field(default=0.0, ge=0, description="L2 penalty on the weight matrices (sum w^2)")
    output: Literal["binary", "multiclass"] = "binary"
    parametrised: bool = Field(default=True, description="signal masses are network inputs (Baldi et al. 2016)")

    @field_validator("hidden_layers")
    @classmethod
    def _positive_widths(cls, widths: list[int]) -> list[int]:
        if any(width <= 0 for width in widths):
            raise ValueError("every hidden layer needs a positive width")
        return widths


class TrainingConfig(_Section):
    """Optimiser, loss, event weights, signal points and data split (``nn/train.py``).

    Every random choice (initialisation, dropout, shuffling, resampling, background
    parameters) derives from ``seed`` (default: the analysis ``seed``); the split is a hash of
    (dataset, event number) salted with ``split_seed``, so an event lands in the same split in
    every run and at scoring time.
    """

    seed: StrictInt | None = Field(default=None, ge=0, description="training seed; default: the analysis seed")
    optimizer: Literal[OPTIMIZERS] = "rmsprop"
    learning_rate: float = Field(default=1e-3, gt=0)
    schedule: Literal[SCHEDULES] = "constant"
    warmup_epochs: StrictInt = Field(default=0, ge=0, description="linear warm-up epochs (warmup_cosine)")
    decay_rate: float = Field(default=0.9, gt=0, le=1, description="learning-rate factor per epoch (exponential)")
    momentum: float = Field(default=0.9, ge=0, lt=1, description="sgd momentum")
    weight_decay: float = Field(default=1e-4, ge=0, description="decoupled weight decay (adamw)")
    batch_size: StrictInt = Field(default=512, gt=0)
    max_epochs: StrictInt = Field(default=20, gt=0)
    patience: StrictInt = Field(default=5, ge=0, description="epochs without validation-loss improvement before stopping")
    min_delta: float = Field(default=0.0, ge=0, description="smallest validation-loss decrease that counts")
    loss: Literal[LOSSES] = "bce"
    focal_gamma: float = Field(default=2.0, ge=0)
    label_smoothing: float = Field(default=0.0, ge=0, lt=0.5)
    asimov_relative_uncertainty: float | None = Field(
        default=None, ge=0, description="sigma_b / b of the Asimov loss; default: scan.relative_background_uncertainty"
    )
    asimov_eps: float = Field(default=1e-3, gt=0, description="L = 1 / (Z_A + eps)")
    negative_weights: Literal["keep", "zero", "abs"] = "keep"
    balance: Literal["equal", "none"] = Field(default="equal", description="rescale each class to the same total weight")
    balance_signal_points: bool = Field(default=True, description="each signal grid point gets the same total weight")
    resample: Literal[RESAMPLING_METHODS] = Field(
        default="none", description="resample the training split (imbalanced-learn): undersample, oversample or smote"
    )
    sampling_strategy: Literal[SAMPLING_STRATEGIES] = Field(
        default="auto", description="which classes are resampled (imbalanced-learn's sampling_strategy)"
    )
    smote_k_neighbors: StrictInt = Field(default=5, gt=0, description="nearest neighbours of SMOTE")
    boost_rounds: StrictInt = Field(default=0, ge=0, description="boosting on errors: rounds of retraining (0: off)")
    boost_factor: float = Field(default=2.0, gt=0, allow_inf_nan=False,
                                description="boosting on errors: weight factor of misclassified training events")
    boost_threshold: float = Field(default=0.5, gt=0, lt=1, description="boosting on errors: score that separates the classes")
    split_fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
    split_seed: StrictInt = Field(default=0, ge=0, description="salt of the train/validation/test hash")
    signal_points: list[SignalPoint] | None = Field(
        default=None, description="train on these grid points only; default: every signal point in the store"
    )
    per_point: bool = Field(default=False, description="train one (non-parametrised) network per grid point")
    eval_batch_size: StrictInt = Field(default=65536, gt=0, description="rows per forward pass when evaluating")
    baseline: Literal["none", "xgboost"] = Field(
        default="none", description="also train gradient-boosted trees on the same splits and weights (nn/baseline.py)"
    )

    @field_validator("split_fractions")
    @classmethod
    def _fractions_sum_to_one(cls, fractions: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-9:
            raise ValueError("train/validation/test fractions must be >= 0 and sum to 1")
        if fractions[0] <= 0 or fractions[1] <= 0:
            raise ValueError("the train and validation fractions must be > 0")
        return fractions

    @field_validator("signal_points")
    @classmethod
    def _unique_training_points(cls, points: list[SignalPoint] | None) -> list[SignalPoint] | None:
        if points is not None:
            if not points:
                raise ValueError("signal_points must name at least one point (or be null for all)")
            names = [point.name for point in points]
            if len(set(names)) != len(names):
                raise ValueError(f"signal_points lists a point twice: {names}")
        return points


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


class ExecutorConfig(_Section):
    """Where the columnar stages run (``condor``: Dask workers as HTCondor jobs, see ``cluster``)."""

    name: Literal["iterative", "futures", "dask", "condor"] = "dask"
    workers: StrictInt | None = Field(default=None, gt=0, description="local workers; default: number of cores")
    scheduler: str | None = Field(default=None, description="address of a running Dask scheduler, tcp://host:port")
    chunksize: StrictInt | None = Field(
        default=None, gt=0,
        description="events per chunk; auto (or null, the default): from the events and the workers, so that every "
        "worker gets several chunks (analysis.core.chunking)",
    )
    on_bad_files: Literal["stop", "skip"] = Field(
        default="stop",
        description="an unreadable, truncated or incomplete input file: stop with an error naming it, or skip it "
        "(as --skip-bad-files), report the events lost and normalise the weights to the files read",
    )

    @field_validator("chunksize", mode="before")
    @classmethod
    def _auto_chunksize(cls, value):
        return None if isinstance(value, str) and value == "auto" else value


#: Submit-description commands bsmscan writes itself; ``cluster.submit_directives`` may not set them.
_RESERVED_SUBMIT_COMMANDS = {"executable", "arguments", "queue", "universe", "transfer_input_files", "log", "output", "error"}


def _byte_size(value: str, field: str) -> str:
    try:
        size = parse_bytes(value)
    except (ValueError, TypeError):
        raise ValueError(f"{field} must be a size like '4 GB' or '500 MiB'") from None
    if size <= 0:
        raise ValueError(f"{field} must be > 0")
    return value


class AdaptiveConfig(_Section):
    """Adaptive scaling of the Dask-on-HTCondor cluster between ``minimum`` and ``maximum`` jobs."""

    minimum: StrictInt = Field(default=0, ge=0, description="jobs kept even when idle")
    maximum: StrictInt = Field(gt=0, description="most jobs submitted under load")

    @model_validator(mode="after")
    def _ordered(self) -> "AdaptiveConfig":
        if self.minimum > self.maximum:
            raise ValueError(f"adaptive minimum ({self.minimum}) is above the maximum ({self.maximum})")
        return self


class ClusterConfig(_Section):
    """An HTCondor pool: resources per job and the worker environment.

    Read by ``--executor condor`` (Dask workers started as condor jobs with dask-jobqueue,
    ``analysis/condor.py``) and by the standalone batch DAG (``python -m jobs.submit``).
    ``ship`` says how jobs find bsmscan: ``shared`` (the submitting Python and checkout are on a
    filesystem every node mounts, e.g. AFS or CVMFS), ``wheel`` (``ship_file`` is a bsmscan wheel
    installed with ``--no-deps`` into the job's scratch directory; the dependencies come from the
    environment the ``prologue`` activates) or ``packed_env`` (``ship_file`` is a conda-pack /
    venv-pack tarball unpacked and activated in the job). Shipped files go with
    ``transfer_input_files``.
    """

    cores: StrictInt = Field(default=1, gt=0, description="cores per job (request_cpus)")
    processes: StrictInt | None = Field(default=None, gt=0, description="Dask worker processes per job; default: one per core, single-threaded")
    memory: str = Field(default="4 GB", description="memory per job (request_memory), e.g. '4 GB'")
    disk: str = Field(default="8 GB", description="scratch disk per job (request_disk)")
    jobs: StrictInt = Field(default=4, ge=0, description="Dask worker jobs to submit (ignored when adaptive is set)")
    adaptive: AdaptiveConfig | None = Field(default=None, description="scale between minimum and maximum jobs with the load")
    submit_directives: dict[str, str] = Field(
        default_factory=dict, description='extra submit commands, e.g. {"+JobFlavour": \'"longlunch"\'}'
    )
    prologue: list[str] = Field(default_factory=list, description="shell lines run before the worker starts (activate the environment)")
    python: str | None = Field(default=None, description="Python on the nodes; default: this Python (shared) or 'python3'")
    ship: Literal["shared", "wheel", "packed_env"] = "shared"
    ship_file: Path | None = Field(default=None, description="the wheel or packed environment shipped with each job")
    transfer_input_files: list[str] = Field(default_factory=list, description="more files to send with each job")
    scheduler_host: str | None = Field(default=None, description="host or address the Dask scheduler listens on")
    interface: str | None = Field(default=None, description="network interface of the scheduler and workers, e.g. eth0")
    scheduler_port: StrictInt = Field(default=0, ge=0, le=65535, description="Dask scheduler port; 0: a free one")
    dashboard_port: StrictInt | None = Field(default=None, ge=0, le=65535, description="Dask dashboard port; null: no dashboard")
    dashboard_host: str = Field(default="127.0.0.1", pattern=r"^[A-Za-z0-9.:_-]+$",
                                description="address the scheduler's HTTP server (dashboard) listens on; default: this machine only")
    tls_ca_file: Path | None = Field(default=None, description="CA of the Dask TLS certificates; null: a temporary CA per cluster")
    tls_cert: Path | None = Field(default=None, description="certificate of the scheduler, client and workers (with tls_ca_file)")
    tls_key: Path | None = Field(default=None, description="its private key; null: the key is in tls_cert")
    worker_ports: str | None = Field(default=None, pattern=r"^\d+(:\d+)?$", description="worker port or range 'low:high' (firewalls)")
    death_timeout: float = Field(default=120.0, gt=0, description="seconds a worker waits for the scheduler before exiting")
    local_directory: str | None = Field(default="$_CONDOR_SCRATCH_DIR", description="worker spill directory on the node")
    log_directory: Path | None = Field(default=None, description="condor stdout/stderr/log of the worker jobs; null: none")
    request_gpus: StrictInt = Field(default=0, ge=0, description="GPUs requested by the train node of the batch DAG")
    chunk_jobs: StrictInt | None = Field(default=None, gt=0, description="batch DAG: process/score nodes per stage; default: one per chunk")
    retries: StrictInt = Field(default=2, ge=0, description="batch DAG: retries of a failed generate/process/score node")

    @field_validator("memory", "disk")
    @classmethod
    def _sizes(cls, value: str, info) -> str:
        return _byte_size(value, info.field_name)

    @field_validator("submit_directives")
    @classmethod
    def _safe_directives(cls, directives: dict[str, str]) -> dict[str, str]:
        for key, value in directives.items():
            if not re.fullmatch(r"\+?[A-Za-z_][A-Za-z0-9_.]*", key):
                raise ValueError(f"submit directive {key!r} is not a submit command name (e.g. request_cpus, +JobFlavour)")
            if key.lower() in _RESERVED_SUBMIT_COMMANDS:
                raise ValueError(f"submit directive {key!r} is set by bsmscan itself")
            if "\n" in str(value) or "\r" in str(value):
                raise ValueError(f"submit directive {key!r}: the value must be one line")
        return directives

    @field_validator("prologue", "transfer_input_files")
    @classmethod
    def _single_lines(cls, lines: list[str], info) -> list[str]:
        if any("\n" in line or "\r" in line for line in lines):
            raise ValueError(f"every {info.field_name} entry must be one line")
        return lines

    @model_validator(mode="after")
    def _ship_file_given(self) -> "ClusterConfig":
        if self.ship != "shared" and self.ship_file is None:
            raise ValueError(f"ship: {self.ship} needs ship_file (the file sent with every job)")
        if (self.tls_ca_file is None) != (self.tls_cert is None) or (self.tls_key is not None and self.tls_cert is None):
            raise ValueError("TLS certificates need both tls_ca_file and tls_cert (and optionally tls_key), or none of them")
        return self


#: Hyperparameters a search may vary, and the values a choice of each may take (None: numbers).
SEARCH_PARAMETERS: dict[str, tuple | None] = {
    "layers": None,
    "width": None,
    "activation": ACTIVATIONS,
    "dropout": None,
    "l1": None,
    "l2": None,
    "learning_rate": None,
    "optimizer": OPTIMIZERS,
    "batch_size": None,
    "loss": LOSSES,
}
_INTEGER_PARAMETERS = {"layers", "width", "batch_size"}
_CATEGORICAL_PARAMETERS = {"activation", "optimizer", "loss"}


class SearchDimension(_Section):
    """One hyperparameter's range: ``int``/``float`` between ``low`` and ``high`` (inclusive;
    ``log: true`` samples uniformly in log), or ``choice`` among ``values``."""

    type: Literal["int", "float", "choice"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    values: list[Any] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> "SearchDimension":
        if self.type == "choice":
            if not self.values:
                raise ValueError("a choice needs a non-empty 'values' list")
            if self.low is not None or self.high is not None or self.log:
                raise ValueError("a choice takes 'values' only (no low/high/log)")
            return self
        if self.values is not None:
            raise ValueError(f"an {self.type} range takes low/high, not 'values'")
        if self.low is None or self.high is None:
            raise ValueError(f"an {self.type} range needs both 'low' and 'high'")
        if not self.low <= self.high:
            raise ValueError(f"low ({self.low}) must be <= high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0 (got {self.low})")
        if self.type == "int" and (self.low != int(self.low) or self.high != int(self.high)):
            raise ValueError("an int range needs integer low and high")
        return self


def _default_search_space() -> dict[str, SearchDimension]:
    return {
        "layers": SearchDimension(type="int", low=1, high=4),
        "width": SearchDimension(type="choice", values=[32, 64, 128, 256]),
        "activation": SearchDimension(type="choice", values=["relu", "tanh", "elu"]),
        "dropout": SearchDimension(type="float", low=0.0, high=0.3),
        "l2": SearchDimension(type="float", low=1e-7, high=1e-3, log=True),
        "learning_rate": SearchDimension(type="float", low=1e-4, high=1e-2, log=True),
        "optimizer": SearchDimension(type="choice", values=["adam", "rmsprop"]),
        "batch_size": SearchDimension(type="choice", values=[256, 512, 1024]),
    }


class SearchConfig(_Section):
    """Hyperparameter search (``python -m nn.search``): space, strategy, objective, budget.

    ``space`` maps hyperparameter names (:data:`SEARCH_PARAMETERS`) to ranges; the rest of the
    network and training settings come from ``model`` and ``training``. ``objective``: ``auc``
    (validation weighted ROC AUC, maximised), ``loss`` (validation loss, minimised) or
    ``asimov`` (best Asimov Z of a threshold scan on the validation split with the ``scan``
    settings, at ``objective_point`` or averaged over the grid, maximised).

    ``bayesian`` proposes trials with an Optuna ``sampler`` (TPE by default), ``ask_batch`` at a
    time, and may stop poor trials early with a ``pruner`` fed from per-epoch objective values.
    ``grid`` trains every combination of the space's ``choice`` values and ``int`` ranges, all
    with the same training seed.
    """

    strategy: Literal[SEARCH_STRATEGIES] = "random"
    trials: StrictInt = Field(default=20, gt=0, description="trials to train (hyperband: configurations sampled; grid: ignored)")
    objective: Literal[SEARCH_OBJECTIVES] = "auc"
    objective_point: str | None = Field(default=None, description="grid point (e.g. slepton_200_40) of the asimov objective; null: mean over the grid")
    seed: StrictInt | None = Field(default=None, ge=0, description="search seed; default: the analysis seed")
    space: dict[str, SearchDimension] = Field(default_factory=_default_search_space)
    epochs: StrictInt | None = Field(default=None, gt=0, description="epochs per trial (random, genetic); default: training.max_epochs")
    min_epochs: StrictInt = Field(default=1, gt=0, description="hyperband: epochs of the lowest rung")
    max_epochs: StrictInt = Field(default=9, gt=0, description="hyperband: epochs of the highest rung")
    eta: StrictInt = Field(default=3, ge=2, description="hyperband: keep the top 1/eta at each rung")
    population: StrictInt = Field(default=8, ge=2, description="genetic: networks per generation")
    parents: StrictInt = Field(default=4, ge=2, description="genetic: top-k networks that breed")
    mutation_probability: float = Field(default=0.2, ge=0, le=1, description="genetic: chance that a child's gene is redrawn")
    generations: StrictInt = Field(default=4, gt=0, description="genetic: generations (unless --trials sets the budget)")
    sampler: Literal[SEARCH_SAMPLERS] = Field(default="tpe", description="bayesian: Optuna sampler (seeded with the search seed)")
    pruner: Literal[SEARCH_PRUNERS] = Field(default="none", description="bayesian: Optuna pruner of poor trials (none, median, hyperband)")
    startup_trials: StrictInt = Field(default=10, ge=0, description="bayesian: random trials before the sampler models the space (tpe, cmaes), and finished trials before the median pruner prunes")
    ask_batch: StrictInt = Field(default=4, gt=0, description="bayesian: trials proposed together and run in parallel (the sequence depends on it, not on the workers)")
    use_best_model: bool = Field(default=False, description="analysis.run's train stage copies the best model of 'directory' instead of training")
    directory: Path | None = Field(default=None, description="a finished search's output directory (for use_best_model)")

    @field_validator("space")
    @classmethod
    def _known_parameters(cls, space: dict[str, SearchDimension]) -> dict[str, SearchDimension]:
        for name, dimension in space.items():
            if name not in SEARCH_PARAMETERS:
                raise ValueError(f"space.{name}: unknown hyperparameter; known: {sorted(SEARCH_PARAMETERS)}")
            allowed = SEARCH_PARAMETERS[name]
            if name in _CATEGORICAL_PARAMETERS:
                if dimension.type != "choice":
                    raise ValueError(f"space.{name}: must be a choice among {list(allowed)}")
                bad = [value for value in dimension.values if value not in allowed]
                if bad:
                    raise ValueError(f"space.{name}: unknown value(s) {bad}; allowed: {list(allowed)}")
                continue
            values = dimension.values if dimension.type == "choice" else [dimension.low, dimension.high]
            if any(isinstance(value, bool) or not isinstance(value, (int, float)) for value in values):
                raise ValueError(f"space.{name}: values must be numbers")
            if name in _INTEGER_PARAMETERS:
                if dimension.type == "float" or any(value != int(value) for value in values):
                    raise ValueError(f"space.{name}: must be integers")
                if min(values) < 1:
                    raise ValueError(f"space.{name}: must be >= 1")
            elif name == "dropout" and (min(values) < 0 or max(values) >= 1):
                raise ValueError("space.dropout: must lie in [0, 1)")
            elif name == "learning_rate" and min(values) <= 0:
                raise ValueError("space.learning_rate: must be > 0")
            elif min(values) < 0:
                raise ValueError(f"space.{name}: must be >= 0")
        return space

    @model_validator(mode="after")
    def _budgets(self) -> "SearchConfig":
        if self.strategy == "grid":
            for name, dimension in self.space.items():
                if dimension.type == "float":
                    raise ValueError(f"space.{name}: a grid search needs a choice or an int range, not a float range")
        if self.parents > self.population:
            raise ValueError(f"parents ({self.parents}) must be <= population ({self.population})")
        if self.min_epochs > self.max_epochs:
            raise ValueError(f"min_epochs ({self.min_epochs}) must be <= max_epochs ({self.max_epochs})")
        return self


class AnalysisConfig(_Section):
    """The whole analysis: every stage reads its own section from this object."""

    name: str = Field(default="analysis", description="the analysis name (batch names, job and file names)")
    seed: StrictInt = Field(default=12345, ge=0, description="global seed; every random choice derives from it")
    luminosity_fb: float = Field(default=139.0, gt=0, description="integrated luminosity in fb^-1")
    samples: SamplesConfig
    selection: SelectionConfig = Field(default_factory=SelectionConfig)
    features: FeaturesConfig = Field(default_factory=FeaturesConfig)
    control: ControlConfig = Field(default_factory=ControlConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    scan: ScanConfig = Field(default_factory=ScanConfig)
    fit: FitConfig = Field(default_factory=FitConfig)
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    search: SearchConfig = Field(default_factory=SearchConfig)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, name: str) -> str:
        # the name goes into submit files, the DAG and file names: never anything but a plain word
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", name):
            raise ValueError("the name must be 1-100 letters, digits, '_', '.' or '-', starting with a letter or "
                             "digit (no blanks, newlines, quotes or '/': it names batch jobs and files)")
        return name

    def hash(self) -> str:
        """A short, stable hash of the whole config (for provenance)."""
        return _stable_hash(self.model_dump(mode="json"))



def _stable_hash(payload: Any) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


#: Longest input value an error message quotes, and most errors it lists.
MAX_QUOTED_CHARS = 200
MAX_LISTED_ERRORS = 20


def short_repr(value: Any, limit: int = MAX_QUOTED_CHARS) -> str:
    """``repr(value)`` cut to ``limit`` characters (``... (N characters)`` says how long it was).

    Containers are cut while being written, so a huge value costs no more than the limit.
    """
    shortener = reprlib.Repr()
    shortener.maxstring = shortener.maxother = limit
    shortener.maxlist = shortener.maxdict = shortener.maxtuple = shortener.maxset = 8
    shortener.maxlevel = 3
    text = shortener.repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _format_validation_error(error: ValidationError, source: str) -> str:
    lines = [f"invalid analysis config {source}:"]
    items = error.errors()
    for item in items[:MAX_LISTED_ERRORS]:
        location = ".".join(str(part) if not isinstance(part, int) else f"[{part}]" for part in item["loc"])
        location = location.replace(".[", "[")
        message = item["msg"].removeprefix("Value error, ")[: 4 * MAX_QUOTED_CHARS]
        lines.append(f"  {location or '<top level>'}: {message} (got {short_repr(item.get('input'))})")
    if len(items) > MAX_LISTED_ERRORS:
        lines.append(f"  ... and {len(items) - MAX_LISTED_ERRORS} more errors")
    return "\n".join(lines)


def config_from_dict(data: dict[str, Any], source: str = "<dict>") -> AnalysisConfig:
    """Validate a plain dict (e.g. parsed YAML) into an :class:`AnalysisConfig`.

    Raises :class:`ConfigError` whose message lists every bad field by its dotted path.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"invalid analysis config {source}: the top level must be a mapping, got {type(data).__name__}")
    try:
        return AnalysisConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(_format_validation_error(error, source)) from None


#: Limits of a config file: its size, the aliases (``*name``) it may use and the number of
#: nodes it may expand to (a "billion laughs" bomb of nested aliases is a few hundred bytes).
MAX_CONFIG_BYTES = 1_000_000
MAX_CONFIG_ALIASES = 100
MAX_CONFIG_NODES = 100_000


class _LimitedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses more than :data:`MAX_CONFIG_ALIASES` aliases."""

    aliases = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_CONFIG_ALIASES:
                raise ConfigError(f"uses more than {MAX_CONFIG_ALIASES} YAML aliases (*name)")
        return super().compose_node(parent, index)


def _expanded_size(node, limit: int) -> int:
    """Nodes of the YAML graph once every alias is expanded (shared nodes counted per use),
    stopping as soon as ``limit`` is passed; a node that contains itself counts as over the limit."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(current) -> int:
        key = id(current)
        if key in sizes:
            return sizes[key]
        if key in active:
            return limit + 1  # recursive alias: infinite expansion
        active.add(key)
        total = 1
        if isinstance(current, yaml.SequenceNode):
            children = current.value
        elif isinstance(current, yaml.MappingNode):
            children = [child for pair in current.value for child in pair]
        else:
            children = []
        for child in children:
            total += size(child)
            if total > limit:
                break
        active.discard(key)
        sizes[key] = total
        return total

    return size(node)


def parse_config_yaml(text: str, source: str = "<text>") -> Any:
    """Parse config YAML safely (``SafeLoader``: no Python objects) within the size and alias limits.

    Raises :class:`ConfigError` for a text over :data:`MAX_CONFIG_BYTES`, more than
    :data:`MAX_CONFIG_ALIASES` aliases, an expansion over :data:`MAX_CONFIG_NODES` nodes or
    invalid YAML, before anything is expanded.
    """
    if len(text.encode("utf-8", "replace")) > MAX_CONFIG_BYTES:
        raise ConfigError(f"analysis config {source} is larger than {MAX_CONFIG_BYTES} bytes")
    loader = _LimitedLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except ConfigError as error:
            raise ConfigError(f"analysis config {source} {error}") from None
        if node is None:
            return None
        if _expanded_size(node, MAX_CONFIG_NODES) > MAX_CONFIG_NODES:
            raise ConfigError(f"analysis config {source} expands to more than {MAX_CONFIG_NODES} YAML nodes "
                              "(nested or recursive aliases)")
        return loader.construct_document(node)
    except yaml.YAMLError as error:
        raise ConfigError(f"analysis config {source} is not valid YAML: {str(error)[:4 * MAX_QUOTED_CHARS]}") from None
    finally:
        loader.dispose()


def load_config(path: str | Path) -> AnalysisConfig:
    """Read and validate a YAML analysis config file (safe YAML within limits; nothing is executed)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(f"analysis config {path} is {size} bytes; the limit is {MAX_CONFIG_BYTES}")
        text = path.read_text()
    except OSError as error:
        raise ConfigError(f"cannot read analysis config {path}: {error.strerror}") from None
    data = parse_config_yaml(text, str(path))
    samples = data.get("samples") if isinstance(data, dict) else None
    fileset = samples.get("fileset") if isinstance(samples, dict) else None
    if isinstance(fileset, str) and fileset and not Path(fileset).expanduser().is_absolute():
        # a relative fileset is relative to the config file, wherever the command runs
        data["samples"] = {**samples, "fileset": str((path.parent / fileset).resolve())}
    return config_from_dict(data, source=str(path))


def default_config_text() -> str:
    """The YAML text of the built-in default analysis (``analysis/core/default.yaml``)."""
    return resources.files("analysis.core").joinpath("default.yaml").read_text()


def default_config() -> AnalysisConfig:
    """The built-in default analysis: the slepton search of the reference thesis on a demo grid."""
    return config_from_dict(yaml.safe_load(default_config_text()), source="analysis/core/default.yaml")


def full_signal_grid() -> list[SignalPoint]:
    """The thesis's full slepton grid: m(slepton) 100-300 GeV in 20 GeV steps x dm 10-75 GeV.

    11 masses x 6 splittings (10, 20, 30, 45, 60, 75 GeV) = 66 points, all with a positive
    neutralino mass. Use it with ``samples.signal_grid`` to generate the full production.
    """
    masses = range(100, 301, 20)
    splittings = (10, 20, 30, 45, 60, 75)
    return [SignalPoint(m_slepton=m, dm=dm) for m in masses for dm in splittings]
