"""Per-class precision, recall and F1 from a confusion matrix, and mean/std over seeds: plain numbers, no I/O."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np


@dataclasses.dataclass(frozen=True)
class ClassScores:
    """How well one class is recognised."""

    # Index of the class (its label).
    label: int
    # Of the images predicted as this class, the fraction that are this class. 0 when none is predicted.
    precision: float
    # Of the images of this class, the fraction predicted as this class (the per-class accuracy).
    recall: float
    # Harmonic mean of precision and recall; 0 when both are 0.
    f1: float
    # Number of test images of this class.
    support: int

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def per_class_scores(confusion: Sequence[Sequence[int]] | np.ndarray) -> list[ClassScores]:
    """Precision, recall, F1 and support per class from counts[true][predicted]."""
    counts = np.asarray(confusion, dtype=np.int64)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1]:
        raise ValueError(f"a confusion matrix must be square (classes, classes), got shape {counts.shape}")
    correct = np.diag(counts)  # (classes,)
    predicted_totals = counts.sum(axis=0)  # column sums: how often each class was predicted
    true_totals = counts.sum(axis=1)  # row sums: how many images each class has
    scores = []
    for label in range(len(counts)):
        precision = correct[label] / predicted_totals[label] if predicted_totals[label] else 0.0
        recall = correct[label] / true_totals[label] if true_totals[label] else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
        scores.append(ClassScores(label, float(precision), float(recall), float(f1), int(true_totals[label])))
    return scores


def macro_average(scores: Sequence[ClassScores]) -> dict[str, float]:
    """Unweighted mean precision, recall and F1 over the classes."""
    if not scores:
        raise ValueError("no class scores to average")
    return {name: float(np.mean([getattr(score, name) for score in scores])) for name in ("precision", "recall", "f1")}


def mean_and_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1, as for a few seeds); the std of one value is 0."""
    values = [float(value) for value in values]
    if not values:
        return math.nan, math.nan
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    variance = sum((value - mean) ** 2 for value in values) / (len(values) - 1)
    return mean, math.sqrt(variance)
