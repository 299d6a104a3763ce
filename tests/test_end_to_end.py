"""The one command, end to end: ``python -m analysis.run --executor dask`` on a tiny sample with a
real LocalCluster, checked through the report's JSON."""

from __future__ import annotations

import json
import math

import pytest
import yaml

from analysis.run import main

from .conftest import small_config

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::RuntimeWarning:coffea.*")]


def test_analysis_run_on_dask_writes_a_complete_report(tmp_path, capsys):
    config = small_config(tmp_path / "cache", signal_grid=[{"m_slepton": 100, "dm": 40}, {"m_slepton": 150, "dm": 75}],
                          backgrounds=["WW", "ZZ"], signal_events=1500, background_events=3000, events_per_job=1500)
    data = config.model_dump(mode="json")
    data["training"].update(max_epochs=3)
    data["model"].update(hidden_layers=[32, 32])
    data["executor"].update(chunksize=1000)
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(data))

    outdir = tmp_path / "results"
    assert main(["--config", str(config_path), "--executor", "dask", "--workers", "2", "--outdir", str(outdir),
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "slepton_100_40" in printed and f"report: {(outdir / 'index.html').resolve()}" in printed

    summary = json.loads((outdir / "summary.json").read_text())
    assert list(summary["stages_run"]) == ["generate", "process", "train", "score", "scan", "fit", "report"]
    events = summary["events"]
    assert events["processed"] == events["input"] == {"WW": 3000, "ZZ": 3000, "slepton_100_40": 1500, "slepton_150_75": 1500}
    assert events["scored"] == events["selected"]
    assert events["skipped_files"] == []
    best = summary["best_z"]
    assert set(best) == {"slepton_100_40", "slepton_150_75"}
    assert all(z is not None and math.isfinite(z) and z > 0 for z in best.values()), best
    assert summary["provenance"]["executor"] == "dask" and summary["provenance"]["config_hash"]
    html = (outdir / "index.html").read_text()
    for image in (outdir / "plots").glob("*.png"):
        assert f"plots/{image.name}" in html
