"""Shared test fixtures: small generated samples and the location of ../shared/data."""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis.core.config import config_from_dict, default_config, plain_production

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` next to the repository; tests using it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"reference data not found at {SHARED_DATA} (../shared/data is absent)")
    return SHARED_DATA


def small_config(cache_dir: Path, **sample_overrides):
    """A tiny version of the default analysis, for tests: few points, few events."""
    data = default_config().model_dump(mode="json")
    data["samples"].update(
        cache_dir=str(cache_dir),
        signal_grid=[{"m_slepton": 200, "dm": 10}, {"m_slepton": 200, "dm": 75}],
        backgrounds=["WW", "WZ", "ZZ"],
        signal_events=1200,
        background_events=1600,
        events_per_job=800,
        # the plain production (no generator filter, no forced tau decays, no truth tagging;
        # pT-hat bias power 2 on the backgrounds so that a few of their events pass MET > 200):
        # tests that want the targeted production ask for it
        **plain_production(data["samples"]),
        pt_bias_power=2.0,
    )
    data["samples"].update(sample_overrides)
    return config_from_dict(data, source="tests")


@pytest.fixture(scope="session")
def small_samples(tmp_path_factory):
    """The tiny sample set, generated once per test session on 2 local processes."""
    from jobs.generate import generate_samples

    config = small_config(tmp_path_factory.mktemp("samples"))
    manifest = generate_samples(config, workers=2, show_progress=False)
    return config, manifest
