"""From a picture of a line of digits to its ink, and the ink to one strip of fixed height.

The front end every line reader shares, and what the line model is trained on (the same code makes
its training strips from synthetic photos, so training and reading see the same thing):

1. `find_line_ink`: the picture shrunk to a working size, its ink separated from the paper
   (`ink.extract_ink`: uneven light, either polarity, noise); a small line in a big picture is looked
   at again in the picture's own pixels; connected strokes found and specks dropped. A bar or a dot
   (strokes about as thick as the line is tall) is no line of digits.
2. `line_strip`: the ink's box scaled to STRIP_HEIGHT rows (aspect kept), padded on the right to a
   multiple of STRIP_STEP columns: the input of the line model (`training/line_model.py`). A strip
   wider than STRIP_WIDEST is read in windows (`strip_windows`), so that a long line keeps its size.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from digitlab.data.framing import stroke_width
from digitlab.data.ink import extract_ink

# The line is analysed with its shorter side at most this many pixels (and its longer at most
# WORKING_LONGEST): digits end up 20 pixels tall, so more detail only costs time. A long line (a picture
# 100 times wider than tall: about 100 digits) keeps its digits that tall; a longer one shrinks them.
WORKING_SHORTEST = 112
WORKING_LONGEST = 12_000
# Ink above this level (of 1) belongs to a stroke when cutting the line into pieces.
STROKE_LEVEL = 0.25
# Pieces smaller than this share of the line height (in both directions) are specks.
SPECK_FRACTION = 0.12
# A line of digits is at least this many stroke widths tall; a bar or a dot is not read at all.
DIGIT_STROKES = 2.5
# A line of ink less than this share of the working picture's height, in a picture with at least
# ZOOM_SCALE times more pixels, is looked at again, cropped from the picture itself.
ZOOM_BELOW = 0.4
ZOOM_SCALE = 1.5
# The strip: rows, the ink's box filling all but STRIP_MARGIN rows (and columns) on each side; its
# width a multiple of STRIP_STEP columns. The line model is shown at most STRIP_WIDEST columns at once
# (few widths: few shapes for it to compile); a wider strip is cut into windows at its gaps
# (`strip_windows`). A strip wider than STRIP_LONGEST (over a thousand digits) is squeezed to fit.
STRIP_HEIGHT = 24
STRIP_MARGIN = 2
STRIP_STEP = 64
STRIP_WIDEST = 512
STRIP_LONGEST = 64 * STRIP_WIDEST
# A window ends at an empty column (ink below this level) in its last WINDOW_SEARCH share, where there is one.
WINDOW_EMPTY_LEVEL = 0.05
WINDOW_SEARCH = 0.5
# Columns are stretched by this much against rows: a "1" is then more than one step of the line model wide.
STRIP_STRETCH = 1.5


@dataclasses.dataclass(frozen=True, eq=False)
class LineInk:
    """The ink of a picture, in working pixels, and where it sits in the picture."""

    # (rows, columns) float32 ink in [0, 1], light on dark, specks included (see `labels`).
    ink: np.ndarray
    # Connected strokes: the label image (0 where no stroke or a speck) and (label, rows, columns) per piece.
    labels: np.ndarray
    pieces: list
    # The height of a digit in this line, in working pixels.
    line_height: float
    # Picture pixels per working pixel, and the (left, top) of the working pixels in the picture.
    scale: float
    offset: tuple[int, int]


@dataclasses.dataclass(frozen=True, eq=False)
class Strip:
    """A line's ink scaled to STRIP_HEIGHT rows: the line model's input, and how to map it back."""

    # (STRIP_HEIGHT, width) float32 ink in [0, 1]; width a multiple of STRIP_STEP.
    pixels: np.ndarray
    # The strip's column c shows working column `left + (c - STRIP_MARGIN) / column_scale`.
    left: int
    column_scale: float
    # Columns of the strip that hold the line (the rest is padding).
    used: int


def find_line_ink(picture) -> LineInk | None:
    """The line's ink in a PIL picture; None when there is no ink, or only a bar or a dot."""
    working, scale = working_pixels(picture)
    ink = extract_ink(working)
    offset = (0, 0)
    zoomed = _zoomed(picture, ink, scale) if ink is not None else None
    if zoomed is not None:  # a small number in a big picture: look again at the picture's own pixels
        offset, region = zoomed
        working, scale = working_pixels(region)
        ink = extract_ink(working)
    labels, pieces = ink_pieces(ink) if ink is not None else (None, [])
    if not pieces:
        return None
    line_height = _line_height(pieces)
    if line_height < DIGIT_STROKES * stroke_width(ink):  # strokes about as thick as the line is tall
        return None
    return LineInk(ink, labels, pieces, line_height, scale, offset)


def line_strip(line: LineInk) -> Strip:
    """The line's ink (specks removed) cropped to its box and scaled to STRIP_HEIGHT rows."""
    from PIL import Image

    rows, columns = pieces_box(line)
    top, bottom, left, right = rows.start, rows.stop, columns.start, columns.stop
    crop = line.ink[top:bottom, left:right].copy()
    specks = (line.labels[top:bottom, left:right] == 0) & (line.ink[top:bottom, left:right] > STROKE_LEVEL)
    if specks.any():  # strokes of no piece: specks dropped by ink_pieces, blanked with their fringe
        from scipy import ndimage

        crop[ndimage.binary_dilation(specks, iterations=1)] = 0.0
    inner = STRIP_HEIGHT - 2 * STRIP_MARGIN
    column_scale = STRIP_STRETCH * inner / (bottom - top)
    width = max(1, round((right - left) * column_scale))
    if width > STRIP_LONGEST - 2 * STRIP_MARGIN:
        width = STRIP_LONGEST - 2 * STRIP_MARGIN
    column_scale = width / (right - left)
    scaled = np.asarray(Image.fromarray(crop, mode="F").resize((width, inner), Image.Resampling.BILINEAR))
    used = width + 2 * STRIP_MARGIN
    pixels = np.zeros((STRIP_HEIGHT, STRIP_STEP * math.ceil(used / STRIP_STEP)), dtype=np.float32)
    pixels[STRIP_MARGIN:STRIP_MARGIN + inner, STRIP_MARGIN:STRIP_MARGIN + width] = np.clip(scaled, 0.0, 1.0)
    return Strip(pixels, left, column_scale, used)


def strip_windows(pixels: np.ndarray, columns_per_step: int) -> list[tuple[int, np.ndarray]]:
    """A strip cut into windows of at most STRIP_WIDEST columns for the line model: (first column, window).

    Each window but the last ends at an empty column (the gap between two digits) found in its last
    WINDOW_SEARCH share, else at its emptiest column there; windows start on a multiple of
    `columns_per_step` (so the model's steps line up with the whole strip's) and are padded on the right
    to a multiple of STRIP_STEP. A strip no wider than STRIP_WIDEST is one window, itself.
    """
    width = pixels.shape[1]
    if width <= STRIP_WIDEST:
        return [(0, pixels)]
    if STRIP_WIDEST % columns_per_step:
        raise ValueError(f"columns_per_step must divide {STRIP_WIDEST}, got {columns_per_step}")
    column_ink = pixels.max(axis=0)  # (width,)
    windows, start = [], 0
    while start < width:
        stop = start + STRIP_WIDEST
        if stop < width:
            candidates = np.arange(start + round(STRIP_WIDEST * (1 - WINDOW_SEARCH)), stop, columns_per_step)
            empty = candidates[column_ink[candidates] < WINDOW_EMPTY_LEVEL]
            stop = int(empty[-1]) if len(empty) else int(candidates[np.argmin(column_ink[candidates])])
        window = pixels[:, start:min(stop, width)]
        padded = np.zeros((pixels.shape[0], STRIP_STEP * math.ceil(window.shape[1] / STRIP_STEP)), dtype=pixels.dtype)
        padded[:, :window.shape[1]] = window
        windows.append((start, padded))
        start = stop
    return windows


def pieces_box(line: LineInk) -> tuple[slice, slice]:
    """(rows, columns) of the box around the line's pieces (specks left out), in working pixels."""
    rows = [row for _, row_slice, _ in line.pieces for row in (row_slice.start, row_slice.stop)]
    columns = [column for _, _, column_slice in line.pieces for column in (column_slice.start, column_slice.stop)]
    return slice(min(rows), max(rows)), slice(min(columns), max(columns))


def working_pixels(picture) -> tuple[np.ndarray, float]:
    """(rows, columns) float32 pixels in [0, 1] at the working size, and picture pixels per working pixel."""
    from PIL import Image

    width, height = picture.size
    scale = max(1.0, min(width, height) / WORKING_SHORTEST, max(width, height) / WORKING_LONGEST)
    if scale > 1.0:
        picture = picture.resize((max(1, round(width / scale)), max(1, round(height / scale))), Image.Resampling.BOX)
    pixels = np.asarray(picture, dtype=np.float32)
    if picture.mode != "F":
        pixels = pixels / np.float32(255.0)
    return pixels, width / picture.size[0]


def ink_pieces(ink: np.ndarray) -> tuple[np.ndarray, list[tuple[int, slice, slice]]]:
    """Connected strokes: the label image and (label, rows, columns) of each piece that is not a speck."""
    from scipy import ndimage

    strokes = ink > STROKE_LEVEL
    labels, count = ndimage.label(strokes, structure=np.ones((3, 3), dtype=bool))
    if count == 0:
        return labels, []
    boxes = ndimage.find_objects(labels)
    sizes = [(box[0].stop - box[0].start, box[1].stop - box[1].start) for box in boxes]
    tallest = max(height for height, _ in sizes)
    pieces = []
    for label, (box, (height, width)) in enumerate(zip(boxes, sizes, strict=True), start=1):
        if max(height, width) >= SPECK_FRACTION * tallest:
            pieces.append((label, box[0], box[1]))
        else:
            labels[box][labels[box] == label] = 0  # a speck: no longer ink of any piece
    return labels, pieces


def _line_height(pieces) -> float:
    """The height of a digit in this line: the tallest pieces' height (a median of the taller half)."""
    heights = sorted(rows.stop - rows.start for _, rows, _ in pieces)
    return float(np.median(heights[len(heights) // 2:]))


def _zoomed(picture, ink: np.ndarray, scale: float):
    """((left, top), the region) of the picture around the ink when the ink is small in a picture that has
    more detail than the working pixels show; else None."""
    inked = ink > STROKE_LEVEL
    if scale < ZOOM_SCALE or not inked.any():
        return None
    rows, columns = np.flatnonzero(inked.any(axis=1)), np.flatnonzero(inked.any(axis=0))
    height = rows[-1] + 1 - rows[0]
    if height >= ZOOM_BELOW * ink.shape[0]:
        return None
    margin = height + 2  # paper around the ink: the lighting fit and the polarity need it
    left, top = max(0, round((columns[0] - margin) * scale)), max(0, round((rows[0] - margin) * scale))
    right = min(picture.size[0], round((columns[-1] + 1 + margin) * scale))
    bottom = min(picture.size[1], round((rows[-1] + 1 + margin) * scale))
    return (left, top), picture.crop((left, top, right, bottom))
