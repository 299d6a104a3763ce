"""Targeted production: the bookkeeping of filter efficiencies, the truth-MET bound against the
final truth MET, truth tagging against random tagging, and closure of targeted against
unbiased reference samples (WW, ttbar, one signal point) after a loose control selection and
after the thesis preselection."""

from __future__ import annotations

import math
import tempfile
from dataclasses import replace
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import uproot

from analysis.core.config import ConfigError, config_from_dict, default_config
from analysis.core.fileset import load_fileset
from analysis.core.statistics import effective_sample_size
from jobs.detector import reconstruct_events
from jobs.hooks import (
    HookError,
    filter_efficiency,
    installed_hooks,
    parse_hook_spec,
    pythia_acceptance,
)
from jobs.pythia_job import generate_particles, leptonic_tau_fraction, make_pythia
from jobs.samples import SampleSettingError, jobs_from_config, samples_from_config

#: The loose control selection: the first four preselection cuts (inside the filters' acceptance:
#: the filter keeps only events whose hard-process leptons can make a same-flavour pair).
CONTROL_CUTS = {"two_leptons": "n_lepton == 2", "met": "met > 200", "same_flavour": "lep1_flavour == lep2_flavour",
                "opposite_charge": "lep1_charge * lep2_charge < 0"}


def test_filter_efficiency_is_the_weighted_ratio_estimator():
    # Unweighted truth-MET filter: 30 of 200 kept -> 0.15 +- sqrt(0.15 * 0.85 / 200).
    job = {"truth_met": {"seen": 200, "kept": 30, "seen_sumw": 200.0, "kept_sumw": 30.0, "seen_sumw2": 200.0,
                         "kept_sumw2": 30.0}}
    eff, err = filter_efficiency([job])
    assert eff == pytest.approx(0.15) and err == pytest.approx(math.sqrt(0.15 * 0.85 / 200))
    assert pythia_acceptance([job]) == pytest.approx(0.15)
    # Weighted: kept weights 3 x 2.0 of total 10 (seen 4 x 1.0 + 3 x 2.0): eff 0.6, and Pythia's
    # counted acceptance (what its sigmaGen holds) is 3 / 7.
    weighted = {"truth_met": {"seen": 7, "kept": 3, "seen_sumw": 10.0, "kept_sumw": 6.0, "seen_sumw2": 16.0,
                              "kept_sumw2": 12.0}}
    eff, err = filter_efficiency([weighted])
    assert eff == pytest.approx(0.6)
    assert err == pytest.approx(math.sqrt((0.4**2 * 12 + 0.6**2 * 4) / 100))
    assert pythia_acceptance([weighted]) == pytest.approx(3 / 7)
    # Forced leptonic taus, f = 0.35^n per event: two events with n = 0 and n = 2 -> (1 + 0.1225) / 2.
    taus = {"leptonic_taus": {"sumw": 2.0, "sumwf": 1.1225, "sumw2": 2.0, "sumw2f": 1.1225,
                              "sumw2f2": 1 + 0.1225**2}}
    eff, err = filter_efficiency([taus])
    assert eff == pytest.approx(0.56125)
    assert err == pytest.approx(math.sqrt(((1 - 0.56125) ** 2 + (0.1225 - 0.56125) ** 2) / 4))
    assert filter_efficiency([job, taus]) != filter_efficiency([job])  # jobs are summed per filter
    assert filter_efficiency([{}]) == (1.0, 0.0)


def test_bad_filter_settings_are_refused_with_the_setting_named():
    for spec, message in [("truth_met:min=-5", "min must be"), ("truth_met:scale=0", "scale must be > 0"),
                          ("truth_met:mni=100", "unknown parameter 'mni'"), ("truth_met:min=abc", "must be a number"),
                          ("met_filter", "unknown Pythia hook")]:
        with pytest.raises(HookError, match=message):
            from jobs.hooks import validate_hook_names

            validate_hook_names([spec])
    assert parse_hook_spec("truth_met:min=150:scale=30:lep=8") == ("truth_met", {"min": 150.0, "scale": 30.0, "lep": 8.0})
    data = default_config().model_dump(mode="json")
    for key, value, message in [
        ("truth_met_filter", {"min_gev": -1}, "greater than or equal to 0"),
        ("truth_met_filter", {"samples": ["QCD"]}, "unknown sample kind"),
        ("truth_met_filter", {"veto_scale_gev": 0}, "greater than 0"),
        ("leptonic_taus", ["Wjets"], "unknown background"),
        ("pt_bias_power_per_process", {"WW": 12}, "bias power must lie in"),
        ("background_events_per_process", {"WW": 0}, "must be > 0"),
    ]:
        trial = {**data, "samples": {**data["samples"], key: value}}
        with pytest.raises(ConfigError, match=message):
            config_from_dict(trial)
    no_veto = {**data, "selection": {**data["selection"], "cuts": {"two_leptons": "n_lepton == 2"}}}
    with pytest.raises(SampleSettingError, match="btag_veto_weights.*b-jet veto"):
        samples_from_config(config_from_dict(no_veto))


def _single_sample_config(tmp_path: Path, sample: str, n_events: int, *, seed: int = 1, reference: bool = False,
                          per_job: int | None = None):
    """The default analysis reduced to one sample. ``reference``: unbiased and unfiltered (the
    filter only records its bound), natural tau decays; truth tagging as in the targeted sample."""
    data = default_config().model_dump(mode="json")
    samples = data["samples"]
    samples.update(cache_dir=str(tmp_path), events_per_job=per_job or n_events, background_events_per_process={})
    if sample.startswith("slepton"):
        m, dm = (float(v) for v in sample.split("_")[1:])
        samples.update(signal_grid=[{"m_slepton": m, "dm": dm}], backgrounds=[], signal_events=n_events)
    else:
        samples.update(signal_grid=[], backgrounds=[sample], background_events=n_events)
    if reference:
        samples["truth_met_filter"]["record_only"] = True
        samples.update(leptonic_taus=[], pt_bias_power=0.0, pt_bias_power_per_process={}, signal_pt_bias_power=0.0)
    data["seed"] = seed
    return config_from_dict(data)


def test_truth_met_bound_holds_for_the_final_truth_met(tmp_path):
    """The filter's bound B, taken at the 30 GeV shower scale, against the truth MET of the
    finished event (every invisible final-state particle): B >= MET_truth - 30 GeV for (almost)
    every WW event, so a filter at B >= 150 keeps everything with a truth MET above ~180 GeV."""
    config = _single_sample_config(tmp_path, "WW", 400, reference=True)
    job = jobs_from_config(config)[0]
    pythia = make_pythia(job, tmp_path)
    hook = installed_hooks(pythia)["truth_met"]
    bounds, truth = [], []
    for _ in range(400):
        assert pythia.next()
        bounds.append(hook.last_bound)
        x = sum(p.px() for p in pythia.event if p.isFinal() and p.idAbs() in (12, 14, 16))
        y = sum(p.py() for p in pythia.event if p.isFinal() and p.idAbs() in (12, 14, 16))
        truth.append(math.hypot(x, y))
    bounds, truth = np.array(bounds), np.array(truth)
    assert np.mean(truth <= bounds + 30.0) >= 0.99
    assert np.median(bounds - truth) > 0  # an upper bound, not an estimate
    assert installed_hooks(pythia)["truth_met"].counts()["seen"] == 400


def test_truth_tagging_weight_is_the_mean_of_random_tagging(tmp_path):
    """P(no jet tagged), the truth-tagging weight, against random tagging of the same ttbar events
    with the same detector draws (smearing): averaged over 150 detector runs, the fraction of runs
    in which no jet is tagged equals the mean weight, event by event."""
    config = _single_sample_config(tmp_path, "ttbar", 40)
    job = jobs_from_config(config)[0]
    job = replace(job, sample=replace(job.sample, hooks=()))  # no filter: any ttbar events will do
    particles, b_quarks, _ = generate_particles(make_pythia(job, tmp_path), 40)
    untagged, weights = np.zeros(40), np.zeros(40)
    for seed in range(150):
        random = reconstruct_events(particles, b_quarks, np.random.default_rng(seed))
        truth = reconstruct_events(particles, b_quarks, np.random.default_rng(seed), btag_veto_weights=True)
        assert ak.sum(truth["Jet"].btag) == 0 and np.array_equal(ak.to_numpy(truth["MET_pt"]), ak.to_numpy(random["MET_pt"]))
        untagged += ak.to_numpy(~ak.any(random["Jet"].btag, axis=1))
        weights += truth["btag_veto_weight"]
    untagged, weights = untagged / 150, weights / 150
    assert weights.min() < 0.1  # events with two tag-able b jets: 0.23^2
    assert untagged == pytest.approx(weights, abs=4 * np.sqrt(0.25 / 150))
    assert np.mean(untagged) == pytest.approx(np.mean(weights), abs=0.02)


def test_forced_tau_decays_weight_each_tau_by_its_leptonic_fraction(tmp_path):
    config = _single_sample_config(tmp_path, "WW", 200)
    job = replace(jobs_from_config(config)[0], n_events=200)
    job = replace(job, sample=replace(job.sample, hooks=()))
    pythia = make_pythia(job, tmp_path)
    fraction = leptonic_tau_fraction(pythia)
    assert fraction == pytest.approx(0.3504, abs=0.001)  # BR(tau -> e nu nu) + BR(tau -> mu nu nu)
    sums = {}
    _, _, weights = generate_particles(pythia, 200, None, fraction, sums)
    # W -> e, mu, tau equally: the weights are 1, 0.35 and 0.35^2 with 4/9, 4/9, 1/9 of the events.
    assert set(np.round(weights, 6)) <= {1.0, round(fraction, 6), round(fraction**2, 6)}
    assert sums["sumwf"] / sums["sumw"] == pytest.approx(np.mean(weights))
    assert np.mean(weights) == pytest.approx((2 / 3 + fraction / 3) ** 2, abs=0.06)


def _generate(config):
    from jobs.generate import generate_samples

    manifest = generate_samples(config, workers=2, show_progress=False)
    (_, entry), = load_fileset(manifest).items()
    return entry


def _selected(entry, config, cuts=None):
    """Weights (normalised to the config's luminosity) and MET, m_ll, leading-lepton pT of the
    events that pass ``cuts`` (default: the config's preselection), and the filter's loss."""
    from coffea.nanoevents import BaseSchema, NanoEventsFactory

    from processors.columns import AnalysisColumns, ChunkColumns
    from processors.objects import select_objects
    from processors.selection import Preselection, apply_cuts

    selection = config.selection if cuts is None else config.selection.model_copy(update={"cuts": cuts})
    preselection = Preselection.from_config(selection)
    meta = entry["metadata"]
    out = {key: [] for key in ("w", "met", "mll", "lep1_pt", "passes")}
    for path, tree in entry["files"].items():
        events = NanoEventsFactory.from_root({path: tree}, schemaclass=BaseSchema, mode="eager").events()
        objects = select_objects(events, config.selection.objects)
        columns = ChunkColumns(events, objects, AnalysisColumns.from_config(config), preselection.btag_pt_min)
        weights = ak.to_numpy(events.genWeight).astype(np.float64) * meta["xsec_pb"] * 1e3 * config.luminosity_fb / meta["sum_genweight"]
        rows = apply_cuts(preselection, columns, weights, events).rows
        out["w"].append(weights[rows])
        for key, column in (("met", "met"), ("mll", "mll"), ("lep1_pt", "lep1_pt")):
            out[key].append(columns.get(column, rows))
        branches = uproot.open(path)[tree].keys()
        passes = (uproot.open(path)[tree]["GenFilter_pass"].array(library="np")[rows] > 0.5
                  if "GenFilter_pass" in branches else np.ones(len(rows), bool))
        out["passes"].append(passes)
    return {key: np.concatenate(values) for key, values in out.items()}


def _pull(a, b) -> float:
    return (a["w"].sum() - b["w"].sum()) / math.sqrt((a["w"] ** 2).sum() + (b["w"] ** 2).sum())


def _chi2(a, b, column: str, n_bins: int = 10, min_per_bin: int = 10) -> tuple[float, int]:
    """``(chi2, ndf)`` of the shapes of two weighted samples (each normalised to unit area), in
    bins of equal population in the *smaller* sample ``b`` (the reference), at least
    ``min_per_bin`` of its events per bin, so that no bin's variance rests on a handful of events."""
    n_bins = max(2, min(n_bins, len(b[column]) // min_per_bin))
    edges = np.unique(np.quantile(b[column], np.linspace(0, 1, n_bins + 1)))
    edges[0], edges[-1] = -np.inf, np.inf  # every event of both samples in some bin
    ha, _ = np.histogram(a[column], edges, weights=a["w"])
    va, _ = np.histogram(a[column], edges, weights=a["w"] ** 2)
    hb, _ = np.histogram(b[column], edges, weights=b["w"])
    vb, _ = np.histogram(b[column], edges, weights=b["w"] ** 2)
    na, nb = ha.sum(), hb.sum()
    variance = va / na**2 + vb / nb**2
    return float(((ha / na - hb / nb) ** 2 / variance).sum()), len(ha) - 1


SHAPES = ("met", "mll", "lep1_pt")


@pytest.mark.slow
@pytest.mark.parametrize("sample, n_targeted, n_reference", [
    ("slepton_300_75", 2000, 8000),
    ("WW", 6000, 60000),
    ("ttbar", 6000, 60000),
])
def test_targeted_sample_closes_on_an_unbiased_reference(sample, n_targeted, n_reference):
    """Targeted (default settings) against unbiased (unfiltered, unbiased, natural tau decays)
    samples of independent seeds, after the loose control selection and after the thesis
    preselection:

    - weighted yields within their combined MC error (pull < 2);
    - MET, m_ll and leading-lepton pT shapes: chi2 / ndf < 2 over the six comparisons of a sample
      together, and no single comparison below a p-value of 1e-3 (the unbiased reference keeps
      only 30-150 events, so one comparison has 2-4 bins: alone, chi2 / ndf > 2 happens by chance
      in 10-14% of such comparisons, which the pooled ratio and the trials-corrected p-value do not);
    - the filter's loss, measured on the reference, below 2% of the selected yield within two
      standard errors.

    Minutes of generation: the samples live in a private temporary directory (pytest's own may
    be pruned by concurrent sessions during that time)."""
    with tempfile.TemporaryDirectory(prefix="bsmscan-closure-") as tmp:
        _closure(Path(tmp), sample, n_targeted, n_reference)


def _closure(tmp_path: Path, sample: str, n_targeted: int, n_reference: int) -> None:
    from scipy.stats import chi2 as chi2_distribution

    targeted_config = _single_sample_config(tmp_path / "t", sample, n_targeted, seed=11, per_job=n_targeted // 2)
    reference_config = _single_sample_config(tmp_path / "r", sample, n_reference, seed=12, reference=True,
                                             per_job=n_reference // 2)
    targeted, reference = _generate(targeted_config), _generate(reference_config)
    total_chi2, total_ndf = 0.0, 0
    for cuts in (CONTROL_CUTS, None):
        t, r = _selected(targeted, targeted_config, cuts), _selected(reference, reference_config, cuts)
        assert len(t["w"]) >= 20 and len(r["w"]) >= 20, (sample, cuts, len(t["w"]), len(r["w"]))
        assert abs(_pull(t, r)) < 2, (sample, cuts, t["w"].sum(), r["w"].sum())
        for column in SHAPES:
            chi2, ndf = _chi2(t, r, column)
            assert chi2_distribution.sf(chi2, ndf) > 1e-3, (sample, cuts, column, chi2, ndf)
            total_chi2, total_ndf = total_chi2 + chi2, total_ndf + ndf
        # What the filter would have lost, measured on the reference: below 2% of its selected
        # yield, within the reference's statistics (a few dozen events for WW and ttbar).
        lost = r["w"][~r["passes"]].sum() / r["w"].sum()
        ess = effective_sample_size(r["w"].sum(), (r["w"] ** 2).sum())
        lost_err = math.sqrt(max(lost * (1 - lost), 1 / len(r["w"])) / ess)
        assert lost - 2 * lost_err < 0.02, (sample, cuts, lost, lost_err, int((~r["passes"]).sum()), len(r["w"]))
    assert total_chi2 / total_ndf < 2, (sample, total_chi2, total_ndf)
