"""Read numbers in many files: the candidates of several files classified in one call, each picture
optionally written back with its digits' boxes drawn, and one error per bad file (the others are read).

    for result in read_files(classifier, ["meter.jpg", "form.png"], save_annotated="seen/"):
        print(result.path, result.reading.text if result.ok else result.error)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from digitlab.errors import DigitlabError
from digitlab.inference import rejection
from digitlab.inference.line_reading import reading_from_runs, view_line, without_lone_marks
from digitlab.inference.predict import unique_name
from digitlab.inference.reading import LineCandidates, Reading, decode_line, line_candidates

# Files whose candidates go to the model in one call.
FILE_BATCH = 16


@dataclasses.dataclass(frozen=True)
class FileReading:
    """The outcome for one file: a reading, or an error message."""

    path: Path
    reading: Reading | None = None
    error: str | None = None
    # Where the annotated picture was written (with `save_annotated`), else None.
    annotated_path: Path | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        """{"path", "text", "digits", "confidence"} or {"path", "error"}, ready for JSON."""
        if self.reading is None:
            return {"path": str(self.path), "error": self.error}
        values = {"path": str(self.path), **self.reading.to_dict()}
        if self.annotated_path is not None:
            values["annotated"] = str(self.annotated_path)
        return values


def read_files(classifier, paths, min_confidence: float = rejection.DEFAULT_MIN_CONFIDENCE,
               save_annotated: str | Path | None = None) -> Iterator[FileReading]:
    """Read a number in each file, in order; a bad file gets an error, not an exception.

    The candidates of FILE_BATCH files go to the model in one call.

    Args:
        save_annotated: a folder to write each picture into with its digits' boxes drawn (PNG).
    """
    rejection.check_min_confidence(min_confidence)
    taken: set[str] = set()
    if save_annotated is not None:
        save_annotated = Path(save_annotated)
        save_annotated.mkdir(parents=True, exist_ok=True)
    paths = [Path(path) for path in paths]
    read_batch = _line_model_batch if getattr(classifier, "line_reader", None) is not None else _segmented_batch
    for start in range(0, len(paths), FILE_BATCH):
        batch = paths[start:start + FILE_BATCH]
        for path, outcome in zip(batch, read_batch(classifier, batch, min_confidence), strict=True):
            if isinstance(outcome, str):
                yield FileReading(path, error=outcome)
                continue
            reading, written = outcome, None
            if save_annotated is not None:
                written = save_annotated / unique_name(path, taken)
                annotate(_full_picture(path), reading).save(written, format="PNG")
            yield FileReading(path, reading, annotated_path=written)


def _segmented_batch(classifier, batch: list[Path], min_confidence: float) -> list[Reading | str]:
    """Files read by segmentation (`reading.line_candidates`): all their candidates classified in one call."""
    even_cuts = rejection.refusal_class(classifier.class_names) is not None  # see line_candidates
    outcomes = [_candidates_or_error(path, even_cuts) for path in batch]
    found = [outcome for outcome in outcomes if isinstance(outcome, LineCandidates)]
    stacked = np.concatenate([candidates.framed for candidates in found]) if found else None
    probabilities = classifier.probabilities(stacked) if stacked is not None and len(stacked) else None
    readings: list[Reading | str] = []
    offset = 0
    for outcome in outcomes:
        if isinstance(outcome, str):
            readings.append(outcome)
            continue
        count = len(outcome.groups)
        readings.append(decode_line(classifier, outcome, probabilities[offset:offset + count] if count else None,
                                    min_confidence))
        offset += count
    return readings


def _line_model_batch(classifier, batch: list[Path], min_confidence: float) -> list[Reading | str]:
    """Files read by the run's line model: all their strips in one call per strip width."""
    views = []
    for path in batch:
        try:
            views.append(view_line(path))
        except DigitlabError as err:
            views.append(str(err))
    good = [view for view in views if not isinstance(view, str) and view.strip is not None]
    found = iter(without_lone_marks(classifier, good, classifier.line_reader.read_strips([view.strip.pixels
                                                                                          for view in good])))
    return [view if isinstance(view, str) else
            reading_from_runs(view, next(found) if view.strip is not None else [], min_confidence) for view in views]


def _full_picture(path: Path):
    """The picture at the file's own size and orientation: the boxes are in its pixels (`read_image` may
    decode a big JPEG at reduced scale)."""
    from PIL import Image, ImageOps

    with Image.open(path) as image:  # its size was checked when it was read
        return ImageOps.exif_transpose(image).convert("L")


def _candidates_or_error(path: Path, even_cuts: bool) -> LineCandidates | str:
    try:
        return line_candidates(path, even_cuts)
    except DigitlabError as err:
        return str(err)


def annotate(picture, reading: Reading):
    """The picture in colour with each digit's box and the digit read drawn on it (a PIL image)."""
    from PIL import ImageDraw, ImageFont

    canvas = picture.convert("RGB") if picture.mode != "F" else \
        _float_to_rgb(np.asarray(picture, dtype=np.float32))
    draw = ImageDraw.Draw(canvas)
    line = max(2, round(max(canvas.size) / 300))
    for digit in reading.digits:
        left, top, right, bottom = digit.box
        size = max(12, round(0.45 * (bottom - top)))
        font = ImageFont.load_default(size=size)
        draw.rectangle((left, top, right - 1, bottom - 1), outline=(220, 30, 30), width=line)
        draw.text((left, max(0, top - size - line)), str(digit.digit), fill=(220, 30, 30), font=font)
    return canvas


def _float_to_rgb(pixels: np.ndarray):
    from PIL import Image

    return Image.fromarray((np.clip(pixels, 0.0, 1.0) * 255).astype(np.uint8), mode="L").convert("RGB")
