"""What every network digitlab runs is to the rest of inference: NumPy arrays in, NumPy arrays out.

A trained Keras model (`keras_network.KerasNetwork`) and an exported ONNX file
(`onnx_network.OnnxNetwork`, also what the reader shipped in the package is made of) both satisfy
`Network`. `Classifier` (predict.py) and `LineReader` (line_reading.py) are built on it and never ask
which one they hold; `loading.py` chooses and loads one.

    network = KerasNetwork(keras_model)        # or OnnxNetwork("runs/<run>/model.onnx")
    network.input_shape, network.output_shape  # (None, 784), (None, 10)
    network.forward(images)                    # (N, 784) float32 -> (N, 10) float32
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class Network(Protocol):
    """A network with one input and one output. Its `forward` is safe to call from several threads at once."""

    # What messages call it: the Keras model's name, the ONNX file's stem.
    name: str
    # Shapes with the batch axis first; None for a free axis: (None, 784), (None, 28, 28, 1), (None, 24, None, 1).
    input_shape: tuple[int | None, ...]
    output_shape: tuple[int | None, ...]

    def forward(self, inputs: np.ndarray) -> np.ndarray:
        """inputs (N, *input_shape[1:]) float32 -> outputs (N, *output_shape[1:]) float32."""
        ...
