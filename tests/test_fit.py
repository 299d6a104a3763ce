"""The fit stage: pyhf models of the score histograms, known answers, workspaces, Dask, bad input."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys

import numpy as np
import pyhf
import pytest
from scipy.optimize import minimize_scalar
from scipy.stats import norm

from analysis.core.config import ConfigError, config_from_dict, default_config
from analysis.core.executors import local_cluster
from analysis.core.names import point_name
from analysis.core.statistics import asimov_significance
from analysis.pipeline import SIGNAL_STAGES, STAGES, parse_stages
from analysis.results import inference
from analysis.results.fit_plots import interpolated, make_fit_plots
from analysis.results.html import render_html, to_json_safe
from analysis.results.inference import (
    asimov_data,
    discovery_significance,
    fit_point,
    load_workspace,
    pyhf_backend,
    upper_limits,
)
from analysis.results.likelihood import (
    FitInputError,
    FitSettings,
    FitSummary,
    PointInputs,
    build_spec,
    effective_sample_size,
    ess_binning,
    point_inputs,
    rebin,
    with_observed,
)
from analysis.stages.fit import (
    FitConfigError,
    fit_inputs_from_fileset,
    load_fit,
    run_fit,
)
from processors.scoring import score_histogram

BACKGROUNDS = {"WW": (3000, 0.04, (1.0, 5.0)), "ttbar": (1500, 0.15, (1.0, 4.0)), "ZZ": (1500, 0.01, (1.0, 7.0))}
POINTS = [(100.0, 40.0), (200.0, 10.0), (200.0, 75.0), (300.0, 40.0)]


def synthetic_histogram(points, seed: int = 7, data: bool = False, signal_events: int = 400, flat: int = 0):
    """A split x process x point x score histogram like the scoring stage's (falling backgrounds,
    rising signal; weights ~ L x sigma / N), optionally with Poisson 'data' drawn from the
    background-only expectation, and ``flat`` ZZ events uniform in the score."""
    rng = np.random.default_rng(seed)
    labels = [point_name(m, dm) for m, dm in points]
    processes = [*BACKGROUNDS, *labels] + (["data"] if data else [])
    histogram = score_histogram(processes, labels, 50)
    for label, (m, dm) in zip(labels, points):
        for split in ("train", "validation", "test"):
            for process, (n, weight, shape) in BACKGROUNDS.items():
                scores = np.clip(rng.beta(*shape, size=n), 0, 1 - 1e-7)
                histogram.fill(split=split, process=process, point=label, score=scores,
                               weight=np.full(n, weight) * rng.uniform(0.7, 1.3, n))
            if flat:
                histogram.fill(split=split, process="ZZ", point=label, score=rng.uniform(0, 1, flat),
                               weight=np.full(flat, 0.01))
            scores = np.clip(rng.beta(1.5 + dm / 25, 1.5, size=signal_events), 0, 1 - 1e-7)
            histogram.fill(split=split, process=label, point=label, score=scores,
                           weight=np.full(signal_events, 0.004 * (200.0 / m) ** 3))
            if data:  # Poisson counts of the background expectation, one split's share
                expected = sum(n * weight for n, weight, _ in BACKGROUNDS.values())
                count = rng.poisson(expected)
                shares = np.array([n * w for n, w, _ in BACKGROUNDS.values()]) / expected
                which = rng.choice(len(BACKGROUNDS), size=count, p=shares)
                shapes = np.array([shape for _, _, shape in BACKGROUNDS.values()])
                histogram.fill(split=split, process="data", point=label,
                               score=np.clip(rng.beta(shapes[which, 0], shapes[which, 1]), 0, 1 - 1e-7))
    return histogram


def fit_config(**fit):
    """The default analysis with small, fast fit models."""
    data = default_config().model_dump(mode="json")
    data["fit"].update({"max_bins": 3, **fit})
    data["scan"]["luminosities_fb"] = [139.0, 1000.0]
    data["training"]["folds"] = 1  # the synthetic histograms are one network's test split (a fifth of the events)
    return config_from_dict(data, source="tests")


def one_bin(s: float, b: float, sumw2: float = 0.0, label: str = "slepton_200_40") -> PointInputs:
    return PointInputs(label, 200.0, 40.0, np.array([0.0, 1.0]), np.array([s]), np.array([0.0]),
                       {"bkg": (np.array([b]), np.array([sumw2]))})


def model_of(spec: dict):
    return load_workspace(spec, "test")[1]


# ------------------------------------------------------------------- known answers

KNOWN = [(5.0, 10.0, 1.0), (10.0, 100.0, 30.0), (3.0, 1.0, 0.5), (50.0, 200.0, 20.0), (2.0, 400.0, 4.0)]


@pytest.mark.parametrize(("s", "b", "sigma_b"), KNOWN)
def test_one_bin_shapesys_discovery_z_is_the_atlas_formula(s, b, sigma_b):
    """One bin, one background with a Poisson-constrained (shapesys) uncertainty: the on/off
    problem of ATL-PHYS-PUB-2020-025, Eq. 1 (auxiliary count tau b with tau = b / sigma_b^2)."""
    settings = FitSettings(relative_background_uncertainty=sigma_b / b, background_uncertainty="per_process",
                           mc_stat_uncertainty=False, signal_xsec_uncertainty=0.0)
    model = model_of(build_spec(one_bin(s, b), settings))
    assert [m["type"] for m in build_spec(one_bin(s, b), settings)["channels"][0]["samples"][1]["modifiers"]] == ["shapesys"]
    expected = asimov_significance(s, b, sigma_b)
    assert discovery_significance(model, asimov_data(model, 1.0)) == pytest.approx(expected, rel=1e-3)
    # the same number through hypotest's p-value (what discovery_significance shortcuts)
    p0 = float(pyhf.infer.hypotest(0.0, asimov_data(model, 1.0), model, test_stat="q0"))
    assert norm.isf(p0) == pytest.approx(expected, rel=1e-3)


@pytest.mark.parametrize(("s", "b"), [(5.0, 10.0), (10.0, 100.0), (3.0, 1.0), (20.0, 50.0)])
def test_without_uncertainty_the_discovery_z_is_the_cowan_formula(s, b):
    settings = FitSettings(relative_background_uncertainty=0.0, mc_stat_uncertainty=False, signal_xsec_uncertainty=0.0)
    model = model_of(build_spec(one_bin(s, b), settings))
    assert model.config.npars == 1  # only mu
    cowan = math.sqrt(2 * ((s + b) * math.log(1 + s / b) - s))
    assert discovery_significance(model, asimov_data(model, 1.0)) == pytest.approx(cowan, rel=1e-6)
    assert cowan == pytest.approx(float(asimov_significance(s, b, 0.0)), rel=1e-12)


@pytest.mark.parametrize(("s", "b", "relative"), [(10.0, 100.0, 0.3), (5.0, 20.0, 0.1), (30.0, 60.0, 0.5)])
def test_total_background_uncertainty_is_one_gaussian_parameter_per_bin(s, b, relative):
    """'total' mode, one bin: q0 = 2 min_a [b(1+r a) - n ln b(1+r a) + a^2/2] - 2 [n - n ln n] with
    n = s + b (Asimov), profiled here by hand."""
    settings = FitSettings(relative_background_uncertainty=relative, mc_stat_uncertainty=False, signal_xsec_uncertainty=0.0)
    model = model_of(build_spec(one_bin(s, b), settings))
    n = s + b

    def nll(alpha):
        rate = b * (1 + relative * alpha)
        return rate - n * math.log(rate) + 0.5 * alpha**2

    best = minimize_scalar(nll, bounds=(-1 / relative + 1e-9, 5.0), method="bounded", options={"xatol": 1e-12})
    z = math.sqrt(2 * (best.fun - (n - n * math.log(n))))
    assert discovery_significance(model, asimov_data(model, 1.0)) == pytest.approx(z, rel=1e-4)
    assert z < float(asimov_significance(s, b, 0.0))


def _cowan_cls(mu: float, n, s, b) -> tuple[float, float]:
    """Observed and median expected CLs of qtilde (Cowan et al., EPJC 71 (2011) 1554, Eqs. 16, 65,
    66) for Poisson bins without nuisance parameters; mu-hat >= 0, as pyhf's bounded fit."""
    def nll(m, counts):
        rate = m * s + b
        return float(np.sum(rate - counts * np.log(rate)))

    fit = minimize_scalar(lambda m: nll(m, n), bounds=(0.0, 10.0), method="bounded", options={"xatol": 1e-10})
    mu_hat = fit.x
    q = 0.0 if mu_hat > mu else max(2 * (nll(mu, n) - nll(mu_hat, n)), 0.0)
    q_a = max(2 * (nll(mu, b) - nll(0.0, b)), 0.0)
    if q <= q_a:
        cls_observed = (1 - norm.cdf(math.sqrt(q))) / norm.cdf(math.sqrt(q_a) - math.sqrt(q))
    else:
        cls_observed = (1 - norm.cdf((q + q_a) / (2 * math.sqrt(q_a)))) / (1 - norm.cdf((q - q_a) / (2 * math.sqrt(q_a))))
    return cls_observed, 2 * (1 - norm.cdf(math.sqrt(q_a)))


def test_cls_limit_of_a_two_bin_model_matches_a_brute_force_scan():
    s, b, n = np.array([6.0, 12.0]), np.array([30.0, 10.0]), np.array([33.0, 14.0])
    spec = {"version": "1.0.0",
            "channels": [{"name": "sr", "samples": [
                {"name": "signal", "data": s.tolist(), "modifiers": [{"name": "mu", "type": "normfactor", "data": None}]},
                {"name": "background", "data": b.tolist(), "modifiers": []}]}],
            "observations": [{"name": "sr", "data": n.tolist()}],
            "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": [{"name": "mu", "bounds": [[0, 10]]}]}}]}
    workspace, model = load_workspace(spec, "two-bin")
    observed, expected = upper_limits(model, workspace.data(model))
    grid = np.linspace(0.02, 4.0, 2000)  # brute force: CLs on a fine grid, interpolated at 0.05
    values = np.array([_cowan_cls(mu, n, s, b) for mu in grid])
    brute = [float(np.interp(0.05, values[::-1, k], grid[::-1])) for k in (0, 1)]
    assert observed == pytest.approx(brute[0], rel=2e-3)
    assert expected[2] == pytest.approx(brute[1], rel=2e-3)
    assert expected == sorted(expected)


def test_limits_reproduce_pyhf_documented_example():
    """pyhf.infer.intervals.upper_limits.toms748_scan docstring (pyhf 0.7, rtol=0.01)."""
    model = pyhf.simplemodels.uncorrelated_background(signal=[12.0, 11.0], bkg=[50.0, 52.0], bkg_uncertainty=[3.0, 7.0])
    data = pyhf.tensorlib.astensor([51, 48] + model.config.auxdata)
    observed, expected = upper_limits(model, data)
    assert observed == pytest.approx(1.01156939, rel=1e-2)
    assert expected == pytest.approx([0.5600747, 0.75702605, 1.06234693, 1.50116923, 2.05078912], rel=1e-2)
    reference = pyhf.infer.intervals.upper_limits.toms748_scan(data, model, 0.0, 5.0, rtol=1e-5)
    assert observed == pytest.approx(float(reference[0]), rel=1e-3)
    assert expected == pytest.approx([float(v) for v in reference[1]], rel=1e-3)


def test_z_against_luminosity_scales_yields_and_mc_uncertainty():
    settings = FitSettings(relative_background_uncertainty=0.2, background_uncertainty="per_process",
                           mc_stat_uncertainty=False, signal_xsec_uncertainty=0.0, max_bins=1,
                           luminosity_fb=139.0, luminosities_fb=(139.0, 300.0, 3000.0))
    record, _ = fit_point(one_bin(8.0, 40.0, sumw2=4.0), settings)
    assert record.ok, record.message
    for luminosity in (139.0, 300.0, 3000.0):
        k = luminosity / 139.0
        assert record.z_vs_luminosity[f"{luminosity:g}"] == pytest.approx(
            float(asimov_significance(8.0 * k, 40.0 * k, 0.2 * 40.0 * k)), rel=1e-3)
    assert record.z_vs_luminosity["139"] == pytest.approx(record.expected_z, rel=1e-9)


# ------------------------------------------------------------------------- binning


def test_ess_binning_merges_from_the_high_score_end():
    assert ess_binning([1.0] * 6, [1.0] * 6, 2).tolist() == [0, 2, 4, 6]
    assert ess_binning([1.0] * 7, [1.0] * 7, 2).tolist() == [0, 3, 5, 7]  # leftover joins the lowest group
    assert ess_binning([5.0, 0.0, 0.0], [1.0, 0.0, 0.0], 2).tolist() == [0, 3]
    assert ess_binning([1.0] * 4, [1.0] * 4, 0).tolist() == [0, 1, 2, 3, 4]
    assert ess_binning([1.0] * 8, [1.0] * 8, 1, max_bins=3).tolist() == [0, 6, 7, 8]


def test_rebinned_point_keeps_yields_and_reaches_the_minimum_ess():
    histogram = synthetic_histogram(POINTS[:1])
    label = point_name(*POINTS[0])
    inputs = point_inputs(histogram, label, *POINTS[0], list(BACKGROUNDS), split_fraction=0.2)
    boundaries = ess_binning(inputs.background, inputs.background_sumw2, 50.0)
    binned = rebin(inputs, boundaries)
    assert binned.signal.sum() == pytest.approx(inputs.signal.sum())
    assert binned.background.sum() == pytest.approx(inputs.background.sum())
    assert binned.edges[0] == 0.0 and binned.edges[-1] == 1.0
    assert np.all(effective_sample_size(binned.background, binned.background_sumw2) >= 50.0)
    # test split scaled to all events: a fifth of the split's weight times 5
    view = histogram[{"point": label, "split": "test", "process": "WW"}].view()
    assert inputs.backgrounds["WW"][0].sum() == pytest.approx(view["value"].sum() / 0.2)
    assert inputs.backgrounds["WW"][1].sum() == pytest.approx(view["variance"].sum() / 0.04)


# -------------------------------------------------------------- stage, workspaces


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """The fit stage run inline on synthetic histograms with collision data."""
    outdir = tmp_path_factory.mktemp("fit")
    config = fit_config(process_normalisation_uncertainties={"ttbar": 0.1})
    histogram = synthetic_histogram(POINTS, data=True)
    summary = run_fit(config, histogram, POINTS, outdir, signal_xsec_uncertainties={point_name(*POINTS[0]): 0.08})
    return config, histogram, outdir, summary


def test_stage_fits_every_point_and_writes_workspaces(fitted):
    _, _, outdir, summary = fitted
    assert [p.label for p in summary.points] == [point_name(*p) for p in POINTS]
    assert summary.failures == {}
    assert summary.data_processes == ["data"] and "data" not in summary.background_processes
    for point in summary.points:
        assert point.ok and point.has_data
        assert point.expected_z > 0 and point.observed_z is not None and point.observed_limit > 0
        assert point.expected_limit == sorted(point.expected_limit) and len(point.edges) - 1 <= 3
        assert set(point.z_vs_luminosity) == {"139", "1000"}
        assert point.z_vs_luminosity["1000"] > point.z_vs_luminosity["139"]
        spec = json.loads((outdir / point.workspace).read_text())
        pyhf.Workspace(spec)  # validates against the schema
        modifiers = {m["name"]: m for s in spec["channels"][0]["samples"] for m in s["modifiers"]}
        assert modifiers["norm_ttbar"]["data"] == {"hi": 1.1, "lo": 0.9}
        expected_xsec = 0.08 if point.label == point_name(*POINTS[0]) else 0.05
        assert modifiers["signal_xsec"]["data"]["hi"] == pytest.approx(1 + expected_xsec)
    assert load_fit(outdir / "fit.json").to_json() == summary.to_json()


def test_workspace_observations_are_the_data_in_the_fit_binning(fitted):
    _, histogram, outdir, summary = fitted
    point = summary.points[1]
    data = histogram[{"point": point.label, "process": "data"}].view()["value"].sum(axis=0)
    edges = np.linspace(0.0, 1.0, 51)
    starts = np.searchsorted(edges, np.asarray(point.edges[:-1]) - 1e-12)
    spec = json.loads((outdir / point.workspace).read_text())
    assert spec["observations"][0]["data"] == pytest.approx(np.add.reduceat(data, starts).tolist())


def _pyhf_command() -> list[str]:
    executable = shutil.which("pyhf")
    return [executable] if executable else [sys.executable, "-c", "from pyhf.cli import cli; cli()"]


def test_pyhf_cli_refit_gives_the_same_cls(fitted):
    _, _, outdir, summary = fitted
    point = summary.points[2]
    result = subprocess.run([*_pyhf_command(), "cls", str(outdir / point.workspace)], capture_output=True,
                            text=True, timeout=300, check=True)
    cli = json.loads(result.stdout)
    # The same minimisation in another process: equal to the minimiser's tolerance (measured
    # differences of 2e-6 relative where the BLAS threading differs), not bit for bit.
    assert cli["CLs_obs"] == pytest.approx(point.cls_mu1_workspace["CLs_obs"], rel=2e-5)
    assert cli["CLs_exp"] == pytest.approx(point.cls_mu1_workspace["CLs_exp"], rel=2e-5)


def test_fit_plots_are_drawn(fitted, tmp_path):
    _, _, _, summary = fitted
    images = make_fit_plots(tmp_path, summary)
    assert len(images) == 2 and all(path.stat().st_size > 10_000 for path in images.values())
    z = [p.expected_z for p in summary.points]
    grid = interpolated(summary.points, z)  # linear on triangles: bounded by the points' values
    assert grid is not None and min(z) - 1e-9 <= np.nanmin(grid[2]) <= np.nanmax(grid[2]) <= max(z) + 1e-9
    assert interpolated(summary.points[:2], [1.0, 2.0]) is None


@pytest.mark.slow
def test_dask_fits_equal_inline_fits(fitted, tmp_path):
    from distributed import Client

    config, histogram, _, summary = fitted
    with local_cluster(2) as cluster, Client(cluster) as client:  # LocalCluster, 2 processes, 127.0.0.1
        assert len(client.scheduler_info()["workers"]) == 2
        on_cluster = run_fit(config, histogram, POINTS, tmp_path, client=client,
                             signal_xsec_uncertainties={point_name(*POINTS[0]): 0.08})
    # Same inputs, same workspaces; the minimiser's results agree to its tolerance (workers run
    # single-threaded BLAS, which rounds differently from the driver: 1e-7 relative measured).
    _assert_close(on_cluster.to_json(), summary.to_json())


def _assert_close(a, b, path="summary"):
    """Equal JSON structures: same keys, strings and lengths; numbers within 1e-4 relative
    (significances through their test statistic q0 = Z^2, within 1e-6 absolute)."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for key in a:
            _assert_close(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_close(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and not isinstance(b, bool) and path.endswith("_z"):
        # a significance is sqrt(q0): compare q0 = Z|Z|, which the minimiser gives to ~1e-7
        # absolute (near Z = 0 the square root turns q0 = 2.5e-7 into Z = 5e-4)
        assert a * abs(a) == pytest.approx(b * abs(b), rel=2e-5, abs=1e-6, nan_ok=True), path
    elif isinstance(a, float) and not isinstance(b, bool):
        # 1e-4 relative: a tail probability (CLs ~ 1e-6) moves by 5e-5 relative for a change of
        # its test statistic of 4e-6 relative (measured, pyhf 0.7.6 + scipy 1.17)
        assert a == pytest.approx(b, rel=1e-4, abs=1e-12, nan_ok=True), path
    else:
        assert a == b, path


# ------------------------------------------------------------------------ bad input


def _bad_histogram():
    """Grid points: fine, zero-background bins, negative background, no signal."""
    points = [(200.0, 40.0), (250.0, 40.0), (300.0, 40.0), (350.0, 40.0)]
    histogram = synthetic_histogram(points, signal_events=4000, flat=2000)
    labels = [point_name(*p) for p in points]
    values, variances = histogram.view()["value"], histogram.view()["variance"]
    point_axis, process_axis = histogram.axes["point"], histogram.axes["process"]
    first, second, third = (point_axis.index(label) for label in labels[1:])
    values[:, :, first, 45:] = variances[:, :, first, 45:] = 0  # no background (nor signal) above 0.9
    values[:, :, second, 30:] = 0
    values[:, process_axis.index("WW"), second, 30:] = -1.0  # negative total background above 0.6
    values[:, process_axis.index(labels[3]), third, :] = 0  # no signal at all
    return histogram, points, labels


def test_each_bad_input_is_reported_per_point_and_the_others_go_on(tmp_path):
    histogram, points, labels = _bad_histogram()
    summary = run_fit(fit_config(min_background_ess=0, max_bins=3), histogram, points + [(400.0, 40.0)], tmp_path)
    status = {p.label: p for p in summary.points}
    assert status[labels[0]].ok
    zero, negative, no_signal = status[labels[1]], status[labels[2]], status[labels[3]]
    assert zero.status == "bad_input" and "total background 0 <= 0" in zero.message and labels[1] in zero.message
    assert negative.status == "bad_input" and "has total background -" in negative.message
    assert no_signal.status == "bad_input" and "no signal" in no_signal.message
    missing = status["slepton_400_40"]
    assert missing.status == "bad_input" and "no such grid point" in missing.message
    for point in (zero, negative, no_signal, missing):
        assert point.expected_z is None and point.expected_limit is None and point.workspace is None
        assert point.label in summary.failures
    written = json.loads((tmp_path / "fit.json").read_text())
    assert set(written["failures"]) == {labels[1], labels[2], labels[3], "slepton_400_40"}
    assert sorted(p.name for p in (tmp_path / "workspaces").iterdir()) == [f"{labels[0]}.json"]
    page = render_html(to_json_safe({"fit": summary.report()}), {})  # the report's table
    assert "Likelihood fit (pyhf)" in page and page.count("FAILED (bad_input)") == 4
    assert "no signal: the signal yield summed over all bins is 0" in page


def test_fit_is_a_pipeline_stage_after_scan():
    assert STAGES.index("fit") == STAGES.index("scan") + 1 and "fit" in SIGNAL_STAGES
    assert parse_stages("fit") == ("fit",)


def test_too_few_background_events_are_bad_input():
    settings = FitSettings(min_background_ess=100.0)
    record, spec = fit_point(one_bin(5.0, 10.0, sumw2=4.0), settings)  # ESS 25
    assert record.status == "bad_input" and "ESS" in record.message and spec is None


def test_a_fit_that_does_not_converge_names_the_point_and_the_minimiser_status():
    settings = FitSettings(max_iterations=1, max_bins=2)
    record, spec = fit_point(one_bin(5.0, 50.0, sumw2=4.0), settings)
    assert record.status == "fit_failed"
    assert record.message.startswith("slepton_200_40: the fit did not converge (minimiser status: Iteration limit")
    assert record.expected_z is None and spec is not None  # a valid workspace, to rerun by hand


def test_a_limit_above_the_poi_range_is_reported():
    settings = FitSettings(poi_bounds=(0.0, 1.5), mc_stat_uncertainty=False)
    record, _ = fit_point(one_bin(1.0, 100.0, sumw2=1.0), settings)
    assert record.status == "limit_out_of_range" and "fit.poi_bounds" in record.message
    assert record.expected_limit is None and record.expected_z is None


def test_a_workspace_failing_the_schema_is_reported(monkeypatch):
    def broken(inputs, settings, scale=1.0):
        spec = build_spec(inputs, settings, scale)
        spec["channels"][0]["samples"][0]["data"] = []  # minItems 1
        return spec

    with pytest.raises(FitInputError, match="slepton_1_1: the workspace fails pyhf's schema"):
        load_workspace({"channels": []}, "slepton_1_1")
    monkeypatch.setattr(inference, "build_spec", broken)
    record, spec = fit_point(one_bin(5.0, 50.0, sumw2=1.0), FitSettings())
    assert record.status == "invalid_workspace" and "schema" in record.message and spec is None


def test_unknown_normalisation_process_is_a_config_error(tmp_path):
    config = fit_config(process_normalisation_uncertainties={"QCD": 0.2})
    with pytest.raises(FitConfigError, match="QCD"):
        run_fit(config, synthetic_histogram(POINTS[:1]), POINTS[:1], tmp_path)


def test_observed_data_join_the_test_split_and_a_shared_label_is_refused(tmp_path):
    from processors.scoring import observed_histogram

    histogram = synthetic_histogram(POINTS[:1])
    label = point_name(*POINTS[0])
    observed = observed_histogram(["data"], [label], histogram.axes["score"].size)
    observed.fill(process="data", point=label, score=[0.05, 0.55, 0.95, 0.96])
    combined = with_observed(histogram, observed)
    assert list(combined.axes["process"]) == [*histogram.axes["process"], "data"]
    assert combined[{"process": "data", "point": label, "split": "test"}].values().tolist() == \
        observed[{"process": "data", "point": label}].values().tolist()
    assert combined[{"process": "data", "split": "train"}].sum().value == 0
    inputs = point_inputs(combined, label, *POINTS[0], list(BACKGROUNDS), ["data"])
    assert inputs.data.sum() == 4 and np.array_equal(inputs.signal, point_inputs(histogram, label, *POINTS[0],
                                                                                list(BACKGROUNDS)).signal)
    clashing = observed_histogram(["WW"], [label], histogram.axes["score"].size)
    with pytest.raises(FitConfigError, match=r"share the process label\(s\) \['WW'\]"):
        run_fit(fit_config(), histogram, POINTS[:1], tmp_path, observed=clashing)


def test_disabled_fit_writes_nothing(tmp_path):
    assert run_fit(fit_config(enabled=False), synthetic_histogram(POINTS[:1]), POINTS[:1], tmp_path) is None
    assert not (tmp_path / "fit.json").exists()


def test_fit_config_is_validated():
    with pytest.raises(ConfigError, match="fit.poi_bounds"):
        fit_config(poi_bounds=[0.0, 0.5])
    with pytest.raises(ConfigError, match="fit.process_normalisation_uncertainties"):
        fit_config(process_normalisation_uncertainties={"WW": 1.5})
    assert default_config().fit.min_background_ess == 10.0
    settings = FitSettings.from_config(default_config())
    assert settings.relative_background_uncertainty == default_config().scan.relative_background_uncertainty


def test_fileset_metadata_gives_data_labels_and_signal_xsec_uncertainties():
    fileset = {
        "run2018": {"files": {}, "metadata": {"is_data": True, "process": "data"}},
        "slep": {"files": {}, "metadata": {"is_signal": True, "m_slepton": 200, "dm": 40, "xsec_uncertainty": 0.07}},
        "ww": {"files": {}, "metadata": {"process": "WW", "xsec_pb": 1.0}},
    }
    assert fit_inputs_from_fileset(fileset) == (["data"], {"slepton_200_40": 0.07})
    fileset["slep"]["metadata"]["xsec_uncertainty"] = 7
    with pytest.raises(FitConfigError, match="dataset slep"):
        fit_inputs_from_fileset(fileset)


def test_jax_backend_gives_the_numpy_numbers():
    settings = FitSettings(max_bins=2, luminosities_fb=())
    inputs = one_bin(6.0, 40.0, sumw2=2.0)
    numpy_record, _ = fit_point(inputs, settings)
    jax_record, _ = fit_point(inputs, FitSettings(max_bins=2, luminosities_fb=(), backend="jax"))
    assert jax_record.expected_z == pytest.approx(numpy_record.expected_z, rel=1e-5)
    assert jax_record.expected_limit == pytest.approx(numpy_record.expected_limit, rel=2e-3)
    with pyhf_backend("numpy"):
        assert pyhf.tensorlib.name == "numpy"


def test_summary_round_trips_through_json(fitted):
    summary = fitted[3]
    assert FitSummary.from_json(json.loads(json.dumps(summary.to_json()))).to_json() == summary.to_json()
