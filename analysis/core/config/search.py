"""The ``search`` section: the hyperparameter search space and strategy."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    StrictInt,
    field_validator,
    model_validator,
)

from analysis.core.config.base import (
    ACTIVATIONS,
    LOSSES,
    OPTIMIZERS,
    SEARCH_OBJECTIVES,
    SEARCH_PRUNERS,
    SEARCH_SAMPLERS,
    SEARCH_STRATEGIES,
    _Section,
)

#: Hyperparameters a search may vary, and the values a choice of each may take (None: numbers).
SEARCH_PARAMETERS: dict[str, tuple | None] = {
    "layers": None,
    "width": None,
    "activation": ACTIVATIONS,
    "dropout": None,
    "l1": None,
    "l2": None,
    "learning_rate": None,
    "optimizer": OPTIMIZERS,
    "batch_size": None,
    "loss": LOSSES,
}
_INTEGER_PARAMETERS = {"layers", "width", "batch_size"}
_CATEGORICAL_PARAMETERS = {"activation", "optimizer", "loss"}


class SearchDimension(_Section):
    """One hyperparameter's range: ``int``/``float`` between ``low`` and ``high`` (inclusive;
    ``log: true`` samples uniformly in log), or ``choice`` among ``values``."""

    type: Literal["int", "float", "choice"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    values: list[Any] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> "SearchDimension":
        if self.type == "choice":
            if not self.values:
                raise ValueError("a choice needs a non-empty 'values' list")
            if self.low is not None or self.high is not None or self.log:
                raise ValueError("a choice takes 'values' only (no low/high/log)")
            return self
        if self.values is not None:
            raise ValueError(f"an {self.type} range takes low/high, not 'values'")
        if self.low is None or self.high is None:
            raise ValueError(f"an {self.type} range needs both 'low' and 'high'")
        if not self.low <= self.high:
            raise ValueError(f"low ({self.low}) must be <= high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0 (got {self.low})")
        if self.type == "int" and (self.low != int(self.low) or self.high != int(self.high)):
            raise ValueError("an int range needs integer low and high")
        return self


def _default_search_space() -> dict[str, SearchDimension]:
    return {
        "layers": SearchDimension(type="int", low=1, high=4),
        "width": SearchDimension(type="choice", values=[32, 64, 128, 256]),
        "activation": SearchDimension(type="choice", values=["relu", "tanh", "elu"]),
        "dropout": SearchDimension(type="float", low=0.0, high=0.3),
        "l2": SearchDimension(type="float", low=1e-7, high=1e-3, log=True),
        "learning_rate": SearchDimension(type="float", low=1e-4, high=1e-2, log=True),
        "optimizer": SearchDimension(type="choice", values=["adam", "rmsprop"]),
        "batch_size": SearchDimension(type="choice", values=[256, 512, 1024]),
    }


class SearchConfig(_Section):
    """Hyperparameter search (``python -m nn.search``): space, strategy, objective, budget.

    ``space`` maps hyperparameter names (:data:`SEARCH_PARAMETERS`) to ranges; the rest of the
    network and training settings come from ``model`` and ``training``. ``objective``: ``auc``
    (validation weighted ROC AUC, maximised), ``loss`` (validation loss, minimised) or
    ``asimov`` (best Asimov Z of a threshold scan on the validation split with the ``scan``
    settings, at ``objective_point`` or averaged over the grid, maximised).

    ``bayesian`` proposes trials with an Optuna ``sampler`` (TPE by default), ``ask_batch`` at a
    time, and may stop poor trials early with a ``pruner`` fed from per-epoch objective values.
    ``grid`` trains every combination of the space's ``choice`` values and ``int`` ranges, all
    with the same training seed.
    """

    strategy: Literal[SEARCH_STRATEGIES] = "random"
    trials: StrictInt = Field(default=20, gt=0, description="trials to train (hyperband: configurations sampled; grid: ignored)")
    objective: Literal[SEARCH_OBJECTIVES] = "auc"
    objective_point: str | None = Field(default=None, description="grid point (e.g. slepton_200_40) of the asimov objective; null: mean over the grid")
    seed: StrictInt | None = Field(default=None, ge=0, description="search seed; default: the analysis seed")
    space: dict[str, SearchDimension] = Field(default_factory=_default_search_space)
    epochs: StrictInt | None = Field(default=None, gt=0, description="epochs per trial (random, genetic); default: training.max_epochs")
    min_epochs: StrictInt = Field(default=1, gt=0, description="hyperband: epochs of the lowest rung")
    max_epochs: StrictInt = Field(default=9, gt=0, description="hyperband: epochs of the highest rung")
    eta: StrictInt = Field(default=3, ge=2, description="hyperband: keep the top 1/eta at each rung")
    population: StrictInt = Field(default=8, ge=2, description="genetic: networks per generation")
    parents: StrictInt = Field(default=4, ge=2, description="genetic: top-k networks that breed")
    mutation_probability: float = Field(default=0.2, ge=0, le=1, description="genetic: chance that a child's gene is redrawn")
    generations: StrictInt = Field(default=4, gt=0, description="genetic: generations (unless --trials sets the budget)")
    sampler: Literal[SEARCH_SAMPLERS] = Field(default="tpe", description="bayesian: Optuna sampler (seeded with the search seed)")
    pruner: Literal[SEARCH_PRUNERS] = Field(default="none", description="bayesian: Optuna pruner of poor trials (none, median, hyperband)")
    startup_trials: StrictInt = Field(default=10, ge=0, description="bayesian: random trials before the sampler models the space (tpe, cmaes), and finished trials before the median pruner prunes")
    ask_batch: StrictInt = Field(default=4, gt=0, description="bayesian: trials proposed together and run in parallel (the sequence depends on it, not on the workers)")
    use_best_model: bool = Field(default=False, description="analysis.run's train stage copies the best model of 'directory' instead of training")
    directory: Path | None = Field(default=None, description="a finished search's output directory (for use_best_model)")

    @field_validator("space")
    @classmethod
    def _known_parameters(cls, space: dict[str, SearchDimension]) -> dict[str, SearchDimension]:
        for name, dimension in space.items():
            if name not in SEARCH_PARAMETERS:
                raise ValueError(f"space.{name}: unknown hyperparameter; known: {sorted(SEARCH_PARAMETERS)}")
            allowed = SEARCH_PARAMETERS[name]
            if name in _CATEGORICAL_PARAMETERS:
                if dimension.type != "choice":
                    raise ValueError(f"space.{name}: must be a choice among {list(allowed)}")
                bad = [value for value in dimension.values if value not in allowed]
                if bad:
                    raise ValueError(f"space.{name}: unknown value(s) {bad}; allowed: {list(allowed)}")
                continue
            values = dimension.values if dimension.type == "choice" else [dimension.low, dimension.high]
            if any(isinstance(value, bool) or not isinstance(value, (int, float)) for value in values):
                raise ValueError(f"space.{name}: values must be numbers")
            if name in _INTEGER_PARAMETERS:
                if dimension.type == "float" or any(value != int(value) for value in values):
                    raise ValueError(f"space.{name}: must be integers")
                if min(values) < 1:
                    raise ValueError(f"space.{name}: must be >= 1")
            elif name == "dropout" and (min(values) < 0 or max(values) >= 1):
                raise ValueError("space.dropout: must lie in [0, 1)")
            elif name == "learning_rate" and min(values) <= 0:
                raise ValueError("space.learning_rate: must be > 0")
            elif min(values) < 0:
                raise ValueError(f"space.{name}: must be >= 0")
        return space

    @model_validator(mode="after")
    def _budgets(self) -> "SearchConfig":
        if self.strategy == "grid":
            for name, dimension in self.space.items():
                if dimension.type == "float":
                    raise ValueError(f"space.{name}: a grid search needs a choice or an int range, not a float range")
        if self.parents > self.population:
            raise ValueError(f"parents ({self.parents}) must be <= population ({self.population})")
        if self.min_epochs > self.max_epochs:
            raise ValueError(f"min_epochs ({self.min_epochs}) must be <= max_epochs ({self.max_epochs})")
        return self
