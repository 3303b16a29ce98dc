"""Build the network a `TrainingConfig` describes, as a Keras model. Nothing else."""

from __future__ import annotations

from digitlab.backend import import_keras
from digitlab.config import TrainingConfig


def build_model(config: TrainingConfig, num_classes: int = 10, backend: str | None = None):
    """A Keras Sequential model for `config`: the tutorial's MLP by default.

    mlp: Input(784) -> [Dense(units, activation) -> Dropout]... -> Dense(10, softmax); the
    tutorial's network is `Dense(512, relu, input 784) -> Dense(10, softmax)`.
    cnn: Input(28, 28, 1) -> per block [Conv2D(filters, k x k) (-> BatchNormalization) -> activation]
    x convs_per_block -> MaxPool(2) ... -> Flatten -> Dropout -> [Dense -> Dropout]... -> Dense(10,
    softmax); keras-io's simple MNIST convnet with the defaults.
    Augmentation (training only) comes first: RandomTranslation, RandomRotation, RandomZoom.
    """
    keras = import_keras(backend)
    layers = [keras.Input(shape=config.input_shape, name="pixels"), *_augmentation(keras, config)]
    layers += _convolution_blocks(keras, config)
    if config.architecture == "cnn" or config.augments:
        layers.append(keras.layers.Flatten(name="flatten"))
        if config.architecture == "cnn" and config.dropout > 0:
            layers.append(keras.layers.Dropout(config.dropout, name="dropout_flat"))
    for index, units in enumerate(config.hidden_units, start=1):
        layers.append(keras.layers.Dense(units, activation=config.activation, name=f"hidden_{index}"))
        if config.dropout > 0:
            layers.append(keras.layers.Dropout(config.dropout, name=f"dropout_{index}"))
    layers.append(keras.layers.Dense(num_classes, activation="softmax", name="probabilities"))
    return keras.Sequential(layers, name=f"{config.dataset.replace('-', '_')}_{config.architecture}")


def _augmentation(keras, config: TrainingConfig) -> list:
    """Random shifts, rotations and zooms of each training image; Keras skips them when predicting."""
    if not config.augments:
        return []
    layers = [] if config.architecture == "cnn" else [keras.layers.Reshape((28, 28, 1), name="image")]
    # "constant" fill: what moves into the frame is background (0), as around every MNIST digit.
    if config.augment_shift:
        layers.append(keras.layers.RandomTranslation(config.augment_shift, config.augment_shift,
                                                     fill_mode="constant", name="random_shift"))
    if config.augment_rotation:
        layers.append(keras.layers.RandomRotation(config.augment_rotation / 360.0, fill_mode="constant",
                                                  name="random_rotation"))
    if config.augment_zoom:
        layers.append(keras.layers.RandomZoom(config.augment_zoom, fill_mode="constant", name="random_zoom"))
    return layers


def _convolution_blocks(keras, config: TrainingConfig) -> list:
    layers, number = [], 0
    for block, filters in enumerate(config.conv_filters, start=1):
        for _ in range(config.convs_per_block):
            number += 1
            if config.batch_norm:  # the normalisation's shift replaces the bias
                layers += [keras.layers.Conv2D(filters, config.kernel_size, padding=config.conv_padding,
                                               use_bias=False, name=f"conv_{number}"),
                           keras.layers.BatchNormalization(name=f"batch_norm_{number}"),
                           keras.layers.Activation(config.activation, name=f"{config.activation}_{number}")]
            else:
                layers.append(keras.layers.Conv2D(filters, config.kernel_size, padding=config.conv_padding,
                                                  activation=config.activation, name=f"conv_{number}"))
        layers.append(keras.layers.MaxPooling2D(pool_size=(2, 2), name=f"pool_{block}"))
    return layers


def parameter_count(config: TrainingConfig, num_classes: int = 10) -> int:
    """How many weights `build_model(config)` has, computed without Keras (to refuse a network too big to train)."""
    side, channels, total = 28, 1, 0
    for filters in config.conv_filters:
        for _ in range(config.convs_per_block):
            # k x k kernels; a bias per filter, or a BatchNormalization's 4 values per filter instead.
            total += config.kernel_size ** 2 * channels * filters + (4 if config.batch_norm else 1) * filters
            side -= config.kernel_size - 1 if config.conv_padding == "valid" else 0
            channels = filters
        side //= 2
    inputs = side * side * channels
    for units in (*config.hidden_units, num_classes):
        total += (inputs + 1) * units
        inputs = units
    return total


def training_bytes(config: TrainingConfig, num_classes: int = 10) -> int:
    """Memory the weights take while training in float32: weights, gradients and two optimizer slots (Adam)."""
    return 4 * 4 * parameter_count(config, num_classes)
