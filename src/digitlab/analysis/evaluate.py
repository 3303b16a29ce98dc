"""Test-set metrics as plain data: loss, accuracy, per-class accuracy, confusion matrix, mistakes. No plots."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from digitlab import runs
from digitlab.config import EVALUATION_BATCH_SIZE
from digitlab.data import arrays, datasets

# Keras clips probabilities to [epsilon, 1 - epsilon] in categorical cross-entropy; so do we.
KERAS_EPSILON = 1e-7


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """How a model does on a labelled set of images."""

    # Mean categorical cross-entropy.
    loss: float
    # Fraction of images whose most probable class is the true one.
    accuracy: float
    # Accuracy within each true class (recall per class), index = label.
    per_class_accuracy: list[float]
    # counts[true][predicted].
    confusion_matrix: list[list[int]]
    # Number of images evaluated.
    count: int

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def confusion_matrix(true_labels: np.ndarray, predicted_labels: np.ndarray, num_classes: int = 10) -> np.ndarray:
    """counts[true, predicted] as an (num_classes, num_classes) int64 array."""
    true_labels, predicted_labels = np.asarray(true_labels), np.asarray(predicted_labels)
    if true_labels.shape != predicted_labels.shape:
        raise ValueError(f"true and predicted labels differ in shape: {true_labels.shape} vs {predicted_labels.shape}")
    flat = true_labels.astype(np.int64) * num_classes + predicted_labels.astype(np.int64)
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def summarize(probabilities: np.ndarray, true_labels: np.ndarray) -> Evaluation:
    """Metrics from predicted probabilities (N, classes) and true integer labels (N,)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    true_labels = np.asarray(true_labels).astype(np.int64)
    if probabilities.ndim != 2 or len(probabilities) != len(true_labels) or len(true_labels) == 0:
        raise ValueError(f"need probabilities (N, classes) and labels (N,) with N > 0, "
                         f"got {probabilities.shape} and {true_labels.shape}")
    num_classes = probabilities.shape[1]
    picked = np.clip(probabilities[np.arange(len(true_labels)), true_labels], KERAS_EPSILON, 1 - KERAS_EPSILON)
    predicted = probabilities.argmax(axis=1)
    counts = confusion_matrix(true_labels, predicted, num_classes)
    per_class_total = counts.sum(axis=1)
    per_class = np.divide(np.diag(counts), per_class_total, out=np.zeros(num_classes), where=per_class_total > 0)
    return Evaluation(
        loss=float(-np.log(picked).mean()),
        accuracy=float((predicted == true_labels).mean()),
        per_class_accuracy=[float(value) for value in per_class],
        confusion_matrix=counts.tolist(),
        count=int(len(true_labels)),
    )


def confident_mistakes(probabilities: np.ndarray, labels: np.ndarray, count: int) -> np.ndarray:
    """Indices of the `count` wrong predictions made with the highest probability, most confident first."""
    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != labels)
    confidence = probabilities[wrong, predicted[wrong]]
    return wrong[np.argsort(-confidence, kind="stable")[:count]]


def predict_probabilities(model, images: np.ndarray, input_shape: Sequence[int] | None = None) -> np.ndarray:
    """A model's class probabilities (N, classes) for uint8 images (N, 28, 28).

    Args:
        input_shape: one image as the model takes it, e.g. (784,) or (28, 28, 1); default the model's own.

    Raises:
        ConfigError: the images cannot be shaped as `input_shape`.
    """
    input_shape = tuple(int(size) for size in (input_shape or model.input_shape[1:]))
    inputs = arrays.prepare_images(images, input_shape)  # (N, *input_shape) float32 in [0, 1]
    return np.asarray(model.predict(inputs, batch_size=EVALUATION_BATCH_SIZE, verbose=0))


def evaluate_model(model, images: np.ndarray, labels: np.ndarray) -> Evaluation:
    """Run a model on uint8 images (N, 28, 28) and summarise against integer labels (N,)."""
    return summarize(predict_probabilities(model, images), labels)


def evaluate_run(run_dir: str | Path, backend: str | None = None,
                 data_root: str | Path | None = None) -> dict[str, Any]:
    """Evaluate a saved run on its data set's test images.

    Returns:
        {"run_dir", "dataset", "class_names", "backend", **Evaluation fields}.
    """
    run_config = runs.read_run_config(run_dir)
    model = runs.load_model(run_dir, backend=backend)
    dataset = run_config.training.dataset
    _, (test_images, test_labels) = datasets.load(dataset, root=data_root)
    evaluation = evaluate_model(model, test_images, test_labels)
    import keras

    return {"run_dir": str(run_dir), "dataset": dataset, "backend": keras.backend.backend(),
            "class_names": list(run_config.class_names), **evaluation.to_dict()}
