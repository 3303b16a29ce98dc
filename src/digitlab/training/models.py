"""Build the network a `TrainingConfig` describes, as a Keras model. Nothing else."""

from __future__ import annotations

from digitlab.backend import import_keras
from digitlab.config import TrainingConfig


def build_model(config: TrainingConfig, num_classes: int = 10, backend: str | None = None):
    """A Keras Sequential model for `config`: the tutorial's MLP by default.

    mlp: Input(784) -> [Dense(units, activation) -> Dropout]... -> Dense(10, softmax); the
    tutorial's network is `Dense(512, relu, input 784) -> Dense(10, softmax)`.
    cnn: Input(28, 28, 1) -> [Conv2D(filters, 3x3, relu) -> MaxPool(2)]... -> Flatten -> Dropout
    -> [Dense -> Dropout]... -> Dense(10, softmax), as keras-io's simple MNIST convnet.
    """
    keras = import_keras(backend)
    layers = [keras.Input(shape=config.input_shape, name="pixels")]
    for index, filters in enumerate(config.conv_filters, start=1):
        layers.append(keras.layers.Conv2D(filters, kernel_size=(3, 3), activation="relu", name=f"conv_{index}"))
        layers.append(keras.layers.MaxPooling2D(pool_size=(2, 2), name=f"pool_{index}"))
    if config.architecture == "cnn":
        layers.append(keras.layers.Flatten(name="flatten"))
        if config.dropout > 0:
            layers.append(keras.layers.Dropout(config.dropout, name="dropout_flat"))
    for index, units in enumerate(config.hidden_units, start=1):
        layers.append(keras.layers.Dense(units, activation=config.activation, name=f"hidden_{index}"))
        if config.dropout > 0:
            layers.append(keras.layers.Dropout(config.dropout, name=f"dropout_{index}"))
    layers.append(keras.layers.Dense(num_classes, activation="softmax", name="probabilities"))
    return keras.Sequential(layers, name=f"{config.dataset.replace('-', '_')}_{config.architecture}")
