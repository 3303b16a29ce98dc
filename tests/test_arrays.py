import numpy as np
import pytest

from digitlab.data import arrays
from digitlab.errors import ConfigError


def test_normalize_maps_0_255_to_0_1_float32():
    images = np.array([[[0, 255], [51, 102]]], dtype=np.uint8)
    scaled = arrays.normalize(images)
    assert scaled.dtype == np.float32
    np.testing.assert_allclose(scaled, [[[0.0, 1.0], [0.2, 0.4]]], rtol=1e-6)


def test_normalize_refuses_already_scaled_floats():
    with pytest.raises(ConfigError, match="uint8"):
        arrays.normalize(np.zeros((1, 28, 28), dtype=np.float32))


def test_flatten_keeps_pixel_order():
    images = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    flat = arrays.flatten(images)
    assert flat.shape == (2, 784)
    np.testing.assert_array_equal(flat[1, :28], images[1, 0])


def test_one_hot_is_float32_with_a_single_one_per_row():
    encoded = arrays.one_hot(np.array([3, 0, 9], dtype=np.uint8))
    assert encoded.dtype == np.float32 and encoded.shape == (3, 10)
    np.testing.assert_array_equal(encoded.argmax(axis=1), [3, 0, 9])
    np.testing.assert_array_equal(encoded.sum(axis=1), [1, 1, 1])


@pytest.mark.parametrize("labels", [np.array([0, 10]), np.array([-1, 2]), np.array([[1, 2]]), np.array([0.5])])
def test_one_hot_rejects_labels_out_of_range_or_shape(labels):
    with pytest.raises(ConfigError):
        arrays.one_hot(labels)


def test_prepare_images_is_the_tutorials_normalize_then_flatten():
    images = np.full((4, 28, 28), 255, dtype=np.uint8)
    prepared = arrays.prepare_images(images)
    assert prepared.shape == (4, 784) and prepared.dtype == np.float32 and prepared.max() == 1.0
