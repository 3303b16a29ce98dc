"""Convolutions inside a scanned training step: Keras's own layers against digitlab's lowered forward pass.

Runs the forward and backward pass of a convnet (default: the `cnn` recipe, keras-io's simple
convnet) for `--steps` batches inside one `lax.scan`, both ways, side by side in one process, and
prints milliseconds per batch, GFLOP/s and the ratio. Also checks that both compute the same
probabilities.

    .venv/bin/python benchmarks/conv_speed.py
    .venv/bin/python benchmarks/conv_speed.py --recipe speedrun --batch-size 128
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="cnn", help="a convnet recipe (default: cnn)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20, help="batches per timed scan")
    parser.add_argument("--repeats", type=int, default=3, help="timed scans per formulation (best is kept)")
    arguments = parser.parse_args()

    import jax
    import jax.numpy as jnp
    import numpy as np

    from digitlab.backend import import_keras
    from digitlab.training import lowering
    from digitlab.training.models import build_model, parameter_count
    from digitlab.training.recipes import recipe_config

    keras = import_keras("jax")
    config = recipe_config(arguments.recipe)
    model = build_model(config)
    rng = np.random.default_rng(0)
    inputs = rng.random((arguments.batch_size, *config.input_shape), dtype=np.float32)
    targets = jax.nn.one_hot(rng.integers(0, 10, arguments.batch_size), 10)
    trainable = [variable.value for variable in model.trainable_variables]
    non_trainable = [variable.value for variable in model.non_trainable_variables]
    lowered = lowering.forward_function(model)

    def keras_forward(trainable, non_trainable, batch, training):
        return model.stateless_call(trainable, non_trainable, batch, training=training)

    expected, _ = keras_forward(trainable, non_trainable, inputs, False)
    computed, _ = jax.jit(lambda t, n, x: lowered(t, n, x, False))(trainable, non_trainable, inputs)
    print(f"{arguments.recipe}: {parameter_count(config):,} weights; largest probability difference "
          f"lowered vs Keras: {float(jnp.abs(expected - computed).max()):.1e}")

    flops = _flops_per_image(model, config) * 3 * arguments.batch_size  # forward + backward ~ 3 forwards
    timings = {}
    for name, forward in (("Keras layers (lax.conv_general_dilated)", keras_forward),
                          ("lowered (shifted slices + matmul)", lowered)):
        scan = _scanned_steps(keras, forward, inputs, targets, arguments.steps)
        jax.block_until_ready(scan(trainable, non_trainable))  # compile
        best = float("inf")
        for _ in range(arguments.repeats):
            started = time.perf_counter()
            jax.block_until_ready(scan(trainable, non_trainable))
            best = min(best, (time.perf_counter() - started) / arguments.steps)
        timings[name] = best
        print(f"{name:42s} {best * 1000:8.1f} ms per batch of {arguments.batch_size}  "
              f"{flops / best / 1e9:6.1f} GFLOP/s")
    slow, fast = timings.values()
    print(f"lowered is {slow / fast:.1f}x faster")


def _scanned_steps(keras, forward, inputs, targets, steps: int):
    import jax

    def loss(trainable, non_trainable):
        predictions, non_trainable = forward(trainable, non_trainable, inputs, True)
        return keras.losses.categorical_crossentropy(targets, predictions).mean(), non_trainable

    def body(carry, _):
        trainable, non_trainable = carry
        (value, non_trainable), gradients = jax.value_and_grad(loss, has_aux=True)(trainable, non_trainable)
        trainable = [weights - 0.01 * gradient for weights, gradient in zip(trainable, gradients, strict=True)]
        return (trainable, non_trainable), value

    return jax.jit(lambda trainable, non_trainable: jax.lax.scan(body, (trainable, non_trainable), None,
                                                                 length=steps))


def _flops_per_image(model, config) -> float:
    """Multiply-adds x 2 of the forward pass: the convolutions and the Dense layers."""
    total = 0.0
    for layer in model.layers:
        if layer.__class__.__name__ == "Conv2D":
            rows, columns, filters = layer.output.shape[1:]
            total += 2 * rows * columns * filters * layer.kernel.shape[0] * layer.kernel.shape[1] * layer.kernel.shape[2]
        elif layer.__class__.__name__ == "Dense":
            total += 2 * layer.kernel.shape[0] * layer.kernel.shape[1]
    return total


if __name__ == "__main__":
    main()
