"""How MNIST framed its digits: the longest side scaled to 20 pixels (aspect kept, anti-aliased), the
centre of mass placed at the centre of a 28x28 frame, light ink on black.

Everything that shows a network a digit it did not come from MNIST goes through `fit_in_frame`:
photos and drawings (`inference/images.py`), the pieces of a line being read, and the synthetic
"not a digit" images the reader recipe trains on.
"""

from __future__ import annotations

import functools

import numpy as np

MNIST_SIZE = 28
MNIST_BOX = 20
# Where MNIST's centres of mass are, in pixel indices: measured over the 10,000 test digits (mean
# row 13.99, column 14.01, spread 0.29 = the rounding of a whole-pixel shift).
MNIST_CENTRE = 14.0
# MNIST strokes are about 2 pixels wide in the 28x28 frame (median 2.0, 5th-95th percentile 1.3-3.1,
# measured with `stroke_width`). Strokes outside this range (bold print, hairline pens) are made
# one pixel thinner or thicker: measured here, printed digits went from 91% to 95% right.
STROKE_WIDTH_RANGE = (1.2, 2.8)
# Strokes wider than this (final pixels, as measured at twice the final size) are wider than 99.5%
# of MNIST's (99th percentile 3.8, 99.9th 4.4): a thick brush on a small drawing, a marker. One
# pixel thinner is not enough there, and a "3" drawn small with the drawing page's brush came out
# a blob that read as "8". Such strokes are eroded to MNIST's median width, the digit scaled again
# to fill its box. Measured on 10,000 photo-like MNIST digits (benchmarks' generator, seed 11): 32
# are this bold, and 3, 2 and 1 fewer of them are read right by the tutorial MLP, the speedrun CNN
# and the best CNN (-0.03% to -0.01%); no printed digit (1,000) changes. Small brush-drawn 3s, 4s
# and 7s (36: test_images.py's `draw_with_brush`, brushes of 18-21 px, paths 36-48 px tall) went
# from 28 to 36 right (speedrun CNN) and 31 to 36 (best CNN). A lower bar costs more (3.8: -0.05%),
# a higher one misses strokes a third of the digit's height.
BOLD_WIDTH = 4.0
MNIST_STROKE_WIDTH = 2.0
# Ink level (of the peak) that counts towards the box a thinned digit is scaled again to.
THINNED_BOX_LEVEL = 0.1


def stroke_width(ink: np.ndarray) -> float:
    """Mean stroke width in pixels: twice the inked area over the length of its outline."""
    inked = ink > 0.5
    area = np.count_nonzero(inked)
    if area == 0:
        return 0.0
    # Edges between an inked pixel and paper, counting the picture's own edges as paper: the mask
    # framed by a row and a column of paper on each side.
    framed = np.zeros((inked.shape[0] + 2, inked.shape[1] + 2), dtype=bool)
    framed[1:-1, 1:-1] = inked
    outline = np.count_nonzero(framed[:, 1:] != framed[:, :-1]) + np.count_nonzero(framed[1:] != framed[:-1])
    return 2.0 * area / outline


def fit_in_frame(crop: np.ndarray) -> np.ndarray:
    """Scale the digit's longest side to 20 pixels and place its centre of mass at the frame's centre."""
    from PIL import Image

    size = _box_size(crop.shape)  # (columns, rows)
    # Scaled to twice the final size first, so strokes can be made one final pixel thinner or
    # thicker; the filter widens when shrinking (as Pillow's), so the result is anti-aliased like MNIST.
    double = _resized(crop, (2 * size[0], 2 * size[1]))
    width_in_final_pixels = stroke_width(double) / 2.0
    if width_in_final_pixels > max(BOLD_WIDTH, STROKE_WIDTH_RANGE[1]):
        double, size = _thinned(double, width_in_final_pixels)
        width_in_final_pixels = stroke_width(double) / 2.0
    if width_in_final_pixels > STROKE_WIDTH_RANGE[1]:
        double = _neighbourhood(double, np.minimum, square=True)
    elif 0 < width_in_final_pixels < STROKE_WIDTH_RANGE[0]:
        double = _neighbourhood(double, np.maximum, square=True)
    # Each final pixel the mean of 2x2 (summed in the order Pillow's reduce(2) sums them: the same
    # numbers, without a round trip through a Pillow image).
    digit = double[0::2, 0::2] + double[0::2, 1::2]
    digit += double[1::2, 0::2]
    digit += double[1::2, 1::2]
    digit *= np.float32(0.25)
    np.maximum(digit, 0.0, out=digit)  # (rows, columns), at most 20x20
    peak = float(digit.max())
    if peak <= 0:
        digit = np.array(Image.fromarray(np.ascontiguousarray(crop, dtype=np.float32)).resize(
            size, Image.Resampling.BOX), dtype=np.float32)
        peak = max(float(digit.max()), 1e-6)
    digit *= np.float32(1.0 / peak)
    np.minimum(digit, 1.0, out=digit)
    return _centred(digit)


def _box_size(shape: tuple[int, int]) -> tuple[int, int]:
    """(columns, rows) of a digit of `shape` (rows, columns) with its longest side scaled to 20."""
    height, width = shape
    scale = MNIST_BOX / max(height, width)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _resized(ink: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`ink` (rows, columns) resized to `size` (columns, rows) as Pillow's bilinear filter does it,
    anti-aliased when shrinking, float32.

    Two small matrix products with Pillow's own weights: the same pixels to within one float32
    rounding, and 11 instead of 25 microseconds a digit here (most of Pillow's time goes into
    copying a tiny array into an image and back).
    """
    columns, rows = size
    wide = (ink.astype(np.float64) @ _bilinear_weights(ink.shape[1], columns).T).astype(np.float32)
    return (_bilinear_weights(ink.shape[0], rows) @ wide).astype(np.float32)  # (rows, columns)


@functools.lru_cache(maxsize=1024)  # at most 96x40 float64 each, 30 MB in all
def _bilinear_weights(size: int, new_size: int) -> np.ndarray:
    """(new_size, size) float64: the weights of Pillow's bilinear resampling along one axis (its
    `precompute_coeffs`: a triangle filter widened by the shrinking factor, normalised per pixel)."""
    scale = size / new_size
    widening = max(scale, 1.0)
    centres = (np.arange(new_size) + 0.5) * scale  # (new_size,)
    # Pillow's window: int() truncates towards zero, then it is clipped to the picture.
    first = np.maximum((centres - widening + 0.5).astype(np.int64), 0)[:, None]
    last = np.minimum((centres + widening + 0.5).astype(np.int64), size)[:, None]
    positions = np.arange(size)[None, :]
    weights = np.maximum(1.0 - np.abs((positions - centres[:, None] + 0.5) / widening), 0.0)
    weights[(positions < first) | (positions >= last)] = 0.0
    totals = weights.sum(axis=1, keepdims=True)
    return np.divide(weights, totals, out=weights, where=totals != 0.0)


def _thinned(double: np.ndarray, width: float) -> tuple[np.ndarray, tuple[int, int]]:
    """A digit at twice the final size with strokes `width` final pixels wide -> strokes about
    MNIST's median width, scaled again to fill the box; and its new final (columns, rows).

    Each step of grey-level erosion takes about one final pixel off every stroke's width (half on
    each side; squares and crosses alternate, so that slanted strokes lose as much as straight
    ones, near enough) and as much off the digit's box. With a round brush, eroding is drawing the same path
    with a thinner brush: gaps and loops open up again instead of being smeared over.
    """
    # After `steps` steps and scaling back up to the box: (width - steps) * box / (box - steps).
    box = float(MNIST_BOX)
    steps = round(box * (width - MNIST_STROKE_WIDTH) / (box - MNIST_STROKE_WIDTH))
    # A border of paper: the crop ends where the ink does, and a stroke along its edge must be
    # eroded from that side too (Pillow's filters would take the edge pixels to continue outwards).
    eroded = np.zeros((double.shape[0] + 2, double.shape[1] + 2), dtype=np.float32)
    eroded[1:-1, 1:-1] = double
    for step in range(min(steps, MNIST_BOX // 2)):
        eroded = _neighbourhood(eroded, np.minimum, square=step % 2 == 0)
    inked = eroded > THINNED_BOX_LEVEL * float(eroded.max())
    if not inked.any():
        return double, _box_size(double.shape)
    rows, columns = np.flatnonzero(inked.any(axis=1)), np.flatnonzero(inked.any(axis=0))
    cropped = eroded[rows[0]:rows[-1] + 1, columns[0]:columns[-1] + 1]
    size = _box_size(cropped.shape)
    return _resized(cropped, (2 * size[0], 2 * size[1])), size


def _neighbourhood(image: np.ndarray, extreme, square: bool) -> np.ndarray:
    """The minimum (`extreme` = np.minimum) or maximum of each pixel's 3x3 square (or its 4
    neighbours and itself, a cross); pixels outside the picture are left out, as in Pillow's
    MinFilter(3) and MaxFilter(3), which this equals for squares at a fifth of the cost."""
    along_columns = image.copy()
    extreme(along_columns[1:], image[:-1], out=along_columns[1:])
    extreme(along_columns[:-1], image[1:], out=along_columns[:-1])
    source = along_columns if square else image
    result = along_columns.copy() if square else along_columns
    extreme(result[:, 1:], source[:, :-1], out=result[:, 1:])
    extreme(result[:, :-1], source[:, 1:], out=result[:, :-1])
    return result


def _centred(digit: np.ndarray) -> np.ndarray:
    """A digit (rows, columns) of at most 20x20 pasted in 28x28 with its centre of mass at the centre."""
    rows, columns = digit.shape
    total = float(digit.sum())
    row_centre = float(digit.sum(axis=1) @ np.arange(rows, dtype=np.float32)) / total
    column_centre = float(digit.sum(axis=0) @ np.arange(columns, dtype=np.float32)) / total
    top = round(MNIST_CENTRE - row_centre)
    left = round(MNIST_CENTRE - column_centre)
    frame = np.zeros((MNIST_SIZE, MNIST_SIZE), dtype=np.float32)
    # Paste with clipping: a lopsided digit may stick out of the frame, as in MNIST.
    frame_top, frame_left = max(top, 0), max(left, 0)
    frame_bottom, frame_right = min(top + rows, MNIST_SIZE), min(left + columns, MNIST_SIZE)
    if frame_bottom > frame_top and frame_right > frame_left:
        frame[frame_top:frame_bottom, frame_left:frame_right] = digit[
            frame_top - top:frame_bottom - top, frame_left - left:frame_right - left]
    return frame
