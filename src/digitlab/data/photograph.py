"""Ink made a photo, as a phone takes one of writing: scaled up, on unevenly lit and textured paper (or a
dark board), blurred, noisy and JPEG-compressed. The photos of lines (`data/lines.py`) and of the
non-digits no training sees (`data/unseen.py`) are made by `render_photo`.
"""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image, ImageFilter

# render_photo: scale of the photo over the ink, share of light ink on a dark board, JPEG quality.
PHOTO_SCALE = (1.5, 3.0)
LIGHT_ON_DARK_SHARE = 0.15
JPEG_QUALITY = (50, 90)


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


def scaled_box(box: tuple[int, int, int, int], scale: float, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """A (x0, y0, x1, y1) box in ink pixels -> the photo's pixels (`scale` from render_photo), rounded
    outwards, within the photo of `shape` (rows, columns)."""
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
