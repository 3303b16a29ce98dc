"""Read a line with the line model (`training/line_model.py`): the whole strip at once, no cuts.

The model says for every 4 columns of the strip (COLUMNS_PER_STEP) which digit or separator ("." ","
"-" "/" ":") is there, or CTC's blank; the greedy CTC decoding keeps each run of one class (and drops
the blanks between): a run is one character read. Its probabilities are the model's at the run's
surest step, over the ten digits. Its box is the line's ink between the midpoints to the neighbouring
runs, mapped back to the picture's pixels. A gap between two digits' boxes of at least SPACE_GAP line
heights is a space. A strip wider than the model is shown at once is read in windows cut at its gaps.

    line_reader = LineReader(network, "runs/reader/line_model.keras")  # see loading.load_line_reader
    runs = line_reader.read_strips([strip.pixels])[0]  # [DigitRun(digit, first_step, last_step, ...)]
    reading = line_reader.read("meter.jpg", classifier, min_confidence=0.5)
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from digitlab.data.framing import fit_in_frame
from digitlab.data.line_strip import (
    STRIP_HEIGHT,
    STRIP_MARGIN,
    STRIP_STEP,
    STRIP_STRETCH,
    LineInk,
    Strip,
    find_line_ink,
    line_strip,
    pieces_box,
    strip_windows,
)
from digitlab.errors import ModelError
from digitlab.inference import rejection
from digitlab.inference.images import Writing, decode_picture_and_scale, find_writing, image_name, picture_box
from digitlab.inference.network import Network
from digitlab.inference.reading import CHARACTER_KINDS, DIGIT, ReadCharacter, ReadDigit, Reading
from digitlab.training.line_model import BLANK, CLASSES, COLUMNS_PER_STEP, DIGIT_CLASSES, SEPARATORS

# Two digits whose boxes are at least this many line heights apart have a space between them. Digits
# written apart leave at most half a line height (data/lines.py APART_GAP); a space, from 0.9 on (SPACE_GAP).
SPACE_GAP = 0.7
# A separator read with less probability than this is taken for the digit the model ranks next, when the
# digits together are at least DIGIT_FALLBACK probable there, else left out: a "1" read as an unsure "/"
# is the commonest invented separator (on tuning lines no benchmark uses: 5 of 600 lines without
# separators got one at 0.55-0.95; 2% of the true separators are read with less than 0.8).
SEPARATOR_CONFIDENCE = 0.8
DIGIT_FALLBACK = 0.05


@dataclasses.dataclass(frozen=True)
class DigitRun:
    """One character the line model read: a digit or a separator, the steps it spans and its probabilities
    over the ten digits."""

    # The digit; -1 for a separator.
    digit: int
    first_step: int
    last_step: int
    # (10,) float32: the model's probabilities over the ten digits at the run's surest step, renormalised.
    probabilities: np.ndarray
    # The probability of this class at that step, blank included: how sure the model is it is there.
    confidence: float
    # The separator read (one of line_model.SEPARATORS); "" for a digit.
    separator: str = ""
    # The probability of any digit at that step (blank and separators left out).
    digit_mass: float = 1.0


class LineReader:
    """A line model, Keras or ONNX (any `Network`). Safe to use from several threads at once."""

    def __init__(self, network: Network, source: str | Path) -> None:
        """Raises:
            ModelError: the network does not take (STRIP_HEIGHT, width, 1) strips or give CLASSES classes per step.
        """
        shape, output_shape = tuple(network.input_shape), tuple(network.output_shape)
        if len(shape) != 4 or shape[1] != STRIP_HEIGHT or shape[3] != 1 or output_shape[-1] not in (CLASSES,
                                                                                                     DIGIT_CLASSES):
            raise ModelError(f"{source}: not a line model (input {shape}, output {output_shape}); "
                             f"a line model takes ({STRIP_HEIGHT}, width, 1) strips and gives {CLASSES} classes "
                             f"per step ({DIGIT_CLASSES} for one that reads digits only)")
        self.network = network
        self.source = str(source)

    def __repr__(self) -> str:
        return f"LineReader({self.source!r})"

    def read_strips(self, strips: list[np.ndarray]) -> list[list[DigitRun]]:
        """The runs (digits and separators) of each (STRIP_HEIGHT, width) strip; windows of one width go to
        the model together. A strip wider than STRIP_WIDEST is read in windows (`line_strip.strip_windows`),
        its runs' steps counted from the strip's first column."""
        windows = [(index, start, window) for index, strip in enumerate(strips)
                   for start, window in strip_windows(strip, COLUMNS_PER_STEP)]
        by_width: dict[int, list[int]] = {}
        for position, (_, _, window) in enumerate(windows):
            by_width.setdefault(window.shape[1], []).append(position)
        decoded: list[list[DigitRun]] = [[] for _ in windows]
        for positions in by_width.values():
            logits = self.network.forward(np.stack([windows[position][2] for position in positions])[..., None])
            for position, row in zip(positions, logits, strict=True):
                decoded[position] = decode_runs(row)
        found: list[list[DigitRun]] = [[] for _ in strips]
        for (index, start, _), runs in zip(windows, decoded, strict=True):
            offset = start // COLUMNS_PER_STEP
            found[index] += [run if not offset else dataclasses.replace(run, first_step=run.first_step + offset,
                                                                        last_step=run.last_step + offset)
                             for run in runs]
        return found

    def digit_evidence(self, prepared: np.ndarray) -> np.ndarray:
        """(N,) for (N, 28, 28) prepared images: the line model's probability of a digit at its surest step
        (one less blank's), each image shown as a strip (`prepared_strip`). A second opinion on a digit
        the classifier names (rejection.DIGIT_EVIDENCE_LEVEL)."""
        strips = [prepared_strip(image) for image in np.asarray(prepared, dtype=np.float32)]
        evidence = np.zeros(len(strips), dtype=np.float32)
        by_width: dict[int, list[int]] = {}
        for index, strip in enumerate(strips):
            by_width.setdefault(strip.shape[1], []).append(index)
        for indices in by_width.values():
            logits = self.network.forward(np.stack([strips[index] for index in indices])[..., None])
            logits = logits - logits.max(axis=2, keepdims=True)
            exponentials = np.exp(logits)
            digits = exponentials[..., BLANK + 1:DIGIT_CLASSES].sum(axis=2) / exponentials.sum(axis=2)
            evidence[indices] = digits.max(axis=1)
        return evidence

    def read(self, image, classifier, min_confidence: float, digits_only: bool = False) -> Reading:
        """Read one picture's line (see `reading.read_number`); `classifier` may refuse a lone digit
        (see `without_lone_marks`); with `digits_only`, separators and spaces are left out."""
        view = view_line(image)
        runs = self.read_strips([view.strip.pixels])[0] if view.strip is not None else []
        reading = reading_from_runs(view, without_lone_marks(classifier, [view], [runs])[0], min_confidence)
        return reading.digits_only() if digits_only else reading


def prepared_strip(prepared: np.ndarray) -> np.ndarray:
    """A (28, 28) prepared image (framed like MNIST) as the line model's strip: its ink box scaled to the strip's
    inner rows, columns stretched by STRIP_STRETCH, as `line_strip` scales a line; (STRIP_HEIGHT, 64 or 128)."""
    from PIL import Image

    rows = np.flatnonzero(prepared.max(axis=1) > rejection.INK_LEVEL)
    columns = np.flatnonzero(prepared.max(axis=0) > rejection.INK_LEVEL)
    strip = np.zeros((STRIP_HEIGHT, STRIP_STEP), dtype=np.float32)
    if len(rows) == 0:
        return strip
    crop = np.ascontiguousarray(prepared[rows[0]:rows[-1] + 1, columns[0]:columns[-1] + 1], dtype=np.float32)
    inner = STRIP_HEIGHT - 2 * STRIP_MARGIN
    width = min(2 * STRIP_STEP - 2 * STRIP_MARGIN, max(1, round(crop.shape[1] * STRIP_STRETCH * inner / crop.shape[0])))
    if width > STRIP_STEP - 2 * STRIP_MARGIN:
        strip = np.zeros((STRIP_HEIGHT, 2 * STRIP_STEP), dtype=np.float32)
    scaled = np.asarray(Image.fromarray(crop, mode="F").resize((width, inner), Image.Resampling.BILINEAR))
    strip[STRIP_MARGIN:STRIP_MARGIN + inner, STRIP_MARGIN:STRIP_MARGIN + width] = np.clip(scaled, 0.0, 1.0)
    return strip


def decode_runs(logits: np.ndarray) -> list[DigitRun]:
    """Greedy CTC decoding of (steps, classes) logits: each run of one non-blank class is one digit (classes
    1-10) or one separator (classes 11 on: line_model.SEPARATORS)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    probabilities = np.exp(shifted)
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    best = probabilities.argmax(axis=1)
    runs, step = [], 0
    while step < len(best):
        if best[step] == BLANK:
            step += 1
            continue
        end = step
        while end + 1 < len(best) and best[end + 1] == best[step]:
            end += 1
        surest = step + int(probabilities[step:end + 1, best[step]].argmax())
        digits = probabilities[surest, 1:DIGIT_CLASSES]
        separator = SEPARATORS[best[step] - DIGIT_CLASSES] if best[step] >= DIGIT_CLASSES else ""
        runs.append(DigitRun(-1 if separator else int(best[step]) - 1, step, end,
                             (digits / digits.sum()).astype(np.float32), float(probabilities[surest, best[step]]),
                             separator, float(digits.sum())))
        step = end + 1
    return runs


def run_boxes(line: LineInk, strip: Strip, runs: list[DigitRun]) -> list[tuple[int, int, int, int]]:
    """Each run's box (x0, y0, x1, y1) in working pixels: the line's ink between the midpoints to its
    neighbours' runs (the whole run's columns when no ink is there)."""
    if not runs:
        return []
    centres = [(run.first_step + run.last_step + 1) / 2 * COLUMNS_PER_STEP for run in runs]
    edges = [0.0, *[(left + right) / 2 for left, right in zip(centres, centres[1:], strict=False)], float(strip.used)]
    inked = line.labels > 0
    boxes = []
    for start, stop in zip(edges, edges[1:], strict=False):
        left = max(0, int(np.floor(strip.left + (start - STRIP_MARGIN) / strip.column_scale)))
        right = min(inked.shape[1], int(np.ceil(strip.left + (stop - STRIP_MARGIN) / strip.column_scale)))
        right = max(right, left + 1)
        region = inked[:, left:right]
        rows, columns = np.flatnonzero(region.any(axis=1)), np.flatnonzero(region.any(axis=0))
        if len(rows) == 0:
            all_rows = np.flatnonzero(inked.any(axis=1))
            boxes.append((left, int(all_rows[0]), right, int(all_rows[-1]) + 1))
            continue
        boxes.append((left + int(columns[0]), int(rows[0]), left + int(columns[-1]) + 1, int(rows[-1]) + 1))
    return boxes


@dataclasses.dataclass(frozen=True, eq=False)
class LineView:
    """A picture's line, ready for the line model: its ink, its strip, and file pixels per picture pixel."""

    line: LineInk | None  # None: nothing to read (no ink, or only a bar or a dot)
    strip: Strip | None
    file_scale: float
    # Where the writing was found in the picture (`images.find_writing`): the line's pixels are its crop's.
    writing: Writing | None = None


def view_line(image) -> LineView:
    """Decode a picture (path, file object, PIL image or array) and find its line's ink and strip.

    Raises:
        ImageError: unreadable or too large.
    """
    picture, scale_in_file = decode_picture_and_scale(image, image_name(image))
    writing = find_writing(picture)  # a photo's sheet: the writing on it, turned straight, printed lines out
    line = find_line_ink(writing.picture)
    return LineView(line, line_strip(line) if line is not None else None, scale_in_file, writing)


def reading_from_runs(view: LineView, runs: list[DigitRun], min_confidence: float) -> Reading:
    """The `Reading` of a line from its runs: digits and separators below `min_confidence` are left out, and a
    gap of SPACE_GAP line heights or more between two digits' boxes is a space."""
    if view.line is None or not runs:
        return Reading("", (), 0.0, ())
    runs = [settled for run in runs if (settled := _settled(run)) is not None]
    kept = [run for run in runs if run.confidence >= min_confidence]
    if not any(not run.separator for run in kept):
        return Reading("", (), 0.0, ())  # separators alone are no number
    line = view.line
    boxes = run_boxes(line, view.strip, kept)

    def in_picture(box):
        return picture_box(box, line.scale, line.offset, view.file_scale, view.writing)

    # Marks before the first digit or after the last are no separators (a stray point, a dash under the line).
    first = next(index for index, run in enumerate(kept) if not run.separator)
    last = max(index for index, run in enumerate(kept) if not run.separator)
    characters, digits = [], []
    for index in range(first, last + 1):
        run, box = kept[index], boxes[index]
        if index > first and not run.separator and not kept[index - 1].separator:
            gap = (boxes[index - 1][2], min(boxes[index - 1][1], box[1]), box[0], max(boxes[index - 1][3], box[3]))
            if gap[2] - gap[0] >= SPACE_GAP * line.line_height:
                characters.append(ReadCharacter(" ", CHARACTER_KINDS[" "], in_picture(gap), 1.0))
        if run.separator:
            characters.append(ReadCharacter(run.separator, CHARACTER_KINDS[run.separator], in_picture(box),
                                            run.confidence))
        else:
            digits.append(ReadDigit(run.digit, in_picture(box), run.probabilities))
            characters.append(ReadCharacter(str(run.digit), DIGIT, digits[-1].box, run.confidence))
    confidence = float(np.prod([run.confidence for run in kept[first:last + 1]]))
    return Reading("".join(character.character for character in characters), tuple(digits), confidence,
                   tuple(characters))


def _settled(run: DigitRun) -> DigitRun | None:
    """A separator read with less than SEPARATOR_CONFIDENCE: its most probable digit instead (when the digits
    hold at least DIGIT_FALLBACK there), else None; any other run as it is."""
    if not run.separator or run.confidence >= SEPARATOR_CONFIDENCE:
        return run
    if run.digit_mass < DIGIT_FALLBACK:
        return None
    digit = int(run.probabilities.argmax())
    return dataclasses.replace(run, digit=digit, separator="",
                               confidence=float(run.digit_mass * run.probabilities[digit]))


def without_lone_marks(classifier, views: list[LineView], runs: list[list[DigitRun]]) -> list[list[DigitRun]]:
    """The runs, with a lone digit read from a picture the classifier calls "not a digit" taken away.

    The line model never saw a letter alone in training as often as the classifier did: where it reads
    exactly one digit, the classifier (when it has the "not a digit" class) looks at the whole ink too,
    framed like MNIST, and its refusal wins. The classifiers of the same picture go in one batch."""
    if rejection.refusal_class(classifier.class_names) is None:
        return runs
    lone = [index for index, found in enumerate(runs)
            if sum(not run.separator for run in found) == 1 and views[index].line is not None]
    if not lone:
        return runs
    framed = np.stack([fit_in_frame(_line_ink_alone(views[index].line)) for index in lone])
    decisions = classifier.decide(classifier.probabilities(framed), framed, min_confidence=0.0)
    refused = {index for index, decision in zip(lone, decisions, strict=True) if decision.reason == rejection.NOT_A_DIGIT}
    return [[] if index in refused else found for index, found in enumerate(runs)]


def _line_ink_alone(line: LineInk) -> np.ndarray:
    """The line's ink with specks blanked, cropped to its pieces' box (light on dark, as fit_in_frame takes)."""
    box = pieces_box(line)
    return np.where(line.labels[box] > 0, line.ink[box], 0.0).astype(np.float32)
