"""The scan stage: threshold scans of every grid point from the score histograms (pure: it
reads histograms and writes ``scan.json``; it scores nothing)."""

from __future__ import annotations

from pathlib import Path

import hist

from analysis.core.atomic import write_json_atomic
from analysis.core.config import AnalysisConfig
from analysis.core.names import point_name
from analysis.results.scan import ScanSummary, scan_points


def run_scan(config: AnalysisConfig, score: hist.Hist, points: list[tuple[float, float]],
             out: str | Path | None = None) -> ScanSummary:
    """Scan the test split of ``score`` for every grid point of ``points``; writes ``out`` if given."""
    labels = [point_name(m, d) for m, d in points]
    background = [p for p in score.axes["process"] if p not in labels]
    grid = [(label, m, d) for label, (m, d) in zip(labels, points)]
    summary = scan_points(score, grid, background, config.scan, config.luminosity_fb,
                          split="test", split_fraction=config.training.scored_fraction)
    if out is not None:
        write_json_atomic(out, summary.to_json(), indent=1)
    return summary


def best_thresholds(summary: ScanSummary) -> dict[str, float]:
    """Each grid point's optimal threshold (points without one are left out)."""
    return {p.label: p.best_threshold for p in summary.points if p.best_threshold == p.best_threshold}
