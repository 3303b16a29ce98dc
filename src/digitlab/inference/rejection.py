"""Say "that is not a digit" instead of guessing: a digit, or None and the reason.

A network trained on MNIST alone has to name a digit for anything it is shown (a smiley, a letter,
"42"), often with high confidence. Three things let digitlab refuse:

- A model with a "not a digit" class (the `reader` recipe trains one on synthetic letters, symbols,
  scribbles, shapes and pairs or pieces of digits): when that class wins, the answer is refused.
- The shape of the ink: one MNIST digit is rarely much wider than tall (0.3% of the test digits have
  a box at least 1.6 times wider than tall), two or more side by side usually are. For a model
  without the extra class such an image is refused; any refused image at least 1.2 times wider than
  tall gets the reason "several digits" (use `read`).
- A threshold: the winning digit's probability under `min_confidence` gives "unsure". Any model
  allows this one; it is the only rejection a model without the extra class has.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from digitlab.data.catalog import NOT_A_DIGIT
from digitlab.errors import ModelFailureError

# Reasons for refusing: NOT_A_DIGIT (the extra class of a model trained to refuse, and a reason) and:
SEVERAL_DIGITS = "several digits"
UNSURE = "unsure"
REASONS = (NOT_A_DIGIT, SEVERAL_DIGITS, UNSURE)
# Below this probability the best digit is not named ("unsure"); `--min-confidence` changes it.
# Chosen with REFUSE_LEVEL below, with the reader recipe's model (seed 0), on a tuning set that no
# benchmark uses: photos of 3,000 MNIST test digits that benchmarks/read_accuracy.py's single digits
# leave out, and of 2,000 non-digits (seeds 7,000,001 and 7,000,003; the classifier never saw either).
# Refused digits / refused non-digits: 0.4 with a refuse level of 0.5 (the earlier defaults) 2.07% /
# 97.4%; 0.35 with 0.65: 1.70% / 96.6%; 0.3 with 0.7: 1.47% / 95.7%.
DEFAULT_MIN_CONFIDENCE = 0.35
# Ink boxes at least this many times wider than tall hold several digits, whatever the model says;
# refused images at least WIDE_IF_REFUSED times wider than tall are called "several digits" too.
WIDE_ASPECT = 1.6
WIDE_IF_REFUSED = 1.2
# A model's "not a digit" class refuses an image when it is the most probable class and at least this
# probable (below, the image is "unsure" unless its best digit passes min_confidence). Tuned with
# DEFAULT_MIN_CONFIDENCE, above.
REFUSE_LEVEL = 0.65
# A pixel of a prepared (28x28, [0, 1]) image counts as ink above this level, for its box.
INK_LEVEL = 0.15
# A second opinion, for a classifier with a line model (a reader): a digit the classifier names is
# refused as "not a digit" when the line model, shown the same prepared image, finds no step with any
# digit at least this probable (`LineReader.digit_evidence`). The two networks learnt "not a digit"
# from different examples, so each catches what the other takes for a digit. Measured with the bundled
# reader on photos no benchmark uses (600 each, seeds from 5,000,011): kinds of non-digits never
# trained on, refused 91.2% -> 95.3% (trained kinds 96.0% -> 98.3%); MNIST test digits right 96.7% ->
# 96.0%, refused 2.2% -> 2.8%; handwriting-font digits 95.8% -> 95.7% right. Levels 0.5 / 0.2 / 0.05:
# 97.7 / 96.0 / 95.0% of those non-digits refused, 3.3 / 3.2 / 2.7% of the MNIST digits.
DIGIT_EVIDENCE_LEVEL = 0.1

if TYPE_CHECKING:  # NumPy is imported when used: the CLI imports this module for its defaults
    import numpy as np


@dataclasses.dataclass(frozen=True)
class Decision:
    """What to answer for one image."""

    # The digit (class index) named, or None when refused.
    digit: int | None
    # Why it was refused ("not a digit", "several digits", "unsure"), or None.
    reason: str | None
    # The probability of the best class that is not "not a digit".
    confidence: float


def refusal_class(class_names) -> int | None:
    """Index of the "not a digit" class, or None when the model has none."""
    names = list(class_names)
    return names.index(NOT_A_DIGIT) if NOT_A_DIGIT in names else None


def check_min_confidence(min_confidence: float) -> float:
    """`min_confidence` as a float in [0, 1].

    Raises:
        ValueError: it is not a number between 0 and 1.
    """
    value = float(min_confidence)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"min_confidence must be between 0 and 1 (a probability), got {min_confidence}")
    return value


def decide(probabilities: np.ndarray, prepared: np.ndarray, class_names,
           min_confidence: float = DEFAULT_MIN_CONFIDENCE, digits_only: bool = True,
           digit_evidence: np.ndarray | None = None) -> list[Decision]:
    """One Decision per image.

    Args:
        probabilities: (N, classes) model outputs.
        prepared: (N, 28, 28) the images the model saw, for the shape of their ink.
        class_names: the model's classes (a "not a digit" class is used when present).
        min_confidence: the least probability of the best class to name it.
        digits_only: the classes are digits (MNIST), so a wide image is "several digits"; False for
            other data sets (Fashion-MNIST), where only the threshold and the extra class refuse.
        digit_evidence: (N,) a line model's second opinion (`LineReader.digit_evidence`), or None: a
            digit with less evidence than DIGIT_EVIDENCE_LEVEL is "not a digit".

    Raises:
        ModelFailureError: a probability is NaN or infinite (NaN would pass every threshold and name class 0).
    """
    import numpy as np

    min_confidence = check_min_confidence(min_confidence)
    probabilities = np.asarray(probabilities, dtype=np.float32)
    if not np.isfinite(probabilities).all() or (digit_evidence is not None and not np.isfinite(digit_evidence).all()):
        raise ModelFailureError("the model gave probabilities that are not numbers (NaN or infinite); its weights "
                                "or its graph are broken: train or export it again, or use another model")
    refuse_index = refusal_class(class_names)
    candidates = probabilities.copy()
    if refuse_index is not None:
        candidates[:, refuse_index] = -1.0
    best = candidates.argmax(axis=1)
    confidence = candidates[np.arange(len(best)), best]
    refused_by_model = (probabilities[:, refuse_index] >= np.maximum(confidence, REFUSE_LEVEL)) \
        if refuse_index is not None else np.zeros(len(best), dtype=bool)
    aspect = ink_aspect(prepared) if digits_only else np.zeros(len(best), dtype=np.float32)
    decisions = []
    for index in range(len(best)):
        reason = None
        # A model that learnt to refuse pairs of digits decides itself; for another, a wide image is refused.
        wide = aspect[index] >= WIDE_ASPECT and refuse_index is None
        if wide or (aspect[index] >= WIDE_IF_REFUSED and refused_by_model[index]):
            reason = SEVERAL_DIGITS
        elif refused_by_model[index] or (digit_evidence is not None and digit_evidence[index] < DIGIT_EVIDENCE_LEVEL):
            reason = NOT_A_DIGIT
        elif confidence[index] < min_confidence:
            reason = UNSURE
        decisions.append(Decision(None if reason else int(best[index]), reason, float(confidence[index])))
    return decisions


def ink_aspect(prepared: np.ndarray) -> np.ndarray:
    """(N,) width over height of the ink box of each (28, 28) prepared image (0 for a blank one)."""
    import numpy as np

    ink = np.asarray(prepared) > INK_LEVEL  # (N, 28, 28)
    rows, columns = ink.any(axis=2), ink.any(axis=1)  # (N, 28) each
    size = ink.shape[1]
    height = size - rows[:, ::-1].argmax(axis=1) - rows.argmax(axis=1)
    width = size - columns[:, ::-1].argmax(axis=1) - columns.argmax(axis=1)
    blank = ~rows.any(axis=1)
    return np.where(blank, 0.0, width / np.maximum(height, 1)).astype(np.float32)
