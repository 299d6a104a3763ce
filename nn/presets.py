"""Named network + training presets reproducing the reference studies.

* ``susy_3x128`` -- the final model of the SUSY-dataset study: 3 hidden layers of 128 relu
  units, dropout 0.025, RMSprop (lr 1e-3), batch 512, 20 epochs: one network (the analysis
  default averages five of them, ``model.ensemble_members: 5``).
* ``baldi_5x300`` -- the deep network of Baldi, Sadowski and Whiteson (Nature Commun. 5 (2014)
  4308, the UCI "SUSY" benchmark): 5 hidden layers of 300 tanh units, SGD with momentum 0.9,
  lr 0.05, mini-batches of 100, weight decay 1e-5 (as an L2 penalty), no dropout.

:func:`apply_preset` returns a new validated config whose ``model`` and ``training`` sections
carry the preset's values (everything else in the config is kept); a preset is one network
(``ensemble_members: 1``), as in its study.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from analysis.core.config import config_from_dict

__all__ = ["ONE_NETWORK", "PRESETS", "Preset", "apply_preset"]


@dataclass(frozen=True)
class Preset:
    """A named set of ``model`` and ``training`` overrides."""

    name: str
    description: str
    model: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)


#: The model keys of a preset that is one network, as in its study (the analysis default averages five).
ONE_NETWORK = {"ensemble_members": 1, "ensemble_shared": False}

PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset(
            name="susy_3x128",
            description="SUSY-dataset final model: 3 x 128 relu, dropout 0.025, rmsprop, batch 512, 20 epochs",
            model={"hidden_layers": [128, 128, 128], "activation": "relu", "dropout": 0.025, "l1": 0.0, "l2": 0.0,
                   **ONE_NETWORK},
            training={"optimizer": "rmsprop", "learning_rate": 1e-3, "schedule": "constant", "batch_size": 512, "max_epochs": 20},
        ),
        Preset(
            name="baldi_5x300",
            description="Baldi et al. 2014 deep network: 5 x 300 tanh, sgd momentum 0.9, lr 0.05, batch 100, L2 1e-5",
            model={"hidden_layers": [300] * 5, "activation": "tanh", "dropout": 0.0, "l1": 0.0, "l2": 1e-5,
                   **ONE_NETWORK},
            training={
                "optimizer": "sgd",
                "learning_rate": 0.05,
                "momentum": 0.9,
                "schedule": "constant",
                "batch_size": 100,
                "max_epochs": 100,
                "patience": 10,
            },
        ),
    )
}


def apply_preset(config, name: str):
    """A copy of the :class:`~analysis.core.config.AnalysisConfig` ``config`` with preset ``name`` applied.

    Raises ``ValueError`` listing the known presets when ``name`` is unknown.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known presets: {sorted(PRESETS)}")
    preset = PRESETS[name]
    data = config.model_dump(mode="json")
    data["model"].update(preset.model)
    data["training"].update(preset.training)
    return config_from_dict(data, source=f"preset {name}")
