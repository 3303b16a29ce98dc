"""Convolutions and pooling lowered to slices and matmuls (training/lowering.py) compute what Keras computes,
and a convnet trained through the fast loop is a plain Keras model that predicts what the loop computed."""

import numpy as np
import pytest

from digitlab.backend import import_keras
from digitlab.config import TrainingConfig
from digitlab.training import lowering
from digitlab.training.models import build_model
from digitlab.training.train import train

keras = import_keras()
pytestmark = pytest.mark.skipif(keras.backend.backend() != "jax", reason="the lowering is JAX-only")
layers = keras.layers


def probabilities_both_ways(model, inputs, training=False):
    trainable = [variable.value for variable in model.trainable_variables]
    non_trainable = [variable.value for variable in model.non_trainable_variables]
    lowered, _ = lowering.forward_function(model)(trainable, non_trainable, inputs, training)
    expected, _ = model.stateless_call(trainable, non_trainable, inputs, training=training)
    return np.asarray(lowered), np.asarray(expected)


@pytest.mark.parametrize("kernel_size, padding, side, strides", [
    (3, "valid", 28, 1), (5, "valid", 28, 1), (3, "same", 28, 1), (5, "same", 27, 1), (2, "same", 9, 1),
    (4, "valid", 13, 1), (2, "valid", 24, 2), (3, "valid", 27, 2), (3, "valid", 28, (2, 1))])
def test_a_lowered_convolution_equals_keras_conv2d(kernel_size, padding, side, strides):
    keras.utils.set_random_seed(kernel_size)
    model = keras.Sequential([keras.Input((side, side, 3)), layers.Conv2D(5, kernel_size, padding=padding,
                                                                          strides=strides, activation="tanh"),
                              layers.MaxPooling2D(2), layers.Flatten(), layers.Dense(4, activation="softmax")])
    inputs = np.random.default_rng(0).random((6, side, side, 3), dtype=np.float32)
    lowered, expected = probabilities_both_ways(model, inputs)
    np.testing.assert_allclose(lowered, expected, atol=1e-6)
    assert lowered.shape == (6, 4)


def test_batch_normalisation_and_dropout_compute_what_keras_computes_in_training_too():
    keras.utils.set_random_seed(0)
    model = build_model(TrainingConfig(architecture="cnn", conv_filters=(8, 16), hidden_units=(32,), dropout=0.3,
                                       batch_norm=True, conv_padding="same", convs_per_block=2))
    inputs = np.random.default_rng(1).random((16, 28, 28, 1), dtype=np.float32)
    trainable = [variable.value for variable in model.trainable_variables]
    non_trainable = [variable.value for variable in model.non_trainable_variables]
    for training in (False, True):
        keras.utils.set_random_seed(3)
        lowered, expected = probabilities_both_ways(model, inputs, training)
        np.testing.assert_allclose(lowered, expected, atol=1e-5)
        # The moving statistics batch normalisation (lowered, one pass) keeps are Keras's too.
        keras.utils.set_random_seed(3)
        _, lowered_state = lowering.forward_function(model)(trainable, non_trainable, inputs, training)
        _, keras_state = model.stateless_call(trainable, non_trainable, inputs, training=training)
        for ours, theirs in zip(lowered_state, keras_state, strict=True):
            np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), atol=1e-5)
    # Training mode really differs (batch statistics, dropout): the comparison above is not vacuous.
    assert not np.allclose(probabilities_both_ways(model, inputs, True)[0],
                           probabilities_both_ways(model, inputs, False)[0], atol=1e-3)


def test_what_cannot_be_lowered_says_why():
    strided = keras.Sequential([keras.Input((28, 28, 1)), layers.Conv2D(4, 3, strides=2, padding="same"),
                                layers.Flatten()])
    assert "strides 1" in lowering.unsupported_reason(strided)
    overlapping = keras.Sequential([keras.Input((28, 28, 1)), layers.MaxPooling2D(3, strides=2)])
    assert "non-overlapping" in lowering.unsupported_reason(overlapping)
    unknown = keras.Sequential([keras.Input((28, 28, 1)), layers.Conv2DTranspose(2, 3)])
    assert "Conv2DTranspose" in lowering.unsupported_reason(unknown)
    with pytest.raises(ValueError, match="strides 1"):
        lowering.forward_function(strided)


CONVNET = TrainingConfig(architecture="cnn", conv_filters=(4, 8), hidden_units=(), batch_size=32, epochs=2,
                         validation_split=0.1)


def test_a_convnet_trains_through_the_fast_loop_and_agrees_with_model_fit(tiny_mnist, tmp_path):
    fast = train(CONVNET, run_dir=tmp_path / "fast", verbose=0)
    plain = train(CONVNET, run_dir=tmp_path / "plain", verbose=0, fit_loop="keras")
    assert fast.metrics.fit_loop == "fast" and fast.metrics.fit_loop_fallback is None
    # The same updates in the same order; only the convolutions' float rounding differs.
    for name in plain.history:
        np.testing.assert_allclose(fast.history[name], plain.history[name], rtol=2e-3, atol=2e-3)
    assert fast.metrics.test_accuracy == pytest.approx(plain.metrics.test_accuracy, abs=0.02)


def test_the_saved_convnet_is_plain_keras_and_predicts_what_the_loop_computed(tiny_mnist, tmp_path):
    config = TrainingConfig(**{**CONVNET.to_dict(), "batch_norm": True, "augment_shift": 0.1,
                               "augment_rotation": 10.0, "augment_zoom": 0.1, "epochs": 1})
    result = train(config, run_dir=tmp_path / "run", verbose=0)
    assert result.metrics.fit_loop == "fast"
    trained = build_model(config)  # the fast loop's own forward pass, with the trained weights
    loaded = keras.saving.load_model(tmp_path / "run" / "model.keras")  # stock Keras, safe mode
    trained.set_weights(loaded.get_weights())
    inputs = np.random.default_rng(2).random((20, 28, 28, 1), dtype=np.float32)
    lowered, _ = probabilities_both_ways(trained, inputs)
    np.testing.assert_allclose(loaded.predict(inputs, verbose=0), lowered, atol=1e-5)
    assert {layer.__class__.__name__ for layer in loaded.layers} >= {"Conv2D", "RandomRotation", "BatchNormalization"}
