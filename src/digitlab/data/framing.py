"""How MNIST framed its digits: the longest side scaled to 20 pixels (aspect kept, anti-aliased), the
centre of mass placed at the centre of a 28x28 frame, light ink on black.

Everything that shows a network a digit it did not come from MNIST goes through `fit_in_frame`:
photos and drawings (`inference/images.py`), the pieces of a line being read, and the synthetic
"not a digit" images the reader recipe trains on.
"""

from __future__ import annotations

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


def stroke_width(ink: np.ndarray) -> float:
    """Mean stroke width in pixels: twice the inked area over the length of its outline."""
    inked = ink > 0.5
    area = np.count_nonzero(inked)
    if area == 0:
        return 0.0
    # Edges between an inked pixel and paper, counting the picture's own edges as paper.
    outline = (np.count_nonzero(inked[:, 1:] != inked[:, :-1]) + np.count_nonzero(inked[1:, :] != inked[:-1, :])
               + np.count_nonzero(inked[:, 0]) + np.count_nonzero(inked[:, -1])
               + np.count_nonzero(inked[0]) + np.count_nonzero(inked[-1]))
    return 2.0 * area / outline


def fit_in_frame(crop: np.ndarray) -> np.ndarray:
    """Scale the digit's longest side to 20 pixels and place its centre of mass at the frame's centre."""
    from PIL import Image, ImageFilter

    height, width = crop.shape
    scale = MNIST_BOX / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))  # (columns, rows)
    # Scaled to twice the final size first, so strokes can be made one final pixel thinner or
    # thicker; Pillow widens its filter when shrinking, so the result is anti-aliased like MNIST.
    double = Image.fromarray(crop, mode="F").resize((2 * size[0], 2 * size[1]), Image.Resampling.BILINEAR)
    width_in_final_pixels = stroke_width(np.asarray(double)) / 2.0
    if width_in_final_pixels > STROKE_WIDTH_RANGE[1]:
        double = double.filter(ImageFilter.MinFilter(3))
    elif 0 < width_in_final_pixels < STROKE_WIDTH_RANGE[0]:
        double = double.filter(ImageFilter.MaxFilter(3))
    digit = np.maximum(np.asarray(double.reduce(2), dtype=np.float32), 0.0)  # (rows, columns) in 20x20
    peak = float(digit.max())
    if peak <= 0:
        digit = np.array(Image.fromarray(crop, mode="F").resize(size, Image.Resampling.BOX), dtype=np.float32)
        peak = max(float(digit.max()), 1e-6)
    digit *= np.float32(1.0 / peak)
    np.minimum(digit, 1.0, out=digit)
    total = float(digit.sum())
    row_centre = float(digit.sum(axis=1) @ np.arange(size[1], dtype=np.float32)) / total
    column_centre = float(digit.sum(axis=0) @ np.arange(size[0], dtype=np.float32)) / total
    top = round(MNIST_CENTRE - row_centre)
    left = round(MNIST_CENTRE - column_centre)
    frame = np.zeros((MNIST_SIZE, MNIST_SIZE), dtype=np.float32)
    # Paste with clipping: a lopsided digit may stick out of the frame, as in MNIST.
    frame_top, frame_left = max(top, 0), max(left, 0)
    frame_bottom, frame_right = min(top + size[1], MNIST_SIZE), min(left + size[0], MNIST_SIZE)
    if frame_bottom > frame_top and frame_right > frame_left:
        frame[frame_top:frame_bottom, frame_left:frame_right] = digit[
            frame_top - top:frame_bottom - top, frame_left - left:frame_right - left]
    return frame
