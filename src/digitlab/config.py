"""Training settings as one frozen dataclass. The defaults are the tutorial's recipe."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from digitlab.errors import ConfigError, UnknownDatasetError

DATASET_NAMES = ("mnist", "fashion-mnist")
ARCHITECTURES = ("mlp", "cnn")
ACTIVATIONS = ("relu", "tanh", "sigmoid", "elu", "selu", "gelu", "silu", "leaky_relu")
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop", "nadam", "adagrad")


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """Everything that decides what a training run computes."""

    # Named starting point these settings came from (see recipes.py); "tutorial" is the tutorial's.
    recipe: str = "tutorial"
    # Data set to train on: "mnist" (the tutorial's) or "fashion-mnist".
    dataset: str = "mnist"
    # "mlp": flattened 784-pixel input, Dense layers (the tutorial). "cnn": 28x28x1 input, then
    # Conv2D 3x3 relu + MaxPool 2 per entry of conv_filters, Flatten, Dropout, Dense layers.
    architecture: str = "mlp"
    # Filters of each convolution block ("cnn" only). keras-io's simple convnet: (32, 64).
    conv_filters: tuple[int, ...] = ()
    # Passes over the 60,000 training images. The tutorial: 5.
    epochs: int = 5
    # Images per gradient step. The tutorial: 64.
    batch_size: int = 64
    # Width of each hidden Dense layer, in order. The tutorial: one layer of 512.
    hidden_units: tuple[int, ...] = (512,)
    # Activation of the hidden layers (a Keras activation name). The tutorial: relu.
    activation: str = "relu"
    # Dropout rate after each hidden layer; 0 adds no Dropout layer. The tutorial: none.
    dropout: float = 0.0
    # Keras optimizer name. The tutorial: adam.
    optimizer: str = "adam"
    # Optimizer learning rate. Keras's Adam default, which the tutorial uses: 0.001.
    learning_rate: float = 0.001
    # Fraction of the training images held out for validation each epoch. The tutorial: 0.
    validation_split: float = 0.0
    # Seed of weight initialisation, shuffling and dropout: same seed, same result on one machine.
    seed: int = 0
    # Train on only the first N training images (0: all 60,000), for quick experiments and tests.
    max_train_images: int = 0

    def __post_init__(self) -> None:
        if self.dataset not in DATASET_NAMES:
            raise UnknownDatasetError(
                f"unknown data set {self.dataset!r}; choose one of: {', '.join(DATASET_NAMES)}"
            )
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                flag = name.replace("_", "-")
                raise ConfigError(f"{name} must be a positive whole number, got {value!r}; pass e.g. --{flag} 5")
        if self.architecture not in ARCHITECTURES:
            raise ConfigError(f"unknown architecture {self.architecture!r}; choose one of: {', '.join(ARCHITECTURES)}")
        # Accept any sequence (a list from JSON, say) but store tuples so the config stays hashable.
        units = _positive_whole_numbers(self.hidden_units)
        if units is None or (not units and self.architecture == "mlp"):
            raise ConfigError(
                f"hidden_units must be one or more positive whole numbers, got {self.hidden_units!r}; "
                "pass e.g. --hidden-units 512 or --hidden-units 512,256"
            )
        object.__setattr__(self, "hidden_units", units)
        filters = _positive_whole_numbers(self.conv_filters)
        if filters is None or (not filters and self.architecture == "cnn") or (filters and self.architecture == "mlp"):
            raise ConfigError(
                f"conv_filters must be positive whole numbers for the cnn architecture and empty for mlp, "
                f"got {self.conv_filters!r} with architecture {self.architecture!r}; pass e.g. --conv-filters 32,64"
            )
        if len(filters) > 2:
            raise ConfigError(f"at most 2 convolution blocks fit a 28x28 image (each halves it), got {len(filters)}")
        object.__setattr__(self, "conv_filters", filters)
        if not isinstance(self.recipe, str) or not self.recipe:
            raise ConfigError(f"recipe must be a name, got {self.recipe!r}")
        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"unknown activation {self.activation!r}; choose one of: {', '.join(ACTIVATIONS)}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {self.optimizer!r}; choose one of: {', '.join(OPTIMIZERS)}")
        if not _is_number(self.dropout) or not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if not _is_number(self.learning_rate) or not self.learning_rate > 0 or not math.isfinite(self.learning_rate):
            raise ConfigError(f"learning_rate must be a positive number, got {self.learning_rate!r}")
        if not _is_number(self.validation_split) or not 0.0 <= self.validation_split < 1.0:
            raise ConfigError(f"validation_split must be in [0, 1), got {self.validation_split!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed must be a whole number >= 0, got {self.seed!r}")
        if isinstance(self.max_train_images, bool) or not isinstance(self.max_train_images, int) \
                or self.max_train_images < 0:
            raise ConfigError(f"max_train_images must be a whole number >= 0 (0: all), got {self.max_train_images!r}")

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one input image as the model takes it: (784,) for mlp, (28, 28, 1) for cnn."""
        return (784,) if self.architecture == "mlp" else (28, 28, 1)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (tuples become lists)."""
        values = dataclasses.asdict(self)
        values["hidden_units"] = list(self.hidden_units)
        values["conv_filters"] = list(self.conv_filters)
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainingConfig:
        """Rebuild a config saved by `to_dict`; unknown keys are an error, not silently dropped.

        Settings missing from older run folders take their defaults.
        """
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown training settings: {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**values)

    def short_name(self) -> str:
        """A few words for run-folder names, e.g. 'mnist-512-e5-b64-s0' or 'mnist-c32x64-e15-b128-s0'."""
        layers = [f"c{'x'.join(str(f) for f in self.conv_filters)}"] if self.conv_filters else []
        layers += ["x".join(str(u) for u in self.hidden_units)] if self.hidden_units else []
        return f"{self.dataset}-{'-'.join(layers)}-e{self.epochs}-b{self.batch_size}-s{self.seed}"


def _positive_whole_numbers(values: Any) -> tuple[int, ...] | None:
    """`values` as a tuple if it is a sequence of positive ints, else None."""
    if isinstance(values, (str, int)):
        return None
    values = tuple(values)
    if any(isinstance(v, bool) or not isinstance(v, int) or v <= 0 for v in values):
        return None
    return values


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
