"""The forward pass of a Keras Sequential model, with convolutions and pooling lowered to what XLA's
CPU backend runs fast inside a scanned epoch.

XLA's CPU convolution is slow inside `lax.scan` (measured here: the keras-io convnet's forward and
backward took 318-343 ms per batch of 128 through `lax.conv_general_dilated`). The same convolution
written as the kh x kw shifted slices of its input, concatenated on the channel axis, and one
matmul with the kernel reshaped to (kh * kw * in, out) takes 21 ms with 2x2 max-pooling written as a
reshape and a max (`benchmarks/conv_speed.py` measures them side by side).

`Conv2D` and `MaxPooling2D` are lowered, and a run of RandomTranslation, RandomRotation and RandomZoom
layers is fused into one random affine warp when training (`augment.py`). Every other layer runs
through its own `Layer.stateless_call`, so Dense, Dropout, BatchNormalization, Flatten and the rest compute exactly
what Keras computes, and the model stays a plain Keras model with the same weights: `model.keras`
loads in stock Keras and predicts what the lowered forward pass computed (to float rounding).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

from digitlab.training import augment

# Layers the lowered forward pass runs through their own stateless_call.
PASS_THROUGH = ("Dense", "Dropout", "BatchNormalization", "Flatten", "Activation", "ReLU", "Softmax", "Reshape",
                "RandomTranslation", "RandomRotation", "RandomZoom", "Rescaling", "GaussianNoise",
                "LayerNormalization", "GlobalAveragePooling2D", "SpatialDropout2D")


@dataclasses.dataclass(frozen=True)
class _Step:
    """One layer of the forward pass, with where its variables sit in the model's variable lists."""

    layer: Any
    trainable: tuple[int, ...]  # indices into model.trainable_variables
    non_trainable: tuple[int, ...]  # indices into model.non_trainable_variables
    kind: str  # "conv", "pool", "augment" or "layer"
    takes_training: bool
    # "augment": the ranges of the fused augmentation layers (their first layer's seed state is non_trainable[0]).
    ranges: augment.AffineRanges | None = None


def unsupported_reason(model) -> str:
    """Why `forward_function` cannot lower this model ("" when it can)."""
    if model.__class__.__name__ != "Sequential":
        return f"only Sequential models are lowered, not {model.__class__.__name__}"
    for layer in model.layers:
        name = layer.__class__.__name__
        if name == "Conv2D":
            if tuple(layer.dilation_rate) != (1, 1) or layer.groups != 1:
                return f"{layer.name}: only Conv2D with dilation 1 and one group is lowered"
            if tuple(layer.strides) != (1, 1) and layer.padding != "valid":
                return f"{layer.name}: only Conv2D with strides 1, or with padding 'valid', is lowered"
            if layer.data_format != "channels_last":
                return f"{layer.name}: only channels_last convolutions are lowered"
        elif name == "MaxPooling2D":
            if tuple(layer.pool_size) != tuple(layer.strides) or layer.padding != "valid" \
                    or layer.data_format != "channels_last":
                return f"{layer.name}: only non-overlapping, valid, channels_last max-pooling is lowered"
        elif name not in PASS_THROUGH:
            return f"{layer.name}: the fast loop does not know {name} layers"
    return ""


def forward_function(model) -> Callable:
    """`forward(trainable, non_trainable, inputs, training) -> (outputs, non_trainable)`, like
    `model.stateless_call`, with the model's convolutions and pooling lowered.

    Raises:
        ValueError: the model has a layer that cannot be lowered (see `unsupported_reason`).
    """
    import jax

    reason = unsupported_reason(model)
    if reason:
        raise ValueError(reason)
    trainable_index = {id(variable): index for index, variable in enumerate(model.trainable_variables)}
    non_trainable_index = {id(variable): index for index, variable in enumerate(model.non_trainable_variables)}
    steps = []
    for layer in model.layers:
        kind = {"Conv2D": "conv", "MaxPooling2D": "pool"}.get(layer.__class__.__name__, "layer")
        if kind == "layer" and _is_plain_batch_norm(layer):
            kind = "norm"
        if layer.__class__.__name__ in augment.AUGMENTATION_LAYERS and not augment.unsupported_reason(layer):
            kind = "augment"
            if steps and steps[-1].kind == "augment":  # fuse with the augmentation layers before it
                fused = [*steps[-1].layer, layer]
                steps[-1] = dataclasses.replace(steps[-1], layer=fused, ranges=augment.ranges_from_layers(fused))
                continue
            steps.append(_Step([layer], (), tuple(non_trainable_index[id(v)] for v in layer.non_trainable_variables),
                               kind, True, augment.ranges_from_layers([layer])))
            continue
        steps.append(_Step(layer, tuple(trainable_index[id(v)] for v in layer.trainable_variables),
                           tuple(non_trainable_index[id(v)] for v in layer.non_trainable_variables), kind,
                           "training" in inspect.signature(layer.call).parameters))

    # A ReLU before a max-pool is applied after it instead: the same values (max and ReLU commute) on a
    # quarter of the pixels, about 6% of a small convnet's step.
    relu_after_pool = {index for index, (step, following) in enumerate(zip(steps, steps[1:], strict=False))
                       if step.kind == "conv" and following.kind == "pool"
                       and getattr(step.layer.activation, "__name__", "") == "relu"}

    def forward(trainable, non_trainable, inputs, training: bool = False):
        non_trainable = list(non_trainable)
        outputs = inputs
        for index, step in enumerate(steps):
            weights = [trainable[position] for position in step.trainable]
            if step.kind == "conv":
                outputs = convolution(outputs, step.layer, *weights, activate=index not in relu_after_pool)
            elif step.kind == "norm":
                moving = [non_trainable[position] for position in step.non_trainable]
                outputs, moving = batch_norm(outputs, step.layer, *weights, *moving, training=training)
                for position, value in zip(step.non_trainable, moving, strict=True):
                    non_trainable[position] = value
            elif step.kind == "augment":
                if training:  # as Keras's layers: identity when predicting
                    seed_position = step.non_trainable[0]
                    outputs = augment.random_affine(outputs, jax.random.wrap_key_data(non_trainable[seed_position]),
                                                    step.ranges)
                    non_trainable[seed_position] = non_trainable[seed_position] + jax.numpy.array([0, 1], "uint32")
            elif step.kind == "pool":
                outputs = max_pool(outputs, tuple(step.layer.pool_size))
                if index - 1 in relu_after_pool:
                    outputs = jax.nn.relu(outputs)
            else:
                options = {"training": training} if step.takes_training else {}
                outputs, updated = step.layer.stateless_call(
                    weights, [non_trainable[index] for index in step.non_trainable], outputs, **options)
                for position, value in zip(step.non_trainable, updated, strict=True):
                    non_trainable[position] = value
        return outputs, non_trainable

    return forward


def convolution(inputs, layer, kernel, bias=None, activate: bool = True):
    """`layer` (a Conv2D) on (batch, rows, columns, channels) as shifted (strided) slices and one matmul;
    with `activate` False, without its activation."""
    import jax.numpy as jnp

    kernel_rows, kernel_columns, channels, filters = kernel.shape
    if layer.padding == "same":  # as Keras: the extra row or column of padding goes after
        inputs = jnp.pad(inputs, ((0, 0), ((kernel_rows - 1) // 2, kernel_rows // 2),
                                  ((kernel_columns - 1) // 2, kernel_columns // 2), (0, 0)))
    row_stride, column_stride = layer.strides
    rows = (inputs.shape[1] - kernel_rows) // row_stride + 1
    columns = (inputs.shape[2] - kernel_columns) // column_stride + 1
    # (batch, rows, columns, kernel_rows * kernel_columns * channels): row offset, then column, then channel,
    # the order in which the (kernel_rows, kernel_columns, channels, filters) kernel flattens.
    patches = jnp.concatenate([inputs[:, i:i + (rows - 1) * row_stride + 1:row_stride,
                                      j:j + (columns - 1) * column_stride + 1:column_stride, :]
                               for i in range(kernel_rows) for j in range(kernel_columns)], axis=-1)
    outputs = patches @ kernel.reshape(kernel_rows * kernel_columns * channels, filters)
    if bias is not None:
        outputs = outputs + bias
    return layer.activation(outputs) if activate else outputs


def max_pool(inputs, pool_size: tuple[int, int]):
    """Non-overlapping max-pooling as a reshape and a max; like Keras's "valid", leftover rows and columns go."""
    pool_rows, pool_columns = pool_size
    batch, rows, columns, channels = inputs.shape
    rows, columns = rows // pool_rows, columns // pool_columns
    inputs = inputs[:, :rows * pool_rows, :columns * pool_columns, :]
    return inputs.reshape(batch, rows, pool_rows, columns, pool_columns, channels).max(axis=(2, 4))


def _is_plain_batch_norm(layer) -> bool:
    """A BatchNormalization over the last axis, with its shift and scale, that `batch_norm` computes."""
    return (layer.__class__.__name__ == "BatchNormalization" and layer.axis in (-1, len(layer.input.shape) - 1)
            and layer.center and layer.scale and not layer.renorm and layer.trainable)


def batch_norm(inputs, layer, gamma, beta, moving_mean, moving_variance, training: bool):
    """`layer` (a BatchNormalization over the last axis) as Keras computes it, its batch statistics taken
    in one pass (mean and mean of squares). Returns the outputs and the new moving mean and variance."""
    import jax.numpy as jnp

    if not training:
        mean, variance = moving_mean, moving_variance
    else:
        axes = tuple(range(inputs.ndim - 1))
        mean = jnp.mean(inputs, axis=axes)
        variance = jnp.maximum(jnp.mean(jnp.square(inputs), axis=axes) - jnp.square(mean), 0.0)
        moving_mean = moving_mean * layer.momentum + mean * (1.0 - layer.momentum)
        moving_variance = moving_variance * layer.momentum + variance * (1.0 - layer.momentum)
    scale = gamma * jax_rsqrt(variance + layer.epsilon)
    return inputs * scale + (beta - mean * scale), [moving_mean, moving_variance]


def jax_rsqrt(values):
    import jax

    return jax.lax.rsqrt(values)
