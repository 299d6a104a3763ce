"""The analysis config: defaults, validation errors that name the field, the thesis grid."""

from __future__ import annotations

import pytest
import yaml

from analysis.core.config import (
    ConfigError,
    config_from_dict,
    default_config,
    default_config_text,
    full_signal_grid,
    load_config,
)


def _default_dict():
    return yaml.safe_load(default_config_text())


def test_default_config_is_the_thesis_slepton_analysis():
    config = default_config()
    assert config.luminosity_fb == 139.0
    assert len(config.samples.signal_grid) == 9  # demo grid: at most 9 points
    masses = sorted({p.m_slepton for p in config.samples.signal_grid})
    splittings = sorted({p.dm for p in config.samples.signal_grid})
    assert masses[0] == 100 and masses[-1] == 300  # spans the thesis grid
    assert splittings[0] == 10 and splittings[-1] == 75
    assert config.samples.backgrounds == ["WW", "WZ", "ZZ", "ttbar", "Ztautau"]
    assert config.scan.relative_background_uncertainty == 0.3
    assert config.selection.cuts["met"] == "met > 200"


def test_full_grid_has_about_sixty_physical_points():
    grid = full_signal_grid()
    assert len(grid) == 66
    assert min(p.m_slepton for p in grid) == 100 and max(p.m_slepton for p in grid) == 300
    assert min(p.dm for p in grid) == 10 and max(p.dm for p in grid) == 75
    assert all(p.m_neutralino > 0 for p in grid)


def test_signal_point_names_and_neutralino_mass():
    point = default_config().samples.signal_grid[4]
    assert (point.m_slepton, point.dm, point.m_neutralino) == (200, 40, 160)
    assert point.name == "slepton_200_40"


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda d: d["samples"]["signal_grid"].append({"m_slepton": 150, "dm": 0}), "samples.signal_grid[9].dm: dm must be > 0"),
        (lambda d: d["samples"]["signal_grid"].append({"m_slepton": -150, "dm": 10}), "samples.signal_grid[9].m_slepton"),
        (lambda d: d["samples"]["signal_grid"].append({"m_slepton": 50, "dm": 60}), "neutralino mass must be > 0"),
        (lambda d: d["samples"]["backgrounds"].append("QCD"), "unknown background process(es) ['QCD']"),
        (lambda d: d.update(luminosty_fb=300), "luminosty_fb: Extra inputs are not permitted"),
        (lambda d: d["training"].update(split_fractions=[0.5, 0.5, 0.5]), "training.split_fractions"),
        (lambda d: d["model"].update(activation="swish2"), "model.activation"),
        (lambda d: d["samples"].update(signal_events="many"), "samples.signal_events"),
        (lambda d: d["samples"]["signal_grid"].append({"m_slepton": 100, "dm": 10}), "listed twice"),
    ],
)
def test_bad_config_error_names_the_field(edit, expected):
    data = _default_dict()
    edit(data)
    with pytest.raises(ConfigError) as error:
        config_from_dict(data)
    assert expected in str(error.value)


def test_load_config_reports_file_and_yaml_errors(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="cannot read analysis config .*nope.yaml"):
        load_config(missing)
    broken = tmp_path / "broken.yaml"
    broken.write_text("samples: [unclosed\n")
    with pytest.raises(ConfigError, match="broken.yaml is not valid YAML"):
        load_config(broken)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(scalar)


def test_yaml_tags_are_not_executed(tmp_path):
    evil = tmp_path / "evil.yaml"
    evil.write_text("name: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(evil)


def test_config_round_trips_through_yaml(tmp_path):
    path = tmp_path / "copy.yaml"
    path.write_text(yaml.safe_dump(default_config().model_dump(mode="json")))
    assert load_config(path) == default_config()


def test_sample_cache_key_ignores_what_does_not_change_the_events():
    from jobs.generate import output_directory

    config = default_config()
    key = output_directory(config).name
    moved = config.model_copy(update={"samples": config.samples.model_copy(update={"cache_dir": "/elsewhere"})})
    assert output_directory(moved).name == key
    no_signal = config.model_copy(update={"samples": config.samples.model_copy(update={"signal_grid": []})})
    more_signal_events = no_signal.model_copy(update={"samples": no_signal.samples.model_copy(update={"signal_events": 1})})
    assert output_directory(more_signal_events).name == output_directory(no_signal).name  # no signal to change
    assert output_directory(config.model_copy(update={"seed": 7})).name != key
    hadronised = config.model_copy(update={"samples": config.samples.model_copy(update={"hadronisation": True})})
    assert output_directory(hadronised).name != key
