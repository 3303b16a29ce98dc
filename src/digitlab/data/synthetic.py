"""Synthetic photos of digits, for tests and benchmarks of `predict` and `serve`: handwritten and printed.

Photo-like: an MNIST digit inverted to dark ink on light paper under an uneven lighting gradient,
scaled 2x to 7x, pasted off-centre on a larger canvas, with sensor noise; some in colour, some
saved as JPEG. Printed: a digit drawn with a TrueType font, in the same conditions.
"""

from __future__ import annotations

import glob
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from digitlab import storage

# Font files looked for (Debian: fonts-dejavu-core, fonts-dejavu-extra, fonts-liberation).
FONT_PATTERNS = ("/usr/share/fonts/truetype/dejavu/DejaVu*.ttf", "/usr/share/fonts/truetype/liberation*/Liberation*.ttf")
# Fonts whose digits are not drawn like handwriting (symbols, hairlines): left out.
FONT_EXCLUDED = ("MathTeXGyre", "ExtraLight")


def find_fonts() -> list[str]:
    """TrueType fonts installed on this machine that draw ordinary digits."""
    found = sorted({path for pattern in FONT_PATTERNS for path in glob.glob(pattern)})
    return [path for path in found if not any(word in Path(path).name for word in FONT_EXCLUDED)]


def _photograph(ink: np.ndarray, rng: np.random.Generator, colour: bool) -> Image.Image:
    """Light ink (0..1, on black) -> dark ink on a light, unevenly lit, noisy page of the same size."""
    rows, columns = ink.shape
    paper = rng.uniform(0.65, 0.95)
    ink_level = rng.uniform(0.05, 0.35)
    # Lighting: a linear gradient in a random direction plus a vignette, brightness 0.55..1.
    angle = rng.uniform(0, 2 * np.pi)
    y, x = np.mgrid[0:rows, 0:columns].astype(np.float32)
    y, x = y / max(rows - 1, 1) - 0.5, x / max(columns - 1, 1) - 0.5
    gradient = (np.cos(angle) * x + np.sin(angle) * y) * rng.uniform(0.2, 0.45)
    vignette = -(x**2 + y**2) * rng.uniform(0.0, 0.4)
    light = np.clip(0.85 + gradient + vignette, 0.45, 1.0)
    page = (paper - ink * (paper - ink_level)) * light
    noise_level = rng.uniform(0.01, 0.04)
    if colour:
        tint = rng.uniform(0.9, 1.0, size=3)  # warm paper, bluish ink
        page = page[..., None] * tint + rng.normal(0, noise_level, size=(rows, columns, 3))
    else:
        page = page + rng.normal(0, noise_level, size=(rows, columns))
    return Image.fromarray((np.clip(page, 0, 1) * 255).round().astype(np.uint8))


def _place(digit: Image.Image, rng: np.random.Generator) -> np.ndarray:
    """Paste light-on-black `digit` at a random off-centre spot of a canvas 1.3x to 2.5x larger."""
    width, height = digit.size
    canvas_width = int(width * rng.uniform(1.3, 2.5))
    canvas_height = int(height * rng.uniform(1.3, 2.5))
    canvas = Image.new("L", (canvas_width, canvas_height), 0)
    canvas.paste(digit, (int(rng.integers(0, canvas_width - width + 1)), int(rng.integers(0, canvas_height - height + 1))))
    return np.asarray(canvas, dtype=np.float32) / 255.0


def _encode(image: Image.Image, rng: np.random.Generator, jpeg: bool) -> bytes:
    buffer = io.BytesIO()
    if jpeg:
        image.save(buffer, format="JPEG", quality=int(rng.integers(60, 95)))
    else:
        image.save(buffer, format="PNG")
    return buffer.getvalue()


def photo_like_handwritten(mnist_digit: np.ndarray, rng: np.random.Generator) -> tuple[bytes, str]:
    """An MNIST digit (28x28 uint8) as a photo-like image file; returns (file bytes, suffix)."""
    scale = rng.uniform(2.0, 7.0)
    size = round(28 * scale)
    digit = Image.fromarray(mnist_digit).resize((size, size), Image.Resampling.BICUBIC)
    page = _photograph(_place(digit, rng), rng, colour=rng.random() < 0.4)
    jpeg = rng.random() < 0.5
    return _encode(page, rng, jpeg), ".jpg" if jpeg else ".png"


def printed(digit: int, font_path: str, rng: np.random.Generator) -> tuple[bytes, str]:
    """`digit` drawn with a TrueType font as a photo-like image file; returns (file bytes, suffix)."""
    font = ImageFont.truetype(font_path, size=int(rng.integers(40, 140)))
    left, top, right, bottom = font.getbbox(str(digit))
    glyph = Image.new("L", (right - left + 4, bottom - top + 4), 0)
    ImageDraw.Draw(glyph).text((2 - left, 2 - top), str(digit), fill=255, font=font)
    page = _photograph(_place(glyph, rng), rng, colour=rng.random() < 0.4)
    jpeg = rng.random() < 0.5
    return _encode(page, rng, jpeg), ".jpg" if jpeg else ".png"


def write_handwritten(folder: Path, mnist_images: np.ndarray, mnist_labels: np.ndarray, count: int,
                      seed: int) -> list[tuple[Path, int]]:
    """Write `count` photo-like images of MNIST digits picked at random; return (path, label) pairs."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    written = []
    for index, picked in enumerate(rng.choice(len(mnist_images), size=count, replace=False)):
        data, suffix = photo_like_handwritten(mnist_images[picked], rng)
        path = folder / f"hand-{index:04d}{suffix}"
        storage.write_bytes_atomic(path, data)
        written.append((path, int(mnist_labels[picked])))
    return written


def write_printed(folder: Path, fonts: list[str], count: int, seed: int) -> list[tuple[Path, int]]:
    """Write `count` printed digits, cycling through digits and fonts; return (path, label) pairs."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    written = []
    for index in range(count):
        digit = index % 10
        data, suffix = printed(digit, fonts[(index // 10) % len(fonts)], rng)
        path = folder / f"printed-{index:04d}{suffix}"
        storage.write_bytes_atomic(path, data)
        written.append((path, digit))
    return written


def digit_picture(seed: int, size=(120, 100)):
    """Dark strokes on light paper: something with ink, different per seed."""
    rng = np.random.default_rng(seed)
    image = Image.new("L", size, 235)
    points = [tuple(int(value) for value in rng.integers(15, min(size) - 15, 2)) for _ in range(4)]
    ImageDraw.Draw(image).line(points, fill=20, width=6)
    return image
