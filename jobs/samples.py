"""The Monte Carlo samples of the default analysis and their Pythia 8 settings.

A :class:`Sample` names a physics process and carries every Pythia setting it needs; a
:class:`GenerationJob` is one (sample x chunk) piece of work with its own seed. Both are
plain frozen dataclasses, so they pickle cheaply to local processes or Dask workers.

Backgrounds (two leptons + missing energy), all at sqrt(s) = 13 TeV:

- ``WW``: q qbar -> W+ W-, both W -> l nu (l = e, mu, tau);
- ``WZ``: q qbar' -> W Z, W -> l nu, Z -> l l (pure Z, no gamma*);
- ``ZZ``: q qbar -> Z Z, each Z -> l l or nu nu (pure Z);
- ``ttbar``: g g, q qbar -> t tbar, both W -> l nu;
- ``Ztautau``: Z/gamma* (m > 40 GeV) + jet, Z/gamma* -> tau tau, jet pT-hat > 20 GeV
  (the recoil that gives Z -> tau tau real missing energy).

Restricting decay channels with ``onMode``/``onIfAny`` makes Pythia scale its cross section
by the open branching fractions, so ``sigmaGen`` is the cross section of what is generated.

Signal (``SUSY:qqbar2sleptonantislepton``, ~e_L, ~e_R, ~mu_L, ~mu_R pairs): three fixes of
Pythia 8.317's LO, found by comparing with the analytic cross section (README, "Signal
normalisation"): the hook ``same_flavour_qqbar`` removes its flavour-changing q_i qbar_j
Z-exchange contributions, ``SUSY:sin2thetaWMode = 3`` takes the on-shell
sin^2(theta_W) = 1 - mW^2/mZ^2 of the reference NLO+NLL calculation (Pythia's default, the
MSbar 0.2312, gives an L/R ratio of 2.40 where the table has 2.62), and the colour factor 3
that Pythia misses is applied to its ``sigmaGen`` (:data:`jobs.xsec.SLEPTON_LO_COLOUR_CORRECTION`).
The signal is then normalised to the NLO+NLL table by default (``samples.signal_xsec``);
the backgrounds keep Pythia's LO unless ``samples.background_xsec`` gives a reference.

Backgrounds are generated with a pT-hat bias (``PhaseSpace:bias2Selection``): events are
sampled with extra probability (pTHat/ref)^power and carry the compensating weight
(ref/pTHat)^power in ``genWeight``. Weighted sums stay unbiased, while the high-pT tail
(where MET > 200 GeV events live) gets more events. The price is a spread of weights, which
lowers the effective sample size (sum w)^2 / sum w^2 of the selected events: power 2 is the
measured optimum for WW (1.9x the effective events of unbiased generation after the MET cut;
power 4 gives 0.4x), and the signal, whose MET comes from the neutralinos, is best unbiased.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field

from analysis.core.config import AnalysisConfig, SignalPoint
from analysis.core.errors import UserError

from .detector import DEFAULT_DETECTOR
from .hooks import truth_met_spec, validate_hook_names
from .slha import SLEPTON_TO_LEPTON, slepton_spectrum
from .xsec import SLEPTON_LO_COLOUR_CORRECTION, Normalisation, signal_reference

_LEPTONIC_W = ("24:onMode = off", "24:onIfAny = 11 13 15")

BACKGROUND_PROCESS_SETTINGS: dict[str, tuple[str, ...]] = {
    "WW": ("WeakDoubleBoson:ffbar2WW = on", *_LEPTONIC_W),
    "WZ": (
        "WeakDoubleBoson:ffbar2ZW = on",
        *_LEPTONIC_W,
        "23:onMode = off",
        "23:onIfAny = 11 13 15",
    ),
    "ZZ": (
        "WeakDoubleBoson:ffbar2gmZgmZ = on",
        "WeakZ0:gmZmode = 2",
        "23:onMode = off",
        "23:onIfAny = 11 13 15 12 14 16",
    ),
    "ttbar": ("Top:gg2ttbar = on", "Top:qqbar2ttbar = on", *_LEPTONIC_W),
    "Ztautau": (
        "WeakBosonAndParton:qqbar2gmZg = on",
        "WeakBosonAndParton:qg2gmZq = on",
        "PhaseSpace:pTHatMin = 20.",
        "23:mMin = 40.",
        "23:onMode = off",
        "23:onIfAny = 15",
    ),
}

SIGNAL_PROCESS_SETTINGS: tuple[str, ...] = (
    "SUSY:qqbar2sleptonantislepton = on",
    "SUSY:idVecA = 1000011,1000013,2000011,2000013",
    "SUSY:idVecB = 1000011,1000013,2000011,2000013",
    "SUSY:sin2thetaWMode = 3",  # on-shell 1 - mW^2/mZ^2, as the reference NLO+NLL calculation
    "PhaseSpace:useBreitWigners = off",  # narrow-width sleptons, as the reference cross sections
)

#: Tau decays restricted to the leptonic ones (Pythia does not rescale sigmaGen for tau decays:
#: the generation job weights each event by BR(tau -> e/mu nu nu) per hard-process tau).
LEPTONIC_TAU_SETTINGS: tuple[str, ...] = ("15:onMode = off", "15:onIfAny = 11 13")

#: Pythia hooks of the signal (``jobs/hooks.py``): drop the flavour-changing q_i qbar_j events.
SIGNAL_HOOKS: tuple[str, ...] = ("same_flavour_qqbar",)

#: Bump when the content or layout of the generated files changes (invalidates the cache).
OUTPUT_FORMAT_VERSION = 1
#: Events a generation job generates, reconstructs and writes at a time (``jobs.pythia_job``):
#: memory stays flat whatever ``events_per_job``. The detector's random numbers are drawn
#: batch by batch, so a job of more events than this enters it into its hash (smaller jobs,
#: the default 5000 included, are one batch and keep their files and hashes).
WRITE_BATCH_EVENTS = 5000

#: Pythia's largest allowed ``Random:seed``.
MAX_PYTHIA_SEED = 900_000_000


@dataclass(frozen=True)
class Sample:
    """One generated sample: a background process or one signal grid point."""

    name: str
    process: str
    is_signal: bool
    n_events: int
    settings: tuple[str, ...]
    slha: str | None = None
    m_slepton: float | None = None
    m_neutralino: float | None = None
    hooks: tuple[str, ...] = ()
    normalisation: Normalisation = field(default_factory=Normalisation)
    leptonic_taus: bool = False  # tau decays forced to e/mu, each event weighted by BR^(number of taus)
    btag_veto_weights: bool = False  # truth tagging: no jet tagged, weight P(no tag) (jobs/detector.py)

    @property
    def dm(self) -> float | None:
        """Mass splitting m(slepton) - m(neutralino), for signal samples."""
        if self.m_slepton is None or self.m_neutralino is None:
            return None
        return self.m_slepton - self.m_neutralino

    def metadata(self) -> dict:
        """Per-sample metadata stored in the fileset manifest (cross section added later)."""
        meta = {"process": self.process, "is_signal": self.is_signal, "xsec_normalisation": self.normalisation.mode}
        if self.is_signal:
            meta.update(m_slepton=self.m_slepton, m_neutralino=self.m_neutralino, dm=self.dm)
        return meta


@dataclass(frozen=True)
class GenerationJob:
    """One (sample x chunk) generation job."""

    sample: Sample
    index: int
    n_events: int
    first_event: int
    seed: int
    common_settings: tuple[str, ...] = field(default=())

    @property
    def spec_hash(self) -> str:
        """Hash of everything that determines this job's events (settings, spectrum, seed,
        event range, detector model): equal hashes mean identical output files."""
        spec = [self.sample.settings, self.common_settings, self.sample.slha, self.n_events, self.first_event,
                self.seed, self.index, repr(DEFAULT_DETECTOR), OUTPUT_FORMAT_VERSION]
        if self.sample.hooks:  # (only when present, so that hook-less jobs keep their hashes)
            spec.append(list(self.sample.hooks))
        if self.sample.btag_veto_weights:
            spec.append("btag_veto_weights")
        if self.n_events > WRITE_BATCH_EVENTS:  # written in batches (see WRITE_BATCH_EVENTS)
            spec.append(["write_batch_events", WRITE_BATCH_EVENTS])
        return hashlib.sha256(json.dumps(spec).encode()).hexdigest()[:10]

    @property
    def stem(self) -> str:
        """File name stem of this job's outputs, e.g. ``WW_0003_1f2e3d4c5b`` (with :attr:`spec_hash`)."""
        return f"{self.sample.name}_{self.index:04d}_{self.spec_hash}"


def job_seed(sample_name: str, job_index: int, global_seed: int) -> int:
    """A Pythia seed in [1, 900000000] derived from (sample, job index, global seed).

    A hash, not a sum, so neighbouring jobs or samples never share a random stream.
    """
    digest = hashlib.sha256(f"{global_seed}:{sample_name}:{job_index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") % MAX_PYTHIA_SEED + 1


def common_settings(config: AnalysisConfig, is_signal: bool, process: str | None = None) -> tuple[str, ...]:
    """Pythia settings shared by the signal or the background samples of a config
    (beams, MPI, hadronisation, tau decays, pT-hat bias; the bias of background ``process``
    from ``samples.pt_bias_power_per_process`` when it has one)."""
    samples = config.samples
    settings = [
        f"Beams:eCM = {samples.sqrt_s_gev}",
        f"PartonLevel:MPI = {'on' if samples.mpi else 'off'}",
        f"HadronLevel:Hadronize = {'on' if samples.hadronisation else 'off'}",
        # Tau and hadron decays stay on (taus decay even without hadronisation).
        "HadronLevel:Decay = on",
        f"TauDecays:mode = {1 if samples.tau_spin_correlations else 0}",
        "Print:quiet = on",
        "SLHA:verbose = 0",
    ]
    bias_power = samples.signal_pt_bias_power if is_signal else samples.pt_bias_power_per_process.get(
        process, samples.pt_bias_power)
    if bias_power > 0:
        settings += [
            "PhaseSpace:bias2Selection = on",
            f"PhaseSpace:bias2SelectionPow = {bias_power}",
            f"PhaseSpace:bias2SelectionRef = {samples.pt_bias_reference_gev}",
        ]
    return tuple(settings)


def signal_sample(point: SignalPoint, n_events: int, xsec: str = "nlo_nll", filters: tuple[str, ...] = ()) -> Sample:
    """The slepton-pair sample of one grid point, with its SLHA spectrum and normalisation.

    ``xsec``: ``nlo_nll`` (the reference table; a mass outside it raises
    :class:`jobs.xsec.CrossSectionError` here, before anything is generated) or ``lo``.
    ``filters``: generator-filter hook specs (``jobs/hooks.py``) after the signal's own hooks.
    """
    species = tuple(sorted(SLEPTON_TO_LEPTON))
    normalisation = Normalisation(mode=xsec, lo_correction=SLEPTON_LO_COLOUR_CORRECTION, species=species)
    if xsec == "nlo_nll":
        signal_reference(point.m_slepton, species, point.name)  # refuses a mass outside the table
    hooks = SIGNAL_HOOKS + tuple(filters)
    validate_hook_names(hooks)
    return Sample(
        name=point.name,
        process="slepton",
        is_signal=True,
        n_events=n_events,
        settings=SIGNAL_PROCESS_SETTINGS,
        slha=slepton_spectrum(point.m_slepton, point.m_neutralino),
        m_slepton=point.m_slepton,
        m_neutralino=point.m_neutralino,
        hooks=hooks,
        normalisation=normalisation,
    )


def background_sample(process: str, n_events: int, reference=None, filters: tuple[str, ...] = (),
                      leptonic_taus: bool = False, btag_veto_weights: bool = False) -> Sample:
    """A background sample by process name (one of ``BACKGROUND_PROCESS_SETTINGS``).

    ``reference``: an :class:`analysis.core.config.BackgroundCrossSection` (a reference cross
    section or K-factor), or ``None`` for Pythia's LO. ``filters``: generator-filter hook specs.
    ``leptonic_taus``: tau decays restricted to e and mu (:data:`LEPTONIC_TAU_SETTINGS`); each
    event carries the weight BR(tau -> l nu nu)^(number of hard-process taus).
    ``btag_veto_weights``: truth tagging for a b-veto selection (no jet tagged; the event weight
    carries P(no jet tagged), ``jobs/detector.py``).
    """
    validate_hook_names(filters)
    try:
        settings = BACKGROUND_PROCESS_SETTINGS[process]
    except KeyError:
        raise ValueError(
            f"unknown background process {process!r}; known: {sorted(BACKGROUND_PROCESS_SETTINGS)}"
        ) from None
    if reference is None:
        normalisation = Normalisation()
    elif reference.xsec_pb is not None:
        normalisation = Normalisation(mode="reference", reference_xsec_pb=reference.xsec_pb,
                                      uncertainty=reference.uncertainty, source=reference.source)
    else:
        normalisation = Normalisation(mode="k_factor", k_factor=reference.k_factor,
                                      uncertainty=reference.uncertainty, source=reference.source)
    if leptonic_taus:
        settings = settings + LEPTONIC_TAU_SETTINGS
    return Sample(name=process, process=process, is_signal=False, n_events=n_events, settings=settings,
                  normalisation=normalisation, hooks=tuple(filters), leptonic_taus=leptonic_taus,
                  btag_veto_weights=btag_veto_weights)


def filter_specs(config: AnalysisConfig, process: str, is_signal: bool) -> tuple[str, ...]:
    """The generator-filter hook specs of one sample of ``config`` (empty when none applies)."""
    truth_met = config.samples.truth_met_filter
    if not truth_met.applies_to(process, is_signal):
        return ()
    return (truth_met_spec(truth_met.min_for(process, is_signal), truth_met.veto_scale_gev,
                           truth_met.dilepton_pt_min_gev, truth_met.record_only),)


class SampleSettingError(UserError, ValueError):
    """Sample settings that do not fit the analysis; the message names the setting."""


def _has_b_veto(config: AnalysisConfig) -> bool:
    """Whether a preselection cut is a b-jet veto (``n_bjet == 0`` or ``n_bjet < 1``)."""
    return any(re.search(r"\bn_bjet\s*(==\s*0|<\s*1)\b", cut) for cut in config.selection.cuts.values())


def samples_from_config(config: AnalysisConfig) -> list[Sample]:
    """Every sample the config asks for: the signal grid points, then the backgrounds."""
    cfg = config.samples
    if cfg.btag_veto_weights and not _has_b_veto(config):
        raise SampleSettingError(
            f"samples.btag_veto_weights {cfg.btag_veto_weights}: truth tagging is only valid for a selection "
            "with a b-jet veto (a cut 'n_bjet == 0' in selection.cuts); set samples.btag_veto_weights: []"
        )
    signal = [signal_sample(point, cfg.signal_events, cfg.signal_xsec, filter_specs(config, "slepton", True))
              for point in cfg.signal_grid]
    background = [background_sample(process, cfg.background_events_per_process.get(process, cfg.background_events),
                                    cfg.background_xsec.get(process),
                                    filter_specs(config, process, False), process in cfg.leptonic_taus,
                                    process in cfg.btag_veto_weights)
                  for process in cfg.backgrounds]
    return signal + background


def jobs_from_config(config: AnalysisConfig) -> list[GenerationJob]:
    """Split every sample into jobs of at most ``samples.events_per_job`` events."""
    per_job = config.samples.events_per_job
    jobs = []
    for sample in samples_from_config(config):
        shared = common_settings(config, sample.is_signal, sample.process)
        for index, first in enumerate(range(0, sample.n_events, per_job)):
            jobs.append(
                GenerationJob(
                    sample=sample,
                    index=index,
                    n_events=min(per_job, sample.n_events - first),
                    first_event=first,
                    seed=job_seed(sample.name, index, config.seed),
                    common_settings=shared,
                )
            )
    return jobs
