"""Find the digit on the page and frame it like MNIST: fit the paper's uneven lighting, separate the
ink from it, box the ink; `data/framing.py` then brings strokes to MNIST's width and centres the
digit in 28x28 by its mass.

Works on the small grayscale pixel arrays `inference/images.py` decodes; knows nothing about files.
"""

from __future__ import annotations

import functools

import numpy as np

from digitlab.data.framing import MNIST_CENTRE, MNIST_SIZE, fit_in_frame, stroke_width

# What images.py and the tests use from the framing, through this module.
__all__ = ["MNIST_CENTRE", "MNIST_SIZE", "fit_in_frame", "stroke_width", "extract_ink", "ink_box", "ink_from_fits",
           "judge_paper", "paper_fits", "sample_grid"]

# Pixels sampled per side to judge the paper (polarity, lighting, noise).
SAMPLE_GRID = 16
# Ink level (of 1) a pixel needs to count towards the digit's box: fainter pixels are kept inside
# the box, but noise and smudges that faint do not stretch it.
BOX_INK_LEVEL = 0.3


def sample_grid(pixels: np.ndarray) -> np.ndarray:
    """Up to SAMPLE_GRID x SAMPLE_GRID evenly spaced pixels: enough to judge the paper, far cheaper."""
    return pixels[_sample_indices(*pixels.shape)]


@functools.lru_cache(maxsize=1024)
def _sample_indices(rows: int, columns: int) -> tuple[np.ndarray, np.ndarray]:
    sample_rows = np.linspace(0, rows - 1, min(rows, SAMPLE_GRID)).round().astype(np.intp)
    sample_columns = np.linspace(0, columns - 1, min(columns, SAMPLE_GRID)).round().astype(np.intp)
    return np.ix_(sample_rows, sample_columns)


def _quantile(values: np.ndarray, fraction: float) -> float:
    """The value at `fraction` of the sorted values (no interpolation): np.percentile's result
    within one sample, at a fraction of its overhead on these small arrays."""
    index = min(len(values) - 1, int(fraction * len(values)))
    return float(np.partition(values, index)[index])


@functools.lru_cache(maxsize=1024)
def _coordinates(rows: int, columns: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column coordinates in [-1, 1], shaped (rows, 1) and (1, columns)."""
    return (np.linspace(-1.0, 1.0, rows, dtype=np.float32)[:, None],
            np.linspace(-1.0, 1.0, columns, dtype=np.float32)[None, :])


@functools.lru_cache(maxsize=1024)
def _design(rows: int, columns: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows * columns, 6) terms of a quadratic surface (1, x, y, x^2, xy, y^2), and their pairwise
    products (rows * columns, 36), so that the normal equations of any subset of samples are one
    matrix product."""
    y, x = _coordinates(rows, columns)
    y, x = np.broadcast_to(y, (rows, columns)).ravel(), np.broadcast_to(x, (rows, columns)).ravel()
    design = np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=1).astype(np.float64)
    products = (design[:, :, None] * design[:, None, :]).reshape(len(design), 36)
    return design, products


@functools.lru_cache(maxsize=1024)
def _powers(count: int) -> np.ndarray:
    """(count, 3): 1, t and t^2 for `count` coordinates t evenly spaced in [-1, 1] (as `_coordinates`)."""
    t = np.linspace(-1.0, 1.0, count, dtype=np.float32)
    return np.stack([np.ones_like(t), t, t * t], axis=1)


def _surface(coefficients: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """The quadratic surface over a (rows, columns) grid spanning the same picture, float32.

    As a product of rank 3, (1, y, y^2) @ C @ (1, x, x^2): one matrix product instead of a dozen
    broadcast operations, 8 against 20 microseconds for 96x96 here, equal to float rounding.
    """
    c = coefficients
    terms = np.array([[c[0], c[1], c[3]], [c[2], c[4], 0.0], [c[5], 0.0, 0.0]], dtype=np.float32)
    return (_powers(rows) @ terms) @ _powers(columns).T  # (rows, columns)


_RIDGE = 1e-6 * np.eye(6)
# The coefficients of a surface that is 1 everywhere.
_CONSTANT = np.array([1.0, 0.0, 0.0, 0.0, 0.0, 0.0])


def _background_fits(grids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The paper's level as quadratic-surface coefficients (uneven lighting), and the noise around it,
    for K sample grids at once: (K, rows, columns) -> coefficients (K, 6) float64, noise (K,).

    Each grid has light ink on a dark background. The fit is robust and one-sided: samples well
    above the surface are ink and are left out of the next pass, so even a bold digit covering half
    the picture does not lift the background. The grids are fitted side by side (both polarities of
    many pictures: far fewer NumPy calls), each exactly as if alone: a grid whose inliers run out
    stops where it is.
    """
    count = len(grids)
    design, products = _design(*grids.shape[1:])  # (samples, 6), (samples, 36)
    samples = grids.reshape(count, -1).astype(np.float64)
    size = samples.shape[1]
    rows = np.arange(count)
    # Start from a level that ink covering up to 3/4 of the picture cannot reach.
    coefficients = np.zeros((count, 6))
    start = min(size - 1, int(0.25 * size))
    coefficients[:, 0] = np.partition(samples, start, axis=1)[:, start]
    inliers = samples <= coefficients[:, :1]
    noise = np.full(count, 1.0 / 255.0)
    active = np.ones(count, dtype=bool)
    for _ in range(3):
        residuals = samples - coefficients @ design.T
        # The median absolute residual of each grid's inliers (as `_quantile`: no interpolation).
        ranked = np.sort(np.where(inliers, np.abs(residuals), np.inf), axis=1)
        kept = np.count_nonzero(inliers, axis=1)
        middle = ranked[rows, np.minimum(kept - 1, (0.5 * kept).astype(np.intp))]
        noise = np.where(active, np.maximum(1.4826 * middle, 1.0 / 255.0), noise)
        candidates = (residuals < 2.5 * noise[:, None]) & (residuals > -6.0 * noise[:, None])
        active &= np.count_nonzero(candidates, axis=1) >= 12
        if not active.any():
            break
        inliers = np.where(active[:, None], candidates, inliers)
        # Normal equations (6x6) with a little ridge for flat or tiny pictures: cheaper than lstsq.
        weights = inliers.astype(np.float64)
        normal = (weights @ products).reshape(count, 6, 6) + _RIDGE
        solved = np.linalg.solve(normal, ((weights * samples) @ design)[:, :, None])[:, :, 0]
        coefficients = np.where(active[:, None], solved, coefficients)
    return coefficients, noise


def paper_fits(grids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The paper under K sample grids (K, rows, columns), fitted both ways: assuming dark ink (each
    grid inverted, so that ink is light on dark like MNIST), then light ink. Coefficients (2K, 6) and
    noise (2K,): rows 2k and 2k + 1 are grid k's dark-ink and light-ink fits."""
    oriented = np.empty((2 * len(grids), *grids.shape[1:]), dtype=grids.dtype)
    np.subtract(1.0, grids, out=oriented[0::2])
    oriented[1::2] = grids
    return _background_fits(oriented)


def judge_paper(grids: np.ndarray, fitted: np.ndarray, noises: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How far ink stands out of the paper fitted under K sample grids (`paper_fits`) each way, and
    the paper's brightness: scores (K, 2), dark ink then light ink, and the median paper level
    under the dark-ink fit (K,). Done for many grids at once: a handful of NumPy calls instead of a
    dozen per picture."""
    surfaces = (fitted @ _design(*grids.shape[1:])[0].T).astype(np.float32)  # (2K, samples)
    oriented = np.empty_like(surfaces)
    flat = grids.reshape(len(grids), -1)
    np.subtract(1.0, flat, out=oriented[0::2])
    oriented[1::2] = flat
    oriented -= surfaces
    oriented -= np.maximum(4.0 * noises, 0.04).astype(np.float32)[:, None]
    scores = np.maximum(oriented, 0.0).sum(axis=1).reshape(len(grids), 2)
    paper = np.maximum(1.0 - surfaces[0::2], 0.05)  # (K, samples)
    middle = min(paper.shape[1] - 1, int(0.5 * paper.shape[1]))  # as `_quantile`: no interpolation
    return scores, np.partition(paper, middle, axis=1)[:, middle]


def extract_ink(pixels: np.ndarray) -> np.ndarray | None:
    """Light ink on black in [0, 1], background and faint noise removed; None if there is no ink."""
    grid = sample_grid(pixels)
    return ink_from_fits(pixels, grid, *paper_fits(grid[None]))


def ink_from_fits(pixels: np.ndarray, grid: np.ndarray, fitted: np.ndarray, noises: np.ndarray,
                  judged: tuple[np.ndarray, float] | None = None) -> np.ndarray | None:
    """`extract_ink` given the paper fitted under the picture's sample grid both ways (`paper_fits`),
    and optionally judged already (one row of `judge_paper`: scores (2,) and paper level)."""
    # Polarity: fit the paper both ways; the right way leaves strokes standing out above it, the
    # wrong way only noise (the true ink falls below the paper and is left out of the fit). Simpler
    # rules (is the border light?) fail under strong vignetting or a dark corner. The sample grid
    # usually decides; thin strokes it misses are looked for in every pixel.
    if judged is None:
        scores, levels = judge_paper(grid[None], fitted, noises)
        judged = scores[0], levels[0]
    dark_score, light_score = (float(value) for value in judged[0])
    if max(dark_score, light_score) <= 3.0 * min(dark_score, light_score) or max(dark_score, light_score) == 0:
        dark_score, light_score = (_excess(pixels, fitted[which], float(noises[which]), dark_ink)
                                   for which, dark_ink in enumerate((True, False)))
    dark_ink = dark_score >= light_score
    which = 0 if dark_ink else 1
    noise = float(noises[which])
    if dark_ink:
        # Paper reflects light and ink absorbs a share of it: under a shadow both are darker by the
        # same factor. Dividing by the paper's brightness makes the ink equally strong everywhere.
        # (The fit was made on the inverted picture: the paper is 1 minus the fitted surface.)
        paper = _surface(_CONSTANT - fitted[which], *pixels.shape)
        ink = paper - pixels
        ink /= np.maximum(paper, 0.05, out=paper)
        noise /= float(judged[1])
    else:
        ink = _surface(fitted[which], *pixels.shape)
        np.subtract(pixels, ink, out=ink)  # (rows, columns)
    threshold = max(4.0 * noise, 0.04)
    strong = ink[ink > threshold]
    # Fewer ink pixels than a short stroke, or too little contrast: a blank page.
    if strong.size < max(4, pixels.size // 2000):
        return None
    level = _quantile(strong, 0.9)
    if level < 0.08:
        return None
    # Faint noise below the threshold is dropped; the ink's own level becomes 1.
    ink -= np.float32(threshold)
    ink *= np.float32(1.0 / max(level - threshold, 1e-3))
    return np.clip(ink, 0.0, 1.0, out=ink)


def _excess(pixels: np.ndarray, coefficients: np.ndarray, noise: float, dark_ink: bool) -> float:
    oriented = 1.0 - pixels if dark_ink else pixels
    excess = oriented - _surface(coefficients, *pixels.shape) - max(4.0 * noise, 0.04)
    return float(np.clip(excess, 0.0, None).sum()) / pixels.size


def ink_box(ink: np.ndarray) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the digit: clearly inked pixels, isolated specks left out.

    Noise or a smudge would stretch the box and shrink the digit, so the box is that of pixels above
    BOX_INK_LEVEL that survive a 3x3 majority vote (a median filter); hairlines, which the vote
    erases, use the plain mask.
    """
    strict = ink > BOX_INK_LEVEL
    if not strict.any():
        strict = ink > 0
    rows, columns = strict.shape
    padded = np.zeros((rows + 2, columns + 2), dtype=np.uint8)
    padded[1:-1, 1:-1] = strict
    # Inked pixels in each 3x3 neighbourhood (outside the picture counts as paper): a box sum,
    # done as a sum of three columns and then of three rows.
    across = padded[:, :-2] + padded[:, 1:-1]
    across += padded[:, 2:]
    neighbours = across[:-2] + across[1:-1]
    neighbours += across[2:]
    kept = strict & (neighbours >= 5)
    mask = kept if np.count_nonzero(kept) >= np.count_nonzero(strict) // 2 else strict
    inked_rows, inked_columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return int(inked_columns[0]), int(inked_rows[0]), int(inked_columns[-1]) + 1, int(inked_rows[-1]) + 1
