"""Read numbers in many files: the candidates of several files classified in one call, each picture
optionally written back with its digits' boxes drawn, and one error per bad file (the others are read):
a file that cannot be read, vanishes before its picture is annotated, or whose annotated copy cannot be
written (the annotated copies go through `storage.OutputFolder`: atomic, never over an input).

    for result in read_files(classifier, ["meter.jpg", "form.png"], save_annotated="seen/"):
        print(result.path, result.reading.text if result.ok else result.error)
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from digitlab import storage
from digitlab.errors import DigitlabError, ImageError
from digitlab.inference import rejection
from digitlab.inference.images import image_name
from digitlab.inference.line_reading import reading_from_runs, view_line, without_lone_marks
from digitlab.inference.reading import LineCandidates, Reading, decode_line, line_candidates
from digitlab.storage import OutputFolder

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
        """{"path", "text", "digits", "confidence"} or {"path", "error"} (with the reading when there was one,
        and only its annotated copy failed), ready for JSON."""
        if self.error is not None:
            return {"path": str(self.path), "error": self.error, **(self.reading.to_dict() if self.reading else {})}
        values = {"path": str(self.path), **self.reading.to_dict()}
        if self.annotated_path is not None:
            values["annotated"] = str(self.annotated_path)
        return values


def read_files(classifier, paths, min_confidence: float = rejection.DEFAULT_MIN_CONFIDENCE,
               save_annotated: str | Path | OutputFolder | None = None,
               overwrite: bool = False) -> Iterator[FileReading]:
    """Read a number in each file, in order; a bad file gets an error, not an exception.

    The candidates of FILE_BATCH files go to the model in one call.

    Args:
        save_annotated: a folder to write each picture into with its digits' boxes drawn (PNG), or an
            `OutputFolder` made for these paths; checked before any file is read.
        overwrite: replace files already in `save_annotated` (an input image never).

    Raises:
        OutputFolderError: `save_annotated` cannot be written, or would replace files (see `OutputFolder`).
    """
    rejection.check_min_confidence(min_confidence)
    paths = [Path(path) for path in paths]
    if save_annotated is not None and not isinstance(save_annotated, OutputFolder):
        save_annotated = OutputFolder(save_annotated, paths, overwrite, option="save_annotated")
    read_batch = _line_model_batch if getattr(classifier, "line_reader", None) is not None else _segmented_batch
    for start in range(0, len(paths), FILE_BATCH):
        batch = paths[start:start + FILE_BATCH]
        for index, (path, outcome) in enumerate(zip(batch, read_batch(classifier, batch, min_confidence),
                                                    strict=True)):
            if isinstance(outcome, str):
                yield FileReading(path, error=outcome)
                continue
            reading, written = outcome, None
            if save_annotated is not None:
                try:
                    written = save_annotated.write(start + index, functools.partial(_write_annotated, path, reading))
                except DigitlabError as err:  # the file vanished, or the disk refused: this file's error
                    yield FileReading(path, reading, error=f"{image_name(path)}: read as {reading.text!r}, but its "
                                      f"annotated copy was not written: {err}")
                    continue
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


def _write_annotated(path: Path, reading: Reading, target: Path) -> None:
    """Write the picture of `path` with the reading's boxes drawn to `target` (PNG)."""
    annotate(_full_picture(path), reading).save(target, format="PNG")


def _full_picture(path: Path):
    """The picture at the file's own size and orientation: the boxes are in its pixels (`read_image` may
    decode a big JPEG at reduced scale).

    Raises:
        ImageError: the file vanished, changed into something that is not an image, or is not a regular
            file any more, since it was read.
    """
    from PIL import Image, ImageOps

    try:
        with storage.open_regular_file(path) as stream, Image.open(stream) as image:
            return ImageOps.exif_transpose(image).convert("L")
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as err:  # Pillow's bad data
        reason = "it no longer exists" if isinstance(err, FileNotFoundError) else \
            getattr(err, "strerror", None) or str(err) or type(err).__name__
        raise ImageError(f"{image_name(path)} changed after it was read: {reason}") from err


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
