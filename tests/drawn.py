"""Strokes as the drawing page draws them, and the PNG it sends for them: shared by the API, looking and
browser tests. Points are in pad shares (0-1, y down)."""

from __future__ import annotations

import math

from PIL import Image, ImageDraw

# As in static/app.js: the brush is BRUSH_SHARE of the writing's size within [MIN_BRUSH, MAX_BRUSH] of the
# pad; the drawing is sent cropped to its ink with MARGIN_SHARE writing sizes of paper around, the writing
# WRITING_PIXELS high.
BRUSH_SHARE, MIN_BRUSH, MAX_BRUSH, MIN_WRITING = 0.1, 0.008, 0.05, 0.05
WRITING_PIXELS, MARGIN_SHARE = 128, 0.3


def arc(x: float, y: float, radius: float, start: float, end: float, steps: int = 24) -> list:
    """Points along a circular arc, angles in degrees (clockwise on screen: y grows downwards)."""
    return [(x + radius * math.cos(math.radians(start + (end - start) * step / steps)),
             y + radius * math.sin(math.radians(start + (end - start) * step / steps))) for step in range(steps + 1)]


def moved(strokes, scale: float = 1, x: float = 0.5, y: float = 0.5) -> list:
    """The strokes scaled about the pad's centre, then centred on (x, y)."""
    return [[(x + (px - 0.5) * scale, y + (py - 0.5) * scale) for px, py in stroke] for stroke in strokes]


def eight(x: float, y: float, width: float, height: float, steps: int = 60) -> list:
    """A figure eight in one stroke, centred on (x, y), starting at its top."""
    return [(x + width / 2 * math.sin(4 * math.pi * step / steps), y - height / 2 * math.cos(2 * math.pi * step / steps))
            for step in range(steps + 1)]


def three(x: float, y: float, height: float) -> list:
    """A 3 in one stroke, two bowls open to the left, centred on (x, y)."""
    return arc(x, y - height / 4, height / 4, 200, 450, 20) + arc(x, y + height / 4, height / 4, 270, 520, 20)


FOUR = [[(0.30, 0.25), (0.18, 0.58), (0.42, 0.58)], [(0.36, 0.35), (0.36, 0.78)]]
TWO = [arc(0.70, 0.38, 0.12, 200, 360) + [(0.58, 0.75), (0.84, 0.75)]]
SEVEN = [[(0.28, 0.22), (0.72, 0.22), (0.45, 0.82)]]
ONE = [[(0.52, 0.18), (0.50, 0.82)]]
# A 3 and an 8 whose strokes touch (the 3's middle meets the 8's waist): the classifier, shown them framed as
# one digit, names an 8; the reader reads 38.
THIRTY_EIGHT = [three(0.33, 0.5, 0.5), eight(0.59, 0.5, 0.26, 0.5)]
# "3.5": a 3, a dot on the baseline, a 5.
THREE_POINT_FIVE = [three(0.22, 0.5, 0.44), [(0.42, 0.70)],
                    [(0.74, 0.29), (0.58, 0.29), (0.56, 0.47)] + arc(0.65, 0.58, 0.12, 220, 490)]


def writing_size(strokes) -> float:
    points = [point for stroke in strokes for point in stroke]
    xs, ys = [x for x, _ in points], [y for _, y in points]
    return max(max(ys) - min(ys), (max(xs) - min(xs)) / 3, MIN_WRITING)


def brush(strokes) -> float:
    return min(MAX_BRUSH, max(MIN_BRUSH, BRUSH_SHARE * writing_size(strokes)))


def sent_image(strokes) -> Image.Image:
    """The PNG the page sends for these strokes: cropped to the ink, dark on white, the writing WRITING_PIXELS high."""
    points = [point for stroke in strokes for point in stroke]
    writing, pen = writing_size(strokes), brush(strokes)
    margin = MARGIN_SHARE * writing + pen / 2
    left, top = min(x for x, _ in points) - margin, min(y for _, y in points) - margin
    right, bottom = max(x for x, _ in points) + margin, max(y for _, y in points) + margin
    scale = WRITING_PIXELS / writing  # pixels per pad share
    image = Image.new("L", (round((right - left) * scale), round((bottom - top) * scale)), 255)
    draw, width = ImageDraw.Draw(image), max(1, round(pen * scale))
    for stroke in strokes:
        mapped = [((x - left) * scale, (y - top) * scale) for x, y in stroke]
        if len(mapped) > 1:
            draw.line(mapped, fill=0, width=width, joint="curve")
        for x, y in (mapped[0], mapped[-1]):  # round ends, like the page's lineCap
            draw.ellipse((x - width / 2, y - width / 2, x + width / 2, y + width / 2), fill=0)
    return image
