"""Binned profile-likelihood fits of the score histograms with pyhf (HistFactory models).

For one grid point, from the test-split score histogram (yields scaled to the full luminosity):

1. :func:`ess_binning` merges score bins from the high-score end until each bin's background
   effective sample size ESS = (sum w)^2 / sum w^2 reaches a minimum;
2. :func:`build_spec` writes the HistFactory workspace: one signal sample (normfactor ``mu``),
   one sample per background process, staterror from the MC sum of w^2, the background
   uncertainty (``total``: a Gaussian-constrained parameter per bin shared by every background,
   width rel x the bin's total background; ``per_process``: a Poisson-constrained shapesys per
   process and bin), the signal cross-section normsys and optional per-process normsys;
3. :func:`prepare_point` rebins and checks the inputs and starts the :class:`FitPoint` record;
   the fits themselves are in :mod:`analysis.results.inference`.

Without collision data the workspace's observations are the background-only expectation. Bad
input (a bin whose total background is <= 0, no signal, too few background events, non-finite
yields) raises :class:`FitInputError` naming the grid point; the fit stage reports it per point.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import hist
import numpy as np

from analysis.core.config import AnalysisConfig
from analysis.core.errors import UserError
from analysis.core.statistics import effective_sample_size

#: Process label of collision data on the score histogram's process axis (by default).
DATA_PROCESS = "data"
CHANNEL = "signal_region"
POI = "mu"
#: Interpolation codes of ``pyhf cls`` (so refitting a workspace with the CLI gives our numbers).
MODIFIER_SETTINGS = {"normsys": {"interpcode": "code4"}, "histosys": {"interpcode": "code4p"}}


class FitInputError(UserError, ValueError):
    """Bad input for one grid point's fit; ``status`` says which kind (``bad_input``, ...)."""

    def __init__(self, point: str, message: str, status: str = "bad_input"):
        super().__init__(f"{point}: {message}")
        self.point = point
        self.status = status


@dataclass(frozen=True)
class FitSettings:
    """The plain values a fit needs (picklable, sent to every Dask task)."""

    min_background_ess: float = 10.0
    max_bins: int | None = 6
    relative_background_uncertainty: float = 0.3
    background_uncertainty: str = "total"
    mc_stat_uncertainty: bool = True
    signal_xsec_uncertainty: float = 0.05
    process_normalisation_uncertainties: tuple[tuple[str, float], ...] = ()
    poi_bounds: tuple[float, float] = (0.0, 100.0)
    backend: str = "numpy"
    max_iterations: int = 100_000
    luminosity_fb: float = 139.0
    luminosities_fb: tuple[float, ...] = ()

    @classmethod
    def from_config(cls, config: AnalysisConfig) -> FitSettings:
        """Settings from the ``fit`` section (background uncertainty default: the scan's)."""
        fit = config.fit
        relative = fit.relative_background_uncertainty
        if relative is None:
            relative = config.scan.relative_background_uncertainty
        if fit.background_uncertainty == "total" and relative >= 1:
            raise UserError(f"fit: a relative background uncertainty of {relative} (scan.relative_background_uncertainty) "
                            "would make the background negative at -1 sigma; set fit.relative_background_uncertainty < 1")
        return cls(fit.min_background_ess, fit.max_bins, float(relative), fit.background_uncertainty, fit.mc_stat_uncertainty,
                   fit.signal_xsec_uncertainty, tuple(sorted(fit.process_normalisation_uncertainties.items())),
                   tuple(fit.poi_bounds), fit.backend, fit.max_iterations, config.luminosity_fb,
                   tuple(config.scan.luminosities_fb))

    def to_json(self) -> dict:
        """The settings as recorded in ``fit.json``."""
        record = {name: getattr(self, name) for name in self.__dataclass_fields__}
        record["process_normalisation_uncertainties"] = dict(self.process_normalisation_uncertainties)
        record["poi_bounds"], record["luminosities_fb"] = list(self.poi_bounds), list(self.luminosities_fb)
        return record


@dataclass
class PointInputs:
    """The yields of one grid point: per-bin sums of weights and of squared weights."""

    label: str
    m_slepton: float
    dm: float
    edges: np.ndarray
    signal: np.ndarray
    signal_sumw2: np.ndarray
    backgrounds: dict[str, tuple[np.ndarray, np.ndarray]]
    data: np.ndarray | None = None
    signal_xsec_uncertainty: float | None = None  # from the sample metadata; None: the settings' default

    @property
    def background(self) -> np.ndarray:
        """Total background per bin."""
        return np.sum([values for values, _ in self.backgrounds.values()], axis=0)

    @property
    def background_sumw2(self) -> np.ndarray:
        """Sum of squared weights of the total background per bin."""
        return np.sum([sumw2 for _, sumw2 in self.backgrounds.values()], axis=0)


def with_observed(score: hist.Hist, observed: hist.Hist | None) -> hist.Hist:
    """``score`` (split x process x point x score) with the collision data of ``observed`` (data
    process x point x score, the scoring stage's; labels not on ``score``'s process axis) added
    as processes of the test split, where :func:`point_inputs` reads data from."""
    if observed is None or not len(observed.axes["process"]):
        return score
    processes, n_simulated = [*score.axes["process"], *observed.axes["process"]], len(score.axes["process"])
    combined = hist.Hist(score.axes["split"], hist.axis.StrCategory(processes, name="process"), score.axes["point"],
                         score.axes["score"], storage=hist.storage.Weight())
    view = combined.view()  # in-range bins: the scoring stage clips scores into [0, 1), no flow bin is filled
    view[:, :n_simulated] = score.view()
    points = [observed.axes["point"].index(p) for p in score.axes["point"]]  # the score's order of points
    view[score.axes["split"].index("test"), n_simulated:] = observed.view()[:, points]
    return combined


def point_inputs(score: hist.Hist, label: str, m_slepton: float, dm: float, background_processes: list[str],
                 data_processes: list[str] = (), split: str = "test", split_fraction: float = 1.0,
                 signal_xsec_uncertainty: float | None = None) -> PointInputs:
    """The inputs of grid point ``label`` from a split x process x point x score histogram.

    Signal (the process labelled ``label``) and backgrounds come from ``split``, divided by
    ``split_fraction`` (sumw2 by its square) so they stand for every event; collision data
    (``data_processes``) are summed over all splits. Processes missing from the axis count zero.
    """
    if not 0 < split_fraction <= 1:
        raise ValueError(f"split fraction must be in (0, 1], got {split_fraction}")
    processes = list(score.axes["process"])
    if label not in score.axes["point"]:
        raise FitInputError(label, "the score histogram has no such grid point")
    view = score[{"point": label}].view()  # (split, process, score)
    split_view = view[score.axes["split"].index(split)]
    zeros = np.zeros(score.axes["score"].size)

    def yields(process: str) -> tuple[np.ndarray, np.ndarray]:
        if process not in processes:
            return zeros.copy(), zeros.copy()
        row = split_view[processes.index(process)]
        return row["value"] / split_fraction, row["variance"] / split_fraction**2

    signal, signal_sumw2 = yields(label)
    present = [p for p in data_processes if p in processes]
    data = sum(view["value"][:, processes.index(p)].sum(axis=0) for p in present) if present else None
    return PointInputs(label, float(m_slepton), float(dm), np.asarray(score.axes["score"].edges, dtype=float),
                       signal, signal_sumw2, {p: yields(p) for p in background_processes}, data,
                       signal_xsec_uncertainty)


# ------------------------------------------------------------------------- binning


def ess_binning(background, background_sumw2, min_ess: float, max_bins: int | None = None) -> np.ndarray:
    """Bin boundaries (indices into the score edges) after merging from the high-score end.

    Walking down from the highest bin, bins are added to the current group until its total
    background is > 0 and its ESS >= ``min_ess``; the group is then closed. What is left at
    the low end is merged into the last closed group (or is the only group if none closed).
    ``min_ess = 0`` keeps the bins as they are. With ``max_bins``, everything below the
    ``max_bins - 1`` highest groups becomes one low-score bin (where the signal is small, more
    bins add nuisance parameters, not sensitivity). Returns increasing indices from 0 to nbins.

    >>> ess_binning([1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0], 2).tolist()
    [0, 2, 4]
    >>> ess_binning([5.0, 1.0, 0.0], [1.0, 1.0, 0.0], 2).tolist()
    [0, 3]
    >>> ess_binning([1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0], 1, max_bins=2).tolist()
    [0, 3, 4]
    """
    background = np.asarray(background, dtype=float)
    sumw2 = np.asarray(background_sumw2, dtype=float)
    n = background.size
    if min_ess <= 0:
        return _at_most(np.arange(n + 1), max_bins)
    cuts = [n]
    total = total_w2 = 0.0
    for index in range(n - 1, -1, -1):  # one step per score bin, not per event
        total += background[index]
        total_w2 += sumw2[index]
        if total > 0 and total_w2 > 0 and total * total / total_w2 >= min_ess:
            cuts.append(index)
            total = total_w2 = 0.0
    if cuts[-1] != 0:  # the low-end leftover joins the lowest closed group
        if len(cuts) > 1:
            cuts[-1] = 0
        else:
            cuts.append(0)
    return _at_most(np.asarray(cuts[::-1]), max_bins)


def _at_most(boundaries: np.ndarray, max_bins: int | None) -> np.ndarray:
    """Merge the lowest groups into one so that at most ``max_bins`` remain."""
    if max_bins is None or boundaries.size - 1 <= max_bins:
        return boundaries
    return np.concatenate(([0], boundaries[boundaries.size - max_bins:]))


def rebin(inputs: PointInputs, boundaries) -> PointInputs:
    """``inputs`` summed into the groups of bins between consecutive ``boundaries``."""
    starts = np.asarray(boundaries)[:-1]

    def merge(values):
        return None if values is None else np.add.reduceat(np.asarray(values, dtype=float), starts)

    return PointInputs(inputs.label, inputs.m_slepton, inputs.dm, inputs.edges[np.asarray(boundaries)],
                       merge(inputs.signal), merge(inputs.signal_sumw2),
                       {p: (merge(v), merge(w2)) for p, (v, w2) in inputs.backgrounds.items()},
                       merge(inputs.data), inputs.signal_xsec_uncertainty)


def check_inputs(inputs: PointInputs, min_background_ess: float = 0.0) -> None:
    """Raise :class:`FitInputError` (naming the point and the bin) for input no fit can use."""
    label = inputs.label
    arrays = {"signal": inputs.signal, "signal sumw2": inputs.signal_sumw2}
    for process, (values, sumw2) in inputs.backgrounds.items():
        arrays[f"background {process}"], arrays[f"background {process} sumw2"] = values, sumw2
    if inputs.data is not None:
        arrays["data"] = inputs.data
    for name, values in arrays.items():
        if not np.all(np.isfinite(values)):
            raise FitInputError(label, f"{name} has non-finite yields")
    if not inputs.backgrounds:
        raise FitInputError(label, "no background process in the score histogram")
    background, edges = inputs.background, inputs.edges
    empty = np.flatnonzero(background <= 0)
    if empty.size:
        index = empty[0]
        raise FitInputError(label, f"score bin [{edges[index]:.4g}, {edges[index + 1]:.4g}) has total "
                                   f"background {background[index]:.6g} <= 0 ({empty.size} such bin(s))")
    if not np.sum(inputs.signal) > 0:
        raise FitInputError(label, f"no signal: the signal yield summed over all bins is {np.sum(inputs.signal):.6g}")
    if inputs.data is not None and np.any(inputs.data < 0):
        raise FitInputError(label, "data counts are negative")
    ess = float(effective_sample_size(background.sum(), inputs.background_sumw2.sum()))
    if ess < min_background_ess:
        raise FitInputError(label, f"background ESS of the whole histogram is {ess:.3g}, below "
                                   f"fit.min_background_ess = {min_background_ess:g}")


# -------------------------------------------------------------------------- model


def _normsys(name: str, relative: float) -> dict:
    return {"name": name, "type": "normsys", "data": {"hi": 1.0 + relative, "lo": 1.0 - relative}}


def _background_modifiers(process: str, values: np.ndarray, sumw2: np.ndarray, settings: FitSettings) -> list[dict]:
    modifiers = []
    if settings.mc_stat_uncertainty:
        modifiers.append({"name": "mc_stat", "type": "staterror", "data": np.sqrt(sumw2).tolist()})
    relative = settings.relative_background_uncertainty
    if relative > 0 and settings.background_uncertainty == "per_process":
        modifiers.append({"name": f"bkg_uncertainty_{process}", "type": "shapesys",
                          "data": (relative * np.clip(values, 0.0, None)).tolist()})
    elif relative > 0:
        for index in range(values.size):
            hi, lo = values.copy(), values.copy()
            hi[index] *= 1.0 + relative
            lo[index] *= 1.0 - relative
            modifiers.append({"name": f"bkg_uncertainty_bin{index}", "type": "histosys",
                              "data": {"hi_data": hi.tolist(), "lo_data": lo.tolist()}})
    normalisation = dict(settings.process_normalisation_uncertainties).get(process, 0.0)
    if normalisation > 0:
        modifiers.append(_normsys(f"norm_{process}", normalisation))
    return modifiers


def build_spec(inputs: PointInputs, settings: FitSettings, scale: float = 1.0) -> dict:
    """The pyhf workspace (a JSON-able dict) of one grid point, yields multiplied by ``scale``.

    Observations: the data when there are any (and ``scale`` is 1), otherwise the background-only
    expectation. The measurement is named after the point, with POI ``mu`` in ``poi_bounds``.
    """
    signal, signal_sumw2 = inputs.signal * scale, inputs.signal_sumw2 * scale**2
    signal_modifiers = [{"name": POI, "type": "normfactor", "data": None}]
    if settings.mc_stat_uncertainty:
        signal_modifiers.append({"name": "mc_stat", "type": "staterror", "data": np.sqrt(signal_sumw2).tolist()})
    xsec = settings.signal_xsec_uncertainty if inputs.signal_xsec_uncertainty is None else inputs.signal_xsec_uncertainty
    if xsec > 0:
        signal_modifiers.append(_normsys("signal_xsec", xsec))
    samples = [{"name": inputs.label, "data": signal.tolist(), "modifiers": signal_modifiers}]
    for process, (values, sumw2) in inputs.backgrounds.items():
        values, sumw2 = values * scale, sumw2 * scale**2
        samples.append({"name": process, "data": values.tolist(),
                        "modifiers": _background_modifiers(process, values, sumw2, settings)})
    observed = inputs.data if inputs.data is not None and scale == 1.0 else inputs.background * scale
    return {
        "version": "1.0.0",
        "channels": [{"name": CHANNEL, "samples": samples}],
        "observations": [{"name": CHANNEL, "data": np.asarray(observed, dtype=float).tolist()}],
        "measurements": [{"name": inputs.label, "config": {
            "poi": POI, "parameters": [{"name": POI, "bounds": [list(settings.poi_bounds)]}]}}],
    }


# ------------------------------------------------------------------------ results


@dataclass
class FitPoint:
    """The fit of one grid point. Numbers are None unless ``status`` is ``ok``.

    ``expected_limit``: the 95% CL upper limits on mu at [-2, -1, 0, +1, +2] sigma;
    ``cls_mu1_workspace``: ``{"CLs_obs", "CLs_exp"}`` at mu = 1 as ``pyhf cls`` prints them for
    the workspace (without data its observations are the background-only expectation).
    """

    label: str
    m_slepton: float
    dm: float
    status: str = "ok"
    message: str | None = None
    has_data: bool = False
    edges: list[float] = field(default_factory=list)
    background_ess: list[float] = field(default_factory=list)
    signal: list[float] = field(default_factory=list)
    background: list[float] = field(default_factory=list)
    expected_z: float | None = None
    observed_z: float | None = None
    expected_limit: list[float] | None = None
    observed_limit: float | None = None
    cls_mu1_workspace: dict | None = None
    z_vs_luminosity: dict[str, float | None] = field(default_factory=dict)
    n_parameters: int | None = None
    workspace: str | None = None  # path of the written workspace, relative to the results folder

    @property
    def ok(self) -> bool:
        """True when the fit gave numbers."""
        return self.status == "ok"

    @property
    def median_limit(self) -> float | None:
        """The median expected upper limit on mu (None without a result)."""
        return self.expected_limit[2] if self.expected_limit else None


@dataclass
class FitSummary:
    """Every grid point's fit, the settings and the processes that entered."""

    settings: dict
    points: list[FitPoint]
    background_processes: list[str] = field(default_factory=list)
    data_processes: list[str] = field(default_factory=list)
    split: str = "test"

    @property
    def failures(self) -> dict[str, str]:
        """``{grid point: "status: message"}`` of the points without a result."""
        return {p.label: f"{p.status}: {p.message}" for p in self.points if not p.ok}

    def to_json(self) -> dict:
        """A JSON-serialisable dict (no NaN: missing numbers are None)."""
        return {"settings": self.settings, "split": self.split, "background_processes": self.background_processes,
                "data_processes": self.data_processes, "failures": self.failures,
                "points": [asdict(point) for point in self.points]}

    def report(self) -> dict:
        """The compact form the report shows: settings, failures and per point the results
        (no per-bin arrays; those stay in ``fit.json``)."""
        keys = ("label", "m_slepton", "dm", "status", "message", "has_data", "expected_z", "observed_z",
                "expected_limit", "observed_limit", "z_vs_luminosity", "workspace")
        points = [{**{key: getattr(p, key) for key in keys}, "bins": len(p.edges) - 1 if p.edges else None}
                  for p in self.points]
        return {"settings": self.settings, "background_processes": self.background_processes,
                "data_processes": self.data_processes, "failures": self.failures, "points": points}

    @classmethod
    def from_json(cls, data: dict) -> FitSummary:
        """The summary back from :meth:`to_json` output (``fit.json``)."""
        return cls(data["settings"], [FitPoint(**point) for point in data["points"]],
                   data.get("background_processes", []), data.get("data_processes", []), data.get("split", "test"))


def prepare_point(inputs: PointInputs, settings: FitSettings) -> tuple[PointInputs, FitPoint]:
    """Rebin ``inputs`` by ESS and check them; the rebinned inputs and the (empty) result record.

    Raises :class:`FitInputError` for bad input; the record then carries nothing.
    """
    boundaries = ess_binning(inputs.background, inputs.background_sumw2, settings.min_background_ess,
                             settings.max_bins)
    binned = rebin(inputs, boundaries)
    check_inputs(binned, settings.min_background_ess)
    record = FitPoint(binned.label, binned.m_slepton, binned.dm, has_data=binned.data is not None,
                      edges=binned.edges.tolist(),
                      background_ess=effective_sample_size(binned.background, binned.background_sumw2).tolist(),
                      signal=binned.signal.tolist(), background=binned.background.tolist())
    return binned, record
