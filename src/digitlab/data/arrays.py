"""The tutorial's array steps: scale pixels to [0, 1], flatten each image to 784 values, one-hot labels."""

from __future__ import annotations

import numpy as np

from digitlab.errors import ConfigError


def normalize(images: np.ndarray) -> np.ndarray:
    """Scale uint8 pixels from [0, 255] to float32 in [0, 1]."""
    if images.dtype != np.uint8:
        raise ConfigError(f"normalize expects uint8 pixels in [0, 255], got {images.dtype}")
    # One pass, straight into float32 (the same values as astype(float32) / 255).
    return np.divide(images, np.float32(255.0), dtype=np.float32)


def flatten(images: np.ndarray) -> np.ndarray:
    """(N, 28, 28) -> (N, 784): one row of pixels per image, as the Dense network takes them."""
    if images.ndim < 2:
        raise ConfigError(f"flatten expects a batch of images (N, rows, columns), got shape {images.shape}")
    return images.reshape(len(images), -1)


def one_hot(labels: np.ndarray, num_classes: int = 10) -> np.ndarray:
    """(N,) integer labels -> (N, num_classes) float32 rows with a single 1."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ConfigError(f"one_hot expects a 1-D array of integer labels, got {labels.dtype} {labels.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise ConfigError(f"labels must be in 0..{num_classes - 1}, got {labels.min()}..{labels.max()}")
    # float32 from the start: np.eye's default float64 would double memory and force a cast per batch.
    return np.eye(num_classes, dtype=np.float32)[labels]


def prepare_images(images: np.ndarray, input_shape: tuple[int, ...] = (784,)) -> np.ndarray:
    """The tutorial's image steps: normalize, then flatten. (N, 28, 28) uint8 -> (N, 784) float32.

    With `input_shape=(28, 28, 1)` (a convolutional model) the images keep their rows and columns
    and gain a channel axis instead: (N, 28, 28, 1).
    """
    scaled = normalize(images)
    if tuple(input_shape) == (784,):
        return flatten(scaled)
    if int(np.prod(input_shape)) != int(np.prod(images.shape[1:])):
        raise ConfigError(f"images of shape {images.shape[1:]} do not fit a model input of shape {tuple(input_shape)}")
    return scaled.reshape((len(images), *input_shape))
