"""Read a line of handwritten digits: "2026" from a photo, a scan or a drawing.

A classifier with a line reader (a run with a line model: the `reader` recipes) hands the picture to
it (`line_reading.LineReader.read`: the whole line at once, no cuts). Any other reads here, by
segmentation in front of its digit classifier:

1. The picture's line is found as the line model's is (`data/line_strip.find_line_ink`: a working
   size, the ink separated from the paper as for one digit, specks dropped; a bar or a dot is no line).
2. The ink is cut into pieces: connected strokes, with specks dropped and pieces stacked above one
   another (a "5" whose bar came loose) joined. A piece wider than a digit (neighbours that touch or
   overlap) gets candidate cuts at the low points of its column profile.
3. Every way of grouping consecutive parts into digits is a path through a small graph; each group
   is framed like MNIST and classified, all of them in one batch, and the path whose digits the
   model believes most (the sum of the log-probabilities of each group's best digit, with a prior
   on digit width) wins. A model with a "not a digit" class says so for halves and pairs of digits,
   which is what steers the path; its refusals (letters, marks) are left out of the text.

    reading = read_number(classifier, "meter.jpg")
    reading.text, reading.confidence, [digit.box for digit in reading.digits]
    [(character.character, character.kind) for character in reading.characters]  # "1", "digit"; ".", "point"

Only a reader's line model reads separators (".", ",", "-", "/", ":") and spaces; segmentation reads digits.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from digitlab.data.framing import fit_in_frame
from digitlab.data.line_strip import find_line_ink
from digitlab.errors import ImageError
from digitlab.inference import rejection
from digitlab.inference.images import decode_picture, file_scale, find_writing, image_name, picture_box

# Pieces wider than this many line heights may hold several digits and get candidate cuts, at
# least CUT_SPACING line heights apart and CUT_MARGIN from the piece's ends.
CUT_WIDTH = 0.75
CUT_SPACING = 0.12
CUT_MARGIN = 0.15
# Between two such cuts, parts wider than this many line heights are cut evenly: touching digits,
# slanted or joined by a long stroke, need not have a low column where they meet.
WIDEST_PART = 0.3
# A group of parts wider than this many line heights is not one digit.
WIDEST_DIGIT = 1.2
# Separate pieces further apart than this many line heights are never one digit.
JOIN_GAP = 0.12
# Parts per candidate digit at most.
MOST_PARTS = 6
# The longest numbers read (the ink is refused beyond, as not one line of digits).
MOST_DIGITS = 16


@dataclasses.dataclass(frozen=True)
class ReadDigit:
    """One digit of a number read."""

    # The digit (class index).
    digit: int
    # (x0, y0, x1, y1) in the picture's own pixels, x1 and y1 exclusive.
    box: tuple[int, int, int, int]
    # The model's probabilities for this digit's image, (classes,).
    probabilities: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        return {"digit": self.digit, "box": list(self.box),
                "probabilities": [float(f"{value:.6g}") for value in self.probabilities]}


# What each character of a reading is: a digit, one of the separators people write between digits, a space.
CHARACTER_KINDS = {".": "point", ",": "comma", "-": "dash", "/": "slash", ":": "colon", " ": "space"}
DIGIT = "digit"


@dataclasses.dataclass(frozen=True)
class ReadCharacter:
    """One character of a number read: a digit, a separator ("." "," "-" "/" ":") or a space."""

    # The character as it appears in the text ("7", ".", " ").
    character: str
    # "digit", or what the mark is (CHARACTER_KINDS: point, comma, dash, slash, colon, space).
    kind: str
    # (x0, y0, x1, y1) in the picture's own pixels, x1 and y1 exclusive; a space's box is the gap.
    box: tuple[int, int, int, int]
    # How sure the model is of it (a space, measured from the gap, is 1).
    confidence: float

    def to_dict(self) -> dict[str, Any]:
        return {"character": self.character, "kind": self.kind, "box": list(self.box),
                "confidence": float(f"{self.confidence:.6g}")}


@dataclasses.dataclass(frozen=True)
class Reading:
    """A number read from one picture."""

    # The characters read, left to right: digits and the separators between them ("12.50"; "" when none).
    text: str
    # Each digit with its box and probabilities (never a separator).
    digits: tuple[ReadDigit, ...]
    # How sure the whole reading is: the product of each digit's and separator's probability (0 when
    # nothing was read).
    confidence: float
    # Every character of the text with its box and kind; None for a reading of digits only (`digits_only`).
    characters: tuple[ReadCharacter, ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        values = {"text": self.text, "digits": [digit.to_dict() for digit in self.digits],
                  "confidence": float(f"{self.confidence:.6g}")}
        if self.characters is not None:
            values["characters"] = [character.to_dict() for character in self.characters]
        return values

    def digits_only(self) -> Reading:
        """The reading as it was before separators were read: the digits alone, their confidence, no characters."""
        if self.characters is None:
            return self
        digits = [character for character in self.characters if character.kind == DIGIT]
        confidence = float(np.prod([character.confidence for character in digits])) if digits else 0.0
        return Reading("".join(character.character for character in digits), self.digits, confidence)


@dataclasses.dataclass(frozen=True)
class _Part:
    """A vertical slice of one piece of ink: the unit candidate digits are made of."""

    left: int  # columns [left, right) in working pixels
    right: int
    mask: np.ndarray  # (rows, right - left) bool: its piece's strokes in these columns
    piece: int  # which piece (connected strokes, stacked ones joined) it was cut from, left to right


def read_number(classifier, image, min_confidence: float = rejection.DEFAULT_MIN_CONFIDENCE,
                digits_only: bool = False) -> Reading:
    """Read one line of handwritten digits, with the separators written between them when the classifier has a
    line model that reads them ("12.50", "2024-12-06", "555 0199").

    Args:
        classifier: a loaded `Classifier` (any run; one with a "not a digit" class reads best).
        image: a path, a binary file object, a PIL image, or an array (rows, columns[, channels]).
        min_confidence: digits whose best probability is below this are left out of the text.
        digits_only: leave separators and spaces out (`Reading.digits_only`).

    Raises:
        ImageError: unreadable or too large (a blank picture reads as "").
    """
    rejection.check_min_confidence(min_confidence)
    line_reader = getattr(classifier, "line_reader", None)
    if line_reader is not None:  # the run has a line model (line_reading.LineReader): it reads the whole line at once
        return line_reader.read(image, classifier, min_confidence, digits_only=digits_only)
    candidates = line_candidates(image, even_cuts=rejection.refusal_class(classifier.class_names) is not None)
    probabilities = classifier.probabilities(candidates.framed) if candidates.groups else None
    reading = decode_line(classifier, candidates, probabilities, min_confidence)
    return reading.digits_only() if digits_only else reading


@dataclasses.dataclass(frozen=True, eq=False)
class LineCandidates:
    """Every way a picture's ink could be cut into digits, framed like MNIST, before the model is asked.
    Plain arrays: it can be made in a worker process and sent back."""

    # Candidate digits, (G, 28, 28) float32, and the range of parts [start, stop) each is made of.
    framed: np.ndarray
    groups: tuple[tuple[int, int], ...]
    # Each candidate's box (x0, y0, x1, y1) in the picture's pixels, and its width in line heights.
    boxes: tuple[tuple[int, int, int, int], ...]
    widths: tuple[float, ...]
    # How many parts the ink was cut into (every path covers them all).
    part_count: int


def line_candidates(image, even_cuts: bool = True) -> LineCandidates:
    """The ink of a picture cut into parts, and every group of parts that could be one digit, framed.

    Args:
        even_cuts: also cut wide pieces every WIDEST_PART line heights between their low columns. Only
            for a model with a "not a digit" class: a ten-class model names the pieces of a digit too.

    Raises:
        ImageError: unreadable, too large, or too much ink to be one line of digits.
    """
    name = image_name(image)
    picture = decode_picture(image, name)
    scale_in_file = file_scale(image, picture)
    writing = find_writing(picture)  # a photo's sheet: the writing on it, turned straight, printed lines out
    line = find_line_ink(writing.picture)
    if line is None:
        return LineCandidates(np.zeros((0, 28, 28), np.float32), (), (), (), 0)
    ink, labels, pieces, line_height = line.ink, line.labels, line.pieces, line.line_height
    scale, offset = line.scale, line.offset
    parts = _parts(ink, labels, pieces, line_height, even_cuts)
    if len(parts) > 4 * MOST_DIGITS:
        raise ImageError(f"{name}: too much ink to be one line of digits ({len(parts)} pieces); crop it to "
                         "the number")
    groups = _candidate_groups(parts, line_height)
    crops = [_group_ink(ink, parts[start:stop]) for start, stop in groups]
    boxes = tuple(picture_box((left, top, right, bottom), scale, offset, scale_in_file, writing)
                  for _, (left, top, right, bottom) in crops)
    widths = tuple((right - left) / line_height for _, (left, _, right, _) in crops)
    framed = np.stack([fit_in_frame(crop) for crop, _ in crops])  # (groups, 28, 28)
    return LineCandidates(framed, tuple(groups), boxes, widths, len(parts))


def decode_line(classifier, candidates: LineCandidates, probabilities: np.ndarray | None,
                min_confidence: float = rejection.DEFAULT_MIN_CONFIDENCE) -> Reading:
    """The reading the model's `probabilities` (G, classes) for the candidates support best."""
    if not candidates.groups:
        return Reading("", (), 0.0, ())
    decisions = classifier.decide(probabilities, candidates.framed, min_confidence=0.0)
    chosen = _best_path(candidates, decisions, probabilities, classifier)
    digits = []
    for group_index in chosen:
        decision = decisions[group_index]
        if decision.digit is None or decision.confidence < min_confidence:
            continue  # a mark, a letter or a piece the model does not take for a digit
        digits.append(ReadDigit(decision.digit, candidates.boxes[group_index], probabilities[group_index]))
    text = "".join(classifier.class_names[digit.digit] for digit in digits)
    confidence = float(np.prod([digit.probabilities[digit.digit] for digit in digits])) if digits else 0.0
    characters = tuple(ReadCharacter(classifier.class_names[digit.digit], DIGIT, digit.box,
                                     float(digit.probabilities[digit.digit])) for digit in digits)
    return Reading(text, tuple(digits), confidence, characters)


def _parts(ink: np.ndarray, labels: np.ndarray, pieces, line_height: float, even_cuts: bool) -> list[_Part]:
    """The pieces, joined when stacked, cut at candidate columns when wider than a digit; left to right."""
    merged: list[list] = []  # [labels, left, right] of joined pieces
    for label, _, columns in sorted(pieces, key=lambda piece: (piece[2].start + piece[2].stop) / 2):
        if merged:
            previous = merged[-1]
            overlap = min(previous[2], columns.stop) - max(previous[1], columns.start)
            narrower = min(previous[2] - previous[1], columns.stop - columns.start)
            if overlap > 0.6 * narrower:  # one above the other: parts of one digit (or of two overlapping ones)
                previous[0].append(label)
                previous[1], previous[2] = min(previous[1], columns.start), max(previous[2], columns.stop)
                continue
        merged.append([[label], columns.start, columns.stop])
    parts = []
    for piece, (group_labels, left, right) in enumerate(merged):
        mask = np.isin(labels[:, left:right], group_labels)  # (rows, width): this piece alone
        edges = [left, *_cut_columns(ink, mask, left, right, line_height, even_cuts), right]
        parts.extend(_Part(start, stop, mask[:, start - left:stop - left], piece)
                     for start, stop in zip(edges, edges[1:], strict=False))
    return parts


def _cut_columns(ink, mask: np.ndarray, left: int, right: int, line_height: float, even_cuts: bool) -> list[int]:
    """Candidate cuts inside a piece wider than a digit: columns where little ink crosses, a local minimum."""
    width = right - left
    if width <= CUT_WIDTH * line_height:
        return []
    profile = (ink[:, left:right] * mask).sum(axis=0)  # (width,)
    smooth = np.convolve(profile, np.ones(3, dtype=np.float32) / 3.0, mode="same")
    spacing = max(2, int(CUT_SPACING * line_height))
    margin = max(2, int(CUT_MARGIN * line_height))
    candidates = []
    for column in range(margin, width - margin):
        window = smooth[max(0, column - spacing):column + spacing + 1]
        # Without even cuts (a ten-class model), only columns with clearly less ink than the piece's most.
        lowest = smooth[column] <= window.min() + 1e-6 and (even_cuts or smooth[column] < 0.6 * smooth.max())
        if lowest and (not candidates or column - candidates[-1] >= spacing):
            candidates.append(column)
    if not even_cuts:
        return [left + column for column in candidates]
    edges = [0, *candidates, width]
    cuts = []
    for start, stop in zip(edges, edges[1:], strict=False):
        pieces = math.ceil((stop - start) / (WIDEST_PART * line_height))
        cuts.extend(start + round(index * (stop - start) / pieces) for index in range(1, pieces))
        cuts.append(stop)
    return [left + column for column in cuts[:-1]]


def _candidate_groups(parts: list[_Part], line_height: float) -> list[tuple[int, int]]:
    """(start, stop) ranges of consecutive parts that could be one digit: narrow enough, few parts."""
    groups = []
    for start in range(len(parts)):
        for stop in range(start + 1, min(len(parts), start + MOST_PARTS) + 1):
            left, right = parts[start].left, max(part.right for part in parts[start:stop])
            if stop > start + 1 and right - left > WIDEST_DIGIT * line_height:
                break
            previous, last = parts[stop - 2], parts[stop - 1]
            if stop > start + 1 and last.piece != previous.piece and last.left - previous.right > JOIN_GAP * line_height:
                break  # separate pieces with paper between them: separate digits
            groups.append((start, stop))
    return groups


def _group_ink(ink: np.ndarray, parts: list[_Part]) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The ink of some parts alone (other pieces blanked), cropped to its box; and the box in working pixels."""
    left, right = min(part.left for part in parts), max(part.right for part in parts)
    mask = np.zeros((ink.shape[0], right - left), dtype=bool)
    for part in parts:
        mask[:, part.left - left:part.right - left] |= part.mask
    rows = np.flatnonzero(mask.any(axis=1))
    columns = np.flatnonzero(mask.any(axis=0))
    top, bottom = int(rows[0]), int(rows[-1]) + 1
    column_start, column_stop = int(columns[0]), int(columns[-1]) + 1
    crop = np.where(mask, ink[:, left:right], 0.0)[top:bottom, column_start:column_stop].astype(np.float32)
    return crop, (left + column_start, top, left + column_stop, bottom)


def _best_path(candidates: LineCandidates, decisions, probabilities, classifier) -> list[int]:
    """Indices of the candidate groups that cover the parts left to right with the highest total score."""
    refuse_index = rejection.refusal_class(classifier.class_names)
    groups, part_count = candidates.groups, candidates.part_count
    scores = []
    for index, decision in enumerate(decisions):
        belief = decision.confidence if refuse_index is None else \
            decision.confidence * (1.0 - float(probabilities[index, refuse_index]))
        if decision.reason == rejection.SEVERAL_DIGITS:
            belief *= 0.01  # as wide as two digits: cut it if any cut reads well
        # Digits are about 0.2-1.0 line heights wide; wider groups are likely two digits.
        prior = -4.0 * max(0.0, candidates.widths[index] - 1.0)
        scores.append(math.log(max(belief, 1e-6)) + prior)
    best = [-math.inf] * (part_count + 1)
    came_from: list[int | None] = [None] * (part_count + 1)
    best[0] = 0.0
    by_start: dict[int, list[int]] = {}
    for index, (start, _) in enumerate(groups):
        by_start.setdefault(start, []).append(index)
    for start in range(part_count):
        if best[start] == -math.inf:
            continue
        for index in by_start.get(start, []):
            stop = groups[index][1]
            if best[start] + scores[index] > best[stop]:
                best[stop], came_from[stop] = best[start] + scores[index], index
    chosen, position = [], part_count
    while position > 0:
        index = came_from[position]
        chosen.append(index)
        position = groups[index][0]
    return chosen[::-1]
