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
    # Published test accuracy on MNIST, for comparison (None: nothing published to compare with).
    published_test_accuracy: float | None


# The reader's settings, which the bundled reader's (reader-large) extends.
READER_SETTINGS: dict[str, Any] = {
    "architecture": "cnn", "conv_filters": (32, 64), "kernel_size": 5, "hidden_units": (128,), "dropout": 0.3,
    "batch_size": 128, "epochs": 6, "learning_rate": 0.005, "learning_rate_schedule": "one-cycle",
    "augment_shift": 0.08, "augment_rotation": 8.0, "augment_zoom": 0.1, "non_digit_images": 40_000,
    "line_model_lines": 60_000}

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
        Recipe("speedrun", "the fastest way found here to 99% on 2 CPU cores: Conv 5x5 16, pool, Conv 5x5 32, "
               "pool, softmax; Adam with a one-cycle schedule peaking at 0.03, batch 128, 2 epochs",
               {"architecture": "cnn", "conv_filters": (16, 32), "kernel_size": 5, "hidden_units": (),
                "batch_size": 128, "epochs": 2, "learning_rate": 0.03, "learning_rate_schedule": "one-cycle"},
               0.9904),
        Recipe("best", "the most accurate single model found here within 15 minutes on 2 CPU cores: "
               "2 x (Conv 3x3 32, batch norm), pool, 2 x (Conv 3x3 64, batch norm), pool, Dense 128, Dropout 0.4; "
               "random shifts, rotations and zooms; Adam, one-cycle, batch 128",
               {"architecture": "cnn", "conv_filters": (32, 64), "convs_per_block": 2, "batch_norm": True,
                "hidden_units": (128,), "dropout": 0.4, "batch_size": 128, "epochs": 14, "learning_rate": 0.005,
                "learning_rate_schedule": "one-cycle", "augment_shift": 0.1, "augment_rotation": 10.0,
                "augment_zoom": 0.1},
               0.9964),
        Recipe("reader", "the model `digitlab read` and the refusals use: Conv 5x5 32, pool, Conv 5x5 64, pool, "
               "Dense 128, Dropout 0.3, an 11th class 'not a digit' learnt from 40,000 synthetic non-digits "
               "(letters, symbols, scribbles, shapes, pairs, pieces and wrong cuts of digits); random shifts, rotations, "
               "zooms; Adam, one-cycle, batch 128, 6 epochs; and a line model for `read` trained with CTC for 8 epochs "
               "on 60,000 synthetic photographed lines of training digits, 20% of them with separators drawn "
               "between the digits (points, commas, dashes, slashes, colons; training/line_model.py)",
               READER_SETTINGS,
               None),
        Recipe("reader-large", "the bundled reader (`digitlab models`), trained once for about an hour on 2 CPU "
               "cores: the reader's classifier for 8 epochs with 60,000 synthetic non-digits and 20,000 Fashion-MNIST "
               "pictures as 'not a digit'; a larger line model (more filters, a third convolution along the line) "
               "trained with CTC for 8 epochs on 200,000 synthetic photographed lines whose digits vary in stroke "
               "width and slant, 20% of them with separators drawn between the digits",
               {**READER_SETTINGS, "epochs": 8, "non_digit_images": 60_000, "non_digit_pictures": 20_000,
                "line_model_lines": 200_000, "line_model_size": "large"},
               None),
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
