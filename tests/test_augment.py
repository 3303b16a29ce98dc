"""The fused augmentation (training/augment.py): one random affine warp in place of Keras's RandomTranslation,
RandomRotation and RandomZoom, drawing from the same ranges, used by the fast loop when training."""

import numpy as np
import pytest

from digitlab.backend import import_keras
from digitlab.config import TrainingConfig
from digitlab.training import augment, lowering
from digitlab.training.models import build_model

keras = import_keras()
pytestmark = pytest.mark.skipif(keras.backend.backend() != "jax", reason="the fused augmentation is JAX-only")


def warp(images, **ranges):
    import jax

    return np.asarray(augment.random_affine(images, jax.random.key(0), augment.AffineRanges(**ranges)))


def digit_like(count=3, side=28):
    images = np.zeros((count, side, side, 1), dtype=np.float32)
    images[:, 6:22, 12:15, 0] = 1.0  # a bar
    images[:, 6:9, 8:20, 0] = 0.5  # and a cap: not symmetric under the transforms tested
    return images


def test_no_change_drawn_is_the_identity():
    images = np.random.default_rng(0).random((4, 28, 28, 1), dtype=np.float32)
    np.testing.assert_allclose(warp(images), images, atol=1e-6)


def test_a_whole_pixel_shift_moves_the_image_and_fills_with_zero():
    images = digit_like()
    shifted = warp(images, shift_rows=(0.25, 0.25), shift_columns=(-0.125, -0.125))  # 7 pixels down, 3.5 left
    expected = np.zeros_like(images)
    expected[:, 7:, :, :] = images[:, :-7, :, :]
    half_left = 0.5 * (np.roll(expected, -3, axis=2) + np.roll(expected, -4, axis=2))
    np.testing.assert_allclose(shifted[:, :, :20], half_left[:, :, :20], atol=1e-5)


def test_a_quarter_turn_is_a_counter_clockwise_rot90_and_zoom_out_shrinks():
    images = digit_like()
    turned = warp(images, rotation_degrees=(90.0, 90.0))
    np.testing.assert_allclose(turned, np.rot90(images, 1, axes=(1, 2)), atol=1e-4)
    smaller = warp(images, zoom_rows=(0.5, 0.5))  # positive zooms out, as in Keras
    assert 0.35 < smaller.sum() / images.sum() < 0.6  # about half in each direction: a quarter of the ink x ~2


def test_ranges_come_from_the_keras_layers():
    model = build_model(TrainingConfig(architecture="cnn", conv_filters=(4,), augment_shift=0.1,
                                       augment_rotation=12.0, augment_zoom=0.2))
    ranges = augment.ranges_from_layers(model.layers[:3])
    assert ranges.shift_rows == pytest.approx((-0.1, 0.1)) and ranges.shift_columns == pytest.approx((-0.1, 0.1))
    assert ranges.rotation_degrees == pytest.approx((-12.0, 12.0)) and ranges.zoom_rows == pytest.approx((-0.2, 0.2))
    assert ranges.zoom_columns is None
    reflecting = keras.layers.RandomRotation(0.1, fill_mode="reflect")
    assert "fill_mode" in augment.unsupported_reason(reflecting)


def test_the_lowered_model_warps_in_training_only_and_draws_anew_each_step():
    keras.utils.set_random_seed(0)
    model = build_model(TrainingConfig(architecture="cnn", conv_filters=(4,), augment_shift=0.1,
                                       augment_rotation=10.0, augment_zoom=0.1))
    forward = lowering.forward_function(model)
    trainable = [variable.value for variable in model.trainable_variables]
    non_trainable = [variable.value for variable in model.non_trainable_variables]
    inputs = digit_like(8)
    predicting, _ = forward(trainable, non_trainable, inputs, False)
    expected, _ = model.stateless_call(trainable, non_trainable, inputs, training=False)
    np.testing.assert_allclose(np.asarray(predicting), np.asarray(expected), atol=1e-6)
    first, state = forward(trainable, non_trainable, inputs, True)
    second, _ = forward(trainable, state, inputs, True)
    assert not np.allclose(np.asarray(first), np.asarray(predicting), atol=1e-4)
    assert not np.allclose(np.asarray(first), np.asarray(second), atol=1e-4)  # the seed state moved on
