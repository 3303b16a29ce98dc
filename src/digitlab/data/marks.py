"""The marks people write between digits, drawn as a pen would: points, commas, dashes, slashes, colons.

`draw_mark` gives one mark as light ink on black, cropped, with where it sits against the digits'
baseline; `data/lines.py` places marks between MNIST digits (`compose_glyphs`) for the line model to learn
and for the separator test set.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

# The marks people write between digits, and the kind each is reported as (a space is a wider gap).
SEPARATOR_KINDS = {".": "point", ",": "comma", "-": "dash", "/": "slash", ":": "colon"}
SPACE = " "
# A mark's pen: its stroke width as a share of the digit height (MNIST's strokes are about 0.1 to 0.15 of it).
MARK_STROKE = (0.09, 0.16)
# A point's (and each of a colon's dots') size as a share of the digit height: from a pen's touch to a blob.
# Smaller dots are specks to the front end (line_strip.SPECK_FRACTION of the tallest piece).
DOT_SIZE = (0.15, 0.32)
# A dash's length as a share of the digit height (a short hyphen to a long dash), its tilt in degrees either
# way, and where its middle sits, as a share of the height above the baseline.
DASH_LENGTH = (0.25, 0.8)
DASH_TILT_DEGREES = 8.0
DASH_HEIGHT = (0.3, 0.6)
# A slash's height as a share of the digit height, and its lean from the vertical in degrees; this share of
# slashes lean back (as a backhand writer's do).
SLASH_HEIGHT = (0.8, 1.15)
SLASH_LEAN_DEGREES = (15.0, 40.0)
BACKSLANT_SHARE = 0.25
# A comma's tail: its length as a share of the digit height; it reaches below the baseline by up to this much.
COMMA_LENGTH = (0.2, 0.4)
COMMA_DROP = (0.05, 0.25)
# A colon's dots: the distance between their centres as a share of the digit height.
COLON_SPACING = (0.3, 0.5)
# Marks are drawn this many times larger, then shrunk: soft edges like MNIST's anti-aliased strokes.
MARK_SUPERSAMPLE = 4


def draw_mark(character: str, height: float, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Draw a separator as a pen would beside digits `height` pixels tall, light ink on black.

    Returns:
        (crop, lift): the (rows, columns) float32 ink in [0, 1] cropped to the mark, and how many pixels
        its bottom sits above the digits' baseline (negative: below it, as a comma's tail).
    """
    if character not in SEPARATOR_KINDS:
        raise ValueError(f"unknown mark {character!r}; choose one of: {', '.join(SEPARATOR_KINDS)}")
    if height <= 0:
        raise ValueError(f"height must be positive, got {height}")
    pen = max(1.0, rng.uniform(*MARK_STROKE) * height)
    if character == ".":
        size = max(pen, rng.uniform(*DOT_SIZE) * height)
        crop = _drawn([("dot", (0.0, 0.0), size, size * rng.uniform(0.75, 1.25))], pen)
        return crop, rng.uniform(-0.04, 0.1) * height
    if character == ",":
        size = max(pen, rng.uniform(*DOT_SIZE) * height * 0.9)
        length = rng.uniform(*COMMA_LENGTH) * height
        lean = math.radians(rng.uniform(15.0, 45.0))
        tail = (-length * math.sin(lean), length * math.cos(lean))  # (x, y): down and to the left
        crop = _drawn([("dot", (0.0, 0.0), size, size), ("line", (0.0, 0.0), tail)], pen)
        return crop, -rng.uniform(*COMMA_DROP) * height
    if character == "-":
        length = max(2 * pen, rng.uniform(*DASH_LENGTH) * height)
        tilt = math.radians(rng.uniform(-DASH_TILT_DEGREES, DASH_TILT_DEGREES))
        crop = _drawn([("line", (0.0, 0.0), (length * math.cos(tilt), -length * math.sin(tilt)))], pen)
        return crop, rng.uniform(*DASH_HEIGHT) * height - crop.shape[0] / 2
    if character == "/":
        tall = rng.uniform(*SLASH_HEIGHT) * height
        lean = math.radians(rng.uniform(*SLASH_LEAN_DEGREES)) * (-1 if rng.random() < BACKSLANT_SHARE else 1)
        crop = _drawn([("line", (0.0, tall), (tall * math.tan(lean), 0.0))], pen)  # from the bottom up
        return crop, rng.uniform(-0.1, 0.08) * height
    size = max(pen, rng.uniform(*DOT_SIZE) * height * 0.9)  # ":"
    spacing = rng.uniform(*COLON_SPACING) * height
    drift = rng.uniform(-0.15, 0.15) * spacing  # the upper dot a little left or right of the lower
    crop = _drawn([("dot", (drift, 0.0), size, size), ("dot", (0.0, spacing), size, size)], pen)
    return crop, rng.uniform(-0.03, 0.12) * height


def _drawn(strokes: list[tuple], pen: float) -> np.ndarray:
    """Strokes drawn with a round pen `pen` pixels wide, MARK_SUPERSAMPLE times larger then shrunk, cropped.

    Each stroke is ("dot", (x, y) centre, width, height) or ("line", (x, y) start, (x, y) end), in pixels.
    """
    points = []
    for stroke in strokes:
        if stroke[0] == "dot":
            (x, y), width, tall = stroke[1], stroke[2], stroke[3]
            points += [(x - width / 2, y - tall / 2), (x + width / 2, y + tall / 2)]
        else:
            points += [stroke[1], stroke[2]]
    low_x = min(x for x, _ in points) - pen - 2
    low_y = min(y for _, y in points) - pen - 2
    size = (math.ceil(max(x for x, _ in points) - low_x + pen + 2), math.ceil(max(y for _, y in points) - low_y + pen + 2))
    factor = MARK_SUPERSAMPLE
    canvas = Image.new("L", (size[0] * factor, size[1] * factor), 0)
    draw = ImageDraw.Draw(canvas)
    width = max(1, round(pen * factor))
    for stroke in strokes:
        if stroke[0] == "dot":
            (x, y), dot_width, tall = stroke[1], stroke[2], stroke[3]
            draw.ellipse([((x - dot_width / 2 - low_x) * factor, (y - tall / 2 - low_y) * factor),
                          ((x + dot_width / 2 - low_x) * factor, (y + tall / 2 - low_y) * factor)], fill=255)
        else:
            start = ((stroke[1][0] - low_x) * factor, (stroke[1][1] - low_y) * factor)
            end = ((stroke[2][0] - low_x) * factor, (stroke[2][1] - low_y) * factor)
            draw.line([start, end], fill=255, width=width)
            for x, y in (start, end):  # round ends, as a pen leaves them
                draw.ellipse([(x - width / 2, y - width / 2), (x + width / 2, y + width / 2)], fill=255)
    ink = np.asarray(canvas.resize(size, Image.Resampling.BOX), dtype=np.float32) / 255.0
    rows, columns = np.flatnonzero(ink.max(axis=1) > 0.1), np.flatnonzero(ink.max(axis=0) > 0.1)
    if len(rows) == 0:  # too faint to show: one pixel of ink, so the mark keeps a box
        return np.ones((1, 1), dtype=np.float32)
    return np.ascontiguousarray(ink[rows[0]:rows[-1] + 1, columns[0]:columns[-1] + 1])
