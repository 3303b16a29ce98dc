"""data/cuts.py: right and wrong cuts through lines of digits, framed like MNIST, for a reader to learn from."""

import numpy as np
import pytest
from PIL import Image, ImageDraw

from digitlab.data import cuts

STROKES = {0: [(9, 4), (18, 4), (20, 14), (18, 24), (9, 24), (7, 14), (9, 4)], 4: [(17, 24), (17, 4), (7, 17), (21, 17)],
           7: [(7, 5), (20, 5), (12, 24)]}


@pytest.fixture(scope="module")
def digits():
    labels = np.array([0, 4, 7] * 4)
    images = []
    for label in labels:
        image = Image.new("L", (28, 28), 0)
        ImageDraw.Draw(image).line(STROKES[int(label)], fill=255, width=3, joint="curve")
        images.append(np.asarray(image))
    return np.stack(images), labels


def test_even_crops_are_cut_right_and_named_odd_ones_cut_wrong_and_refused(digits):
    images, labels = cuts.line_cuts(*digits, count=12, seed=0)
    assert images.shape == (12, 28, 28) and images.dtype == np.uint8 and labels.shape == (12,)
    assert set(labels[0::2]) <= {0, 4, 7} and set(labels[1::2]) == {10}
    for image in images[0::2]:  # framed like MNIST: centre of mass in the middle, ink within 20 pixels or so
        mass = image.astype(np.float64)
        rows, columns = np.indices(mass.shape)
        assert abs((mass * rows).sum() / mass.sum() - 14) < 1.5 and abs((mass * columns).sum() / mass.sum() - 14) < 1.5
    # A right cut looks like its digit: closer to a framed copy of the same digit than to the others.
    framed = {label: cuts.line_cuts(np.stack([digits[0][index]] * 3), np.array([label] * 3), 2, seed=1)[0][0]
              for index, label in enumerate((0, 4, 7))}
    for image, label in zip(images[0::2], labels[0::2], strict=True):
        distances = {other: np.abs(image.astype(int) - template.astype(int)).sum() for other, template in framed.items()}
        assert min(distances, key=distances.get) == label


def test_the_same_seed_gives_the_same_cuts_and_bad_input_is_refused(digits):
    first, second = cuts.line_cuts(*digits, count=6, seed=3), cuts.line_cuts(*digits, count=6, seed=3)
    assert np.array_equal(first[0], second[0]) and np.array_equal(first[1], second[1])
    assert not np.array_equal(first[0], cuts.line_cuts(*digits, count=6, seed=4)[0])
    with pytest.raises(ValueError, match="at least 3 digit images"):
        cuts.line_cuts(digits[0][:2], digits[1][:2], count=2, seed=0)
    with pytest.raises(ValueError, match="count"):
        cuts.line_cuts(*digits, count=-1, seed=0)
