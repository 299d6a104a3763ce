"""The ``model`` and ``training`` sections of the classifier."""

from __future__ import annotations

from typing import Literal

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
    RESAMPLING_METHODS,
    SAMPLING_STRATEGIES,
    SCHEDULES,
    _Section,
)
from analysis.core.config.samples import SignalPoint


class ModelConfig(_Section):
    """Multilayer perceptron shape (``nn/model.py``).

    ``output: binary`` is one sigmoid unit (signal probability); ``multiclass`` a softmax over
    signal and each background process (the signal probability is its first output).
    ``parametrised`` adds the signal grid parameters (m_slepton, dm) as inputs (Baldi et al.
    2016); background events get values drawn from the signal parameter distribution.
    """

    hidden_layers: list[StrictInt] = Field(default_factory=lambda: [128, 128, 128], min_length=1)
    activation: Literal[ACTIVATIONS] = "relu"
    dropout: float = Field(default=0.025, ge=0, lt=1)
    l1: float = Field(default=0.0, ge=0, description="L1 penalty on the weight matrices (sum |w|)")
    l2: float = Field(default=0.0, ge=0, description="L2 penalty on the weight matrices (sum w^2)")
    output: Literal["binary", "multiclass"] = "binary"
    parametrised: bool = Field(default=True, description="signal masses are network inputs (Baldi et al. 2016)")
    input_encoding_bins: StrictInt = Field(
        default=0, ge=0, le=256,
        description="0, or the bins of a piecewise-linear encoding of each input (for Gaussian-rank inputs; nn/model.py)")
    ensemble_members: StrictInt = Field(
        default=1, ge=1, le=64, description="networks trained side by side and averaged (their mean probability; nn/model.py)")
    ensemble_shared: bool = Field(
        default=False, description="the members share their hidden layers (TabM-mini: own input scales and output layer)")

    @field_validator("hidden_layers")
    @classmethod
    def _positive_widths(cls, widths: list[int]) -> list[int]:
        if any(width <= 0 for width in widths):
            raise ValueError("every hidden layer needs a positive width")
        return widths

    @model_validator(mode="after")
    def _shared_needs_members(self) -> "ModelConfig":
        if self.ensemble_shared and self.ensemble_members < 2:
            raise ValueError(f"ensemble_shared: true needs ensemble_members >= 2, got {self.ensemble_members}")
        return self


class TrainingConfig(_Section):
    """Optimiser, loss, event weights, signal points and data split (``nn/train.py``).

    Every random choice (initialisation, dropout, shuffling, resampling, background
    parameters) derives from ``seed`` (default: the analysis ``seed``); the split is a hash of
    (dataset, event number) salted with ``split_seed``, so an event lands in the same split in
    every run and at scoring time.
    """

    seed: StrictInt | None = Field(default=None, ge=0, description="training seed; default: the analysis seed")
    optimizer: Literal[OPTIMIZERS] = "rmsprop"
    learning_rate: float = Field(default=1e-3, gt=0)
    schedule: Literal[SCHEDULES] = "constant"
    warmup_epochs: StrictInt = Field(default=0, ge=0, description="linear warm-up epochs (warmup_cosine)")
    decay_rate: float = Field(default=0.9, gt=0, le=1, description="learning-rate factor per epoch (exponential)")
    momentum: float = Field(default=0.9, ge=0, lt=1, description="sgd momentum")
    weight_decay: float = Field(default=1e-4, ge=0, description="decoupled weight decay (adamw)")
    batch_size: StrictInt = Field(default=512, gt=0)
    max_epochs: StrictInt = Field(default=20, gt=0)
    patience: StrictInt = Field(default=5, ge=0, description="epochs without validation-loss improvement before stopping")
    min_delta: float = Field(default=0.0, ge=0, description="smallest validation-loss decrease that counts")
    loss: Literal[LOSSES] = "bce"
    focal_gamma: float = Field(default=2.0, ge=0)
    label_smoothing: float = Field(default=0.0, ge=0, lt=0.5)
    asimov_relative_uncertainty: float | None = Field(
        default=None, ge=0, description="sigma_b / b of the Asimov loss; default: scan.relative_background_uncertainty"
    )
    asimov_eps: float = Field(default=1e-3, gt=0, description="L = 1 / (Z_A + eps)")
    negative_weights: Literal["keep", "zero", "abs"] = "keep"
    balance: Literal["equal", "none"] = Field(default="equal", description="rescale each class to the same total weight")
    balance_signal_points: bool = Field(default=True, description="each signal grid point gets the same total weight")
    resample: Literal[RESAMPLING_METHODS] = Field(
        default="none", description="resample the training split (imbalanced-learn): undersample, oversample or smote"
    )
    sampling_strategy: Literal[SAMPLING_STRATEGIES] = Field(
        default="auto", description="which classes are resampled (imbalanced-learn's sampling_strategy)"
    )
    smote_k_neighbors: StrictInt = Field(default=5, gt=0, description="nearest neighbours of SMOTE")
    boost_rounds: StrictInt = Field(default=0, ge=0, description="boosting on errors: rounds of retraining (0: off)")
    boost_factor: float = Field(default=2.0, gt=0, allow_inf_nan=False,
                                description="boosting on errors: weight factor of misclassified training events")
    boost_threshold: float = Field(default=0.5, gt=0, lt=1, description="boosting on errors: score that separates the classes")
    split_fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
    split_seed: StrictInt = Field(default=0, ge=0, description="salt of the train/validation/test hash")
    signal_points: list[SignalPoint] | None = Field(
        default=None, description="train on these grid points only; default: every signal point in the store"
    )
    per_point: bool = Field(default=False, description="train one (non-parametrised) network per grid point")
    folds: StrictInt = Field(
        default=1, ge=1, le=20,
        description="cross-training: k networks, each tested on 1/k of the events (test fraction 1/k); every event is "
        "scored by the one it was held out from, so the scan uses all events (nn/split.py, nn/folds.py)")
    eval_batch_size: StrictInt = Field(default=65536, gt=0, description="rows per forward pass when evaluating")
    baseline: Literal["none", "xgboost"] = Field(
        default="none", description="also train gradient-boosted trees on the same splits and weights (nn/baseline.py)"
    )

    @field_validator("split_fractions")
    @classmethod
    def _fractions_sum_to_one(cls, fractions: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-9:
            raise ValueError("train/validation/test fractions must be >= 0 and sum to 1")
        if fractions[0] <= 0 or fractions[1] <= 0:
            raise ValueError("the train and validation fractions must be > 0")
        return fractions

    @model_validator(mode="after")
    def _folds_fit_the_split(self) -> "TrainingConfig":
        if self.folds > 1:
            if abs(self.folds * self.split_fractions[2] - 1.0) > 1e-6:
                raise ValueError(f"training.folds = {self.folds} needs a test fraction of 1/{self.folds} = "
                                 f"{1 / self.folds:.6g} in split_fractions (each event is tested by one fold's "
                                 f"network), got {self.split_fractions[2]}")
            clash = [name for name, on in (("per_point", self.per_point), ("boost_rounds", self.boost_rounds > 0)) if on]
            if clash:
                raise ValueError(f"training.{clash[0]} cannot be combined with cross-training (training.folds = {self.folds}, "
                                 "5 in the default analysis): set training.folds: 1 with it")
        return self

    @property
    def scored_fraction(self) -> float:
        """The fraction of all events the test split of the score histograms holds: 1 for a
        cross-training (every event is in one fold's test split), else the test fraction."""
        return 1.0 if self.folds > 1 else float(self.split_fractions[2])

    @field_validator("signal_points")
    @classmethod
    def _unique_training_points(cls, points: list[SignalPoint] | None) -> list[SignalPoint] | None:
        if points is not None:
            if not points:
                raise ValueError("signal_points must name at least one point (or be null for all)")
            names = [point.name for point in points]
            if len(set(names)) != len(names):
                raise ValueError(f"signal_points lists a point twice: {names}")
        return points
