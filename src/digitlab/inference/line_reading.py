"""Read a line with the line model (`training/line_model.py`): the whole strip at once, no cuts.

The model says for every 4 columns of the strip (COLUMNS_PER_STEP) which digit is there, or CTC's blank; the greedy CTC
decoding keeps each run of one digit (and drops the blanks between): a run is one digit read. Its
probabilities are the model's at the run's surest step, over the ten digits. Its box is the line's
ink between the midpoints to the neighbouring runs, mapped back to the picture's pixels.

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
)
from digitlab.errors import ModelError
from digitlab.inference import rejection
from digitlab.inference.images import decode_picture_and_scale, image_name, picture_box
from digitlab.inference.network import Network
from digitlab.inference.reading import ReadDigit, Reading
from digitlab.training.line_model import BLANK, CLASSES, COLUMNS_PER_STEP


@dataclasses.dataclass(frozen=True)
class DigitRun:
    """One digit the line model read: the steps it spans and its probabilities over the ten digits."""

    digit: int
    first_step: int
    last_step: int
    # (10,) float32: the model's probabilities at the run's surest step, blank left out and renormalised.
    probabilities: np.ndarray
    # The probability of this digit at that step, blank included: how sure the model is it is there.
    confidence: float


class LineReader:
    """A line model, Keras or ONNX (any `Network`). Safe to use from several threads at once."""

    def __init__(self, network: Network, source: str | Path) -> None:
        """Raises:
            ModelError: the network does not take (STRIP_HEIGHT, width, 1) strips or give CLASSES classes per step.
        """
        shape, output_shape = tuple(network.input_shape), tuple(network.output_shape)
        if len(shape) != 4 or shape[1] != STRIP_HEIGHT or shape[3] != 1 or output_shape[-1] != CLASSES:
            raise ModelError(f"{source}: not a line model (input {shape}, output {output_shape}); "
                             f"a line model takes ({STRIP_HEIGHT}, width, 1) strips and gives {CLASSES} classes per step")
        self.network = network
        self.source = str(source)

    def __repr__(self) -> str:
        return f"LineReader({self.source!r})"

    def read_strips(self, strips: list[np.ndarray]) -> list[list[DigitRun]]:
        """The digit runs of each (STRIP_HEIGHT, width) strip; strips of one width go to the model together."""
        by_width: dict[int, list[int]] = {}
        for index, strip in enumerate(strips):
            by_width.setdefault(strip.shape[1], []).append(index)
        found: list[list[DigitRun]] = [[] for _ in strips]
        for indices in by_width.values():
            logits = self.network.forward(np.stack([strips[index] for index in indices])[..., None])
            for index, row in zip(indices, logits, strict=True):
                found[index] = decode_runs(row)
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
            blank = np.exp(logits[..., BLANK]) / np.exp(logits).sum(axis=2)
            evidence[indices] = (1.0 - blank).max(axis=1)
        return evidence

    def read(self, image, classifier, min_confidence: float) -> Reading:
        """Read one picture's line (see `reading.read_number`); `classifier` may refuse a lone digit
        (see `without_lone_marks`)."""
        view = view_line(image)
        runs = self.read_strips([view.strip.pixels])[0] if view.strip is not None else []
        return reading_from_runs(view, without_lone_marks(classifier, [view], [runs])[0], min_confidence)


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
    """Greedy CTC decoding of (steps, 11) logits: each run of one non-blank class is one digit."""
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
        digits = probabilities[surest, 1:]
        runs.append(DigitRun(int(best[step]) - 1, step, end, (digits / digits.sum()).astype(np.float32),
                             float(probabilities[surest, best[step]])))
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


def view_line(image) -> LineView:
    """Decode a picture (path, file object, PIL image or array) and find its line's ink and strip.

    Raises:
        ImageError: unreadable or too large.
    """
    picture, scale_in_file = decode_picture_and_scale(image, image_name(image))
    line = find_line_ink(picture)
    return LineView(line, line_strip(line) if line is not None else None, scale_in_file)


def reading_from_runs(view: LineView, runs: list[DigitRun], min_confidence: float) -> Reading:
    """The `Reading` of a line from its digit runs: digits below `min_confidence` are left out."""
    if view.line is None or not runs:
        return Reading("", (), 0.0)
    kept = [run for run in runs if run.confidence >= min_confidence]
    if not kept:
        return Reading("", (), 0.0)
    boxes = run_boxes(view.line, view.strip, kept)
    digits = tuple(ReadDigit(run.digit, picture_box(box, view.line.scale, view.line.offset, view.file_scale),
                             run.probabilities) for run, box in zip(kept, boxes, strict=True))
    confidence = float(np.prod([run.confidence for run in kept]))
    return Reading("".join(str(run.digit) for run in kept), digits, confidence)


def without_lone_marks(classifier, views: list[LineView], runs: list[list[DigitRun]]) -> list[list[DigitRun]]:
    """The runs, with a lone digit read from a picture the classifier calls "not a digit" taken away.

    The line model never saw a letter alone in training as often as the classifier did: where it reads
    exactly one digit, the classifier (when it has the "not a digit" class) looks at the whole ink too,
    framed like MNIST, and its refusal wins. The classifiers of the same picture go in one batch."""
    if rejection.refusal_class(classifier.class_names) is None:
        return runs
    lone = [index for index, found in enumerate(runs) if len(found) == 1 and views[index].line is not None]
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
