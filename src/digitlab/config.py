"""Training settings as one frozen dataclass. The defaults are the tutorial's recipe."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from digitlab.data.catalog import DATASET_NAMES  # the one table of data sets; imports nothing heavy
from digitlab.errors import ConfigError, UnknownDatasetError

ARCHITECTURES = ("mlp", "cnn")
ACTIVATIONS = ("relu", "tanh", "sigmoid", "elu", "selu", "gelu", "silu", "leaky_relu")
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop", "nadam", "adagrad")
PADDINGS = ("valid", "same")
LEARNING_RATE_SCHEDULES = ("constant", "one-cycle")
# Sizes of the line model a reader run trains (training/line_model.py SIZES describes each).
LINE_MODEL_SIZES = ("standard", "large")
# Images per batch when evaluating or predicting a whole set: bigger batches are faster and give the
# same loss and accuracy (training, evaluation and the report all use it).
EVALUATION_BATCH_SIZE = 1000


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """Everything that decides what a training run computes."""

    # Named starting point these settings came from (see recipes.py); "tutorial" is the tutorial's.
    recipe: str = "tutorial"
    # Data set to train on: "mnist" (the tutorial's) or "fashion-mnist".
    dataset: str = "mnist"
    # "mlp": flattened 784-pixel input, Dense layers (the tutorial). "cnn": 28x28x1 input, then per
    # entry of conv_filters a block of Conv2D layers and a 2x2 MaxPool, Flatten, Dropout, Dense layers.
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
    # --- convnets ("cnn" only; the defaults are keras-io's simple convnet) ---
    # Side of each Conv2D kernel: 3 (3x3) or 5 (5x5), say.
    kernel_size: int = 3
    # "valid" (each convolution shrinks the image by kernel_size - 1) or "same" (keeps its size).
    conv_padding: str = "valid"
    # Conv2D layers in each block, before its 2x2 max-pooling.
    convs_per_block: int = 1
    # BatchNormalization after each Conv2D (which then has no bias), before its activation.
    batch_norm: bool = False
    # --- schedule and augmentation (any architecture) ---
    # "constant": learning_rate throughout (the tutorial). "one-cycle": a linear warm-up from
    # learning_rate / 10 to learning_rate over warmup_fraction of the steps, then cosine decay to 0.
    learning_rate_schedule: str = "constant"
    # Share of all training steps spent warming up ("one-cycle" only).
    warmup_fraction: float = 0.2
    # Random changes to each training image, drawn anew every epoch inside the compiled training
    # step (Keras's RandomTranslation, RandomRotation and RandomZoom layers; inactive when predicting):
    # shifts up to this fraction of the image's side, rotations up to this many degrees either way,
    # zoom in or out by up to this fraction. 0: none (the tutorial).
    augment_shift: float = 0.0
    augment_rotation: float = 0.0
    augment_zoom: float = 0.0
    # --- refusing what is not a digit ---
    # Synthetic images that are not one digit (letters, symbols, scribbles, shapes, pairs and pieces
    # of digits; `data/nondigits.py`) added to the training images as an extra class "not a digit",
    # so that the model can refuse them (the reader recipe). 0: none, ten classes (the tutorial).
    non_digit_images: int = 0
    # Synthetic photographed lines of MNIST training digits to train the run's line model on
    # (`training/line_model.py`, saved as line_model.keras; what `digitlab read` then uses). 0: none.
    line_model_lines: int = 0
    # How large that line model is and how long it trains (`training/line_model.py` SIZES): "standard"
    # (the reader recipe's 10 minutes) or "large" (the bundled reader's: wider, more context, digits
    # varied in stroke width and slant).
    line_model_size: str = "standard"
    # Pictures of Fashion-MNIST's training set (clothes, shoes, bags) added to the "not a digit" class
    # besides the synthetic non-digits: varied negatives, so that the refusal learns more than the
    # generator's kinds. 0: none.
    non_digit_pictures: int = 0

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
        object.__setattr__(self, "conv_filters", filters)
        self._check_convnet()
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
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**32:
            # NumPy's and Keras's generators take seeds below 2**32.
            raise ConfigError(f"seed must be a whole number from 0 to {2**32 - 1}, got {self.seed!r}")
        if isinstance(self.max_train_images, bool) or not isinstance(self.max_train_images, int) \
                or self.max_train_images < 0:
            raise ConfigError(f"max_train_images must be a whole number >= 0 (0: all), got {self.max_train_images!r}")

    def _check_convnet(self) -> None:
        """The convnet settings, the schedule and the augmentation."""
        for name in ("kernel_size", "convs_per_block"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"{name} must be a positive whole number, got {value!r}")
        if self.conv_padding not in PADDINGS:
            raise ConfigError(f"unknown conv_padding {self.conv_padding!r}; choose one of: {', '.join(PADDINGS)}")
        if not isinstance(self.batch_norm, bool):
            raise ConfigError(f"batch_norm must be true or false, got {self.batch_norm!r}")
        side = 28
        for _ in self.conv_filters:
            if self.conv_padding == "valid":
                side -= self.convs_per_block * (self.kernel_size - 1)
            side //= 2
            if side < 1:
                raise ConfigError(f"{len(self.conv_filters)} convolution blocks of {self.convs_per_block} "
                                  f"{self.kernel_size}x{self.kernel_size} {self.conv_padding} convolutions do not fit "
                                  "a 28x28 image (each block also halves it); use fewer blocks, smaller kernels "
                                  "or conv_padding same")
        if self.learning_rate_schedule not in LEARNING_RATE_SCHEDULES:
            raise ConfigError(f"unknown learning_rate_schedule {self.learning_rate_schedule!r}; "
                              f"choose one of: {', '.join(LEARNING_RATE_SCHEDULES)}")
        if not _is_number(self.warmup_fraction) or not 0.0 <= self.warmup_fraction < 1.0:
            raise ConfigError(f"warmup_fraction must be in [0, 1), got {self.warmup_fraction!r}")
        if isinstance(self.non_digit_images, bool) or not isinstance(self.non_digit_images, int) \
                or not 0 <= self.non_digit_images <= 1_000_000:
            raise ConfigError(f"non_digit_images must be a whole number from 0 to 1,000,000, got {self.non_digit_images!r}")
        if self.non_digit_images and self.dataset != "mnist":
            raise ConfigError(f"non_digit_images teaches a digit reader to refuse non-digits: it needs --dataset mnist, "
                              f"not {self.dataset}")
        if isinstance(self.line_model_lines, bool) or not isinstance(self.line_model_lines, int) \
                or not 0 <= self.line_model_lines <= 1_000_000:
            raise ConfigError(f"line_model_lines must be a whole number from 0 to 1,000,000, got {self.line_model_lines!r}")
        if 0 < self.line_model_lines < 500:
            raise ConfigError(f"line_model_lines must be 0 (no line model) or at least 500, got {self.line_model_lines}; "
                              "a line model learns nothing from fewer lines")
        if self.line_model_lines and self.dataset != "mnist":
            raise ConfigError(f"line_model_lines trains a reader of lines of digits: it needs --dataset mnist, "
                              f"not {self.dataset}")
        if self.line_model_size not in LINE_MODEL_SIZES:
            raise ConfigError(f"unknown line_model_size {self.line_model_size!r}; choose one of: "
                              f"{', '.join(LINE_MODEL_SIZES)}")
        if isinstance(self.non_digit_pictures, bool) or not isinstance(self.non_digit_pictures, int) \
                or not 0 <= self.non_digit_pictures <= 60_000:
            raise ConfigError(f"non_digit_pictures must be a whole number from 0 to 60,000 (Fashion-MNIST's training "
                              f"pictures), got {self.non_digit_pictures!r}")
        if self.non_digit_pictures and not self.non_digit_images:
            raise ConfigError("non_digit_pictures adds to the 'not a digit' class: it needs non_digit_images too")
        for name, upper in (("augment_shift", 0.5), ("augment_rotation", 180.0), ("augment_zoom", 0.9)):
            value = getattr(self, name)
            if not _is_number(value) or not 0.0 <= value <= upper:
                raise ConfigError(f"{name} must be a number from 0 to {upper}, got {value!r}")

    @property
    def augments(self) -> bool:
        """Whether training images are randomly shifted, rotated or zoomed."""
        return bool(self.augment_shift or self.augment_rotation or self.augment_zoom)

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
