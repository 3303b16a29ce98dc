"""Look at a picture and say what is on it: one digit, a number, or no digit at all.

One answer from two opinions. The classifier takes the whole picture as one digit (`Classifier.decide`:
a digit, or none and why); the number reader reads it as a line (`reading.read_number`: the line model
when the run has one, else cuts in front of the classifier). `choose` decides between them. With a
line model:

- two digits or more read are a **number** when the reader is surer of them than the classifier of its
  one digit, or at least NUMBER_LEVEL sure (two touching digits framed as one look like one digit to
  the classifier: a touching "38" is "an 8", 69% or even 99.9%; not to the reader: "38", 100%), or when
  the classifier names no digit at all. (Even what it calls "not a digit": it learnt pairs of digits as
  not one digit. Asking it about each digit's box as well would keep a drawn grid, which the line model
  reads as "77", from being a number, but it refuses a box cut from touching digits as often: touching
  two-digit numbers read right fell from 94% to 79%, benchmarks/look_accuracy.py.)
- else a digit named by the classifier: **one digit**;
- else **not a digit** (or **unsure**: a digit below `min_confidence`). A lone digit read from what
  the classifier refuses (one scribble read as "1") is no answer: the classifier has seen the whole
  of it.

Without a line model the reader's digits are the classifier's own answers for pieces of the ink (a star
cut into pieces reads "417"), so it only settles what the classifier leaves open: a number when the
classifier says "several digits", else the classifier's answer.

`look` returns that answer with what each network was shown (`Seen`): the 28x28 image for one digit,
the line model's strip with a box per digit for a number (or the framed digits side by side, for a
reader without a line model).

    answer = look(classifier, "drawing.png")
    answer.kind, answer.text, answer.confidence   # "number", "38", 0.998
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from digitlab.analysis.formatting import format_probability
from digitlab.data.ink import extract_ink, ink_box
from digitlab.data.line_strip import STRIP_HEIGHT, STRIP_MARGIN, pieces_box, working_pixels
from digitlab.errors import ImageError
from digitlab.inference import rejection
from digitlab.inference.images import decode_picture_and_scale, image_name, picture_box, prepare_image
from digitlab.inference.reading import Reading, line_candidates, read_number

# What `look` can say.
DIGIT, NUMBER, NOT_A_DIGIT, UNSURE = "digit", "number", rejection.NOT_A_DIGIT, rejection.UNSURE
KINDS = (DIGIT, NUMBER, NOT_A_DIGIT, UNSURE)
# Several digits read at least this surely are a number, however sure the classifier is of one digit: it
# can be sure of the wrong one (a touching "38" framed as one digit: "an 8", 99.9%). Measured with the
# bundled reader (benchmarks/look_accuracy.py, see its docstring for the figures).
NUMBER_LEVEL = 0.9
# A stroke with at least this share of its columns in one character's box is that character's alone.
OWN_PIECE = 0.75
# A reading's characters (`Reading.characters`, from a line model that reads separators) are digits, marks
# (reading.CHARACTER_KINDS) and spaces: gaps, not marks.
DIGIT_KIND, SPACE_KIND = "digit", "space"
# What a `Seen` image is: the classifier's 28x28 input, the line model's strip, or the framed digits side by side.
SEEN_DIGIT, SEEN_LINE, SEEN_DIGITS = "digit", "line", "digits"
# Columns of paper between the framed digits shown side by side.
TILE_GAP = 4


@dataclasses.dataclass(frozen=True)
class Seen:
    """What a network was shown: the image it took, and a box around each digit read in it."""

    # SEEN_DIGIT, SEEN_LINE or SEEN_DIGITS.
    kind: str
    # (rows, columns) float32 in [0, 1], light ink on black: (28, 28) for one digit, (STRIP_HEIGHT, width) for a line.
    pixels: np.ndarray
    # (x0, y0, x1, y1) in those pixels, x1 and y1 exclusive, left to right; empty for one digit.
    boxes: tuple[tuple[int, int, int, int], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        # float64 first, so that rounding gives 0.753 rather than float32's 0.7529999852180481.
        return {"kind": self.kind, "pixels": np.round(self.pixels.astype(np.float64), 3).tolist(),
                "boxes": [list(box) for box in self.boxes]}


@dataclasses.dataclass(frozen=True)
class Boxed:
    """A character to draw a box around on the picture: a digit, or a separator read between digits."""

    # What it reads as: the digit's class name, or the separator (".", "-", ...).
    label: str
    # "digit", or the separator's kind (reading.CHARACTER_KINDS: point, comma, dash, slash, colon).
    kind: str
    # (x0, y0, x1, y1) in the picture's own pixels, x1 and y1 exclusive.
    box: tuple[int, int, int, int]
    # How sure the network is of it.
    confidence: float

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "kind": self.kind, "box": list(self.box), "confidence": _short(self.confidence),
                "confidence_text": format_probability(self.confidence)}


@dataclasses.dataclass(frozen=True)
class Look:
    """What is on a picture, in one answer."""

    # DIGIT, NUMBER, NOT_A_DIGIT or UNSURE.
    kind: str
    # The digit's class name, or the number read; "" when refused.
    text: str
    # How sure: the digit's probability, the number's (the product of its digits'), or for a refusal the
    # probability of the best digit.
    confidence: float
    # Why no digit or number is named (rejection.REASONS: "not a digit", "several digits", "unsure"), else None.
    reason: str | None
    # The classifier's answer for the whole picture taken as one digit: the digit it names (or None), its
    # probabilities (classes,), and the (28, 28) image it saw.
    digit: int | None
    probabilities: np.ndarray
    prepared: np.ndarray
    # The number read from the same picture (whatever `kind` is); boxes in the picture's own pixels.
    reading: Reading
    # What the network whose answer this is was shown.
    seen: Seen
    # What to draw a box around on the picture: the number's digits and separators, or the one digit; none
    # for a refusal.
    boxed: tuple[Boxed, ...] = ()

    def to_dict(self, class_names) -> dict[str, Any]:
        """The answer for JSON; every probability also as the text people read (`format_probability`)."""
        return {
            "kind": self.kind, "text": self.text,
            "confidence": _short(self.confidence), "confidence_text": format_probability(self.confidence),
            "reason": self.reason,
            "digit": self.digit, "label": None if self.digit is None else class_names[self.digit],
            "probabilities": [_short(value) for value in self.probabilities],
            "probability_texts": [format_probability(value) for value in self.probabilities],
            "boxes": [boxed.to_dict() for boxed in self.boxed],
            "reading": _reading_dict(self.reading),
            "seen": self.seen.to_dict(),
        }


def choose(decision: rejection.Decision, reading: Reading, number_level: float = NUMBER_LEVEL,
           line_model: bool = True) -> tuple[str, str | None]:
    """The kind of answer (DIGIT, NUMBER, NOT_A_DIGIT or UNSURE) and the reason for a refusal, from the
    classifier's decision on the whole picture and the number read from it (see the module's docstring).

    Args:
        line_model: the number was read by a line model, not by cutting the line into pieces the classifier
            names one by one.
    """
    digits_read = len(reading.digits)
    if not line_model:
        number = decision.reason == rejection.SEVERAL_DIGITS
    else:
        number = decision.digit is None or reading.confidence >= number_level or reading.confidence > decision.confidence
    if digits_read >= 2 and number:
        return NUMBER, None
    if decision.digit is not None:
        return DIGIT, None
    if decision.reason == rejection.UNSURE:
        return UNSURE, rejection.UNSURE
    return NOT_A_DIGIT, decision.reason


def look(classifier, image, min_confidence: float = rejection.DEFAULT_MIN_CONFIDENCE) -> Look:
    """What is on a picture: one digit, a number, or neither (see `choose`).

    Args:
        classifier: a loaded `predict.Classifier` (a reader, with its line model, reads numbers best).
        image: a path, a binary file object, a PIL image, or an array (rows, columns[, channels]).
        min_confidence: the least probability of a digit to name it, alone or in a number.

    Raises:
        ImageError: unreadable, too large, no ink at all, or too much ink to be one line of digits.
    """
    rejection.check_min_confidence(min_confidence)
    picture, scale_in_file = decode_picture_and_scale(image, image_name(image))  # decoded once for both networks
    prepared = prepare_image(picture)  # (28, 28)
    probabilities = classifier.probabilities(prepared[None])[0]  # (classes,)
    decision = classifier.decide(probabilities[None], prepared[None], min_confidence)[0]
    try:
        reading = read_number(classifier, picture, min_confidence=min_confidence)  # boxes in the picture's pixels
    except ImageError:  # too much ink to be one line of digits (a drawing, a page): no number, the digit's answer stands
        reading = Reading("", (), 0.0)
    kind, reason = choose(decision, reading, line_model=getattr(classifier, "line_reader", None) is not None)
    if kind == NUMBER:
        view = None
        if getattr(classifier, "line_reader", None) is not None:
            from digitlab.inference.line_reading import view_line

            view = view_line(picture)  # the line as the line model was shown it
        boxed = _number_boxes(classifier, reading, view)
        seen = _seen_number(classifier, picture, reading, boxed, view)
        text, confidence = reading.text, reading.confidence
    else:
        seen = Seen(SEEN_DIGIT, prepared)
        named = kind == DIGIT
        text = classifier.class_names[decision.digit] if named else ""
        confidence, boxed = decision.confidence, ()
        if named:  # its box: the reader's when it read that digit alone, else the box of all the ink
            alone = len(reading.digits) == 1 and reading.digits[0].digit == decision.digit
            box = reading.digits[0].box if alone else _ink_box(picture)
            boxed = (Boxed(text, DIGIT_KIND, box, decision.confidence),) if box is not None else ()
    if scale_in_file != 1.0:
        reading = _scaled_reading(reading, scale_in_file)
        boxed = tuple(dataclasses.replace(item, box=_scaled_box(item.box, scale_in_file)) for item in boxed)
    return Look(kind, text, confidence, reason, decision.digit, probabilities, prepared, reading, seen, tuple(boxed))


def _number_boxes(classifier, reading: Reading, view) -> tuple[Boxed, ...]:
    """A number's digits and separators (a space is no mark: no box), left to right; with the line model's
    view of the line, each box fitted to the strokes that are its own (`_fitted_to_pieces`)."""
    characters = getattr(reading, "characters", None)
    if characters is None:  # a reader of digits only
        boxed = tuple(Boxed(classifier.class_names[digit.digit], DIGIT_KIND, digit.box,
                            float(digit.probabilities[digit.digit])) for digit in reading.digits)
    else:
        boxed = tuple(Boxed(character.character, character.kind, character.box, character.confidence)
                      for character in characters if character.kind != SPACE_KIND)
    if view is None or view.line is None or not boxed:
        return boxed
    fitted = _fitted_to_pieces(view.line, [item.box for item in boxed])
    return tuple(dataclasses.replace(item, box=box) for item, box in zip(boxed, fitted, strict=True))


def _fitted_to_pieces(line, boxes) -> list[tuple[int, int, int, int]]:
    """Boxes of a line read by the line model (picture pixels) fitted to its strokes.

    The line model's boxes split the line's ink at the midpoints between characters, so a stroke that
    reaches past the midpoint (a 4's bar towards the next digit) is cut off its box and lies in the
    neighbour's. Here each connected stroke (`LineInk.pieces`) with at least OWN_PIECE of its columns in
    one box is wholly that box's and no other's; a stroke shared more evenly (digits that touch) is cut at
    the boxes' edges. A box with no stroke keeps its place."""
    labels, working = line.labels, [_working_box(line, box) for box in boxes]
    extents: list[list[int] | None] = [None] * len(boxes)  # [left, top, right, bottom] in working pixels
    for label, rows, columns in line.pieces:
        width = columns.stop - columns.start
        overlaps = [max(0, min(columns.stop, right) - max(columns.start, left)) for left, _, right, _ in working]
        owner = int(np.argmax(overlaps))
        for index, overlap in enumerate(overlaps):
            if overlap <= 0 or (overlaps[owner] >= OWN_PIECE * width and index != owner):
                continue
            if overlaps[owner] >= OWN_PIECE * width:  # the whole stroke
                extent = [columns.start, rows.start, columns.stop, rows.stop]
            else:  # its part within this box
                left, right = max(columns.start, working[index][0]), min(columns.stop, working[index][2])
                mask = labels[rows, left:right] == label
                inked_rows, inked_columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
                if not len(inked_rows):
                    continue
                extent = [left + int(inked_columns[0]), rows.start + int(inked_rows[0]),
                          left + int(inked_columns[-1]) + 1, rows.start + int(inked_rows[-1]) + 1]
            known = extents[index]
            extents[index] = extent if known is None else [min(known[0], extent[0]), min(known[1], extent[1]),
                                                           max(known[2], extent[2]), max(known[3], extent[3])]
    return [box if extent is None else picture_box(extent, line.scale, line.offset, 1.0)
            for box, extent in zip(boxes, extents, strict=True)]


def _working_box(line, box) -> tuple[int, int, int, int]:
    """A box in the picture's pixels -> in the line's working pixels (the inverse of `images.picture_box`)."""
    left, top, right, bottom = ((value - offset) / line.scale for value, offset in zip(
        box, (line.offset[0], line.offset[1]) * 2, strict=True))
    return math.floor(left), math.floor(top), math.ceil(right), math.ceil(bottom)


def _seen_number(classifier, picture, reading: Reading, boxed: tuple[Boxed, ...], view) -> Seen:
    """What the reader was shown: the line model's strip with each character's box, or (a reader that cuts
    the line into digits) each digit framed like MNIST, side by side."""
    if view is not None:
        if view.strip is None:
            return Seen(SEEN_LINE, np.zeros((STRIP_HEIGHT, STRIP_HEIGHT), np.float32))
        used = view.strip.pixels[:, :view.strip.used]  # (STRIP_HEIGHT, used): the padding after the line left out
        return Seen(SEEN_LINE, used, tuple(_strip_box(view, item.box) for item in boxed))
    candidates = line_candidates(picture, even_cuts=rejection.refusal_class(classifier.class_names) is not None)
    where = {box: index for index, box in enumerate(candidates.boxes)}
    framed = [candidates.framed[where[digit.box]] for digit in reading.digits if digit.box in where]
    size = framed[0].shape[1] if framed else 28
    pixels = np.zeros((size, max(1, len(framed) * (size + TILE_GAP) - TILE_GAP)), np.float32)  # (28, width)
    boxes = []
    for index, image in enumerate(framed):
        left = index * (size + TILE_GAP)
        pixels[:, left:left + size] = image
        boxes.append((left, 0, left + size, size))
    return Seen(SEEN_DIGITS, pixels, tuple(boxes))


def _strip_box(view, box) -> tuple[int, int, int, int]:
    """A box in the picture's pixels -> in the line model's strip (as `line_strip` scaled the line into it)."""
    line, strip = view.line, view.strip
    rows, _ = pieces_box(line)
    row_scale = (STRIP_HEIGHT - 2 * STRIP_MARGIN) / (rows.stop - rows.start)
    left, top, right, bottom = ((value - offset) / line.scale for value, offset in zip(
        box, (line.offset[0], line.offset[1]) * 2, strict=True))
    width = strip.used
    strip_left = int(np.clip(np.floor(STRIP_MARGIN + (left - strip.left) * strip.column_scale), 0, width - 1))
    strip_right = int(np.clip(np.ceil(STRIP_MARGIN + (right - strip.left) * strip.column_scale), strip_left + 1, width))
    strip_top = int(np.clip(np.floor(STRIP_MARGIN + (top - rows.start) * row_scale), 0, STRIP_HEIGHT - 1))
    strip_bottom = int(np.clip(np.ceil(STRIP_MARGIN + (bottom - rows.start) * row_scale), strip_top + 1, STRIP_HEIGHT))
    return strip_left, strip_top, strip_right, strip_bottom


def _ink_box(picture) -> tuple[int, int, int, int] | None:
    """The box (x0, y0, x1, y1) of all the ink in a picture, in its pixels (found as for one digit); None if none."""
    pixels, scale = working_pixels(picture)
    ink = extract_ink(pixels)
    if ink is None:
        return None
    left, top, right, bottom = ink_box(ink)
    return (math.floor(left * scale), math.floor(top * scale), math.ceil(right * scale), math.ceil(bottom * scale))


def _scaled_box(box, scale: float) -> tuple[int, int, int, int]:
    """A box in decoded pixels -> in the file's pixels (`scale` per decoded pixel)."""
    return (math.floor(box[0] * scale), math.floor(box[1] * scale), math.ceil(box[2] * scale), math.ceil(box[3] * scale))


def _scaled_reading(reading: Reading, scale: float) -> Reading:
    """The reading with its boxes in the file's pixels (`scale` per decoded pixel)."""
    digits = tuple(dataclasses.replace(digit, box=_scaled_box(digit.box, scale)) for digit in reading.digits)
    characters = getattr(reading, "characters", None)
    if characters is None:
        return dataclasses.replace(reading, digits=digits)
    characters = tuple(dataclasses.replace(character, box=_scaled_box(character.box, scale)) for character in characters)
    return dataclasses.replace(reading, digits=digits, characters=characters)


def _reading_dict(reading: Reading) -> dict[str, Any]:
    """`Reading.to_dict`, each digit's, separator's and the whole reading's probability also as text."""
    values = reading.to_dict()
    values["confidence_text"] = format_probability(reading.confidence)
    for digit, shown in zip(reading.digits, values["digits"], strict=True):
        shown["confidence_text"] = format_probability(digit.probabilities[digit.digit])
    for character, shown in zip(getattr(reading, "characters", None) or (), values.get("characters", ()), strict=True):
        shown["confidence_text"] = format_probability(min(1.0, max(0.0, character.confidence)))
    return values


def _short(value) -> float:
    value = float(value)
    return float(f"{value:.6g}") if np.isfinite(value) else 0.0
