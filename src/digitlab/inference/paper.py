"""The paper in a photo: the sheet standing out from the table, which way it is turned, and the lines
printed on it (ruled, squared, a margin line, a fold) with the pen strokes that cross them.

`inference/writing.py` uses these to find the writing; each works on grey levels in [0, 1] at the
analysis size (ANALYSIS_LONGEST there).
"""

from __future__ import annotations

import math

import numpy as np

# The sheet: its paper at least this much brighter than the table (of 1), covering this share of the picture.
SHEET_CONTRAST = 0.1
SHEET_SHARE = (0.08, 0.96)
# Bright parts at least this share of the largest one's area, and at most SHEET_GAP of the picture's longest
# side from it, are parts of the sheet (a fold or a shadow across it can split it).
SHEET_PART = 0.2
SHEET_GAP = 0.02
# Across the sheet's edge (bands this share of the picture's longest side inside and outside it) the light
# changes by at least this share of the paper-to-table difference: a step, not a vignette's slow fade.
EDGE_BAND = 0.006
EDGE_STEP = 0.5
# Turns looked for, in degrees, and the step of the coarse search (refined to a tenth of it).
MOST_TURN = 20.0
TURN_STEP = 1.0
# A printed line runs straight for at least this share of the sheet's width (or height).
LINE_SPAN = 0.45
# Slopes (rows per column) runs are looked for along, in the straightened picture: up to about 5 degrees off.
SLOPES = (-0.08, -0.04, 0.0, 0.04, 0.08)
# A printed line's blurred fringe reaches this many pixels beyond what was found of it.
FRINGE = 2


def sheet_mask(closed: np.ndarray) -> np.ndarray | None:
    """The sheet's mask (holes filled) when a bright region stands out from a darker table; else None."""
    from scipy import ndimage

    threshold = otsu(closed)
    bright = closed > threshold
    labels, count = ndimage.label(bright)
    if count == 0:
        return None
    sizes = np.bincount(labels.ravel())[1:]
    # A fold or a shadow across the sheet can split its paper in two: every large bright part belongs to it,
    # and the sheet is their convex hull (a sheet is convex, seen in slight perspective).
    largest = labels == int(sizes.argmax()) + 1
    reach = max(1, round(SHEET_GAP * max(closed.shape)))
    near = ndimage.maximum_filter(largest.view(np.uint8), size=2 * reach + 1) > 0
    touching = np.unique(labels[near & (labels > 0)])
    parts = np.isin(labels, [label for label in touching if sizes[label - 1] >= SHEET_PART * sizes.max()])
    sheet = _convex_hull(parts)
    share = float(sheet.mean())
    if not SHEET_SHARE[0] <= share <= SHEET_SHARE[1]:
        return None
    paper, table = float(np.median(closed[sheet])), float(np.median(closed[~sheet]))
    if paper - table < SHEET_CONTRAST:
        return None
    # A sheet's edge is a step; a vignette or a lit patch fades over much of the picture. Compared: the light
    # just inside the edge and just outside it (the picture's own border left out).
    outline = ndimage.binary_fill_holes(largest)  # its outer edge only: ink left open by the closing is no edge
    width = max(2, round(EDGE_BAND * max(closed.shape)))
    framed = np.zeros_like(outline)
    framed[width:-width, width:-width] = True
    inner = outline & ~ndimage.binary_erosion(outline, iterations=width) & framed
    outer = ndimage.binary_dilation(outline, iterations=width) & ~outline & framed
    if not inner.any() or not outer.any():
        return None
    if float(np.median(closed[inner])) - float(np.median(closed[outer])) < EDGE_STEP * (paper - table):
        return None
    return sheet


def _convex_hull(mask: np.ndarray) -> np.ndarray:
    """The mask's convex hull, filled (the mask itself when it is too thin for a hull)."""
    from PIL import Image, ImageDraw
    from scipy import ndimage
    from scipy.spatial import ConvexHull, QhullError

    edge = mask & ~ndimage.binary_erosion(mask)
    rows, columns = np.nonzero(edge)
    points = np.stack([columns, rows], axis=1).astype(np.float64)
    try:
        hull = ConvexHull(points)
    except (QhullError, ValueError):
        return ndimage.binary_fill_holes(mask)
    image = Image.new("1", (mask.shape[1], mask.shape[0]), 0)
    ImageDraw.Draw(image).polygon([tuple(point) for point in points[hull.vertices]], fill=1, outline=1)
    return np.asarray(image, dtype=bool)


def contrast(paper: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """How much darker than the paper under it each pixel is, as a share of the paper's level: the same for a
    mark in the light and in a shadow."""
    return (paper - pixels) / np.maximum(paper, 0.05)


def otsu(values: np.ndarray) -> float:
    """Otsu's threshold of values in [0, 1]: the level that best splits them into two classes."""
    histogram, edges = np.histogram(values, bins=128, range=(0.0, 1.0))
    weights = histogram.astype(np.float64)
    centres = (edges[:-1] + edges[1:]) / 2.0
    below = np.cumsum(weights)
    above = below[-1] - below
    below_sum = np.cumsum(weights * centres)
    mean_below = below_sum / np.maximum(below, 1e-9)
    mean_above = (below_sum[-1] - below_sum) / np.maximum(above, 1e-9)
    between = below * above * (mean_below - mean_above) ** 2
    return float(edges[int(between.argmax()) + 1])


def turn_angle(marked: np.ndarray, edges: np.ndarray | None, points=None) -> float:
    """The sheet's turn in degrees: the angle at which its edges and printed lines project sharpest (or the
    given `points`, rows and columns)."""
    ys, xs = np.nonzero(marked if edges is None else (marked | edges)) if points is None else points
    if len(xs) < 20:
        return 0.0
    if len(xs) > 60_000:  # a sample is as good and far cheaper
        keep = np.random.default_rng(0).choice(len(xs), 60_000, replace=False)
        ys, xs = ys[keep], xs[keep]
    xs, ys = xs.astype(np.float64), ys.astype(np.float64)

    def sharpness(degrees: float) -> float:
        angle = math.radians(degrees)
        across = np.round(ys * math.cos(angle) - xs * math.sin(angle)).astype(np.int64)  # rows once straightened
        down = np.round(xs * math.cos(angle) + ys * math.sin(angle)).astype(np.int64)  # columns once straightened
        return float(np.square(np.bincount(across - across.min())).sum() + np.square(np.bincount(down - down.min())).sum())

    coarse = np.arange(-MOST_TURN, MOST_TURN + 1e-9, TURN_STEP)
    best = float(coarse[int(np.argmax([sharpness(angle) for angle in coarse]))])
    fine = np.arange(best - TURN_STEP, best + TURN_STEP + 1e-9, TURN_STEP / 10)
    scores = [sharpness(angle) for angle in fine]
    if max(scores) <= 1.05 * sharpness(0.0):  # no clear turn: leave it straight
        return 0.0
    return float(fine[int(np.argmax(scores))])


def extent(mask: np.ndarray, axis: int) -> int:
    """How far the mask reaches along columns (axis=1) or rows (axis=0): the sheet's width or height."""
    present = np.flatnonzero(mask.any(axis=1 - axis))
    return int(present[-1] + 1 - present[0]) if len(present) else mask.shape[axis]


def long_lines(marked: np.ndarray, span: int) -> tuple[np.ndarray, int]:
    """Marks in straight runs across (rows) at least LINE_SPAN of `span` long, and how many such lines.

    The picture is turned straight by the sheet's turn, but perspective leaves lines a few degrees off
    it (more for lines across the turn's than along it): runs are looked for along each slope of SLOPES
    (the mask sheared so that lines of that slope run along rows), a row's drift allowed.
    """
    from scipy import ndimage

    rows, columns = marked.shape
    least = max(8, round(0.5 * LINE_SPAN * span))
    lines = np.zeros_like(marked)
    found = 0
    row_index = np.arange(rows)[:, None]
    column_index = np.arange(columns)[None, :]
    for slope in SLOPES:
        shift = np.round(slope * (column_index - columns / 2.0)).astype(np.intp)  # (1, columns)
        source_rows = np.clip(row_index + shift, 0, rows - 1)  # (rows, columns): sheared[r, c] = marked[r + shift[c], c]
        sheared = marked[source_rows, column_index]
        # A row of the mask or its neighbours: a line a little off the slope still runs unbroken.
        loose = sheared.copy()
        loose[1:] |= sheared[:-1]
        loose[:-1] |= sheared[1:]
        runs = _runs_at_least(loose, least)
        labels, count = ndimage.label(runs, structure=np.ones((3, 3), dtype=bool))
        if count == 0:
            continue
        boxes = ndimage.find_objects(labels)
        long_enough = [index + 1 for index, box in enumerate(boxes)
                       if box[1].stop - box[1].start >= LINE_SPAN * span and box[0].stop - box[0].start <= 0.1 * span]
        if not long_enough:
            continue
        keep = np.isin(labels, long_enough) & sheared
        kept_rows, kept_columns = np.nonzero(keep)
        lines[source_rows[kept_rows, kept_columns], kept_columns] = True
        found = max(found, len(long_enough))
    return lines, found


def pooled(mask: np.ndarray) -> np.ndarray:
    """Each 2x2 block of the mask -> one pixel, set when any of the four is (rows and columns rounded up)."""
    rows, columns = mask.shape
    padded = np.zeros((rows + rows % 2, columns + columns % 2), dtype=bool)
    padded[:rows, :columns] = mask
    return padded.reshape(padded.shape[0] // 2, 2, padded.shape[1] // 2, 2).any(axis=(1, 3))


def unpooled(pooled: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """`_pooled` undone: each pixel -> its 2x2 block, cut to `shape`."""
    return np.repeat(np.repeat(pooled, 2, axis=0), 2, axis=1)[:shape[0], :shape[1]]


def _runs_at_least(mask: np.ndarray, length: int) -> np.ndarray:
    """The pixels of `mask` in runs along each row of at least `length` pixels."""
    rows, columns = mask.shape
    padded = np.zeros((rows, columns + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    change = np.diff(padded, axis=1)  # +1 where a run starts, -1 one past where it ends
    starts_r, starts_c = np.nonzero(change == 1)
    ends_r, ends_c = np.nonzero(change == -1)
    kept = np.zeros((rows, columns + 1), dtype=np.int32)
    long_runs = (ends_c - starts_c) >= length
    np.add.at(kept, (starts_r[long_runs], starts_c[long_runs]), 1)
    np.add.at(kept, (ends_r[long_runs], ends_c[long_runs]), -1)
    return np.cumsum(kept, axis=1)[:, :columns] > 0


def crossing_strokes(marked: np.ndarray, printed: np.ndarray, vertical: bool) -> np.ndarray:
    """The pixels of printed lines (running across when `vertical`, else down) that a pen stroke crosses: ink
    marks continue beyond the line on both sides (above and below it, or left and right). The line's own
    blurred fringe (within FRINGE pixels of it) is not a stroke."""
    from scipy import ndimage

    fringe = ndimage.binary_dilation(printed, iterations=FRINGE)
    others = marked & ~fringe
    reach = 2 * FRINGE + 6  # pixels: past the fringe and the line's band (half the detail pooled, a row's drift)
    before = np.zeros_like(printed)
    after = np.zeros_like(printed)
    for step in range(1, reach + 1):
        if vertical:
            before[step:] |= others[:-step]
            after[:-step] |= others[step:]
        else:
            before[:, step:] |= others[:, :-step]
            after[:, :-step] |= others[:, step:]
    return before & after & printed
