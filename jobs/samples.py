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
from dataclasses import dataclass, field

from analysis.core.config import AnalysisConfig, SignalPoint

from .slha import slepton_spectrum

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
)

#: Bump when the content or layout of the generated files changes (invalidates the cache).
OUTPUT_FORMAT_VERSION = 1

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

    @property
    def dm(self) -> float | None:
        """Mass splitting m(slepton) - m(neutralino), for signal samples."""
        if self.m_slepton is None or self.m_neutralino is None:
            return None
        return self.m_slepton - self.m_neutralino

    def metadata(self) -> dict:
        """Per-sample metadata stored in the fileset manifest (cross section added later)."""
        meta = {"process": self.process, "is_signal": self.is_signal}
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
        from .detector import DEFAULT_DETECTOR

        spec = [self.sample.settings, self.common_settings, self.sample.slha, self.n_events, self.first_event,
                self.seed, self.index, repr(DEFAULT_DETECTOR), OUTPUT_FORMAT_VERSION]
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


def common_settings(config: AnalysisConfig, is_signal: bool) -> tuple[str, ...]:
    """Pythia settings shared by the signal or the background samples of a config
    (beams, MPI, hadronisation, tau decays, pT-hat bias)."""
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
    bias_power = samples.signal_pt_bias_power if is_signal else samples.pt_bias_power
    if bias_power > 0:
        settings += [
            "PhaseSpace:bias2Selection = on",
            f"PhaseSpace:bias2SelectionPow = {bias_power}",
            f"PhaseSpace:bias2SelectionRef = {samples.pt_bias_reference_gev}",
        ]
    return tuple(settings)


def signal_sample(point: SignalPoint, n_events: int) -> Sample:
    """The slepton-pair sample of one grid point, with its SLHA spectrum."""
    return Sample(
        name=point.name,
        process="slepton",
        is_signal=True,
        n_events=n_events,
        settings=SIGNAL_PROCESS_SETTINGS,
        slha=slepton_spectrum(point.m_slepton, point.m_neutralino),
        m_slepton=point.m_slepton,
        m_neutralino=point.m_neutralino,
    )


def background_sample(process: str, n_events: int) -> Sample:
    """A background sample by process name (one of ``BACKGROUND_PROCESS_SETTINGS``)."""
    try:
        settings = BACKGROUND_PROCESS_SETTINGS[process]
    except KeyError:
        raise ValueError(
            f"unknown background process {process!r}; known: {sorted(BACKGROUND_PROCESS_SETTINGS)}"
        ) from None
    return Sample(name=process, process=process, is_signal=False, n_events=n_events, settings=settings)


def samples_from_config(config: AnalysisConfig) -> list[Sample]:
    """Every sample the config asks for: the signal grid points, then the backgrounds."""
    cfg = config.samples
    signal = [signal_sample(point, cfg.signal_events) for point in cfg.signal_grid]
    background = [background_sample(process, cfg.background_events) for process in cfg.backgrounds]
    return signal + background


def jobs_from_config(config: AnalysisConfig) -> list[GenerationJob]:
    """Split every sample into jobs of at most ``samples.events_per_job`` events."""
    per_job = config.samples.events_per_job
    jobs = []
    for sample in samples_from_config(config):
        shared = common_settings(config, sample.is_signal)
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
