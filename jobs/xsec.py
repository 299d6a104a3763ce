"""Reference cross sections: the LHC SUSY Cross Section Working Group's slepton table, and
the bookkeeping that turns Pythia's LO cross section into the one a sample is normalised to.

The table (``jobs/data/slepton_xsec_13TeV.json``, with its citation) gives, per slepton
flavour (selectron or smuon) and chirality (partner of a left- or right-handed lepton), the
pair-production cross section at NLO+NLL (Resummino 2.0.1, PDF4LHC15, sqrt(s) = 13 TeV) and
its 68% CL uncertainty, at tabulated masses between 50 and 1300 GeV. Between two tabulated
masses, log(sigma) is interpolated linearly in the mass (the cross section falls nearly
exponentially); the relative uncertainty is interpolated linearly. A mass outside the table
is refused (:class:`CrossSectionError`), never extrapolated.

A sample's cross section, in :func:`sample_cross_section`:

- signal (``signal_xsec: nlo_nll``, the default): the sum of the table's values over the
  slepton species the sample produces (~e_L, ~e_R, ~mu_L, ~mu_R: 2 x (sigma_L + sigma_R));
  ``signal_xsec: lo``: Pythia's LO (corrected, see :data:`SLEPTON_LO_COLOUR_CORRECTION`);
- background: Pythia's LO, unless the config gives a reference cross section of the
  generated sample (``reference_xsec_pb``) or a K-factor (``k_factor``).

The metadata records Pythia's (corrected) LO cross section ``xsec_lo_pb``, the K-factor
``k_factor = xsec_pb / xsec_lo_pb``, the relative uncertainty of the reference
``xsec_uncertainty`` (the larger of up and down; 0 for a LO normalisation) and where the
number came from (``xsec_source``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

from analysis.core.errors import UserError

#: Pythia 8.317's ``Sigma2qqbar2sleptonantislepton`` divides its matrix element by 9 for the
#: colour average, where the colour-singlet q qbar current gives sum/average = 3/9 = 1/3: every
#: slepton cross section is a factor 3 low (measured: Pythia's photon-only cross section is
#: 1/2.93 of the analytic pi alpha^2 e_q^2 beta^3 / (9 s) folded with the same PDFs, see the
#: README, "Signal normalisation"). All kinematic distributions are unaffected (a constant factor).
SLEPTON_LO_COLOUR_CORRECTION = 3.0

#: The slepton species (PDG id) -> (table flavour, chirality) of the reference table.
SLEPTON_SPECIES = {1000011: ("e", "L"), 2000011: ("e", "R"), 1000013: ("mu", "L"), 2000013: ("mu", "R")}

_TABLE_FILE = "slepton_xsec_13TeV.json"


class CrossSectionError(UserError, ValueError):
    """A cross section cannot be assigned (e.g. a mass outside the reference table); the
    message names the sample and the table's range."""


@dataclass(frozen=True)
class ReferenceValue:
    """An interpolated reference cross section (pb) with its absolute 68% CL uncertainties."""

    xsec_pb: float
    unc_up_pb: float
    unc_down_pb: float

    def __add__(self, other: ReferenceValue) -> ReferenceValue:
        # The species share PDFs and scales: their uncertainties add linearly (fully correlated).
        return ReferenceValue(self.xsec_pb + other.xsec_pb, self.unc_up_pb + other.unc_up_pb,
                              self.unc_down_pb + other.unc_down_pb)

    @property
    def relative_uncertainty(self) -> float:
        """The larger of the up and down uncertainty, relative to the cross section."""
        return max(self.unc_up_pb, self.unc_down_pb) / self.xsec_pb


@lru_cache(maxsize=1)
def slepton_table() -> dict:
    """The shipped working-group table (plain JSON, package data), with its citation."""
    text = resources.files("jobs").joinpath("data", _TABLE_FILE).read_text()
    return json.loads(text)


def table_mass_range() -> tuple[float, float]:
    """The smallest and largest tabulated slepton mass (GeV)."""
    masses = slepton_table()["tables"]["L"]["mass_gev"]
    return float(masses[0]), float(masses[-1])


def interpolate_log(masses, values, mass: float) -> float:
    """log(value) interpolated linearly in mass between the two neighbouring points.

    >>> round(interpolate_log([100.0, 200.0], [1.0, 0.01], 150.0), 12)
    0.1
    """
    return float(np.exp(np.interp(mass, masses, np.log(values))))


def slepton_pair_xsec(m_slepton: float, chirality: str, sample: str = "signal") -> ReferenceValue:
    """NLO+NLL pair cross section of one slepton flavour of ``chirality`` ("L" or "R") at
    ``m_slepton`` GeV; :class:`CrossSectionError` outside the table (named after ``sample``)."""
    table = slepton_table()
    low, high = table_mass_range()
    if not low <= m_slepton <= high:
        raise CrossSectionError(
            f"sample {sample}: m_slepton = {m_slepton:g} GeV lies outside the reference cross-section table "
            f"({low:g}-{high:g} GeV, {table['order']} {table['tool']}); the table is not extrapolated. "
            "Choose a grid point inside it, or set samples.signal_xsec: lo to use Pythia's LO cross section."
        )
    rows = table["tables"][chirality]
    masses = np.asarray(rows["mass_gev"])
    xsec = interpolate_log(masses, rows["xsec_pb"], m_slepton)
    relative_up = float(np.interp(m_slepton, masses, np.divide(rows["unc_up_pb"], rows["xsec_pb"])))
    relative_down = float(np.interp(m_slepton, masses, np.divide(rows["unc_down_pb"], rows["xsec_pb"])))
    return ReferenceValue(xsec, relative_up * xsec, relative_down * xsec)


def signal_reference(m_slepton: float, species: tuple[int, ...], sample: str = "signal") -> ReferenceValue:
    """The reference cross section of a signal sample producing pairs of each of ``species``."""
    values = [slepton_pair_xsec(m_slepton, SLEPTON_SPECIES[pid][1], sample) for pid in species]
    total = values[0]
    for value in values[1:]:
        total = total + value
    return total


def citation() -> str:
    """One line naming the reference table (for metadata and reports)."""
    table = slepton_table()
    return f"{table['citation'][0]} ({table['order']}, {table['tool']}, {table['pdf']}; {table['data_source']})"


@dataclass(frozen=True)
class Normalisation:
    """How a sample's cross section is set (see the module docstring).

    ``mode``: ``lo`` (Pythia's cross section), ``nlo_nll`` (the slepton reference table, for the
    ``species`` produced at the sample's mass), ``reference`` (``reference_xsec_pb``, the cross
    section of the generated sample as a user gives it) or ``k_factor`` (LO x ``k_factor``).
    ``lo_correction`` multiplies Pythia's cross section before anything else (the slepton
    colour-factor fix). ``uncertainty`` and ``source`` describe a user-given reference.
    """

    mode: str = "lo"
    lo_correction: float = 1.0
    species: tuple[int, ...] = ()
    reference_xsec_pb: float | None = None
    k_factor: float | None = None
    uncertainty: float = 0.0
    source: str = ""

    def __post_init__(self):
        if self.mode not in ("lo", "nlo_nll", "reference", "k_factor"):
            raise CrossSectionError(f"unknown cross-section normalisation {self.mode!r}")
        if self.mode == "reference" and not (self.reference_xsec_pb and self.reference_xsec_pb > 0):
            raise CrossSectionError(f"a reference normalisation needs reference_xsec_pb > 0 (got {self.reference_xsec_pb!r})")
        if self.mode == "k_factor" and not (self.k_factor and self.k_factor > 0):
            raise CrossSectionError(f"a k_factor normalisation needs k_factor > 0 (got {self.k_factor!r})")


def sample_cross_section(sample, lo_xsec_pb: float, lo_xsec_err_pb: float,
                         filter_efficiency: float = 1.0, filter_efficiency_err: float = 0.0) -> dict:
    """The metadata fields of a sample's normalisation.

    ``sample`` is a :class:`jobs.samples.Sample` (its ``normalisation`` says how);
    ``lo_xsec_pb`` is Pythia's ``sigmaGen`` combined over the jobs (pb) *before* any
    generator-level filter, and ``filter_efficiency`` the (weighted) fraction of events the
    filters kept. The physics cross section (LO, reference or LO x K) is multiplied by the
    filter efficiency: ``xsec_pb`` is the cross section of what was generated, so event
    weights ``genWeight x xsec_pb x L / sum_genweight`` stay unbiased.

    Returns ``xsec_pb``, ``xsec_err_pb`` (its MC error: Pythia's, of the filtered ``sigmaGen``, for
    ``lo``/``k_factor``; of the filter efficiency for a reference), ``xsec_lo_pb`` and ``xsec_lo_err_pb`` (Pythia's LO after
    the correction, before filters), ``k_factor = reference / LO``, ``filter_efficiency``,
    ``xsec_uncertainty`` (relative, of the reference; 0 for LO) and ``xsec_source``.
    """
    norm = sample.normalisation
    lo = lo_xsec_pb * norm.lo_correction
    lo_err = lo_xsec_err_pb * norm.lo_correction
    if not (math.isfinite(lo) and lo > 0):
        raise CrossSectionError(f"sample {sample.name}: Pythia's cross section is {lo_xsec_pb!r} pb; cannot normalise")
    if not 0 < filter_efficiency <= 1:
        raise CrossSectionError(f"sample {sample.name}: generator filter efficiency {filter_efficiency!r} is not in (0, 1]")
    if norm.mode == "nlo_nll":
        reference = signal_reference(sample.m_slepton, norm.species, sample.name)
        physics, uncertainty, source, physics_err = reference.xsec_pb, reference.relative_uncertainty, citation(), 0.0
    elif norm.mode == "reference":
        physics, uncertainty, source, physics_err = norm.reference_xsec_pb, norm.uncertainty, norm.source, 0.0
    elif norm.mode == "k_factor":
        physics, uncertainty, source, physics_err = lo * norm.k_factor, norm.uncertainty, norm.source, lo_err * norm.k_factor
    else:  # "lo"
        physics, uncertainty, source, physics_err = lo, 0.0, "Pythia 8 LO (sigmaGen)", lo_err
    xsec = physics * filter_efficiency
    if norm.mode in ("lo", "k_factor"):
        # Pythia's error of the filtered sigmaGen already counts the accepted events: no extra term.
        xsec_err = physics_err * filter_efficiency
    else:
        xsec_err = xsec * filter_efficiency_err / filter_efficiency
    return {
        "xsec_pb": float(xsec),
        "xsec_err_pb": float(xsec_err),
        "xsec_lo_pb": float(lo),
        "xsec_lo_err_pb": float(lo_err),
        "k_factor": float(physics / lo),
        "filter_efficiency": float(filter_efficiency),
        "xsec_uncertainty": float(uncertainty),
        "xsec_source": source,
    }
