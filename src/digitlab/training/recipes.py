"""Named training recipes: published MNIST setups as starting points; flags still override.

- tutorial: Dense 512 relu -> softmax; Adam, batch 64, 5 epochs. Published: 97.88% (the tutorial).
- mlp-dropout: Keras's classic mnist_mlp, 2 x (Dense 512 relu, Dropout 0.2); RMSprop, batch 128,
  20 epochs. Published: 98.40%.
- cnn: keras-io's "simple MNIST convnet", Conv 32, pool, Conv 64, pool, Dropout 0.5; Adam, batch 128,
  15 epochs, validation 0.1. Published: 99.22%.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from digitlab.config import TrainingConfig
from digitlab.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A named set of training settings and the figure its authors published."""

    # Name used with --recipe.
    name: str
    # One line on what it is and where it comes from.
    description: str
    # Settings that differ from TrainingConfig's defaults (the tutorial's).
    settings: dict[str, Any]
    # Published test accuracy on MNIST, for comparison.
    published_test_accuracy: float


RECIPES: dict[str, Recipe] = {
    recipe.name: recipe
    for recipe in (
        Recipe("tutorial", "the tutorial: Dense 512 relu -> Dense 10 softmax, Adam, batch 64, 5 epochs", {}, 0.9788),
        Recipe("mlp-dropout", "Keras's classic mnist_mlp: 2 x (Dense 512 relu, Dropout 0.2), RMSprop, batch 128, "
               "20 epochs",
               {"hidden_units": (512, 512), "dropout": 0.2, "optimizer": "rmsprop", "batch_size": 128, "epochs": 20},
               0.9840),
        Recipe("cnn", "keras-io simple MNIST convnet: Conv 32, pool, Conv 64, pool, Dropout 0.5, Adam, batch 128, "
               "15 epochs, validation split 0.1",
               {"architecture": "cnn", "conv_filters": (32, 64), "hidden_units": (), "dropout": 0.5,
                "batch_size": 128, "epochs": 15, "validation_split": 0.1},
               0.9922),
    )
}


def recipe_config(name: str = "tutorial", **overrides: Any) -> TrainingConfig:
    """The config of a recipe, with `overrides` (the flags a user gave) applied on top."""
    if name not in RECIPES:
        raise ConfigError(f"unknown recipe {name!r}; choose one of: {', '.join(RECIPES)}")
    unknown = sorted(set(overrides) - {field.name for field in dataclasses.fields(TrainingConfig)})
    if unknown:
        raise ConfigError(f"unknown training settings: {', '.join(unknown)}")
    return TrainingConfig(**{**RECIPES[name].settings, **overrides, "recipe": name})
