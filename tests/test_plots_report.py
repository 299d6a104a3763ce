"""Diagnostics and report: known answers for the numeric helpers, every plot writes a PNG,
the report's JSON is strict and its page references every image with escaped text, and the
provenance names the config and the packages."""

from __future__ import annotations

import json
import math
import re
from html.parser import HTMLParser
from pathlib import Path

import hist
import matplotlib.pyplot as plt
import numpy as np
import pytest

from analysis.core.config import ScanConfig, default_config
from analysis.core.metrics import (
    binned_ks_statistic,
    binned_roc,
    weighted_roc_auc,
    weighted_roc_curve,
)
from analysis.core.provenance import (
    PACKAGES,
    collect_provenance,
    git_state,
    package_versions,
)
from analysis.results import plots
from analysis.results.html import render_html, to_json_safe, write_report
from analysis.results.plots import confusion_matrix, row_fractions
from analysis.results.scan import scan_points

BACKGROUNDS = ["WW", "ttbar"]
GRID = [("slepton_200_40", 200.0, 40.0), ("slepton_300_40", 300.0, 40.0), ("slepton_300_100", 300.0, 100.0)]
POINTS = [label for label, _, _ in GRID]
SPLITS = ["train", "validation", "test"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------ tiny inputs


def score_histogram(processes=BACKGROUNDS + POINTS, points=POINTS, bins=100) -> hist.Hist:
    return hist.Hist(
        hist.axis.StrCategory(SPLITS, name="split"),
        hist.axis.StrCategory(processes, name="process"),
        hist.axis.StrCategory(points, name="point"),
        hist.axis.Regular(bins, 0.0, 1.0, name="score"),
        storage=hist.storage.Weight(),
    )


@pytest.fixture(scope="module")
def score() -> hist.Hist:
    """Backgrounds low in score, each point's signal high; the signal yield grows along the grid."""
    rng = np.random.default_rng(7)
    histogram = score_histogram()
    n = 400
    for split in SPLITS:
        for i, point in enumerate(POINTS):
            for process, weight in zip(BACKGROUNDS, (2.0, 1.0)):
                histogram.fill(split=split, process=process, point=point, score=rng.beta(2, 5 + i, n), weight=np.full(n, weight))
            histogram.fill(split=split, process=point, point=point, score=rng.beta(5 + 2 * i, 2, n),
                           weight=np.full(n, (0.03, 0.05, 0.1)[i]))
    return histogram


@pytest.fixture(scope="module")
def control() -> dict[str, hist.Hist]:
    rng = np.random.default_rng(8)
    histograms = {}
    for variable in ("mll", "met"):
        histogram = hist.Hist(
            hist.axis.StrCategory(["preselection", "score cut"], name="step"),
            hist.axis.StrCategory(BACKGROUNDS + POINTS, name="process"),
            hist.axis.StrCategory(POINTS, name="point"),
            hist.axis.Regular(10, 0.0, 300.0, name=variable, label=f"{variable} [GeV]"),
            storage=hist.storage.Weight(),
        )
        for point in POINTS:
            for process in BACKGROUNDS + [point]:
                for step, n in (("preselection", 100), ("score cut", 10)):
                    histogram.fill(step=step, process=process, point=point, weight=np.ones(n),
                                   **{variable: rng.uniform(0.0, 300.0, n)})
        histograms[variable] = histogram
    return histograms


@pytest.fixture(scope="module")
def history() -> list[dict]:
    def metrics(epoch, offset):
        return {"loss": 1.0 / epoch + offset, "auc": 0.8 + 0.01 * epoch - offset,
                "precision": 0.5 + 0.02 * epoch - offset, "accuracy": 0.7}

    return [{"epoch": e, "learning_rate": 1e-3, "seconds": 0.5, "train": metrics(e, 0.0), "val": metrics(e, 0.02)}
            for e in range(1, 5)]


@pytest.fixture(scope="module")
def summary(score):
    return scan_points(score, GRID, BACKGROUNDS, ScanConfig(), luminosity_fb=139.0)


@pytest.fixture(autouse=True)
def no_figures_left_open():
    """Every test must leave no matplotlib figure open."""
    yield
    assert plt.get_fignums() == []


def assert_png(path: Path) -> None:
    path = Path(path)
    assert path.is_file() and path.stat().st_size > 1024
    assert path.read_bytes()[:8] == PNG_MAGIC


# ------------------------------------------------------------------- ROC / AUC


def test_roc_of_fully_separated_histograms_has_auc_one():
    fpr, tpr, auc = binned_roc([0, 0, 1, 3], [3, 1, 0, 0])
    assert auc == 1.0
    np.testing.assert_allclose(tpr, [0, 0.75, 1, 1, 1])
    np.testing.assert_allclose(fpr, [0, 0, 0, 0.25, 1])


def test_roc_of_identical_histograms_is_the_diagonal():
    fpr, tpr, auc = binned_roc([1, 2, 3, 4], [0.5, 1, 1.5, 2])
    np.testing.assert_allclose(fpr, tpr)
    assert auc == pytest.approx(0.5, abs=1e-15)


def test_roc_of_reversed_histograms_has_auc_zero():
    assert binned_roc([3, 1, 0, 0], [0, 0, 1, 3])[2] == 0.0


def test_roc_auc_of_overlapping_histograms_matches_hand_computation():
    # signal [1, 3], background [3, 1] (weights): P(s > b) = 3/4 * 3/4 = 9/16 and
    # P(same bin) = 1/4 * 3/4 + 3/4 * 1/4 = 6/16, so AUC = 9/16 + 3/16 = 3/4.
    fpr, tpr, auc = binned_roc([1.0, 3.0], [3.0, 1.0])
    np.testing.assert_allclose(tpr, [0, 0.75, 1])
    np.testing.assert_allclose(fpr, [0, 0.25, 1])
    assert auc == pytest.approx(0.75, abs=1e-15)


def test_roc_needs_positive_weight_in_each_class():
    with pytest.raises(ValueError, match="signal_counts"):
        binned_roc([0, 0], [1, 1])
    with pytest.raises(ValueError, match="must match"):
        binned_roc([1, 1, 1], [1, 1])


def test_roc_aucs_per_point_from_the_test_split(score):
    aucs = plots.roc_aucs(score, BACKGROUNDS)
    assert list(aucs) == POINTS
    assert all(0.9 < auc <= 1.0 for auc in aucs.values())
    signal, background = plots.class_counts(score, POINTS[0], BACKGROUNDS, "test")
    assert aucs[POINTS[0]] == binned_roc(signal, background)[2]


def test_roc_of_events_equals_roc_of_their_histogram():
    """One ROC implementation: per-event scores give the binned curve of their histogram."""
    rng = np.random.default_rng(11)
    edges = np.linspace(0.0, 1.0, 11)
    centres = 0.5 * (edges[1:] + edges[:-1])
    scores = rng.choice(centres, 500)
    labels = rng.uniform(size=500) < 0.4
    weights = rng.uniform(0.1, 2.0, 500)
    signal, _ = np.histogram(scores[labels], edges, weights=weights[labels])
    background, _ = np.histogram(scores[~labels], edges, weights=weights[~labels])
    assert (signal > 0).all() and (background > 0).all()  # every bin is a distinct score
    fpr, tpr, auc = binned_roc(signal, background)
    event_fpr, event_tpr, thresholds = weighted_roc_curve(scores, labels, weights)
    np.testing.assert_allclose(event_fpr, fpr, rtol=0, atol=1e-15)
    np.testing.assert_allclose(event_tpr, tpr, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(thresholds, centres[::-1])
    assert weighted_roc_auc(scores, labels, weights) == pytest.approx(auc, abs=1e-15)


def test_roc_of_events_by_hand():
    # signal 0.35, 0.8; background 0.1, 0.4: pairs (s > b) = 3 of 4 -> AUC 3/4
    fpr, tpr, thresholds = weighted_roc_curve([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    np.testing.assert_array_equal(thresholds, [0.8, 0.4, 0.35, 0.1])
    np.testing.assert_allclose(tpr, [0, 0.5, 0.5, 1, 1])
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 0.5, 1])
    assert weighted_roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == 0.75
    assert np.isnan(weighted_roc_auc([], []))


# ----------------------------------------------------------------- binned KS


def test_binned_ks_of_train_and_test_shapes_by_hand():
    # CDFs [1, 3, 4] / 4 and [2, 2, 4] / 4: |diff| = 1/4, 1/4, 0 -> D = 1/4
    assert binned_ks_statistic([1.0, 2.0, 1.0], [2.0, 0.0, 2.0]) == 0.25


def test_binned_ks_of_identical_shapes_is_zero():
    assert binned_ks_statistic([1, 2, 3], [2, 4, 6]) == 0.0


def test_overtraining_ks_from_the_score_histogram(score):
    distances = plots.overtraining_ks(score, POINTS[1], BACKGROUNDS)
    assert set(distances) == {"signal", "background"}
    assert all(0.0 <= d < 0.2 for d in distances.values())  # same generator: small distances


# ---------------------------------------------------------- confusion matrix


def test_confusion_matrix_counts_bins_from_the_threshold_edge():
    edges = np.linspace(0.0, 1.0, 5)
    matrix = confusion_matrix([1, 2, 3, 4], [4, 3, 2, 1], edges, 0.5)
    np.testing.assert_array_equal(matrix, [[7, 3], [3, 7]])
    np.testing.assert_allclose(row_fractions(matrix), [[0.7, 0.3], [0.3, 0.7]])
    np.testing.assert_array_equal(confusion_matrix([1, 2, 3, 4], [4, 3, 2, 1], edges, 0.0), [[10, 0], [10, 0]])


def test_confusion_matrix_of_a_hand_built_histogram():
    histogram = score_histogram(processes=["WW", "ttbar", "slepton_200_40"], points=["slepton_200_40"])
    fill = {"split": "test", "point": "slepton_200_40"}
    histogram.fill(**fill, process="slepton_200_40", score=[0.75, 0.25], weight=[2.0, 1.0])
    histogram.fill(**fill, process="WW", score=[0.25, 0.6], weight=[3.0, 0.25])
    histogram.fill(**fill, process="ttbar", score=[0.85, 0.45], weight=[0.5, 4.0])
    histogram.fill(split="train", point="slepton_200_40", process="WW", score=0.9, weight=100.0)  # other split
    signal, background = plots.class_counts(histogram, "slepton_200_40", ["WW", "ttbar"])
    matrix = confusion_matrix(signal, background, histogram.axes["score"].edges, 0.5)
    np.testing.assert_allclose(matrix, [[2.0, 1.0], [0.75, 7.0]])
    np.testing.assert_allclose(row_fractions(matrix), [[2 / 3, 1 / 3], [0.75 / 7.75, 7 / 7.75]])


def test_row_fractions_of_an_empty_row_are_nan():
    fractions = row_fractions([[0.0, 0.0], [1.0, 3.0]])
    assert np.isnan(fractions[0]).all()
    np.testing.assert_allclose(fractions[1], [0.25, 0.75])


def test_an_unknown_point_is_named_in_the_error(score):
    with pytest.raises(KeyError, match="slepton_999_1"):
        plots.class_counts(score, "slepton_999_1", BACKGROUNDS)


# ------------------------------------------------------------------------ plots


@pytest.fixture(scope="module")
def images(tmp_path_factory, score, control, history, summary) -> dict[str, Path]:
    """Every plot, drawn once for this module by :func:`plots.make_all_plots`."""
    return plots.make_all_plots(tmp_path_factory.mktemp("results") / "plots", score, control, history, summary,
                                BACKGROUNDS, point=POINTS[2], threshold=0.6)


def test_every_plot_writes_a_png(images, control):
    expected = {"roc", "scores", "training", "confusion", "overtraining", "significance", "sensitivity"}
    expected |= {f"control_{name}" for name in control}
    assert {Path(path).stem for path in images.values()} == expected
    for path in images.values():
        assert_png(path)
    assert "Confusion matrix, slepton_300_100, score >= 0.6" in images


def test_sensitivity_contour_with_too_few_points_still_draws_them(tmp_path, summary):
    import dataclasses

    two_points = dataclasses.replace(summary, points=summary.points[:2])
    assert_png(plots.plot_sensitivity_contour(two_points, tmp_path / "sensitivity.png"))


def test_sensitivity_map_of_the_fixture_crosses_a_contour_level(summary):
    best = [p.best_z for p in summary.points]
    assert all(math.isfinite(z) for z in best)
    assert min(best) < max(plots.Z_LEVELS) and max(best) > min(plots.Z_LEVELS)  # some line is drawn


def test_training_history_must_not_be_empty(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        plots.plot_training_history([], tmp_path / "training.png")


# ----------------------------------------------------------------------- report


def test_report_has_strict_json_and_a_page_with_every_image(images, score, summary):
    outdir = next(iter(images.values())).parent.parent
    report = {
        "name": "test <script>alert(1)</script>",
        "scan": summary.to_json(),
        "aucs": plots.roc_aucs(score, BACKGROUNDS),
        "steps": ["all events", "two leptons", "<script>"],
        "cutflow": {"WW": {"raw": [100, 50, 10], "sumw": [20.0, 10.0, float("nan")]}},
        "luminosity_projection": summary.z_vs_luminosity,
        "provenance": {"config_hash": "abc", "seeds": {"training": 1}},
        "nan_value": float("nan"),
        "array": np.array([1.0, np.inf]),
    }
    page = write_report(outdir, report, {caption: str(path) for caption, path in images.items()})

    assert page == outdir / "index.html"
    text = (outdir / "summary.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    loaded = json.loads(text)
    assert loaded["nan_value"] is None and loaded["array"] == [1.0, None]
    assert loaded["cutflow"]["WW"]["sumw"] == [20.0, 10.0, None]
    assert loaded["scan"]["points"][0]["label"] == POINTS[0]

    html_text = page.read_text()
    sources = re.findall(r'<img src="([^"]+)"', html_text)
    assert sources == [Path(path).relative_to(outdir).as_posix() for path in images.values()]
    assert all((outdir / source).is_file() for source in sources)
    assert "<script" not in html_text and "&lt;script&gt;" in html_text
    for label in POINTS:
        assert label in html_text
    assert "two leptons" in html_text and "abc" in html_text


class _TableCells(HTMLParser):
    """Every table row of a page as a list of cell texts (``th`` and ``td``)."""

    def __init__(self):
        super().__init__()
        self.rows, self._row, self._cell = [], None, None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def table_rows(page: str) -> list[list[str]]:
    parser = _TableCells()
    parser.feed(page)
    return parser.rows


def test_scan_table_shows_the_test_auc_of_every_point(score, summary):
    """The summary as the report stage builds it (``report_aucs``): a finite AUC per grid point."""
    model_metrics = {"test": {"auc": 0.9, "auc_per_point": {POINTS[0]: 0.97}}, "best_epoch": 3}
    report = {"analysis": "demo", "scan": summary.to_json(),
              **plots.report_aucs(score, BACKGROUNDS, POINTS, model_metrics)}
    page = render_html(to_json_safe(report), {})
    rows = table_rows(page)
    header = next(row for row in rows if row[:2] == ["grid point", "m(slepton) [GeV]"])
    column = header.index("ROC AUC (test split)")
    expected = plots.roc_aucs(score, BACKGROUNDS, POINTS)
    for label in POINTS:
        row = next(row for row in rows if row[0] == label and len(row) == len(header))
        assert math.isfinite(float(row[column]))
        assert float(row[column]) == pytest.approx(expected[label], abs=5e-5)  # 4 significant digits
    assert "n/a" not in [row[column] for row in rows if row[0] in POINTS and len(row) == len(header)]
    auc_header = next(row for row in rows if row[:2] == ["grid point", "test split (score histograms)"])
    assert auc_header[2] == "test split (model, unbinned)"
    assert next(row for row in rows if row[0] == POINTS[0] and len(row) == 3)[2] == "0.97"
    assert "<h1>demo</h1>" in page


def test_html_in_dataset_and_analysis_names_is_escaped(summary):
    report = {
        "analysis": 'evil <img src=x onerror="alert(1)">',
        "scan": summary.to_json(),
        "cutflow": {"<b>ttbar</b>": {"raw": [10, 5], "sumw": [2.0, 1.0]}, "steps": ["all", "<i>two</i>"]},
        "events": {"input": {"<script>x</script>": 3}},
    }
    page = render_html(to_json_safe(report), {"caption <u>": "plots/a b&c.png"})
    assert "<b>" not in page and "<i>" not in page and "<u>" not in page and "<script" not in page
    assert "<img src=x" not in page and 'onerror="' not in page
    assert "<h1>evil &lt;img src=x onerror=&#34;alert(1)&#34;&gt;</h1>" in page
    assert "<h3>&lt;b&gt;ttbar&lt;/b&gt;</h3>" in page
    assert "&lt;i&gt;two&lt;/i&gt;" in page and "&lt;script&gt;x&lt;/script&gt;" in page
    assert '<img src="plots/a%20b%26c.png" alt="caption &lt;u&gt;">' in page


def test_report_refuses_a_missing_image(tmp_path):
    with pytest.raises(FileNotFoundError, match="ROC"):
        write_report(tmp_path, {}, {"ROC": str(tmp_path / "missing.png")})


def test_json_safe_conversion():
    value = {"a": (np.float64("nan"), np.int64(3)), 2: {"b": float("-inf")}, "c": Path("x/y")}
    assert to_json_safe(value) == {"a": [None, 3], "2": {"b": None}, "c": "x/y"}


# ------------------------------------------------------------------- provenance


class _FakeConfig:
    def hash(self) -> str:
        return "0123456789abcdef"


def test_provenance_names_config_hash_packages_and_seeds():
    provenance = collect_provenance(_FakeConfig(), {"analysis": 1, "training": 2}, "dask", device="cpu:0 (cpu)")
    assert provenance["config_hash"] == "0123456789abcdef"
    assert set(provenance["packages"]) == set(PACKAGES)
    assert provenance["packages"]["numpy"] == np.__version__
    assert provenance["packages"]["hist"] == hist.__version__
    assert provenance["seeds"] == {"analysis": 1, "training": 2}
    assert provenance["executor"] == "dask" and provenance["device"] == "cpu:0 (cpu)"
    assert provenance["timestamp_utc"].endswith("+00:00")
    assert provenance["git_commit"] is None or re.fullmatch(r"[0-9a-f]{40}", provenance["git_commit"])
    json.dumps(provenance, allow_nan=False)


def test_provenance_of_the_real_config_carries_its_hash():
    config = default_config()
    assert collect_provenance(config, {"seed": config.seed}, "iterative", device="cpu")["config_hash"] == config.hash()


def test_missing_package_and_non_git_directory_give_none(tmp_path):
    assert package_versions(["no-such-distribution-bsmscan"]) == {"no-such-distribution-bsmscan": None}
    assert git_state(tmp_path) == {"commit": None, "dirty": None}
