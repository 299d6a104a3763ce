"""The analysis configuration: one validated object, passed explicitly to every stage.

A config is a YAML file (or a dict) checked by the pydantic models below. Unknown keys,
wrong types and unphysical values are refused with an error that names the offending
field, e.g. ``samples.signal_grid[2].dm: dm must be > 0 (got -5.0)``. Nothing is read at
import time: call :func:`load_config` (a file) or :func:`default_config` (the built-in
slepton analysis, ``analysis/core/default.yaml``).

Sections, in the order the data flows:

- ``samples``     what to generate with Pythia 8 (signal grid, backgrounds, sizes, cache),
                  or a user ``fileset`` of ROOT/Parquet files to analyse instead;
- ``luminosity_fb`` integrated luminosity that event weights are normalised to;
- ``selection``   object definitions (NanoAOD working points), triggers, event flags and
                  preselection cuts (safe expression strings);
- ``features``    which features feed the classifier (a set, names, expressions);
- ``control``     control histograms after the preselection (data and simulation);
- ``model``, ``training``  the neural network and how it is trained;
- ``scan``        significance scan settings;
- ``fit``         binned likelihood fits with pyhf (discovery Z, CLs limits, workspaces);
- ``executor``    where the columnar stages run (iterative, futures, dask, condor);
- ``cluster``     an HTCondor pool: resources per job and worker environment.
"""

from analysis.core.config.analysis import (  # noqa: F401 (the public API)
    MAX_CONFIG_ALIASES,
    MAX_CONFIG_BYTES,
    MAX_CONFIG_NODES,
    MAX_LISTED_ERRORS,
    MAX_QUOTED_CHARS,
    AnalysisConfig,
    config_from_dict,
    control_histograms,
    default_config,
    default_config_text,
    full_signal_grid,
    load_config,
    parse_config_yaml,
    short_repr,
)
from analysis.core.config.base import (  # noqa: F401 (the public API)
    ACTIVATIONS,
    KNOWN_BACKGROUNDS,
    LOSSES,
    OPTIMIZERS,
    RESAMPLING_METHODS,
    SAMPLING_STRATEGIES,
    SCHEDULES,
    SEARCH_OBJECTIVES,
    SEARCH_PRUNERS,
    SEARCH_SAMPLERS,
    SEARCH_STRATEGIES,
    ConfigError,
)
from analysis.core.config.execution import (  # noqa: F401 (the public API)
    AdaptiveConfig,
    ClusterConfig,
    ExecutorConfig,
)
from analysis.core.config.inference import (  # noqa: F401 (the public API)
    FitConfig,
    ScanConfig,
)
from analysis.core.config.samples import (  # noqa: F401 (the public API)
    BackgroundCrossSection,
    SamplesConfig,
    SignalPoint,
    TruthMetFilterConfig,
    plain_production,
)
from analysis.core.config.search import (  # noqa: F401 (the public API)
    SEARCH_PARAMETERS,
    SearchConfig,
    SearchDimension,
)
from analysis.core.config.selection import (  # noqa: F401 (the public API)
    ELECTRON_IDS,
    JET_IDS,
    MUON_IDS,
    ControlConfig,
    ControlHistogram,
    FeaturesConfig,
    ObjectSelection,
    SelectionConfig,
)
from analysis.core.config.training import (  # noqa: F401 (the public API)
    ModelConfig,
    TrainingConfig,
)
