"""Network presets for plain tables (``python -m nn.train --table ... --preset NAME``).

A table preset is a :class:`~nn.presets.Preset` (``model`` and ``training`` overrides) plus an
input transform (:mod:`nn.table_transform`).  The feature-store presets of :mod:`nn.presets`
work on tables too (with no transform).

* ``table_small`` -- for tables of thousands to a few hundred thousand rows, where boosted
  trees usually beat a default MLP: Gaussian-rank (``quantile``) inputs, each encoded
  piecewise-linearly in 8 bins (:func:`nn.model.piecewise_linear_encoding`), an ensemble of 16
  members sharing 3 x 256 SELU hidden layers with dropout 0.3 (TabM-mini: own input scales and
  output layer per member; ``model.ensemble_shared``), AdamW (lr 1e-3, decoupled weight decay
  0.01) on a cosine schedule over 100 epochs of batches of 128, the best validation-loss epoch
  kept.  Measured against XGBoost on the same splits of 7 500 real HIGGS rows in the README
  (``benchmarks/tables.py``).
* ``table_large`` -- for millions of rows, where Baldi et al. found deep networks ahead: the
  same inputs, 5 x 300 SELU units, no dropout, AdamW (lr 1e-3, weight decay 1e-4), batches of
  1024, cosine schedule over 30 epochs.
"""

from __future__ import annotations

from dataclasses import dataclass

from analysis.core.config import AnalysisConfig, config_from_dict
from nn.presets import ONE_NETWORK, PRESETS, Preset
from nn.table_transform import TRANSFORMS

__all__ = ["TABLE_PRESETS", "TablePreset", "apply_table_preset", "table_preset_names"]


@dataclass(frozen=True)
class TablePreset(Preset):
    """A :class:`~nn.presets.Preset` with an input transform (a name of :data:`nn.table_transform.TRANSFORMS`)."""

    input_transform: str = "none"


TABLE_PRESETS: dict[str, TablePreset] = {
    preset.name: preset
    for preset in (
        TablePreset(
            name="table_small",
            description="small tables: quantile inputs in 8 linear bins, 16 members sharing 3 x 256 selu (dropout 0.3), "
                        "adamw + cosine, 100 epochs, batch 128",
            model={"hidden_layers": [256, 256, 256], "activation": "selu", "dropout": 0.3, "l1": 0.0, "l2": 0.0,
                   "input_encoding_bins": 8, "ensemble_members": 16, "ensemble_shared": True},
            training={"optimizer": "adamw", "learning_rate": 1e-3, "weight_decay": 1e-2, "schedule": "cosine",
                      "batch_size": 128, "max_epochs": 100, "patience": 100},
            input_transform="quantile",
        ),
        TablePreset(
            name="table_large",
            description="large tables: quantile inputs, 5 x 300 selu, adamw + cosine, 30 epochs, batch 1024",
            model={"hidden_layers": [300] * 5, "activation": "selu", "dropout": 0.0, "l1": 0.0, "l2": 0.0,
                   **ONE_NETWORK},
            training={"optimizer": "adamw", "learning_rate": 1e-3, "weight_decay": 1e-4, "schedule": "cosine",
                      "batch_size": 1024, "max_epochs": 30, "patience": 30},
            input_transform="quantile",
        ),
    )
}


def table_preset_names() -> list[str]:
    """Every preset a table training accepts: the table presets and the feature-store ones."""
    return sorted({*TABLE_PRESETS, *PRESETS})


def apply_table_preset(config: AnalysisConfig, name: str | None) -> tuple[AnalysisConfig, str]:
    """``(config with the preset applied, input transform)``; also sets what every table
    network is: binary, not parametrised, one network (no per-point training, no folds)."""
    data = config.model_dump(mode="json")
    transform = "none"
    if name is not None:
        preset = TABLE_PRESETS.get(name) or PRESETS.get(name)
        if preset is None:
            raise ValueError(f"unknown preset {name!r}; known presets: {table_preset_names()}")
        data["model"].update(preset.model)
        data["training"].update(preset.training)
        transform = getattr(preset, "input_transform", "none")
    if transform not in TRANSFORMS:
        raise ValueError(f"preset {name}: unknown input transform {transform!r}")
    data["model"].update(parametrised=False, output="binary")
    data["training"].update(per_point=False, signal_points=None, folds=1)
    return config_from_dict(data, source=f"table training{f' with preset {name}' if name else ''}"), transform
