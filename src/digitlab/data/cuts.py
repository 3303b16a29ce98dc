"""What cutting a line of handwritten digits gives, as training images for a reader.

`digitlab read` cuts a line into candidate digits and keeps the cuts the model believes. Where
neighbours touch or overlap, a right cut still holds slivers of the neighbours' strokes, and a wrong
cut holds part of one digit and part of the next. MNIST has neither: a model trained on it alone
refuses the first and names the second. `line_cuts` makes both from lines of MNIST digits
(`lines.compose_line`): crops at each middle digit's own columns (give or take a little), labelled
with the digit; and, labelled "not a digit", crops shifted by a third to two thirds of a digit, and
crops that take a whole neighbour along (two touching digits read as one).
"""

from __future__ import annotations

import numpy as np

from digitlab.data.framing import fit_in_frame
from digitlab.data.lines import LAYOUTS, compose_line

# A right cut may miss the digit's own edges by up to this share of its width, either way.
RIGHT_CUT_SLACK = 0.12
# A wrong cut is shifted by this share of the digit's width, left or right.
WRONG_CUT_SHIFT = (0.35, 0.65)
WRONG_CUT_LAYOUTS = ("touching", "overlapping")


def line_cuts(digit_images: np.ndarray, labels: np.ndarray, count: int, seed: int,
              refused_label: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """`count` framed crops of lines of three digits: even indices cut right (labelled with the middle
    digit), odd ones cut wrong (labelled `refused_label`): shifted, or (every other one) merged with a
    neighbour.

    Args:
        digit_images: (N, 28, 28) uint8 digits to compose lines from (MNIST's training digits).
        labels: their (N,) labels.

    Returns:
        (count, 28, 28) uint8 images framed like MNIST, and their (count,) labels.
    """
    digit_images, labels = np.asarray(digit_images), np.asarray(labels)
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    if len(digit_images) < 3 or len(digit_images) != len(labels):
        raise ValueError(f"need at least 3 digit images with one label each, got {len(digit_images)} images and "
                         f"{len(labels)} labels")
    rng = np.random.default_rng(seed)
    images = np.zeros((count, 28, 28), dtype=np.uint8)
    targets = np.full(count, refused_label, dtype=np.int64)
    for index in range(count):
        picked = rng.choice(len(digit_images), size=3, replace=False)
        try:
            # Wrong cuts only where the segmentation cuts at all: inside touching or overlapping digits.
            layout = LAYOUTS[index // 2 % len(LAYOUTS)] if index % 2 == 0 else WRONG_CUT_LAYOUTS[index // 2 % 2]
            ink, boxes = compose_line(digit_images[picked], labels[picked], rng, layout)
        except ValueError:  # a digit without ink: leave this one blank and refused
            continue
        left, _, right, _ = boxes[1]
        width = right - left
        if index % 2 == 0:
            slack = RIGHT_CUT_SLACK * width
            start, stop = left + rng.uniform(-slack, slack), right + rng.uniform(-slack, slack)
            targets[index] = labels[picked[1]]
        elif index % 4 == 1:
            shift = rng.uniform(*WRONG_CUT_SHIFT) * width * rng.choice((-1.0, 1.0))
            start, stop = left + shift, right + shift
        else:  # the middle digit and the whole of its left or right neighbour
            neighbour = boxes[0] if rng.random() < 0.5 else boxes[2]
            start, stop = min(left, neighbour[0]), max(right, neighbour[2])
        crop = ink[:, max(0, round(start)):max(1, round(stop))]
        rows = np.flatnonzero(crop.max(axis=1) > 0.1)
        columns = np.flatnonzero(crop.max(axis=0) > 0.1)
        if len(rows) == 0 or len(columns) == 0:
            targets[index] = refused_label
            continue
        crop = crop[rows[0]:rows[-1] + 1, columns[0]:columns[-1] + 1]
        images[index] = np.round(fit_in_frame(np.ascontiguousarray(crop, dtype=np.float32)) * 255).astype(np.uint8)
    return images, targets
