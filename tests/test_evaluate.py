import json

import numpy as np
import pytest

from digitlab.analysis.evaluate import confident_mistakes, confusion_matrix, evaluate_run, summarize
from digitlab.config import TrainingConfig
from digitlab.data import datasets
from digitlab.training.train import train


def test_confusion_matrix_counts_true_rows_and_predicted_columns():
    counts = confusion_matrix(np.array([0, 0, 1, 2, 2]), np.array([0, 1, 1, 2, 0]), num_classes=3)
    np.testing.assert_array_equal(counts, [[1, 1, 0], [0, 1, 0], [1, 0, 1]])


def test_summarize_computes_loss_accuracy_and_per_class_accuracy():
    probabilities = np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.7, 0.3]])
    labels = np.array([0, 0, 1, 1])
    evaluation = summarize(probabilities, labels)
    assert evaluation.accuracy == pytest.approx(0.5)
    assert evaluation.per_class_accuracy == pytest.approx([0.5, 0.5])
    assert evaluation.loss == pytest.approx(-np.mean(np.log([0.9, 0.4, 0.8, 0.3])))
    assert evaluation.confusion_matrix == [[1, 1], [1, 1]] and evaluation.count == 4


def test_summarize_clips_zero_probabilities_like_keras():
    evaluation = summarize(np.array([[1.0, 0.0]]), np.array([1]))
    assert evaluation.loss == pytest.approx(-np.log(1e-7))


def test_summarize_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match="need probabilities"):
        summarize(np.zeros((3, 10)), np.zeros(2, dtype=int))


def test_confident_mistakes_are_wrong_and_ordered_by_probability():
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.05, 0.95], [0.7, 0.3]])
    labels = np.array([0, 0, 0, 0, 1])
    assert confident_mistakes(probabilities, labels, 10).tolist() == [3, 1, 4, 2]
    assert confident_mistakes(probabilities, labels, 2).tolist() == [3, 1]


def test_evaluating_a_run_reproduces_the_test_figures_saved_by_training(tiny_mnist, tmp_path):
    result = train(TrainingConfig(epochs=1, batch_size=32, hidden_units=(32,)), run_dir=tmp_path / "run", verbose=0)
    evaluation = evaluate_run(tmp_path / "run")
    assert evaluation["accuracy"] == pytest.approx(result.metrics.test_accuracy, abs=1e-6)
    assert evaluation["loss"] == pytest.approx(result.metrics.test_loss, rel=1e-4)
    _, (_, test_labels) = datasets.load("mnist")
    assert evaluation["count"] == len(test_labels) == 128
    images_per_class = np.bincount(test_labels, minlength=10).tolist()
    assert np.array(evaluation["confusion_matrix"]).sum(axis=1).tolist() == images_per_class
    assert evaluation["class_names"] == [str(digit) for digit in range(10)] and evaluation["dataset"] == "mnist"
    json.dumps(evaluation)  # plain data, ready for --json
