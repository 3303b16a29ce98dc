"""Per-class precision, recall and F1, their macro average, and mean and standard deviation over seeds,
checked against figures worked out by hand."""

import math

import numpy as np
import pytest

from digitlab.analysis.metrics import ClassScores, macro_average, mean_and_std, per_class_scores


def test_scores_of_a_three_class_confusion_matrix_match_the_hand_computed_ones():
    # counts[true][predicted]. Class 0: 8 images, 6 right; predicted 8 times (6 + 1 + 1), 6 right.
    # Class 1: 4 images, 3 right; predicted 6 times (2 + 3 + 1), 3 right. Class 2: 2 images, never predicted.
    confusion = [[6, 2, 0],
                 [1, 3, 0],
                 [1, 1, 0]]
    scores = per_class_scores(confusion)

    assert [score.label for score in scores] == [0, 1, 2]
    assert [score.support for score in scores] == [8, 4, 2]
    assert (scores[0].precision, scores[0].recall, scores[0].f1) == pytest.approx((0.75, 0.75, 0.75))
    # precision 3/6 = 0.5, recall 3/4 = 0.75, F1 = 2 * 0.5 * 0.75 / (0.5 + 0.75) = 0.6.
    assert (scores[1].precision, scores[1].recall, scores[1].f1) == pytest.approx((0.5, 0.75, 0.6))
    # Never predicted: precision 0 (not a division by zero), recall 0, F1 0.
    assert (scores[2].precision, scores[2].recall, scores[2].f1) == (0.0, 0.0, 0.0)


def test_a_class_without_images_scores_zero_recall_and_precision_counts_its_false_alarms():
    # Class 1 has no images but is predicted once (wrongly): precision 0/1, recall 0 (no images), support 0.
    scores = per_class_scores(np.array([[3, 1], [0, 0]]))
    assert scores[0] == ClassScores(label=0, precision=1.0, recall=0.75, f1=pytest.approx(6 / 7), support=4)
    assert (scores[1].precision, scores[1].recall, scores[1].f1, scores[1].support) == (0.0, 0.0, 0.0, 0)


def test_a_perfect_classifier_scores_one_everywhere():
    scores = per_class_scores(np.diag([5, 7, 9]))
    assert all((score.precision, score.recall, score.f1) == (1.0, 1.0, 1.0) for score in scores)
    assert macro_average(scores) == {"precision": 1.0, "recall": 1.0, "f1": 1.0}


def test_the_macro_average_weighs_every_class_alike_whatever_its_size():
    scores = per_class_scores([[6, 2, 0], [1, 3, 0], [1, 1, 0]])
    assert macro_average(scores) == pytest.approx({"precision": (0.75 + 0.5 + 0) / 3, "recall": (0.75 + 0.75 + 0) / 3,
                                                   "f1": (0.75 + 0.6 + 0) / 3})
    with pytest.raises(ValueError, match="no class scores"):
        macro_average([])


@pytest.mark.parametrize("confusion", [[[1, 2, 3]], [1, 2], np.zeros((2, 3))])
def test_a_confusion_matrix_that_is_not_square_is_refused(confusion):
    with pytest.raises(ValueError, match="must be square"):
        per_class_scores(confusion)


def test_scores_are_plain_data():
    assert per_class_scores([[2, 0], [1, 1]])[1].to_dict() == {"label": 1, "precision": 1.0, "recall": 0.5,
                                                               "f1": pytest.approx(2 / 3), "support": 2}


def test_mean_and_sample_standard_deviation():
    # Mean 2.5; squared deviations 2.25 + 0.25 + 0.25 + 2.25 = 5; sample variance 5 / 3.
    assert mean_and_std([1.0, 2.0, 3.0, 4.0]) == pytest.approx((2.5, math.sqrt(5 / 3)))
    assert mean_and_std([1, 2, 3, 4]) == pytest.approx((2.5, np.std([1, 2, 3, 4], ddof=1)))
    assert mean_and_std([0.97, 0.97, 0.97]) == pytest.approx((0.97, 0.0))


def test_one_value_has_no_spread_and_none_has_no_mean():
    assert mean_and_std([0.97]) == (0.97, 0.0)
    mean, std = mean_and_std([])
    assert math.isnan(mean) and math.isnan(std)
