"""Build the network a `TrainingConfig` describes, as a Keras model. Nothing else."""

from __future__ import annotations

from digitlab.backend import import_keras
from digitlab.config import TrainingConfig


def build_model(config: TrainingConfig, input_size: int = 784, num_classes: int = 10, backend: str | None = None):
    """Dense hidden layers (with optional dropout) and a softmax output: the tutorial's MLP by default.

    The tutorial's network is `Dense(512, relu, input 784) -> Dense(10, softmax)`.
    """
    keras = import_keras(backend)
    layers = [keras.Input(shape=(input_size,), name="pixels")]
    for index, units in enumerate(config.hidden_units, start=1):
        layers.append(keras.layers.Dense(units, activation=config.activation, name=f"hidden_{index}"))
        if config.dropout > 0:
            layers.append(keras.layers.Dropout(config.dropout, name=f"dropout_{index}"))
    layers.append(keras.layers.Dense(num_classes, activation="softmax", name="probabilities"))
    return keras.Sequential(layers, name=f"{config.dataset.replace('-', '_')}_mlp")
