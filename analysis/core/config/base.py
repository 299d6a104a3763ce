"""Shared pieces of the config sections: the option lists, the error type, the section base class."""

from __future__ import annotations

from pydantic import (
    BaseModel,
    ConfigDict,
)

from analysis.core.errors import UserError

#: Background processes the generator knows (see ``jobs/samples.py`` for their Pythia settings).
KNOWN_BACKGROUNDS = ("WW", "WZ", "ZZ", "ttbar", "Ztautau")

#: The names of the network and training options: the one list of each, used to validate
#: ``model``, ``training`` and ``search.space``; ``nn`` maps every name to its function
#: (``nn.model.ACTIVATION_FUNCTIONS``, ``nn.optimizers.OPTIMIZERS`` / ``SCHEDULES``,
#: ``nn.losses.make_loss``) and tests check that both sides agree.
ACTIVATIONS = ("relu", "tanh", "sigmoid", "elu", "gelu", "selu", "leaky_relu")
OPTIMIZERS = ("adam", "adamw", "rmsprop", "sgd")
SCHEDULES = ("constant", "cosine", "exponential", "warmup_cosine")
LOSSES = ("bce", "focal", "asimov")
#: ``training.resample``: the imbalanced-learn methods of :mod:`nn.resampling`.
RESAMPLING_METHODS = ("none", "undersample", "oversample", "smote")
#: ``training.sampling_strategy``: imbalanced-learn's string strategies.
SAMPLING_STRATEGIES = ("auto", "minority", "not minority", "not majority", "all")
#: Hyperparameter-search strategies, Optuna samplers and pruners (``nn.search``), and objectives.
SEARCH_STRATEGIES = ("random", "hyperband", "genetic", "bayesian", "grid")
SEARCH_SAMPLERS = ("tpe", "random", "cmaes")
SEARCH_PRUNERS = ("none", "median", "hyperband")
SEARCH_OBJECTIVES = ("auc", "loss", "asimov")


class ConfigError(UserError, ValueError):
    """A configuration problem; the message names the field (dotted path) that is wrong."""


class _Section(BaseModel):
    """Base of all config sections: unknown keys are errors, values are validated on assignment."""

    # allow_inf_nan=False: .inf / .nan are refused for every float (luminosity, cuts, uncertainties)
    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False, allow_inf_nan=False)
