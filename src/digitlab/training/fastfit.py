"""A JAX-native training loop for compiled Keras models: one compiled call per epoch.

It computes exactly what `model.fit` computes on the JAX backend (the same Keras layers run through
`model.stateless_call`, the same loss, the same `optimizer.stateless_apply` update, the same
per-epoch shuffle drawn from NumPy's global generator, the same batch order and last partial batch)
but keeps the data on the device and runs a whole epoch as one `lax.scan` over batches, instead of
one Python round trip per batch (or per 16 batches with `steps_per_execution`). Models with
convolutions run their Conv2D and MaxPooling2D layers lowered to shifted slices and matmuls
(`lowering.py`), the same arithmetic to float rounding, because XLA's CPU convolutions are slow in a scan.

`supports(model)` says whether a model qualifies; `train.py` falls back to `model.fit` otherwise.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from digitlab.backend import import_keras
from digitlab.training import lowering

# Batch size of validation passes: large batches, same figures.
VALIDATION_BATCH_SIZE = 2000


@dataclasses.dataclass(frozen=True)
class FitResult:
    """What the fast loop returns."""

    # Per-epoch loss, accuracy (and val_loss, val_accuracy with a validation split).
    history: dict[str, list[float]]
    # Seconds spent compiling the epoch and last-batch functions, before the first epoch.
    compile_seconds: float


def supports(model) -> tuple[bool, str]:
    """Whether `fit` below can train this compiled model, and if not, why."""
    keras = import_keras()
    if keras.backend.backend() != "jax":
        return False, f"the fast loop needs the JAX backend, not {keras.backend.backend()}"
    if keras.distribution.distribution() is not None:
        return False, "a Keras distribution is active; its sharding is handled by model.fit"
    if model.losses:
        return False, "the model has regularisation losses"
    if getattr(model.optimizer, "loss_scale_factor", None) or model.dtype_policy.name != "float32":
        return False, "the model uses loss scaling or mixed precision"
    if _has_convolutions(model):
        # XLA's CPU convolutions fare badly in a scanned loop body: they run lowered (lowering.py).
        reason = lowering.unsupported_reason(model)
        if reason:
            return False, reason
    return True, ""


def _has_convolutions(model) -> bool:
    return any(layer.__class__.__name__ in ("Conv2D", "MaxPooling2D") for layer in model.layers)


def _forward(model):
    """The forward pass the step functions differentiate: the model's own, or its lowered form with convolutions."""
    if _has_convolutions(model):
        return lowering.forward_function(model)
    return lambda trainable, non_trainable, inputs, training: model.stateless_call(
        trainable, non_trainable, inputs, training=training)


def fit(model, inputs: np.ndarray, targets: np.ndarray, epochs: int, batch_size: int,
        validation_split: float = 0.0, callbacks: Sequence[Any] = (), verbose: int = 1) -> FitResult:
    """Train a model compiled with categorical cross-entropy and the accuracy metric.

    Drives Keras callbacks (on_train/epoch begin/end, `model.stop_training`) like `model.fit` and
    prints a Keras progress line per epoch. Ctrl-C between two epochs' compiled calls leaves the
    model holding the weights of the last completed epoch.

    Returns:
        The per-epoch history and the seconds spent compiling the step functions.
    """
    keras = import_keras()
    data = _EpochData.split(inputs, targets, batch_size, validation_split)
    if not model.optimizer.built:
        # Keras's first `fit` peeks at one batch of a shuffled iterator to build the model, which
        # draws one permutation it never uses; draw it too, so that the shuffles stay in step.
        np.random.permutation(data.sample_count)
        model.optimizer.build(model.trainable_variables)
    variables = (model.trainable_variables, model.non_trainable_variables, model.optimizer.variables)
    state = tuple([variable.value for variable in group] for group in variables)
    steps = _StepFunctions.compiled(keras, model, state, data)

    callback_list = keras.callbacks.CallbackList(list(callbacks), model=model, add_history=False,
                                                 add_progbar=False, verbose=verbose, epochs=epochs,
                                                 steps=data.steps)
    history: dict[str, list[float]] = {}
    model.stop_training = False
    callback_list.on_train_begin()
    try:
        for epoch in range(epochs):
            callback_list.on_epoch_begin(epoch)
            if verbose:
                print(f"Epoch {epoch + 1}/{epochs}", flush=True)
                # Keras's own progress bar, updated once per epoch: the epoch is one compiled call.
                progress_bar = keras.utils.Progbar(target=data.steps, verbose=verbose, unit_name="step")
            state, logs = steps.run_epoch(state, data)
            _write_back(variables, state)
            for name, value in logs.items():
                history.setdefault(name, []).append(value)
            if verbose:
                progress_bar.update(data.steps, values=list(logs.items()), finalize=True)
            callback_list.on_epoch_end(epoch, logs)
            if model.stop_training:
                break
    finally:
        _write_back(variables, state)  # Ctrl-C or an error: keep the weights of the last completed step call
    callback_list.on_train_end()
    return FitResult(history, steps.compile_seconds)


@dataclasses.dataclass(frozen=True)
class _EpochData:
    """The training arrays resident on the device, the validation arrays, and the batch layout."""

    inputs: Any  # (samples, ...) jax array: no per-batch copies
    targets: Any  # (samples, classes)
    validation: tuple[Any, Any] | None
    batch_size: int
    full_batches: int
    remainder: int  # images in the last, partial batch (0: none)

    @classmethod
    def split(cls, inputs: np.ndarray, targets: np.ndarray, batch_size: int, validation_split: float) -> _EpochData:
        import jax.numpy as jnp

        validation = None
        if validation_split:
            # As Keras: the last fraction of the arrays, taken before any shuffling.
            split_at = int(math.floor(len(inputs) * (1.0 - validation_split)))
            validation = (jnp.asarray(inputs[split_at:]), jnp.asarray(targets[split_at:]))
            inputs, targets = inputs[:split_at], targets[:split_at]
        full_batches, remainder = divmod(len(inputs), batch_size)
        return cls(jnp.asarray(inputs), jnp.asarray(targets), validation, batch_size, full_batches, remainder)

    @property
    def sample_count(self) -> int:
        return self.full_batches * self.batch_size + self.remainder

    @property
    def steps(self) -> int:
        return self.full_batches + (1 if self.remainder else 0)


class _StepFunctions:
    """The compiled epoch: a scan over the full batches, one call for the last partial batch, validation."""

    def __init__(self, keras, model) -> None:
        import jax
        import jax.numpy as jnp

        forward = _forward(model)

        def train_step(state, batch_inputs, batch_targets):
            trainable, non_trainable, optimizer_state = state

            def loss_function(trainable):
                predictions, new_non_trainable = forward(trainable, non_trainable, batch_inputs, training=True)
                loss = keras.ops.mean(keras.losses.categorical_crossentropy(batch_targets, predictions))
                return loss, (predictions, new_non_trainable)

            (loss, (predictions, non_trainable)), gradients = jax.value_and_grad(loss_function, has_aux=True)(trainable)
            trainable, optimizer_state = model.optimizer.stateless_apply(optimizer_state, gradients, trainable)
            correct = jnp.sum(jnp.argmax(predictions, axis=-1) == jnp.argmax(batch_targets, axis=-1))
            return (trainable, non_trainable, optimizer_state), (loss * batch_inputs.shape[0], correct)

        def run_full_batches(state, all_inputs, all_targets, batch_indices):
            # batch_indices: (full_batches, batch_size) rows of the shuffled order.
            def body(state, indices):
                return train_step(state, all_inputs[indices], all_targets[indices])

            state, (loss_sums, correct) = jax.lax.scan(body, state, batch_indices)
            return state, jnp.sum(loss_sums), jnp.sum(correct)

        def run_one_batch(state, all_inputs, all_targets, indices):
            state, (loss_sum, correct) = train_step(state, all_inputs[indices], all_targets[indices])
            return state, loss_sum, correct

        def evaluate_batch(trainable, non_trainable, batch_inputs, batch_targets):
            predictions, _ = forward(trainable, non_trainable, batch_inputs, training=False)
            loss = keras.ops.sum(keras.losses.categorical_crossentropy(batch_targets, predictions))
            return loss, jnp.sum(jnp.argmax(predictions, axis=-1) == jnp.argmax(batch_targets, axis=-1))

        self.run_full_batches = jax.jit(run_full_batches)
        self.run_one_batch = jax.jit(run_one_batch)
        self.evaluate_batch = jax.jit(evaluate_batch)
        self.compile_seconds = 0.0

    @classmethod
    def compiled(cls, keras, model, state, data: _EpochData) -> _StepFunctions:
        """Compile both step functions ahead of time, so that compilation is timed on its own and
        every epoch's time is steady-state work."""
        import jax.numpy as jnp

        steps = cls(keras, model)
        started = time.perf_counter()
        if data.full_batches:
            steps.run_full_batches = steps.run_full_batches.lower(
                state, data.inputs, data.targets, jnp.zeros((data.full_batches, data.batch_size), jnp.int32)).compile()
        if data.remainder:
            steps.run_one_batch = steps.run_one_batch.lower(state, data.inputs, data.targets,
                                                            jnp.zeros((data.remainder,), jnp.int32)).compile()
        steps.compile_seconds = time.perf_counter() - started
        return steps

    def run_epoch(self, state, data: _EpochData) -> tuple[Any, dict[str, float]]:
        """One pass over the shuffled training images (the same draw as Keras's array adapter)."""
        import jax.numpy as jnp

        order = np.random.permutation(data.sample_count)
        loss_total = jnp.zeros((), jnp.float32)
        correct_total = jnp.zeros((), jnp.int32)
        split_at = data.full_batches * data.batch_size
        if data.full_batches:
            order_full = jnp.asarray(order[:split_at].reshape(data.full_batches, data.batch_size), dtype=jnp.int32)
            state, loss_sum, correct = self.run_full_batches(state, data.inputs, data.targets, order_full)
            loss_total, correct_total = loss_total + loss_sum, correct_total + correct
        if data.remainder:
            state, loss_sum, correct = self.run_one_batch(state, data.inputs, data.targets,
                                                          jnp.asarray(order[split_at:], dtype=jnp.int32))
            loss_total, correct_total = loss_total + loss_sum, correct_total + correct
        logs = {"loss": float(loss_total) / data.sample_count, "accuracy": float(correct_total) / data.sample_count}
        if data.validation is not None:
            logs.update(_validate(self.evaluate_batch, state, data.validation))
        return state, logs


def _write_back(variables, state) -> None:
    for group, values in zip(variables, state, strict=True):
        for variable, value in zip(group, values, strict=True):
            variable.assign(value)


def _validate(evaluate_batch, state, validation) -> dict[str, float]:
    validation_inputs, validation_targets = validation
    loss_total, correct_total = 0.0, 0
    for start in range(0, len(validation_inputs), VALIDATION_BATCH_SIZE):
        stop = start + VALIDATION_BATCH_SIZE
        loss, correct = evaluate_batch(state[0], state[1], validation_inputs[start:stop], validation_targets[start:stop])
        loss_total, correct_total = loss_total + float(loss), correct_total + int(correct)
    return {"val_loss": loss_total / len(validation_inputs), "val_accuracy": correct_total / len(validation_inputs)}
