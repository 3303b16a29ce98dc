"""Lines of handwritten digits photographed, with the truth: what a reader of whole numbers is measured on.

A line is MNIST digits side by side (apart, touching or overlapping), jittered in height and
baseline, then slanted and turned a little as a whole; the box of each digit is taken from its own
ink after that. `render_photo` makes the ink a photo: scaled up, on unevenly lit and textured paper,
blurred, noisy and JPEG-compressed; about one photo in seven is light ink on a dark board. Single
digits and non-digits are photographed the same way, so the reader's three measures (numbers read,
single digits right, non-digits refused) come from one kind of picture.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from digitlab.data.framing import MNIST_SIZE
from digitlab.data.nondigits import ink_crop, render_non_digits
from digitlab.errors import DataFolderError, StorageError

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
# render_photo: scale of the photo over the ink, share of light ink on a dark board, JPEG quality.
PHOTO_SCALE = (1.5, 3.0)
LIGHT_ON_DARK_SHARE = 0.15
JPEG_QUALITY = (50, 90)
# The truth written beside the images by write_line_set.
LABELS_FILE = "labels.jsonl"

Box = tuple[int, int, int, int]


@dataclasses.dataclass(frozen=True, eq=False)
class SyntheticLine:
    """One photo of a line of digits (or of one digit, or of a non-digit) and its truth."""

    # (H, W) uint8 grayscale photo.
    image: np.ndarray
    # The digits left to right ("4021"); "" for a non-digit.
    text: str
    # One (x0, y0, x1, y1) per digit in the photo's pixels, left to right; x1 and y1 exclusive.
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
    return _compose(digit_images, rng, layout)


def render_photo(ink: np.ndarray, rng: np.random.Generator, dark_on_light: bool | None = None) -> tuple[np.ndarray, float]:
    """Photograph light-on-black ink: scaled up, on uneven paper, blurred, noisy, JPEG-compressed.

    Args:
        ink: (H, W) float ink in [0, 1], light on black.
        dark_on_light: dark ink on light paper (True) or light ink on a dark board (False); None
            draws it, light on dark about 15% of the time.

    Returns:
        (photo, scale): the (round(H * scale), round(W * scale)) uint8 grayscale photo and the scale
        (1.5 to 3) its pixels have over the ink's.
    """
    ink = np.asarray(ink, dtype=np.float32)
    if ink.ndim != 2 or ink.size == 0:
        raise ValueError(f"ink must be a non-empty (H, W) array, got shape {ink.shape}")
    if dark_on_light is None:
        dark_on_light = bool(rng.random() >= LIGHT_ON_DARK_SHARE)
    scale = float(rng.uniform(*PHOTO_SCALE))
    rows, columns = ink.shape
    size = (max(1, round(columns * scale)), max(1, round(rows * scale)))  # (columns, rows)
    big = np.clip(np.asarray(Image.fromarray(ink, mode="F").resize(size, Image.Resampling.BICUBIC)), 0.0, 1.0)
    light = _lighting(size, rng)
    if dark_on_light:
        paper, ink_level = rng.uniform(0.72, 0.95), rng.uniform(0.05, 0.35)  # ink is never quite black
        page = (paper - big * (paper - ink_level)) * light
    else:
        board, chalk = rng.uniform(0.08, 0.3), rng.uniform(0.65, 0.95)
        page = (board + big * (chalk - board)) * light
    page += _grain(size, rng)
    photo = Image.fromarray(_to_uint8(page)).filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0)))
    noisy = np.asarray(photo, dtype=np.float32) / 255.0 + rng.normal(0.0, rng.uniform(0.005, 0.03), size=page.shape)
    buffer = io.BytesIO()
    Image.fromarray(_to_uint8(noisy)).save(buffer, format="JPEG", quality=int(rng.integers(JPEG_QUALITY[0],
                                                                                            JPEG_QUALITY[1] + 1)))
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.array(decoded.convert("L")), scale


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
    folder = Path(folder)
    _check_empty_folder(folder)
    scratch = folder.parent / f".{folder.name}.partial-{uuid.uuid4().hex[:12]}"
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        scratch.mkdir()
        records = []
        for index, line in enumerate(lines):
            name = f"{index:05d}.png"
            Image.fromarray(line.image).save(scratch / name, format="PNG", compress_level=1)
            record = {"path": name, "text": line.text, "boxes": [list(box) for box in line.boxes],
                      "layout": line.layout, "dark_on_light": line.dark_on_light}
            if line.kind:
                record["kind"] = line.kind
            records.append(json.dumps(record))
        (scratch / LABELS_FILE).write_text("".join(record + "\n" for record in records), encoding="utf-8")
        os.replace(scratch, folder)  # an empty folder is replaced; a non-empty one makes this fail
    except OSError as err:
        shutil.rmtree(scratch, ignore_errors=True)
        _check_empty_folder(folder)  # filled by someone else meanwhile: say so rather than "cannot write"
        raise StorageError(f"cannot write the line set to {folder}: {err.strerror or err}; nothing was written. "
                           "Name a folder on a disk with room that you can write to, then run again.") from err
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return folder / LABELS_FILE


# --- composing a line --------------------------------------------------------------------------------


def _compose(digit_images: np.ndarray, rng: np.random.Generator, layout: str) -> tuple[np.ndarray, tuple[Box, ...]]:
    crops = []
    for index, image in enumerate(digit_images):
        crop = ink_crop(image)
        if crop is None:
            raise ValueError(f"digit image {index} of the line has no ink")
        factor = rng.uniform(1.0 - HEIGHT_JITTER, 1.0 + HEIGHT_JITTER)
        size = (max(1, round(crop.shape[1] * factor)), max(1, round(crop.shape[0] * factor)))
        crops.append(np.clip(np.asarray(Image.fromarray(crop, mode="F").resize(size, Image.Resampling.BILINEAR)), 0, 1))
    height = float(np.median([crop.shape[0] for crop in crops]))
    # Bottoms on a baseline at row 0, each a little off it; lefts from the layout.
    tops = [-crop.shape[0] + round(rng.uniform(-BASELINE_JITTER, BASELINE_JITTER) * height) for crop in crops]
    lefts = [0]
    for index in range(1, len(crops)):
        previous, current = crops[index - 1], crops[index]
        if layout == "apart":
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
    bottom_edge = max(top + crop.shape[0] for top, crop in zip(tops, crops, strict=True))
    right_edge = max(left + crop.shape[1] for left, crop in zip(lefts, crops, strict=True))
    rows = bottom_edge - top_edge + margins[1] + margins[3]
    columns = right_edge - left_edge + margins[0] + margins[2]
    layers = np.zeros((len(crops), rows, columns), dtype=np.float32)  # one per digit, so each keeps its own box
    for layer, crop, top, left in zip(layers, crops, tops, lefts, strict=True):
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
    return SyntheticLine(photo, text, tuple(_scaled_box(box, scale, photo.shape) for box in boxes), layout,
                         dark_on_light, kind)


def _scaled_box(box: Box, scale: float, shape: tuple[int, int]) -> Box:
    """A box in ink pixels -> the photo's pixels, rounded outwards, within the photo."""
    x0, y0, x1, y1 = box
    return (max(0, math.floor(x0 * scale)), max(0, math.floor(y0 * scale)),
            min(shape[1], math.ceil(x1 * scale)), min(shape[0], math.ceil(y1 * scale)))


def _lighting(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """(rows, columns) brightness 0.5..1.05: a gradient in a random direction and a smooth uneven surface."""
    columns, rows = size
    angle = rng.uniform(0, 2 * np.pi)
    y = np.linspace(-0.5, 0.5, rows, dtype=np.float32)[:, None]
    x = np.linspace(-0.5, 0.5, columns, dtype=np.float32)[None, :]
    gradient = (np.cos(angle) * x + np.sin(angle) * y) * rng.uniform(0.1, 0.35)
    coarse = rng.uniform(-1, 1, size=(int(rng.integers(2, 5)), int(rng.integers(2, 7)))).astype(np.float32)
    surface = np.asarray(Image.fromarray(coarse, mode="F").resize(size, Image.Resampling.BICUBIC)) * rng.uniform(0.03, 0.12)
    return np.clip(0.92 + gradient + surface, 0.5, 1.05)


def _grain(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """(rows, columns) paper texture: blotches a few pixels across, of a random strength."""
    columns, rows = size
    small = rng.normal(0.0, 1.0, size=(max(1, rows // 3), max(1, columns // 3))).astype(np.float32)
    return np.asarray(Image.fromarray(small, mode="F").resize(size, Image.Resampling.BILINEAR)) * rng.uniform(0.005, 0.03)


def _to_uint8(page: np.ndarray) -> np.ndarray:
    return (np.clip(page, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


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


def _check_empty_folder(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise DataFolderError(f"{folder} is a file, not a folder; name a new or empty folder for the line set")
    if folder.is_dir() and any(folder.iterdir()):
        raise DataFolderError(f"{folder} is not empty; name a new or empty folder for the line set "
                              "(a line set is never written over other files)")
