"""The whole config (:class:`AnalysisConfig`) and how it is read: YAML with limits, validation errors."""

from __future__ import annotations

import hashlib
import json
import re
import reprlib
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    Field,
    StrictInt,
    ValidationError,
    field_validator,
)

from analysis.core.config.base import ConfigError, _Section
from analysis.core.config.execution import ClusterConfig, ExecutorConfig
from analysis.core.config.inference import FitConfig, ScanConfig
from analysis.core.config.samples import SamplesConfig, SignalPoint
from analysis.core.config.search import SearchConfig
from analysis.core.config.selection import (
    ControlConfig,
    ControlHistogram,
    FeaturesConfig,
    SelectionConfig,
)
from analysis.core.config.training import ModelConfig, TrainingConfig


class AnalysisConfig(_Section):
    """The whole analysis: every stage reads its own section from this object."""

    name: str = Field(default="analysis", description="the analysis name (batch names, job and file names)")
    seed: StrictInt = Field(default=12345, ge=0, description="global seed; every random choice derives from it")
    luminosity_fb: float = Field(default=139.0, gt=0, description="integrated luminosity in fb^-1")
    samples: SamplesConfig
    selection: SelectionConfig = Field(default_factory=SelectionConfig)
    features: FeaturesConfig = Field(default_factory=FeaturesConfig)
    control: ControlConfig = Field(default_factory=ControlConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    scan: ScanConfig = Field(default_factory=ScanConfig)
    fit: FitConfig = Field(default_factory=FitConfig)
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    search: SearchConfig = Field(default_factory=SearchConfig)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, name: str) -> str:
        # the name goes into submit files, the DAG and file names: never anything but a plain word
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", name):
            raise ValueError("the name must be 1-100 letters, digits, '_', '.' or '-', starting with a letter or "
                             "digit (no blanks, newlines, quotes or '/': it names batch jobs and files)")
        return name

    def hash(self) -> str:
        """A short, stable hash of the whole config (for provenance)."""
        return _stable_hash(self.model_dump(mode="json"))



def control_histograms(config: AnalysisConfig) -> dict[str, ControlHistogram]:
    """The control histograms of ``config``: its ``control.histograms``, or the defaults
    (m_ll, both lepton pTs, and MET where MET is used)."""
    if config.control.histograms is not None:
        return dict(config.control.histograms)
    defaults = {
        "mll": ControlHistogram(bins=60, range=(0.0, 300.0), label=r"$m_{\ell\ell}$ [GeV]"),
        "lep1_pt": ControlHistogram(bins=40, range=(0.0, 400.0), label=r"$p_T(\ell_1)$ [GeV]"),
        "lep2_pt": ControlHistogram(bins=40, range=(0.0, 200.0), label=r"$p_T(\ell_2)$ [GeV]"),
    }
    if config.selection.objects.use_met:
        defaults["met"] = ControlHistogram(bins=40, range=(0.0, 800.0), label=r"$E_T^{miss}$ [GeV]")
    return defaults


def _stable_hash(payload: Any) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


#: Longest input value an error message quotes, and most errors it lists.
MAX_QUOTED_CHARS = 200
MAX_LISTED_ERRORS = 20


def short_repr(value: Any, limit: int = MAX_QUOTED_CHARS) -> str:
    """``repr(value)`` cut to ``limit`` characters (``... (N characters)`` says how long it was).

    Containers are cut while being written, so a huge value costs no more than the limit.
    """
    shortener = reprlib.Repr()
    shortener.maxstring = shortener.maxother = limit
    shortener.maxlist = shortener.maxdict = shortener.maxtuple = shortener.maxset = 8
    shortener.maxlevel = 3
    text = shortener.repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _format_validation_error(error: ValidationError, source: str) -> str:
    lines = [f"invalid analysis config {source}:"]
    items = error.errors()
    for item in items[:MAX_LISTED_ERRORS]:
        location = ".".join(str(part) if not isinstance(part, int) else f"[{part}]" for part in item["loc"])
        location = location.replace(".[", "[")
        message = item["msg"].removeprefix("Value error, ")[: 4 * MAX_QUOTED_CHARS]
        lines.append(f"  {location or '<top level>'}: {message} (got {short_repr(item.get('input'))})")
    if len(items) > MAX_LISTED_ERRORS:
        lines.append(f"  ... and {len(items) - MAX_LISTED_ERRORS} more errors")
    return "\n".join(lines)


def config_from_dict(data: dict[str, Any], source: str = "<dict>") -> AnalysisConfig:
    """Validate a plain dict (e.g. parsed YAML) into an :class:`AnalysisConfig`.

    Raises :class:`ConfigError` whose message lists every bad field by its dotted path.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"invalid analysis config {source}: the top level must be a mapping, got {type(data).__name__}")
    try:
        return AnalysisConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(_format_validation_error(error, source)) from None


#: Limits of a config file: its size, the aliases (``*name``) it may use and the number of
#: nodes it may expand to (a "billion laughs" bomb of nested aliases is a few hundred bytes).
MAX_CONFIG_BYTES = 1_000_000
MAX_CONFIG_ALIASES = 100
MAX_CONFIG_NODES = 100_000


class _LimitedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses more than :data:`MAX_CONFIG_ALIASES` aliases."""

    aliases = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_CONFIG_ALIASES:
                raise ConfigError(f"uses more than {MAX_CONFIG_ALIASES} YAML aliases (*name)")
        return super().compose_node(parent, index)


def _expanded_size(node, limit: int) -> int:
    """Nodes of the YAML graph once every alias is expanded (shared nodes counted per use),
    stopping as soon as ``limit`` is passed; a node that contains itself counts as over the limit."""
    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(current) -> int:
        key = id(current)
        if key in sizes:
            return sizes[key]
        if key in active:
            return limit + 1  # recursive alias: infinite expansion
        active.add(key)
        total = 1
        if isinstance(current, yaml.SequenceNode):
            children = current.value
        elif isinstance(current, yaml.MappingNode):
            children = [child for pair in current.value for child in pair]
        else:
            children = []
        for child in children:
            total += size(child)
            if total > limit:
                break
        active.discard(key)
        sizes[key] = total
        return total

    return size(node)


def parse_config_yaml(text: str, source: str = "<text>") -> Any:
    """Parse config YAML safely (``SafeLoader``: no Python objects) within the size and alias limits.

    Raises :class:`ConfigError` for a text over :data:`MAX_CONFIG_BYTES`, more than
    :data:`MAX_CONFIG_ALIASES` aliases, an expansion over :data:`MAX_CONFIG_NODES` nodes or
    invalid YAML, before anything is expanded.
    """
    if len(text.encode("utf-8", "replace")) > MAX_CONFIG_BYTES:
        raise ConfigError(f"analysis config {source} is larger than {MAX_CONFIG_BYTES} bytes")
    loader = _LimitedLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except ConfigError as error:
            raise ConfigError(f"analysis config {source} {error}") from None
        if node is None:
            return None
        if _expanded_size(node, MAX_CONFIG_NODES) > MAX_CONFIG_NODES:
            raise ConfigError(f"analysis config {source} expands to more than {MAX_CONFIG_NODES} YAML nodes "
                              "(nested or recursive aliases)")
        return loader.construct_document(node)
    except yaml.YAMLError as error:
        raise ConfigError(f"analysis config {source} is not valid YAML: {str(error)[:4 * MAX_QUOTED_CHARS]}") from None
    finally:
        loader.dispose()


def load_config(path: str | Path) -> AnalysisConfig:
    """Read and validate a YAML analysis config file (safe YAML within limits; nothing is executed)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_BYTES:
            raise ConfigError(f"analysis config {path} is {size} bytes; the limit is {MAX_CONFIG_BYTES}")
        text = path.read_text()
    except OSError as error:
        raise ConfigError(f"cannot read analysis config {path}: {error.strerror}") from None
    data = parse_config_yaml(text, str(path))
    samples = data.get("samples") if isinstance(data, dict) else None
    fileset = samples.get("fileset") if isinstance(samples, dict) else None
    if isinstance(fileset, str) and fileset and not Path(fileset).expanduser().is_absolute():
        # a relative fileset is relative to the config file, wherever the command runs
        data["samples"] = {**samples, "fileset": str((path.parent / fileset).resolve())}
    return config_from_dict(data, source=str(path))


def default_config_text() -> str:
    """The YAML text of the built-in default analysis (``analysis/core/default.yaml``)."""
    return resources.files("analysis.core").joinpath("default.yaml").read_text()


def default_config() -> AnalysisConfig:
    """The built-in default analysis: the slepton search of the reference thesis on a demo grid."""
    return config_from_dict(yaml.safe_load(default_config_text()), source="analysis/core/default.yaml")


def full_signal_grid() -> list[SignalPoint]:
    """The thesis's full slepton grid: m(slepton) 100-300 GeV in 20 GeV steps x dm 10-75 GeV.

    11 masses x 6 splittings (10, 20, 30, 45, 60, 75 GeV) = 66 points, all with a positive
    neutralino mass. Use it with ``samples.signal_grid`` to generate the full production.
    """
    masses = range(100, 301, 20)
    splittings = (10, 20, 30, 45, 60, 75)
    return [SignalPoint(m_slepton=m, dm=dm) for m in masses for dm in splittings]
