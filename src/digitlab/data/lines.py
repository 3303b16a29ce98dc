"""Lines of handwritten digits photographed, with the truth: what a reader of whole numbers is measured on.

A line is MNIST digits side by side (apart, touching or overlapping), jittered in height and
baseline, then slanted and turned a little as a whole; each digit's box is taken from its own ink
after that, and the ink is photographed (`photograph.render_photo`). Single digits and non-digits are
photographed the same way, so the reader's three measures come from one kind of picture.

A line may also hold the marks people write between digits (`compose_glyphs`, drawn by
`marks.draw_mark`) and wider gaps for spaces: "12.50", "2024-12-06", "555 0199".
`build_separator_set` photographs such numbers (`SEPARATOR_FORMATS` lists them).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from digitlab.data.framing import MNIST_SIZE
from digitlab.data.labelled_sets import write_labelled_set
from digitlab.data.marks import SEPARATOR_KINDS, SPACE, draw_mark
from digitlab.data.nondigits import ink_crop, render_non_digits
from digitlab.data.photograph import LIGHT_ON_DARK_SHARE, render_photo, scaled_box

# How the digits of a line sit: with clear gaps, with neighbours' ink touching, with boxes overlapping.
LAYOUTS = ("apart", "touching", "overlapping")
# The layout recorded for a photo of one digit or one non-digit.
SINGLE = "single"
# Ink at or above this level (of 1) is what "touching" is judged on, before the line is turned: a
# reader that thresholds lower sees touching digits touch all the more. After the turn, neighbours
# still touch at 0.4 (measured on 1,194 pairs of MNIST test digits: all; at 0.5, all but 2).
TOUCH_LEVEL = 0.5
# Ink above this level (of 1) counts towards a digit's box.
BOX_LEVEL = 0.2
# Each digit's size is its MNIST size times 1 +- this; its bottom is the baseline +- this share of the height.
HEIGHT_JITTER = 0.10
BASELINE_JITTER = 0.08
# "apart": the gap between neighbours' boxes, as shares of the digit height, and at least this many pixels.
APART_GAP = (0.15, 0.5)
MIN_GAP = 3
# "overlapping": how far neighbours' boxes overlap, as shares of their mean width.
OVERLAP = (0.10, 0.25)
# The whole line is turned and slanted by up to this many degrees each.
LINE_TURN_DEGREES = 5.0
# The paper around the line, each side, as shares of the digit height.
MARGIN = (0.2, 0.8)
# A space: the gap between its neighbours' boxes, as shares of the digit height (an "apart" gap is at most 0.5).
SPACE_GAP = (0.9, 1.6)
# The gap between a mark's box and its neighbours' boxes, as shares of the digit height.
MARK_GAP = (0.06, 0.3)
# The numbers `build_separator_set` writes: groups of digits (how many in each, fewest and most) and the
# separator between groups, in turn.
SEPARATOR_FORMATS = (
    ("price", ((1, 3), (2, 2)), "."),
    ("decimal comma", ((1, 3), (2, 2)), ","),
    ("decimal", ((1, 2), (1, 2)), "."),
    ("date", ((4, 4), (2, 2), (2, 2)), "-"),
    ("day and month", ((1, 2), (1, 2)), "/"),
    ("date with slashes", ((2, 2), (2, 2), (2, 2)), "/"),
    ("date with points", ((2, 2), (2, 2), (2, 4)), "."),
    ("time", ((1, 2), (2, 2)), ":"),
    ("phone number", ((3, 3), (4, 4)), SPACE),
    ("phone number with a dash", ((3, 3), (4, 4)), "-"),
    ("thousands", ((1, 2), (3, 3)), ","),
)

Box = tuple[int, int, int, int]


@dataclasses.dataclass(frozen=True, eq=False)
class SyntheticLine:
    """One photo of a line of digits (or of one digit, or of a non-digit) and its truth."""

    # (H, W) uint8 grayscale photo.
    image: np.ndarray
    # The digits left to right ("4021"), with the separators written between them ("12.50", "555 0199");
    # "" for a non-digit.
    text: str
    # One (x0, y0, x1, y1) per character of the text but spaces (digits and marks), in the photo's pixels,
    # left to right; x1 and y1 exclusive.
    boxes: tuple[Box, ...]
    # "apart", "touching" or "overlapping" for a line; "single" for one digit or one non-digit.
    layout: str
    # True for dark ink on light paper, False for light ink on a dark board.
    dark_on_light: bool
    # What a non-digit is ("letter:K", "shape:star"; see nondigits.render_non_digits); "" for digits.
    kind: str = ""


def compose_line(digit_images: np.ndarray, labels: Sequence[int], rng: np.random.Generator,
                 layout: str) -> tuple[np.ndarray, tuple[Box, ...]]:
    """Set MNIST digits side by side as a handwritten line, light ink on black.

    Args:
        digit_images: (n, 28, 28) uint8 digits of the line, left to right.
        labels: their n labels (checked against the images: the caller's truth for the line).
        layout: one of LAYOUTS.

    Returns:
        (ink, boxes): (H, W) float32 ink in [0, 1], and each digit's box (x0, y0, x1, y1) in its
        pixels, left to right, x1 and y1 exclusive.
    """
    digit_images = np.asarray(digit_images)
    if digit_images.ndim != 3 or digit_images.shape[1:] != (MNIST_SIZE, MNIST_SIZE) or len(digit_images) == 0:
        raise ValueError(f"digit_images must be (n, 28, 28) with n > 0, got shape {digit_images.shape}")
    if digit_images.dtype != np.uint8:
        raise ValueError(f"digit_images must be uint8 like MNIST's, got {digit_images.dtype}")
    if len(labels) != len(digit_images):
        raise ValueError(f"{len(digit_images)} digit images but {len(labels)} labels")
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of: {', '.join(LAYOUTS)}")
    return _compose(list(digit_images), rng, layout)


def compose_glyphs(glyphs: Sequence[np.ndarray | str], rng: np.random.Generator,
                   layout: str) -> tuple[np.ndarray, tuple[Box, ...]]:
    """Set digits and the marks between them side by side as a handwritten line, light ink on black.

    Args:
        glyphs: left to right, each a (28, 28) uint8 image (a digit, or a mark drawn like one) or a
            one-character string: a separator of SEPARATOR_KINDS, drawn by `draw_mark` with its own pen
            and gaps, or SPACE, a gap of SPACE_GAP digit heights before the next glyph.
        layout: how neighbouring images sit (one of LAYOUTS); marks keep MARK_GAP from their neighbours.

    Returns:
        (ink, boxes) as `compose_line`: one box per glyph but spaces.
    """
    images = [glyph for glyph in glyphs if not isinstance(glyph, str)]
    if not images:
        raise ValueError("a line needs at least one image among its glyphs (the marks are sized by the digits)")
    for glyph in glyphs:
        if isinstance(glyph, str) and glyph != SPACE and glyph not in SEPARATOR_KINDS:
            raise ValueError(f"unknown mark {glyph!r}; choose one of: {', '.join(SEPARATOR_KINDS)} or a space")
        if not isinstance(glyph, str) and (np.asarray(glyph).shape != (MNIST_SIZE, MNIST_SIZE)
                                           or np.asarray(glyph).dtype != np.uint8):
            raise ValueError("each image among the glyphs must be a (28, 28) uint8 array like MNIST's")
    if any(isinstance(glyph, str) and glyph == SPACE for glyph in (glyphs[0], glyphs[-1])):
        raise ValueError("a space goes between glyphs, not at either end of the line")
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of: {', '.join(LAYOUTS)}")
    return _compose(list(glyphs), rng, layout)


def build_line_set(digit_images: np.ndarray, labels: Sequence[int], count: int, seed: int,
                   lengths: tuple[int, int] = (2, 8), layouts: Sequence[str] = LAYOUTS) -> list[SyntheticLine]:
    """Photograph `count` lines of digits drawn at random from `digit_images`.

    Args:
        digit_images: (N, 28, 28) uint8 MNIST-like digits, light on black; labels: their N labels.
        lengths: the fewest and most digits of a line (inclusive; each length equally likely).
        layouts: the layouts of the lines, in turn.
    """
    digit_images, labels = _checked_digits(digit_images, labels)
    if count < 0:
        raise ValueError(f"count must be 0 or more, got {count}")
    if len(lengths) != 2 or not 1 <= lengths[0] <= lengths[1]:
        raise ValueError(f"lengths must be (fewest, most) digits with 1 <= fewest <= most, got {lengths}")
    unknown = [layout for layout in layouts if layout not in LAYOUTS]
    if not layouts or unknown:
        raise ValueError(f"layouts must be some of {', '.join(LAYOUTS)}, got {list(layouts)}")
    rng = np.random.default_rng(seed)
    lines = []
    for index in range(count):
        picks = rng.integers(0, len(digit_images), int(rng.integers(lengths[0], lengths[1] + 1)))
        layout = layouts[index % len(layouts)]
        ink, boxes = _compose(digit_images[picks], rng, layout)
        lines.append(_photographed(ink, boxes, rng, "".join(str(int(labels[pick])) for pick in picks), layout))
    return lines


def build_separator_set(digit_images: np.ndarray, labels: Sequence[int], count: int, seed: int,
                        formats: Sequence[tuple[str, tuple[tuple[int, int], ...], str]] = SEPARATOR_FORMATS,
                        layouts: Sequence[str] = LAYOUTS) -> list[SyntheticLine]:
    """Photograph `count` numbers written with separators ("12.50", "2024-12-06", "555 0199").

    Each number follows one of `formats` in turn (name, digits per group as (fewest, most), the separator
    between groups; SEPARATOR_FORMATS), its digits drawn at random from `digit_images` and set in one of
    `layouts` in turn, its marks drawn by `draw_mark`. The text holds the separators; the boxes are one
    per digit and mark.
    """
    digit_images, labels = _checked_digits(digit_images, labels)
    if count < 0:
        raise ValueError(f"count must be 0 or more, got {count}")
    if not formats:
        raise ValueError("give at least one format")
    rng = np.random.default_rng(seed)
    lines = []
    for index in range(count):
        _, groups, separator = formats[index % len(formats)]
        glyphs: list[np.ndarray | str] = []
        text = ""
        for group_index, (fewest, most) in enumerate(groups):
            if group_index:
                glyphs.append(separator)
                text += separator
            picks = rng.integers(0, len(digit_images), int(rng.integers(fewest, most + 1)))
            glyphs.extend(digit_images[picks])
            text += "".join(str(int(labels[pick])) for pick in picks)
        layout = layouts[index % len(layouts)]
        ink, boxes = _compose(glyphs, rng, layout)
        lines.append(_photographed(ink, boxes, rng, text, layout))
    return lines


def single_digit_photos(digit_images: np.ndarray, labels: Sequence[int], count: int, seed: int) -> list[SyntheticLine]:
    """Photograph `count` single digits from `digit_images` (each at most once while there are enough)."""
    digit_images, labels = _checked_digits(digit_images, labels)
    if count < 0:
        raise ValueError(f"count must be 0 or more, got {count}")
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(digit_images), size=count, replace=count > len(digit_images))
    photos = []
    for pick in picks:
        ink, boxes = _compose(digit_images[pick:pick + 1], rng, "apart")
        photos.append(_photographed(ink, boxes, rng, str(int(labels[pick])), SINGLE))
    return photos


def non_digit_photos(count: int, seed: int) -> list[SyntheticLine]:
    """Photograph `count` images of `nondigits.render_non_digits(count, seed)`; their text is ""."""
    images, kinds = render_non_digits(count, seed)
    rng = np.random.default_rng([seed, 1])  # not the drawing's own stream
    photos = []
    for image, kind in zip(images, kinds, strict=True):
        ink, boxes = _compose(image[None], rng, "apart")
        photos.append(_photographed(ink, boxes, rng, "", SINGLE, kind))
    return photos


def write_line_set(folder: str | os.PathLike, lines: Sequence[SyntheticLine]) -> Path:
    """Write each photo as a PNG (its JPEG-degraded pixels exactly) and the truth as labels.jsonl.

    labels.jsonl holds one object per photo, in order: path (relative to the folder), text, boxes,
    layout, dark_on_light, and kind for non-digits. Everything is written to a scratch folder
    beside `folder` and renamed into place at the end, so the folder holds the whole set or nothing.

    Returns:
        The path of labels.jsonl.

    Raises:
        DataFolderError: `folder` is a file or a folder that is not empty (nothing is written over).
        StorageError: the disk refused a write (full, read-only, no permission).
    """
    def item(index: int, line: SyntheticLine):
        record = {"text": line.text, "boxes": [list(box) for box in line.boxes], "layout": line.layout,
                  "dark_on_light": line.dark_on_light, **({"kind": line.kind} if line.kind else {})}
        return (f"{index:05d}.png",
                lambda path: Image.fromarray(line.image).save(path, format="PNG", compress_level=1), record)

    return write_labelled_set(folder, (item(index, line) for index, line in enumerate(lines)), "line set")


# --- composing a line --------------------------------------------------------------------------------


def _compose(glyphs: list, rng: np.random.Generator, layout: str) -> tuple[np.ndarray, tuple[Box, ...]]:
    """Images are cropped and jittered in size, then marks (strings) drawn to the images' median height;
    with images only, the random draws are those of a line without marks (seeded sets stay as they were)."""
    crops: list[np.ndarray | None] = []
    for index, glyph in enumerate(glyphs):
        if isinstance(glyph, str):
            crops.append(None)
            continue
        crop = ink_crop(glyph)
        if crop is None:
            raise ValueError(f"digit image {index} of the line has no ink")
        factor = rng.uniform(1.0 - HEIGHT_JITTER, 1.0 + HEIGHT_JITTER)
        size = (max(1, round(crop.shape[1] * factor)), max(1, round(crop.shape[0] * factor)))
        crops.append(np.clip(np.asarray(Image.fromarray(crop, mode="F").resize(size, Image.Resampling.BILINEAR)), 0, 1))
    height = float(np.median([crop.shape[0] for crop in crops if crop is not None]))
    # Each glyph drawn: (crop, lift above the baseline in pixels or None for a digit's own jitter, a mark?).
    placed: list[tuple[np.ndarray, float | None, bool]] = []
    space_before: list[bool] = []  # per placed glyph: a space was written before it
    pending_space = False
    for glyph, crop in zip(glyphs, crops, strict=True):
        if isinstance(glyph, str) and glyph == SPACE:
            pending_space = True
            continue
        if crop is None:
            mark, lift = draw_mark(glyph, height, rng)
            placed.append((mark, lift, True))
        else:
            placed.append((crop, None, False))
        space_before.append(pending_space)
        pending_space = False
    # Bottoms on a baseline at row 0, each a little off it (marks at their own height); lefts from the layout.
    tops = [-crop.shape[0] + round(rng.uniform(-BASELINE_JITTER, BASELINE_JITTER) * height) if lift is None
            else -crop.shape[0] - round(lift) for crop, lift, _ in placed]
    lefts = [0]
    for index in range(1, len(placed)):
        (previous, _, previous_mark), (current, _, current_mark) = placed[index - 1], placed[index]
        if space_before[index]:
            step = previous.shape[1] + max(MIN_GAP, round(rng.uniform(*SPACE_GAP) * height))
        elif previous_mark or current_mark:
            step = previous.shape[1] + max(2, round(rng.uniform(*MARK_GAP) * height))
        elif layout == "apart":
            step = previous.shape[1] + max(MIN_GAP, round(rng.uniform(*APART_GAP) * height))
        elif layout == "overlapping":
            mean_width = (previous.shape[1] + current.shape[1]) / 2
            overlap = min(max(1, round(rng.uniform(*OVERLAP) * mean_width)), min(previous.shape[1], current.shape[1]) // 2)
            step = previous.shape[1] - overlap
        else:
            step = _touching_step(previous, current, tops[index] - tops[index - 1])
        lefts.append(lefts[-1] + step)
    margins = [round(rng.uniform(*MARGIN) * height) for _ in range(4)]  # left, top, right, bottom
    top_edge, left_edge = min(tops), min(lefts)
    bottom_edge = max(top + crop.shape[0] for top, (crop, _, _) in zip(tops, placed, strict=True))
    right_edge = max(left + crop.shape[1] for left, (crop, _, _) in zip(lefts, placed, strict=True))
    rows = bottom_edge - top_edge + margins[1] + margins[3]
    columns = right_edge - left_edge + margins[0] + margins[2]
    layers = np.zeros((len(placed), rows, columns), dtype=np.float32)  # one per glyph, so each keeps its own box
    for layer, (crop, _, _), top, left in zip(layers, placed, tops, lefts, strict=True):
        row, column = top - top_edge + margins[1], left - left_edge + margins[0]
        layer[row:row + crop.shape[0], column:column + crop.shape[1]] = crop
    layers = _turned(layers, rng)
    return layers.max(axis=0), tuple(_box(layer) for layer in layers)


def _touching_step(previous: np.ndarray, current: np.ndarray, row_offset: int) -> int:
    """How far right of the previous digit's left edge the current one starts so that their inks touch.

    The current digit starts one pixel clear of the previous one's box and slides left until a pixel
    of its ink is beside (4-neighbour) or on one of the previous digit's, then one pixel more, so the
    contact survives resampling. Most pairs meet within a third of a digit's width; a few shapes
    leave room for more (a 1 under a 7's bar).
    """
    near = _grown(previous >= TOUCH_LEVEL)
    mask = current >= TOUCH_LEVEL
    for step in range(previous.shape[1] + 1, -current.shape[1], -1):
        if _overlaps(near, mask, row_offset, step):
            return step - 1
    # Only ink fainter than TOUCH_LEVEL everywhere never meets: no MNIST digit is that faint.
    return 0


def _grown(mask: np.ndarray) -> np.ndarray:
    """The mask and its 4-neighbours, one pixel larger on every side (so the result is offset by one)."""
    grown = np.zeros((mask.shape[0] + 2, mask.shape[1] + 2), dtype=bool)
    grown[1:-1, 1:-1] = mask
    grown[:-2, 1:-1] |= mask
    grown[2:, 1:-1] |= mask
    grown[1:-1, :-2] |= mask
    grown[1:-1, 2:] |= mask
    return grown


def _overlaps(grown: np.ndarray, mask: np.ndarray, row_offset: int, column_offset: int) -> bool:
    """Whether `mask`, placed at (row_offset, column_offset) from the grown mask's original, hits it."""
    top, left = row_offset + 1, column_offset + 1  # the grown mask has one extra row and column each side
    row_start, column_start = max(top, 0), max(left, 0)
    row_end, column_end = min(top + mask.shape[0], grown.shape[0]), min(left + mask.shape[1], grown.shape[1])
    if row_end <= row_start or column_end <= column_start:
        return False
    return bool(np.any(grown[row_start:row_end, column_start:column_end]
                       & mask[row_start - top:row_end - top, column_start - left:column_end - left]))


def _turned(layers: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Turn and slant every layer alike by up to LINE_TURN_DEGREES about the centre, on a canvas fitting all."""
    angle = math.radians(rng.uniform(-LINE_TURN_DEGREES, LINE_TURN_DEGREES))
    slant = math.tan(math.radians(rng.uniform(-LINE_TURN_DEGREES, LINE_TURN_DEGREES)))
    cosine, sine = math.cos(angle), math.sin(angle)
    forward = np.array([[1.0, slant], [0.0, 1.0]]) @ np.array([[cosine, -sine], [sine, cosine]])  # (x, y) -> (x, y)
    rows, columns = layers.shape[1:]
    corners = forward @ np.array([[0, columns, 0, columns], [0, 0, rows, rows]], dtype=float)
    low = np.floor(corners.min(axis=1))
    size = (int(np.ceil(corners[0].max() - low[0])), int(np.ceil(corners[1].max() - low[1])))
    inverse = np.linalg.inv(forward)
    offset = inverse @ low  # output pixel (0, 0) comes from the ink at inverse @ low
    data = (inverse[0, 0], inverse[0, 1], offset[0], inverse[1, 0], inverse[1, 1], offset[1])
    return np.stack([np.asarray(Image.fromarray(layer, mode="F").transform(
        size, Image.Transform.AFFINE, data, resample=Image.Resampling.BILINEAR)) for layer in layers])


def _box(layer: np.ndarray) -> Box:
    inked = layer > BOX_LEVEL
    if not inked.any():
        inked = layer > 0
    rows, columns = np.flatnonzero(inked.any(axis=1)), np.flatnonzero(inked.any(axis=0))
    return int(columns[0]), int(rows[0]), int(columns[-1]) + 1, int(rows[-1]) + 1


# --- photographing -------------------------------------------------------------------------------------


def _photographed(ink: np.ndarray, boxes: tuple[Box, ...], rng: np.random.Generator, text: str, layout: str,
                  kind: str = "") -> SyntheticLine:
    dark_on_light = bool(rng.random() >= LIGHT_ON_DARK_SHARE)
    photo, scale = render_photo(ink, rng, dark_on_light)
    return SyntheticLine(photo, text, tuple(scaled_box(box, scale, photo.shape) for box in boxes), layout,
                         dark_on_light, kind)


# --- checking and writing ------------------------------------------------------------------------------


def _checked_digits(digit_images: np.ndarray, labels: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    digit_images, labels = np.asarray(digit_images), np.asarray(labels)
    if digit_images.ndim != 3 or digit_images.shape[1:] != (MNIST_SIZE, MNIST_SIZE) or len(digit_images) == 0:
        raise ValueError(f"digit_images must be (N, 28, 28) with N > 0, got shape {digit_images.shape}")
    if digit_images.dtype != np.uint8:
        raise ValueError(f"digit_images must be uint8 like MNIST's, got {digit_images.dtype}")
    if labels.shape != (len(digit_images),) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be {len(digit_images)} integers, got {labels.dtype} {labels.shape}")
    if labels.min() < 0 or labels.max() > 9:
        raise ValueError(f"labels must be digits 0..9, got {labels.min()}..{labels.max()}")
    return digit_images, labels

