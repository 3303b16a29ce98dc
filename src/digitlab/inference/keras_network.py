"""A trained Keras model as a `Network` (network.py): called directly, never through `model.predict()`,
whose per-call overhead is milliseconds.

On JAX the forward pass is compiled once per batch-size bucket (and strip width), the first time one
is called for, never ahead, kept in JAX's compilation cache for the next process, and is pure, so any
number of threads call it at once; on TensorFlow and PyTorch the model is called eagerly, one call at a time.
Every call's outputs are checked (model_checks.checked_outputs): the declared shape, finite numbers.

    network = KerasNetwork(runs.load_model("runs/<run>"))
    network.forward(images)  # (N, 784) float32 -> (N, 10) float32
    network.compiled_shapes  # {(8, 784)}: what JAX compiled so far
"""

from __future__ import annotations

import threading

import numpy as np

from digitlab.inference.model_checks import checked_outputs

# Batches are padded up to a power of two (at least this), so that JAX compiles a handful of
# shapes instead of one per batch size.
SMALLEST_BATCH = 8


class KerasNetwork:
    """A loaded Keras model with one input and one output. Safe to use from several threads at once."""

    def __init__(self, model, source: str | None = None) -> None:
        """Args:
            source: what messages call it (the model file's path); default: the Keras model's name.
        """
        import keras

        self.model = model  # the Keras model itself, for what only Keras does (fit, evaluate, predict)
        self.name = model.name
        self.source = source or model.name
        self.input_shape = model.input_shape  # a list for a model of several inputs: Classifier refuses it
        self.output_shape = model.output_shape
        # Input shapes compiled so far (JAX), batch padded: each the first time it is called for, never ahead.
        self._compiled_shapes: set[tuple[int, ...]] = set()
        self._forward = _jax_forward(model, self._compiled_shapes) if keras.backend.backend() == "jax" else \
            _eager_forward(model)

    def __repr__(self) -> str:
        return f"KerasNetwork({self.name!r}, input {self.input_shape}, output {self.output_shape})"

    @property
    def compiled_shapes(self) -> frozenset[tuple[int, ...]]:
        """The input shapes (batch padded) compiled so far on JAX: none before the first call, then one per
        padded batch size (and strip width, for a line model) called for; always none on other backends."""
        return frozenset(self._compiled_shapes)

    def forward(self, inputs: np.ndarray) -> np.ndarray:
        """inputs (N, ...) float32 -> outputs (N, ...) float32 NumPy.

        Raises:
            ModelFailureError: the outputs have another shape than declared, or are not finite numbers.
        """
        inputs = np.asarray(inputs, dtype=np.float32)
        outputs = self._forward(inputs)
        if isinstance(self.output_shape, tuple):  # one output (a model of several is refused by its users)
            outputs = checked_outputs(outputs, len(inputs), self.output_shape, self.source)
        return outputs


def _padded_size(count: int) -> int:
    """The batch size `count` inputs are padded to: the next power of two, at least SMALLEST_BATCH."""
    return max(SMALLEST_BATCH, 1 << (count - 1).bit_length())


def _eager_forward(model):
    """TensorFlow or PyTorch: the model called eagerly, one call at a time to be safe."""
    import keras

    lock = threading.Lock()

    def forward(inputs: np.ndarray) -> np.ndarray:
        with lock:
            outputs = model(inputs, training=False)
        return np.asarray(keras.ops.convert_to_numpy(outputs), dtype=np.float32)

    return forward


def _jax_forward(model, compiled_shapes: set[tuple[int, ...]]):
    """A jitted stateless forward pass: pure, so any number of threads can call it at once. Each input
    shape (batch padded) is compiled when it is first called for, and added to `compiled_shapes`."""
    import jax

    from digitlab.backend import enable_compilation_cache
    from digitlab.data.datasets import data_root

    # JAX keeps what it compiles on disk from here on, where training keeps its programs, so that the next
    # process loads them instead: these forward passes, and what loading a run's line model compiles next
    # (Keras runs the initialisers of every weight it creates, one program per shape, before the file's
    # weights replace them). `digitlab predict` on a reader run: 9 of its 32 programs from the cache and
    # 9.0 -> 5.9 s of CPU (benchmarks/start_up.py --model RUN). DIGITLAB_COMPILATION_CACHE=0 turns it off.
    enable_compilation_cache(data_root() / "compiled")
    # Our own copies of the weights: Keras may donate (free) the model's buffers in its own jitted
    # calls, e.g. model.predict(), which would leave references to them dangling.
    trainable = [jax.device_put(np.asarray(variable.value)) for variable in model.trainable_variables]
    non_trainable = [jax.device_put(np.asarray(variable.value)) for variable in model.non_trainable_variables]

    @jax.jit
    def compiled(trainable_values, non_trainable_values, inputs):
        outputs, _ = model.stateless_call(trainable_values, non_trainable_values, inputs, training=False)
        return outputs

    lock = threading.Lock()

    def forward(inputs: np.ndarray) -> np.ndarray:
        count = len(inputs)
        size = _padded_size(count)
        padded = np.zeros((size, *inputs.shape[1:]), dtype=np.float32)
        padded[:count] = inputs
        if padded.shape not in compiled_shapes:
            # Tracing runs Keras layer code, which is not meant to run in two threads at once (a line
            # model traces again for each new strip width, not only for each batch size).
            with lock:
                outputs = compiled(trainable, non_trainable, padded)
                compiled_shapes.add(padded.shape)
        else:
            outputs = compiled(trainable, non_trainable, padded)
        return np.asarray(outputs, dtype=np.float32)[:count]

    return forward
