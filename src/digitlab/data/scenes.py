"""Phone photos of digits written on a sheet of paper lying on a table, with the truth: what finding the
writing in a photo (`inference/writing.py`) is measured on.

A scene is a sheet of plain, ruled or squared paper with one digit or one number written on it in
MNIST's digits (set side by side as `data/lines.py` sets a line), lying on a wooden or textured table:
turned by up to 15 degrees, seen in slight perspective, under a shadow gradient (sometimes the soft
shadow of the phone or a hand), sometimes folded, with a drop shadow at the sheet's edge, colour noise
and JPEG compression, at a camera's size (3000x2000, 4032x3024) or a phone screen's (1600x1200,
1280x960), in landscape or portrait. Each digit's box is its ink's box carried through the same
perspective, in the photo's own pixels.

Only the digits given are drawn: measurement sets pass MNIST's *test* digits, which no training uses.
Everything is drawn from the seed: the same seed gives the same JPEG bytes.

    scenes = build_scene_set(test_images, test_labels, count=100, seed=3_000_017, kind=NUMBERS)
    write_scene_set("scenes/", scenes)                     # 00000.jpg ... and labels.jsonl
    photo = lined_paper_photo(test_images[0], seed=1)      # JPEG bytes: one digit on lined paper on a table
"""

from __future__ import annotations

import dataclasses
import io
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from digitlab.data.labelled_sets import write_labelled_set
from digitlab.data.lines import compose_line

# What a scene holds: one digit, or a number of NUMBER_LENGTHS digits.
SINGLES, NUMBERS = "singles", "numbers"
KINDS = (SINGLES, NUMBERS)
NUMBER_LENGTHS = (2, 6)
# The paper and the table, taken in turn.
PAPERS = ("plain", "ruled", "squared")
BACKGROUNDS = ("wood", "textured")
# Photo sizes (landscape; every other scene is portrait): two cameras' and two phone screens'.
PHOTO_SIZES = ((3000, 2000), (4032, 3024), (1600, 1200), (1280, 960))
# Scenes are drawn at most this many pixels on their longest side, then scaled to the photo's size:
# drawing 12 megapixels costs seconds and shows nothing more (phones smooth their photos as much).
DRAWING_LONGEST = 1400
# The sheet is turned by up to this many degrees, and each corner moved by up to this share of the
# sheet's size (slight perspective).
MOST_TURN = 15.0
PERSPECTIVE = 0.04
# The sheet's longer side, as a share of the photo's side it lies along, before turning.
SHEET_SPAN = (0.62, 0.86)
# Ruled lines and squares apart, as shares of the sheet's longer side.
RULE_SPACING = (0.045, 0.07)
SQUARE_SPACING = (0.035, 0.05)
# A number's digits are this share of the rule spacing tall (its baseline on a rule), or this many squares
# on squared paper; a single digit is this many rule spacings (or squares) tall. On plain paper the same
# sizes as on ruled paper, with a made-up spacing.
NUMBER_HEIGHT = (0.7, 0.95)
NUMBER_SQUARES = (1.0, 1.8)
SINGLE_HEIGHT = (1.2, 3.0)
# JPEG quality of the photos.
JPEG_QUALITY = (70, 92)

Box = tuple[int, int, int, int]


@dataclasses.dataclass(frozen=True, eq=False)
class Scene:
    """One photo of writing on a sheet on a table, and its truth."""

    # The photo as JPEG bytes (RGB).
    jpeg: bytes
    # (columns, rows) of the photo.
    size: tuple[int, int]
    # The digits written, left to right ("7", "4021").
    text: str
    # Each digit's box (x0, y0, x1, y1) in the photo's pixels, x1 and y1 exclusive, left to right.
    boxes: tuple[Box, ...]
    # "plain", "ruled" or "squared"; "wood" or "textured".
    paper: str
    background: str
    # How far the sheet is turned, in degrees: its top edge runs at this angle, y pointing down (clockwise as seen).
    turn: float
    # The sheet's corners (top-left, top-right, bottom-right, bottom-left) in the photo's pixels.
    corners: tuple[tuple[float, float], ...] = ()

    @property
    def writing_box(self) -> Box:
        """The box around all the digits, in the photo's pixels."""
        return (min(box[0] for box in self.boxes), min(box[1] for box in self.boxes),
                max(box[2] for box in self.boxes), max(box[3] for box in self.boxes))


def make_scene(digit_images: np.ndarray, labels: Sequence[int], rng: np.random.Generator, paper: str = "ruled",
               background: str = "wood", size: tuple[int, int] = (1600, 1200), turn: float | None = None) -> Scene:
    """Photograph MNIST digits written side by side on a sheet of `paper` lying on a `background` table.

    Args:
        digit_images: (n, 28, 28) uint8 digits, light on black, left to right (one for a single digit).
        labels: their n labels.
        paper: one of PAPERS; background: one of BACKGROUNDS.
        size: the photo's (columns, rows).
        turn: the sheet's turn in degrees; None draws it in +-MOST_TURN.
    """
    if paper not in PAPERS:
        raise ValueError(f"unknown paper {paper!r}; choose one of: {', '.join(PAPERS)}")
    if background not in BACKGROUNDS:
        raise ValueError(f"unknown background {background!r}; choose one of: {', '.join(BACKGROUNDS)}")
    if len(size) != 2 or min(size) < 64:
        raise ValueError(f"size must be (columns, rows) of at least 64 pixels each, got {size}")
    ink, ink_boxes = compose_line(digit_images, labels, rng, "apart")  # (H, W) light on black
    drawn = max(1.0, max(size) / DRAWING_LONGEST)
    canvas = (max(64, round(size[0] / drawn)), max(64, round(size[1] / drawn)))  # drawing size (columns, rows)
    turn = float(rng.uniform(-MOST_TURN, MOST_TURN)) if turn is None else float(turn)
    sheet, sheet_boxes = _sheet(ink, ink_boxes, len(digit_images) > 1, paper, canvas, turn, rng)
    corners = _placed_corners(sheet.size, canvas, turn, rng)
    photo = _table(background, canvas, rng)
    photo = _laid_on(photo, sheet, corners, rng)
    photo = _lit(photo, rng)
    to_photo = _homography(_rectangle(sheet.size), corners)
    scale = (size[0] / canvas[0], size[1] / canvas[1])
    boxes = tuple(_box_through(to_photo, box, scale, size) for box in sheet_boxes)
    jpeg = _phone_jpeg(photo, size, rng)
    text = "".join(str(int(label)) for label in labels)
    sheet_corners = tuple((float(x * scale[0]), float(y * scale[1])) for x, y in corners)
    return Scene(jpeg, size, text, boxes, paper, background, turn, sheet_corners)


def build_scene_set(digit_images: np.ndarray, labels: Sequence[int], count: int, seed: int,
                    kind: str = SINGLES, sizes: Sequence[tuple[int, int]] = PHOTO_SIZES) -> list[Scene]:
    """`count` scenes of single digits or of numbers drawn from `digit_images`, paper, table and photo size in turn.

    Args:
        digit_images: (N, 28, 28) uint8 digits (MNIST's test digits for a measurement); labels: their N labels.
        kind: SINGLES (one digit each) or NUMBERS (NUMBER_LENGTHS digits each).
        sizes: photo sizes (landscape) taken in turn; every other photo is portrait.
    """
    digit_images, labels = np.asarray(digit_images), np.asarray(labels)
    if digit_images.ndim != 3 or digit_images.shape[1:] != (28, 28) or len(digit_images) == 0:
        raise ValueError(f"digit_images must be (N, 28, 28) with N > 0, got shape {digit_images.shape}")
    if labels.shape != (len(digit_images),):
        raise ValueError(f"labels must be {len(digit_images)} digits, got shape {labels.shape}")
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; choose one of: {', '.join(KINDS)}")
    if count < 0:
        raise ValueError(f"count must be 0 or more, got {count}")
    if not sizes:
        raise ValueError("give at least one photo size")
    rng = np.random.default_rng(seed)
    scenes = []
    for index in range(count):
        length = 1 if kind == SINGLES else int(rng.integers(NUMBER_LENGTHS[0], NUMBER_LENGTHS[1] + 1))
        picks = rng.integers(0, len(digit_images), length)
        columns, rows = sizes[index % len(sizes)]
        size = (columns, rows) if (index // len(sizes)) % 2 == 0 else (rows, columns)
        scenes.append(make_scene(digit_images[picks], labels[picks], rng, PAPERS[index % len(PAPERS)],
                                 BACKGROUNDS[(index // len(PAPERS)) % len(BACKGROUNDS)], size))
    return scenes


def lined_paper_photo(digit_image: np.ndarray, seed: int, size: tuple[int, int] = (1280, 960), label: int = 0,
                      turn: float | None = None) -> bytes:
    """A phone-sized JPEG photo of one digit written on ruled paper lying on a wooden table.

    Args:
        digit_image: (28, 28) uint8 digit, light on black (an MNIST test digit, or one drawn so).
        seed: everything else is drawn from it.
        size: the photo's (columns, rows).
        label: the digit's label (only checked to be a digit).
        turn: the sheet's turn in degrees (None: drawn in +-MOST_TURN).
    """
    digit_image = np.asarray(digit_image)
    if digit_image.shape != (28, 28) or digit_image.dtype != np.uint8:
        raise ValueError(f"digit_image must be (28, 28) uint8 like MNIST's, got {digit_image.dtype} {digit_image.shape}")
    return make_scene(digit_image[None], [label], np.random.default_rng(seed), "ruled", "wood", size, turn).jpeg


def write_scene_set(folder: str | os.PathLike, scenes: Sequence[Scene]) -> Path:
    """Write each scene's JPEG as it is and the truth as labels.jsonl, all or nothing (see lines.write_line_set).

    labels.jsonl holds one object per photo, in order: path, text, boxes, paper, background, turn, size, and
    the sheet's corners.

    Raises:
        DataFolderError: `folder` is a file or a folder that is not empty (nothing is written over).
        StorageError: the disk refused a write.
    """
    def item(index: int, scene: Scene):
        record = {"text": scene.text, "boxes": [list(box) for box in scene.boxes], "paper": scene.paper,
                  "background": scene.background, "turn": round(scene.turn, 2), "size": list(scene.size),
                  "corners": [[round(x, 1), round(y, 1)] for x, y in scene.corners]}
        return f"{index:05d}.jpg", lambda path: path.write_bytes(scene.jpeg), record

    return write_labelled_set(folder, (item(index, scene) for index, scene in enumerate(scenes)), "scene set")


# --- the sheet -------------------------------------------------------------------------------------------


def _sheet(ink: np.ndarray, ink_boxes, is_number: bool, paper: str, canvas: tuple[int, int], turn: float,
           rng: np.random.Generator) -> tuple[Image.Image, list[tuple[float, float, float, float]]]:
    """The sheet (RGB, in its own pixels) with the ink written on it, and each digit's box on the sheet."""
    long_side = max(canvas) if rng.random() < 0.5 else min(canvas)  # the sheet lies along the photo or across it
    along = float(rng.uniform(*SHEET_SPAN)) * long_side
    aspect = float(rng.uniform(1.25, 1.45))
    portrait = long_side == min(canvas)
    size = (along / aspect, along) if portrait else (along, along / aspect)  # (columns, rows)
    # Shrunk until the turned sheet fits in the photo with some table around it.
    radians = math.radians(abs(turn))
    fit = min(0.94 * canvas[0] / (size[0] * math.cos(radians) + size[1] * math.sin(radians)),
              0.94 * canvas[1] / (size[0] * math.sin(radians) + size[1] * math.cos(radians)), 1.0)
    columns, rows = max(48, round(size[0] * fit)), max(48, round(size[1] * fit))
    longer = max(columns, rows)
    spacing = float(rng.uniform(*(SQUARE_SPACING if paper == "squared" else RULE_SPACING))) * longer
    level = float(rng.uniform(0.8, 0.95))
    tint = np.array([1.0, rng.uniform(0.97, 1.0), rng.uniform(0.9, 1.0)], dtype=np.float32)  # white to cream
    sheet = np.empty((rows, columns, 3), dtype=np.float32)
    sheet[:] = level * tint
    sheet *= 1.0 + _smooth_noise((columns, rows), 6, rng)[..., None] * float(rng.uniform(0.005, 0.02))
    sheet = _ruled(sheet, paper, spacing, rng)
    # The writing: digits a share of the spacing tall, somewhere inside the sheet's margins.
    digit_height = np.median([box[3] - box[1] for box in ink_boxes])
    sizes = SINGLE_HEIGHT if not is_number else NUMBER_SQUARES if paper == "squared" else NUMBER_HEIGHT
    height = spacing * float(rng.uniform(*sizes))
    scale = height / digit_height
    width_px, height_px = max(1, round(ink.shape[1] * scale)), max(1, round(ink.shape[0] * scale))
    if width_px > 0.8 * columns:  # a long number on a narrow sheet: written smaller
        scale *= 0.8 * columns / width_px
        width_px, height_px = max(1, round(ink.shape[1] * scale)), max(1, round(ink.shape[0] * scale))
    left = float(rng.uniform(0.1 * columns, max(0.1 * columns, 0.9 * columns - width_px)))
    top = float(rng.uniform(0.12 * rows, max(0.12 * rows, 0.88 * rows - height_px)))
    if paper != "plain":  # the digits' bottom on a rule
        first_rule = spacing * (1.5 if paper == "ruled" else 1.0)
        bottom = max(box[3] for box in ink_boxes) * scale
        rule = first_rule + spacing * round((top + bottom - first_rule) / spacing)
        top = min(max(rule - bottom + float(rng.uniform(-0.05, 0.05)) * spacing, 0.0), rows - height_px)
    big = np.clip(np.asarray(Image.fromarray(ink, mode="F").resize((width_px, height_px), Image.Resampling.BICUBIC)),
                  0.0, 1.0) * float(rng.uniform(0.85, 1.0))
    pens = ((0.08, 0.1, 0.4), (0.08, 0.08, 0.1), (0.3, 0.3, 0.32), (0.1, 0.2, 0.55))  # blue, black, pencil, royal blue
    pen = np.array(pens[int(rng.integers(len(pens)))], dtype=np.float32)
    row, column = round(top), round(left)
    region = sheet[row:row + height_px, column:column + width_px]
    ink_part = big[:region.shape[0], :region.shape[1], None]
    region[:] = region * (1.0 - ink_part) + pen * ink_part
    if rng.random() < 0.3:
        sheet = _folded(sheet, rng)
    boxes = [(column + box[0] * scale, row + box[1] * scale, column + box[2] * scale, row + box[3] * scale)
             for box in ink_boxes]
    return Image.fromarray(_to_uint8(sheet), mode="RGB"), boxes


def _ruled(sheet: np.ndarray, paper: str, spacing: float, rng: np.random.Generator) -> np.ndarray:
    """Printed lines: rules across (ruled paper, often with a red margin), or squares (squared paper)."""
    if paper == "plain":
        return sheet
    rows, columns = sheet.shape[:2]
    image = Image.fromarray(_to_uint8(sheet), mode="RGB")
    draw = ImageDraw.Draw(image)
    ink = (np.array(rng.choice([(0.55, 0.7, 0.9), (0.6, 0.6, 0.65), (0.5, 0.65, 0.75)])) *
           float(rng.uniform(0.85, 1.1)) * 255).clip(0, 255).astype(int)
    colour = tuple(int(value) for value in ink)
    width = max(1, round(float(rng.uniform(0.0015, 0.003)) * max(rows, columns)))
    first = spacing * (1.5 if paper == "ruled" else 1.0)
    for y in np.arange(first, rows, spacing):
        draw.line([(0, y), (columns, y)], fill=colour, width=width)
    if paper == "squared":
        for x in np.arange(spacing * 0.7, columns, spacing):
            draw.line([(x, 0), (x, rows)], fill=colour, width=width)
    elif rng.random() < 0.5:  # the red margin line of a school notebook
        x = columns * float(rng.uniform(0.08, 0.14))
        draw.line([(x, 0), (x, rows)], fill=(220, 110, 110), width=width)
    return np.asarray(image, dtype=np.float32) / 255.0


def _folded(sheet: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A fold across the sheet: a soft crease, darker on one side, lighter on the other."""
    rows, columns = sheet.shape[:2]
    y, x = np.mgrid[0:rows, 0:columns].astype(np.float32)
    across = rng.random() < 0.5
    position = float(rng.uniform(0.3, 0.7)) * (rows if across else columns)
    distance = (y if across else x) - position
    width = 0.004 * max(rows, columns) + 1.0
    crease = -np.exp(-(distance / width) ** 2) * 0.06 + np.tanh(distance / (4 * width)) * 0.02
    return np.clip(sheet * (1.0 + crease[..., None]), 0.0, 1.0)


# --- the table, the sheet on it, the light --------------------------------------------------------------


def _table(background: str, canvas: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """(rows, columns, 3) float32: a wooden table (planks, grain, seams) or a textured one (cloth, stone)."""
    columns, rows = canvas
    y, x = np.mgrid[0:rows, 0:columns].astype(np.float32) / max(canvas)
    if background == "wood":
        angle = float(rng.uniform(0, math.pi))
        along, across = x * math.cos(angle) + y * math.sin(angle), -x * math.sin(angle) + y * math.cos(angle)
        warp = _smooth_noise(canvas, 5, rng) * 0.02
        grain = np.sin((across + warp) * float(rng.uniform(120, 260)) + 3 * _smooth_noise(canvas, 3, rng))
        grain = 0.5 * grain + 0.3 * np.sin((across + warp) * float(rng.uniform(600, 1100)))
        plank = float(rng.uniform(0.12, 0.3))
        seams = np.abs(((across + 10.0) / plank) % 1.0 - 0.5) > 0.496  # dark seams between planks
        brightness = float(rng.uniform(0.3, 0.65))
        base = np.array([0.75, 0.5, 0.3], dtype=np.float32) * brightness / 0.5
        shade = 1.0 + 0.12 * grain + 0.06 * _smooth_noise(canvas, 4, rng) * (along > -1)
        table = base * shade[..., None]
        table[seams] *= 0.5
    else:
        brightness = float(rng.uniform(0.2, 0.65))
        hue = np.array(rng.choice([(1.0, 1.0, 1.0), (0.8, 0.9, 1.1), (1.1, 0.9, 0.8), (0.9, 1.05, 0.9)]), dtype=np.float32)
        weave = np.sin(x * float(rng.uniform(500, 900))) * np.sin(y * float(rng.uniform(500, 900)))
        texture = 0.1 * weave + 0.15 * _smooth_noise(canvas, 24, rng) + 0.1 * _smooth_noise(canvas, 4, rng)
        table = brightness * hue * (1.0 + texture)[..., None]
    return np.clip(table, 0.0, 1.0).astype(np.float32)


def _placed_corners(sheet_size: tuple[int, int], canvas: tuple[int, int], turn: float,
                    rng: np.random.Generator) -> np.ndarray:
    """(4, 2) where the sheet's corners (top-left, top-right, bottom-right, bottom-left) land in the photo."""
    columns, rows = sheet_size
    corners = np.array([[0, 0], [columns, 0], [columns, rows], [0, rows]], dtype=np.float64)
    corners += rng.uniform(-PERSPECTIVE, PERSPECTIVE, size=(4, 2)) * np.array([columns, rows])
    corners -= corners.mean(axis=0)
    angle = math.radians(turn)
    # Row vectors: (x, y) -> (x cos - y sin, x sin + y cos): the sheet's top edge runs at `turn` degrees, y down.
    turned = corners @ np.array([[math.cos(angle), math.sin(angle)], [-math.sin(angle), math.cos(angle)]])
    span = turned.max(axis=0) - turned.min(axis=0)
    room = np.maximum(np.array(canvas) - span, 0.0) / 2.0
    centre = np.array(canvas) / 2.0 + rng.uniform(-1, 1, size=2) * room * 0.8
    return turned + centre


def _laid_on(table: np.ndarray, sheet: Image.Image, corners: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The sheet carried through the perspective onto the table, with its drop shadow."""
    rows, columns = table.shape[:2]
    to_sheet = _homography(corners, _rectangle(sheet.size))  # Pillow maps each photo pixel to the sheet
    coefficients = tuple((to_sheet / to_sheet[2, 2]).ravel()[:8])
    warped = np.asarray(sheet.transform((columns, rows), Image.Transform.PERSPECTIVE, coefficients,
                                        Image.Resampling.BICUBIC), dtype=np.float32) / 255.0
    mask = Image.new("L", sheet.size, 255).transform((columns, rows), Image.Transform.PERSPECTIVE, coefficients,
                                                      Image.Resampling.BILINEAR)
    alpha = np.asarray(mask, dtype=np.float32)[..., None] / 255.0
    blur = max(1.0, 0.006 * max(rows, columns))
    offset = (round(float(rng.uniform(-1, 1)) * blur), round(float(rng.uniform(0.3, 1.2)) * blur))
    shadow = np.asarray(mask.filter(ImageFilter.GaussianBlur(blur)).transform(
        mask.size, Image.Transform.AFFINE, (1, 0, -offset[0], 0, 1, -offset[1])), dtype=np.float32)[..., None] / 255.0
    shaded = table * (1.0 - float(rng.uniform(0.2, 0.45)) * shadow)
    return shaded * (1.0 - alpha) + warped * alpha


def _lit(photo: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A light gradient across the photo, a vignette, and at times the soft shadow of the phone or a hand."""
    rows, columns = photo.shape[:2]
    y = np.linspace(-0.5, 0.5, rows, dtype=np.float32)[:, None]
    x = np.linspace(-0.5, 0.5, columns, dtype=np.float32)[None, :]
    angle = float(rng.uniform(0, 2 * math.pi))
    light = 1.0 + (math.cos(angle) * x + math.sin(angle) * y) * float(rng.uniform(0.1, 0.4))
    light *= 1.0 - float(rng.uniform(0.0, 0.25)) * (x * x + y * y) * 2
    if rng.random() < 0.4:
        centre = rng.uniform(-0.5, 0.5, size=2)
        radius = float(rng.uniform(0.15, 0.35))
        distance = np.sqrt((x - centre[0]) ** 2 + ((y - centre[1]) * 1.4) ** 2)
        light *= 1.0 - float(rng.uniform(0.15, 0.3)) / (1.0 + np.exp((distance - radius) / 0.06))
    return np.clip(photo * light[..., None], 0.0, 1.0)


def _phone_jpeg(photo: np.ndarray, size: tuple[int, int], rng: np.random.Generator) -> bytes:
    """Noise, a little blur, the photo's full size, and JPEG compression, as a phone's camera gives them."""
    noisy = photo + rng.normal(0.0, float(rng.uniform(0.01, 0.03)), size=photo.shape[:2])[..., None]
    noisy += rng.normal(0.0, 0.008, size=photo.shape)  # colour noise
    image = Image.fromarray(_to_uint8(noisy), mode="RGB").filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 0.9))))
    if image.size != tuple(size):
        image = image.resize(size, Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1)))
    return buffer.getvalue()


# --- geometry and helpers ------------------------------------------------------------------------------


def _rectangle(size: tuple[int, int]) -> np.ndarray:
    columns, rows = size
    return np.array([[0, 0], [columns, 0], [columns, rows], [0, rows]], dtype=np.float64)


def _homography(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The 3x3 projective map that takes the 4 `source` points (4, 2) to the 4 `target` points."""
    equations, values = [], []
    for (x, y), (u, v) in zip(source, target, strict=True):
        equations.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        equations.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        values.extend([u, v])
    solved = np.linalg.solve(np.array(equations), np.array(values))
    return np.append(solved, 1.0).reshape(3, 3)


def _box_through(homography: np.ndarray, box, scale: tuple[float, float], size: tuple[int, int]) -> Box:
    """A box on the sheet -> the box around its four corners in the photo's pixels, rounded outwards."""
    left, top, right, bottom = box
    points = np.array([[left, top, 1], [right, top, 1], [right, bottom, 1], [left, bottom, 1]], dtype=np.float64)
    mapped = points @ homography.T
    mapped = mapped[:, :2] / mapped[:, 2:]
    xs, ys = mapped[:, 0] * scale[0], mapped[:, 1] * scale[1]
    return (max(0, math.floor(xs.min())), max(0, math.floor(ys.min())),
            min(size[0], math.ceil(xs.max())), min(size[1], math.ceil(ys.max())))


def _smooth_noise(canvas: tuple[int, int], cells: int, rng: np.random.Generator) -> np.ndarray:
    """(rows, columns) float32 in about [-1, 1]: random values on a coarse grid of `cells`, smoothly scaled up."""
    columns, rows = canvas
    aspect = columns / rows
    coarse = rng.uniform(-1, 1, size=(max(2, round(cells / max(aspect, 1))), max(2, round(cells * min(aspect, 1) *
                                                                                           max(aspect, 1)))))
    return np.asarray(Image.fromarray(coarse.astype(np.float32), mode="F").resize(canvas, Image.Resampling.BICUBIC))


def _to_uint8(values: np.ndarray) -> np.ndarray:
    return (np.clip(values, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)

