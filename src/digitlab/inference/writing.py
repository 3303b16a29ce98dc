"""Find the writing in a photo: the sheet on the table, turned straight, printed lines taken out, cropped.

A phone photo of a digit on paper shows much that is not writing: the table around the sheet (wood
grain, plank seams, cloth), the sheet's edge and its drop shadow, ruled or squared lines, a margin
line, a fold, shadows. `find_writing` looks at the picture at ANALYSIS_LONGEST pixels:

1. **The sheet.** Thin dark marks (ink, printed lines, grain) are closed over (a grey closing wider
   than a pen stroke); what is left is paper and table. The brightest large region (Otsu's threshold)
   is the sheet when it stands out from the rest by SHEET_CONTRAST and covers a share of the picture
   in SHEET_SHARE. Its edge (less EDGE_MARGIN) bounds where writing is looked for.
2. **Which way it is turned.** The sheet's edges and the printed lines are projected along angles
   within MOST_TURN degrees; the angle whose projections are sharpest is the sheet's turn, and the
   picture is turned back by it (a slight perspective leaves lines a degree or two off, which step 3
   allows for).
3. **Printed lines.** Thin dark marks (the closing less the picture) in long straight runs, across or
   down, at least LINE_SPAN of the sheet long, are printed lines, a margin line or a fold. Where a
   pen stroke crosses one, the stroke is kept (ink above and below the line). Lines are looked for
   only on a sheet that was found, or where at least RULES_NEEDED parallel ones are: a tightly
   cropped "7" keeps its bar.
4. **The writing.** What is left of the thin dark marks on the sheet, specks dropped, boxed with a
   margin of paper. The crop is turned straight and the lines and the table in it are painted over
   with the paper's own (closed) level, so that the ink finders after it (`data/ink.py`,
   `data/line_strip.py`) see writing on paper only.

Where there is neither a sheet on a table nor ruled or squared lines (a drawing, a scan, a cropped
photo) the picture is handed on as it is. The result maps boxes in the crop back to the picture's pixels.

    writing = find_writing(picture)      # a PIL image, as images.decode_picture gives it
    writing.picture                      # what the digit and line finders are shown
    writing.to_picture((x0, y0, x1, y1)) # a box in it -> in the given picture's pixels
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from digitlab.inference.paper import (
    FRINGE,
    LINE_SPAN,
    SHEET_CONTRAST,
    SHEET_SHARE,
    contrast,
    crossing_strokes,
    extent,
    long_lines,
    otsu,
    pooled,
    sheet_mask,
    turn_angle,
    unpooled,
)

# Pictures are analysed at most this many pixels on their longest side; the crop keeps this detail
# (a number's digits about 20 pixels tall or more on a sheet filling most of a photo).
ANALYSIS_LONGEST = 1024
# Pictures less than this many pixels on their shorter side are taken as already cropped to the writing (a
# strip of digits, a drawing, a crop): a sheet on a table, photographed, is larger.
SMALLEST = 200
# The quick look for a sheet is taken at this many pixels on the longest side.
QUICK_LONGEST = 256
# Dark marks narrower than this share of the picture's longest side are closed over to see the paper.
CLOSING_SHARE = 0.025
# The sheet's edge, its shadow and a little paper inside it are left out: this share of the picture's longest side.
EDGE_MARGIN = 0.012
# A thin dark mark counts above this many times the noise of the closing's difference, and at least MARK_LEVEL.
MARK_NOISE = 5.0
# Printed lines are looked for among marks above this many times the noise (and half MARK_LEVEL).
LINE_NOISE = 2.5
MARK_LEVEL = 0.03
# Marks on a printed line this many times darker than the line's typical mark are ink on it.
INK_OVER_LINES = 1.8
# Parallel long lines needed to take a picture without a sheet for ruled (or squared) paper.
RULES_NEEDED = 3
# Marks holding less ink than this share of the seed mark's (the one holding the most) are specks, left out of
# the writing's box (a decimal point holds about a tenth of a digit's ink).
SPECK_MASS = 0.03
# Marks less dark than this share of the darkest mark are not ink (what is left of printed lines, grain, edges).
INK_SHARE = 0.5
# Marks this many of the seed mark's heights away from the writing (or nearer) belong to it.
GROUP_GAP = 1.0
# The crop is flattened under a closing this share of the writing's height (strokes of a large digit are closed over).
WRITING_CLOSING = 0.35
# Marks fainter than this share of the ink's darkness (a fold, a shadow's edge, what is left of a line) become paper;
# the crop is handed on as ink of level INK on paper of level PAPER.
FAINT_SHARE = 0.3
PAPER, INK = 0.9, 0.1
# Paper kept around the writing: this share of the writing's height, and at least MARGIN_PIXELS.
MARGIN_SHARE = 0.6
MARGIN_PIXELS = 6


@dataclasses.dataclass(frozen=True, eq=False)
class Writing:
    """Where the writing is in a picture, and the picture of it that the ink finders are shown."""

    # The writing, turned straight, lines and table painted over: a PIL image ("F" in [0, 1]); or the
    # picture itself when no sheet and no printed lines were found.
    picture: object
    # True when a sheet or printed lines were found and `picture` is the cleaned crop.
    found: bool = False
    # The picture's pixels per crop pixel, the turn (degrees) the crop was turned back by, and the
    # affine map (2, 3) from crop pixels (x, y, 1) to the picture's pixels.
    scale: float = 1.0
    turn: float = 0.0
    to_picture_map: tuple = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0))
    # Each printed line found (how many), and whether a sheet on a table was found.
    lines: int = 0
    sheet: bool = False

    def to_picture(self, box) -> tuple[float, float, float, float]:
        """A box (x0, y0, x1, y1) in `picture`'s pixels -> the box around it in the given picture's pixels."""
        left, top, right, bottom = box
        if not self.found:
            return float(left), float(top), float(right), float(bottom)
        matrix = np.asarray(self.to_picture_map, dtype=np.float64)
        corners = np.array([[left, top, 1.0], [right, top, 1.0], [right, bottom, 1.0], [left, bottom, 1.0]])
        mapped = corners @ matrix.T  # (4, 2)
        return (float(mapped[:, 0].min()), float(mapped[:, 1].min()), float(mapped[:, 0].max()),
                float(mapped[:, 1].max()))

    @property
    def crop_box(self) -> tuple[int, int, int, int]:
        """The crop's box in the given picture's pixels (around its corners when it was turned)."""
        width, height = self.picture.size
        left, top, right, bottom = self.to_picture((0, 0, width, height))
        return math.floor(left), math.floor(top), math.ceil(right), math.ceil(bottom)


def find_writing(picture) -> Writing:
    """Find the writing in a decoded picture (PIL "L" or "F"); see the module's docstring.

    Returns:
        A `Writing`: the cleaned crop and how its pixels map back, or the picture as it is.
    """
    from PIL import Image

    if min(picture.size) < SMALLEST:
        return Writing(picture)
    scale = max(1.0, max(picture.size) / ANALYSIS_LONGEST)
    analysed = picture
    if scale > 1.0:
        analysed = picture.resize((max(1, round(picture.size[0] / scale)), max(1, round(picture.size[1] / scale))),
                                  Image.Resampling.BOX)
    scale = picture.size[0] / analysed.size[0]
    gray = np.asarray(analysed, dtype=np.float32)
    if analysed.mode != "F":
        gray = gray / np.float32(255.0)
    if not _may_hold_writing_to_find(analysed, gray):
        return Writing(picture)
    return _found(picture, gray, scale) or Writing(picture)


def _may_hold_writing_to_find(analysed, gray: np.ndarray) -> bool:
    """A quick look, with NumPy and Pillow alone (SciPy is not even imported for most pictures): could there be
    a sheet on a table (a bright region standing out, `_sheet`'s first test, on a small copy), or printed lines
    (three or more rows of thin marks across most of the picture, along its sharpest angle)?"""
    from PIL import ImageFilter

    small = analysed if analysed.mode == "F" else analysed.convert("F")
    if max(small.size) > QUICK_LONGEST:
        shrink = max(small.size) / QUICK_LONGEST
        small = small.resize((max(1, round(small.size[0] / shrink)), max(1, round(small.size[1] / shrink))))
    closing = _odd(CLOSING_SHARE * QUICK_LONGEST)
    closed = np.asarray(small.filter(ImageFilter.MaxFilter(closing)).filter(ImageFilter.MinFilter(closing)),
                        dtype=np.float32)
    if analysed.mode != "F":
        closed = closed / np.float32(255.0)
    bright = closed > otsu(closed)
    if SHEET_SHARE[0] <= float(bright.mean()) <= SHEET_SHARE[1] and \
            float(np.median(closed[bright])) - float(np.median(closed[~bright])) >= SHEET_CONTRAST:
        return True
    image = analysed if analysed.mode == "F" else analysed.convert("F")
    paper = np.asarray(image.filter(ImageFilter.MaxFilter(3)).filter(ImageFilter.MinFilter(3)), dtype=np.float32)
    if analysed.mode != "F":
        paper = paper / np.float32(255.0)
    marks = contrast(paper, gray)
    ys, xs = np.nonzero(marks > max(MARK_LEVEL, float(np.median(marks)) + MARK_LEVEL))
    if len(xs) < RULES_NEEDED * LINE_SPAN * min(gray.shape):
        return False
    best = turn_angle(np.zeros_like(gray, dtype=bool), None, points=(ys, xs))
    angle = math.radians(best)
    across = np.round(ys * math.cos(angle) - xs * math.sin(angle)).astype(np.int64)
    down = np.round(xs * math.cos(angle) + ys * math.sin(angle)).astype(np.int64)
    rows = np.bincount(across - across.min())
    columns = np.bincount(down - down.min())
    # Half a line's span is enough here: perspective spreads a line over a few rows.
    return bool((rows >= LINE_SPAN / 2 * gray.shape[1]).any() or (columns >= LINE_SPAN / 2 * gray.shape[0]).any())


def _found(picture, gray: np.ndarray, scale: float) -> Writing | None:
    """The writing found in `gray` (the picture at `scale` picture pixels per pixel), or None."""
    from scipy import ndimage

    rows, columns = gray.shape
    longest = max(rows, columns)
    closing = _odd(CLOSING_SHARE * longest)
    closed = ndimage.grey_closing(gray, size=(closing, closing))
    sheet = sheet_mask(closed)
    margin = max(1, round(EDGE_MARGIN * longest))
    # The sheet less its edge (a square's erosion; off the picture counts as table).
    inside = ndimage.minimum_filter(sheet.view(np.uint8), size=2 * margin + 1, mode="constant", cval=0) > 0 \
        if sheet is not None else np.ones_like(gray, dtype=bool)
    marks = contrast(closed, gray)  # thin dark marks: ink, printed lines, grain
    # The closing sits above the paper by about its noise (the brightest pixel of each window): marks are
    # measured from their typical level (the paper's), and against the spread around it.
    bias = float(np.median(marks[inside])) if inside.any() else 0.0
    marks -= bias
    noise = 1.4826 * float(np.median(np.abs(marks[inside]))) if inside.any() else 0.0
    level = max(MARK_LEVEL, MARK_NOISE * noise)
    marked = (marks > level) & inside
    edges = sheet ^ ndimage.binary_erosion(sheet, iterations=1, border_value=1) if sheet is not None else None
    turn = turn_angle(marked, edges)
    # Everything from here on in the straightened frame, which holds the whole picture.
    straight = _Straightened(gray.shape, turn)
    gray_s, closed_s = straight.warp(gray, fill=1.0), straight.warp(closed, fill=1.0)
    inside_s = straight.warp(inside.astype(np.float32), fill=0.0) > 0.5
    strength = contrast(closed_s, gray_s) - bias
    marked_s = (strength > level) & inside_s
    # Printed lines are fainter than ink: looked for among fainter marks (noise does not run straight for long).
    faint_s = (strength > max(MARK_LEVEL / 2, LINE_NOISE * noise)) & inside_s
    extent_mask = straight.warp(sheet.astype(np.float32), fill=0.0) > 0.5 if sheet is not None else inside_s
    # Long lines are looked for at half the detail (2x2 pixels pooled): four times fewer pixels, the same lines.
    halved = pooled(faint_s)
    across_lines, across_count = long_lines(halved, extent(extent_mask, axis=1) // 2)
    down_lines, down_count = long_lines(halved.T, extent(extent_mask, axis=0) // 2)
    # Back at full detail, with the lines' blurred fringe; pen ink is darker than the printed lines it lies on
    # (each family's typical darkness: a red margin line is darker than blue rules): where a stroke runs along
    # or across one, it stays.
    printed = np.zeros_like(faint_s)
    for family, across in ((across_lines, True), (down_lines.T, False)):
        lines = ndimage.binary_dilation(unpooled(family, faint_s.shape), iterations=FRINGE) & faint_s
        if lines.any():
            line_level = _quantile(strength[lines], 0.75)
            lines &= strength < max(INK_OVER_LINES * line_level, line_level + level)
            # Where a pen stroke crosses a line (ink beyond it on both sides), the stroke stays.
            printed |= lines & ~crossing_strokes(marked_s, lines, vertical=across)
    ruled = across_count >= RULES_NEEDED or down_count >= RULES_NEEDED
    if sheet is None and not ruled:
        return None
    writing_marks = marked_s & ~printed
    box = _writing_box(writing_marks, strength)
    if box is None:
        return None
    left, top, right, bottom = box
    writing_height = bottom - top
    pad = max(MARGIN_PIXELS, round(MARGIN_SHARE * writing_height))
    left, top = max(0, left - pad), max(0, top - pad)
    right, bottom = min(gray_s.shape[1], right + pad), min(gray_s.shape[0], bottom + pad)
    crop = (slice(top, bottom), slice(left, right))
    # Printed lines (and their fringe) and everything off the sheet painted as paper.
    painted = ndimage.binary_dilation(printed[crop], iterations=1) | ~inside_s[crop]
    region = np.where(painted, _paper_level(closed_s[crop], inside_s[crop]), gray_s[crop])
    cleaned = _flattened(region, max(closing, _odd(WRITING_CLOSING * writing_height)), level)
    return _writing(picture, cleaned, straight, (left, top), scale, turn, across_count + down_count,
                    sheet is not None)


def _writing(picture, crop: np.ndarray, straight, corner: tuple[int, int], scale: float, turn: float,
             lines: int, sheet: bool) -> Writing:
    """The Writing for a crop of the straightened frame whose top-left is `corner` there."""
    from PIL import Image

    # crop (x, y) -> straightened (x + left, y + top) -> analysed (straight.to_source) -> picture (x scale)
    to_analysed = straight.to_source_matrix()  # (2, 3) straightened -> analysed
    shift = np.array([[1.0, 0.0, corner[0]], [0.0, 1.0, corner[1]], [0.0, 0.0, 1.0]])
    to_picture = scale * (to_analysed @ shift)
    image = Image.fromarray(np.ascontiguousarray(np.clip(crop, 0.0, 1.0), dtype=np.float32), mode="F")
    return Writing(image, True, scale, turn, tuple(map(tuple, to_picture.tolist())), lines, sheet)


class _Straightened:
    """The frame a picture (rows, columns) is turned straight into, by `turn` degrees, large enough to hold it."""

    def __init__(self, shape: tuple[int, int], turn: float) -> None:
        rows, columns = shape
        self.source_shape = shape
        angle = math.radians(turn)
        self.cos, self.sin = math.cos(angle), math.sin(angle)
        # A line running at `turn` (y down) runs across once turned: (cos, sin) -> (1, 0).
        width = abs(columns * self.cos) + abs(rows * self.sin)
        height = abs(columns * self.sin) + abs(rows * self.cos)
        self.size = (max(1, math.ceil(width)), max(1, math.ceil(height)))  # (columns, rows)
        self.source_centre = (columns / 2.0, rows / 2.0)
        self.centre = (self.size[0] / 2.0, self.size[1] / 2.0)

    def to_source_matrix(self) -> np.ndarray:
        """(2, 3): straightened (x, y, 1) -> source (x, y)."""
        c, s = self.cos, self.sin
        # source = R^T (p - centre) + source_centre, with R = [[c, s], [-s, c]].
        linear = np.array([[c, -s], [s, c]])
        offset = np.array(self.source_centre) - linear @ np.array(self.centre)
        return np.hstack([linear, offset[:, None]])

    def warp(self, values: np.ndarray, fill: float) -> np.ndarray:
        """`values` (rows, columns) in the source frame -> the straightened frame (bilinear), `fill` outside."""
        from PIL import Image

        if self.sin == 0.0:
            return values.astype(np.float32, copy=False)
        matrix = self.to_source_matrix()
        image = Image.fromarray(np.ascontiguousarray(values, dtype=np.float32), mode="F")
        warped = image.transform(self.size, Image.Transform.AFFINE, tuple(matrix.ravel()), Image.Resampling.BILINEAR,
                                 fillcolor=fill)
        return np.asarray(warped, dtype=np.float32)


def _writing_box(marks: np.ndarray, strength: np.ndarray) -> tuple[int, int, int, int] | None:
    """(left, top, right, bottom) around the writing: the darkest marks that are not specks, and those near them.

    The writing grows from the mark that holds the most ink to marks within GROUP_GAP of its height that
    are at least INK_SHARE as dark (pen ink stands out more than what is left of printed lines, grain or
    the sheet's edge) and hold SPECK_MASS of its ink; marks further away (a stray line end, a stain) are not
    writing.
    """
    from scipy import ndimage

    labels, count = ndimage.label(marks, structure=np.ones((3, 3), dtype=bool))
    if count == 0:
        return None
    boxes = ndimage.find_objects(labels)
    inked = labels[marks]
    darkness = np.zeros(count + 1, dtype=np.float32)  # the darkest pixel of each mark (ndimage.maximum sorts: slow)
    np.maximum.at(darkness, inked, strength[marks])
    mass = np.bincount(inked, weights=strength[marks], minlength=count + 1)  # how much ink each mark holds
    darkness, mass = darkness[1:], mass[1:]
    sides = np.array([max(box[0].stop - box[0].start, box[1].stop - box[1].start) for box in boxes])
    # The seed: the mark holding the most ink (a digit, not the thin rest of a printed line).
    seed = int(np.argmax(np.where(sides >= 3, mass, -1.0)))
    candidates = [index for index in range(count)
                  if darkness[index] >= INK_SHARE * darkness[seed] and mass[index] >= SPECK_MASS * mass[seed]]
    left, top = boxes[seed][1].start, boxes[seed][0].start
    right, bottom = boxes[seed][1].stop, boxes[seed][0].stop
    gap = GROUP_GAP * (bottom - top)  # the seed's height: a chain of marks cannot widen its own reach
    grown = True
    while grown:
        grown = False
        for index in candidates:
            rows, columns = boxes[index]
            if columns.start >= left and columns.stop <= right and rows.start >= top and rows.stop <= bottom:
                continue
            apart = max(columns.start - right, left - columns.stop, rows.start - bottom, top - rows.stop)
            if apart <= gap:
                left, top = min(left, columns.start), min(top, rows.start)
                right, bottom = max(right, columns.stop), max(bottom, rows.stop)
                grown = True
    return left, top, right, bottom


def _flattened(region: np.ndarray, closing: int, level: float) -> np.ndarray:
    """The crop as ink on even paper: shadows, folds and faint marks (under FAINT_SHARE of the ink's
    darkness) gone, the ink's darkness kept (anti-aliased edges, dots of every size): PAPER and INK levels."""
    from scipy import ndimage

    paper = ndimage.grey_closing(region, size=(closing, closing))  # the paper under the ink, shadows and all
    strength = contrast(paper, region)
    inked = strength[strength > level]
    if inked.size == 0:
        return np.full_like(region, PAPER)
    ink_level = _quantile(inked, 0.9)
    floor = FAINT_SHARE * ink_level
    ink = np.clip((strength - floor) / max(ink_level - floor, 1e-3), 0.0, 1.0)
    return (PAPER - (PAPER - INK) * ink).astype(np.float32)


def _quantile(values: np.ndarray, fraction: float) -> float:
    index = min(len(values) - 1, int(fraction * len(values)))
    return float(np.partition(values, index)[index])


def _paper_level(closed: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """The paper's level everywhere: the closing on the sheet, the nearest sheet pixel's off it."""
    from scipy import ndimage

    if inside.all() or not inside.any():
        return closed
    _, (nearest_rows, nearest_columns) = ndimage.distance_transform_edt(~inside, return_indices=True)
    return closed[nearest_rows, nearest_columns]


def _odd(value: float) -> int:
    return max(3, int(value) // 2 * 2 + 1)
