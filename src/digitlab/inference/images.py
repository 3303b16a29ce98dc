"""Any image of a digit -> 28x28 like MNIST: read, find the writing (a photo's sheet), find the ink, crop,
scale, centre.

MNIST digits are light ink on black, size-normalised so the longest side fits a 20x20 box (aspect
ratio kept, anti-aliased), then placed in a 28x28 frame so that their centre of mass is at the
centre. A photo or scan is dark ink on uneven light paper, anywhere, at any size: a network trained
on MNIST gets such an image right only once it is prepared the same way.
"""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Sequence

import numpy as np

from digitlab.data.ink import (
    MNIST_SIZE,
    extract_ink,
    fit_in_frame,
    ink_box,
    ink_from_fits,
    judge_paper,
    paper_fits,
    sample_grid,
)
from digitlab.errors import ImageError
from digitlab.inference.writing import ANALYSIS_LONGEST, Writing, find_writing
from digitlab.storage import NOT_REGULAR

# What other modules use (MNIST_SIZE is the frame `ink.py` fits digits into).
__all__ = ["IMAGE_SUFFIXES", "MAX_IMAGE_PIXELS", "MNIST_SIZE", "decode_picture", "decode_picture_and_scale",
           "file_scale", "image_name", "picture_box", "prepare_image", "prepare_image_batch", "read_image"]

# Refuse larger images before decoding them: a small file can claim gigapixels (decompression bomb).
MAX_IMAGE_PIXELS = 50_000_000
# Pictures are shrunk so their longest side is at most this many pixels before they are analysed:
# the digit ends up 20 pixels tall, so more detail mostly costs time.
WORKING_SIZE = 96
# A digit found smaller than this (longest side, working pixels) in a picture that has more detail
# is looked at again, cropped from the full picture: a small digit in a big photo keeps its shape.
ZOOM_BELOW = 24
# Large JPEGs are decoded at 1/2, 1/4 or 1/8 scale, keeping at least this many pixels on their longest
# side (decoding is the slowest step): the detail the writing is looked for in (writing.ANALYSIS_LONGEST).
JPEG_DRAFT_SIZE = ANALYSIS_LONGEST
# `prepare_image_batch` fits the paper under this many pictures at a time (holding them decoded
# meanwhile), and prepares pictures larger than BATCH_MAX_PIXELS one by one, at once.
BATCH_SIZE = 32
BATCH_MAX_PIXELS = 1_000_000
# File name endings that folders are searched for (what Pillow reads).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def read_image(source):
    """Open an image file (or take a PIL image) and return it decoded, upright, in grayscale.

    Applies the EXIF orientation, composites transparency on white and converts to 8-bit grayscale
    ("L"; 16-bit and float images become "F" scaled to [0, 1]). The size is checked from the header
    before any pixel is decoded.

    Args:
        source: a path (str or Path), a binary file object, or a PIL image.

    Raises:
        ImageError: not an image, truncated, over MAX_IMAGE_PIXELS, or unreadable.
    """
    return _read_upright(source)[0]


def draft_for_reading(image) -> None:
    """Ask Pillow to decode an opened, not yet decoded JPEG at the reduced scale `read_image` uses: its
    longest side still JPEG_DRAFT_SIZE or more, in grayscale. Several times faster on a big photo, and it
    loses nothing the result could show. Other formats are left as they are; `image.size` is then the
    size that will be decoded."""
    if image.format == "JPEG" and image.mode in ("L", "RGB", "CMYK", "YCbCr"):
        # draft() keeps both sides at least as large as asked: ask for the stored shape, scaled down.
        shrink = max(1.0, max(image.size) / JPEG_DRAFT_SIZE)
        image.draft("L", (math.ceil(image.size[0] / shrink), math.ceil(image.size[1] / shrink)))


def _read_upright(source):
    """`read_image`, and the image's width in its file's own pixels once upright (before any reduced
    decoding): what `file_scale` would open the file again to find."""
    from PIL import Image, ImageOps

    name = image_name(source)
    try:
        if isinstance(source, Image.Image):
            image = source
            _check_size(image, name)
        else:
            image = _open_checked(source, name)
        stored_size = image.size
        if image is not source:
            draft_for_reading(image)
        orientation = image.getexif().get(0x0112, 1)  # EXIF Orientation tag
        if orientation != 1:
            image = ImageOps.exif_transpose(image)
        upright_width = stored_size[1] if orientation in (5, 6, 7, 8) else stored_size[0]  # 5-8: on its side
        return _to_grayscale(image), upright_width
    except ImageError:
        raise
    except Image.DecompressionBombError as err:
        raise ImageError(f"{name} is too large to decode safely (over {MAX_IMAGE_PIXELS / 1e6:.0f} megapixels): "
                         f"{err}") from err
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, MemoryError) as err:
        # Pillow reports bad data with any of these, depending on the format and where it breaks.
        reason = str(err) or type(err).__name__
        if isinstance(err, FileNotFoundError):
            reason = "no such file"
        elif isinstance(err, IsADirectoryError):
            reason = "is a folder, not an image"
        elif "cannot identify image file" in reason:
            reason = "not an image Pillow can read (PNG, JPEG, BMP, GIF, TIFF, WebP)"
        elif "truncated" in reason or isinstance(err, EOFError):
            reason = f"the image data is truncated or corrupt ({reason})"
        raise ImageError(f"{name}: {reason}") from err


def prepare_image(image) -> np.ndarray:
    """Turn any image of one digit into a 28x28 float32 image in [0, 1], prepared the way MNIST was.

    Steps: read (see `read_image`); in a photo of a sheet on a table, or of ruled or squared paper, keep the
    writing alone (`writing.find_writing`: the sheet turned straight, printed lines, the table, shadows and
    folds taken out, cropped to the writing); shrink to at most WORKING_SIZE pixels; decide the polarity
    (dark ink on light paper is inverted); estimate the paper's uneven lighting as a smooth surface
    and remove it; drop faint noise; crop to the ink (looking again at full resolution when the digit
    is small in a big picture); scale the longest side to 20 pixels, aspect ratio kept, anti-aliased,
    strokes brought to MNIST's width; place in 28x28 with the centre of mass at the centre.

    Args:
        image: a path, a binary file object, a PIL image, or a NumPy array (rows, columns) or
            (rows, columns, channels) of uint8 in [0, 255] or floats in [0, 1].

    Returns:
        (28, 28) float32 in [0, 1], light ink on black, like an MNIST digit after `normalize`.

    Raises:
        ImageError: unreadable, too large, or no ink found (a blank page).
    """
    name = image_name(image)
    return _prepare_picture(find_writing(decode_picture(image, name)).picture, name, zoom=True)


def prepare_image_batch(images: Sequence) -> list:
    """`prepare_image` for many images at once, each prepared exactly as alone, in less time.

    The paper fits and the checks of which way the ink goes (the costliest steps after decoding,
    many small NumPy operations) are done for all the images together. One image's failure does
    not affect the others.

    Args:
        images: paths, binary file objects, PIL images or NumPy arrays, as `prepare_image` takes.

    Returns:
        One entry per image, in order: its (28, 28) float32 image, or the exception that
        `prepare_image` would have raised for it (ImageError for a bad or blank image).
    """
    if len(images) > BATCH_SIZE:
        return [outcome for start in range(0, len(images), BATCH_SIZE)
                for outcome in prepare_image_batch(images[start:start + BATCH_SIZE])]
    results: list = [None] * len(images)
    staged = []  # (index, picture, name, working, pixels, grid)
    for index, image in enumerate(images):
        try:
            name = image_name(image)
            picture = find_writing(decode_picture(image, name)).picture  # a photo's sheet: the writing on it alone
            if picture.size[0] * picture.size[1] > BATCH_MAX_PIXELS:
                # Prepared at once, so that large pictures are not held for the whole batch.
                results[index] = _prepare_picture(picture, name, zoom=True)
                continue
            working, pixels = _working_pixels(picture)
            staged.append((index, picture, name, working, pixels, sample_grid(pixels)))
        except Exception as err:  # noqa: BLE001  (handed back, as prepare_image would raise it)
            results[index] = err
    by_shape: dict[tuple[int, int], list] = {}
    for entry in staged:
        by_shape.setdefault(entry[5].shape, []).append(entry)
    for group in by_shape.values():
        try:
            grids = np.stack([entry[5] for entry in group])
            fits = paper_fits(grids)
            scores, paper_levels = judge_paper(grids, *fits)
        except Exception:  # noqa: BLE001  (say a NaN in one image: fit each alone, to find out which)
            fits = None
        for number, (index, picture, name, working, pixels, grid) in enumerate(group):
            try:
                if fits:
                    pair = slice(2 * number, 2 * number + 2)
                    ink = ink_from_fits(pixels, grid, fits[0][pair], fits[1][pair], (scores[number], paper_levels[number]))
                else:
                    ink = ink_from_fits(pixels, grid, *paper_fits(grid[None]))
                results[index] = _finish_picture(picture, working, ink, name, zoom=True)
            except Exception as err:  # noqa: BLE001
                results[index] = err
    return results


def decode_picture(image, name: str):
    """Any input (path, file object, PIL image, array) -> a decoded grayscale PIL image ("L" or "F").

    Raises:
        ImageError: unreadable or too large (`name` says which image in the message).
    """
    from PIL import Image

    if isinstance(image, np.ndarray):
        return Image.fromarray(_array_to_float(image, name), mode="F")
    return read_image(image)


def decode_picture_and_scale(image, name: str):
    """`decode_picture`, and the file's pixels per decoded pixel as `file_scale` gives them, from the one
    decoding (the file is not opened twice): above 1 for a big JPEG decoded at reduced scale.

    Raises:
        ImageError: unreadable or too large.
    """
    if not _is_path(image):
        return decode_picture(image, name), 1.0
    picture, upright_width = _read_upright(image)
    return picture, upright_width / picture.size[0] if picture.size[0] else 1.0


def _working_pixels(picture):
    """The picture shrunk to WORKING_SIZE, and its pixels as (rows, columns) float32 in [0, 1]."""
    working = _shrink(picture)
    if working.mode == "F":
        return working, np.asarray(working, dtype=np.float32)
    return working, np.asarray(working) / np.float32(255.0)  # uint8 -> float32 in one pass


def _prepare_picture(picture, name: str, zoom: bool) -> np.ndarray:
    working, pixels = _working_pixels(picture)
    return _finish_picture(picture, working, extract_ink(pixels), name, zoom)


def _finish_picture(picture, working, ink: np.ndarray | None, name: str, zoom: bool) -> np.ndarray:
    """Crop to the ink (or zoom in on a small digit) and fit it in the 28x28 frame."""
    if ink is None:
        raise ImageError(f"{name}: no ink found (a blank or uniform image); photograph one digit, dark on light "
                         "or light on dark")
    left, top, right, bottom = ink_box(ink)
    scale = picture.size[0] / working.size[0]
    if zoom and max(right - left, bottom - top) < ZOOM_BELOW and scale > 1.5:
        # Crop with a margin of paper around the digit (the lighting fit needs it) and start again.
        margin = max(right - left, bottom - top) * 0.5 + 2
        region = (max(0, round((left - margin) * scale)), max(0, round((top - margin) * scale)),
                  min(picture.size[0], round((right + margin) * scale)),
                  min(picture.size[1], round((bottom + margin) * scale)))
        return _prepare_picture(picture.crop(region), name, zoom=False)
    return fit_in_frame(ink[top:bottom, left:right])


def image_name(source) -> str:
    """What messages call an image: its path or file name, or "array (rows, columns)", or "image"."""
    if isinstance(source, (str, bytes)) or hasattr(source, "__fspath__"):
        return str(source)
    if isinstance(getattr(source, "name", None), str):
        return source.name
    if isinstance(source, np.ndarray):
        return f"array {source.shape}"
    return "image"


def file_scale(source, picture) -> float:
    """File pixels per decoded pixel: above 1 for a big JPEG decoded at reduced scale (`read_image`)."""
    from PIL import Image

    if not _is_path(source):
        return 1.0
    try:
        with Image.open(source) as header:  # the header only: its size, before any reduced decoding
            width, height = header.size
            if header.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # stored on its side
                width, height = height, width
    except (OSError, ValueError):
        return 1.0
    return width / picture.size[0] if picture.size[0] else 1.0


def _is_path(source) -> bool:
    """A file named by a path (str, bytes or os.PathLike), as opposed to a file object, image or array."""
    return isinstance(source, (str, bytes)) or hasattr(source, "__fspath__")


def picture_box(box, scale: float, offset: tuple[int, int], file_scale: float,
                writing: Writing | None = None) -> tuple[int, int, int, int]:
    """A box (x0, y0, x1, y1) in working pixels (`scale` picture pixels each, from `offset` in the picture, as
    data/line_strip.LineInk has them) -> in the image file's own pixels (`file_scale` per picture pixel).

    With `writing` (what `find_writing` found in the decoded picture), the working pixels are the writing's
    crop's: the box is carried back through the crop (and its turn) to the decoded picture first."""
    left, top, right, bottom = box
    left, top, right, bottom = (left * scale + offset[0], top * scale + offset[1],
                                right * scale + offset[0], bottom * scale + offset[1])
    if writing is not None:
        left, top, right, bottom = writing.to_picture((left, top, right, bottom))
    return (math.floor(left * file_scale), math.floor(top * file_scale),
            math.ceil(right * file_scale), math.ceil(bottom * file_scale))


def _check_size(image, name: str) -> None:
    width, height = image.size
    if width * height > MAX_IMAGE_PIXELS:
        raise ImageError(f"{name} is {width}x{height} = {width * height / 1e6:.0f} megapixels, over the limit "
                         f"of {MAX_IMAGE_PIXELS / 1e6:.0f}; refusing to decode it (a decompression bomb?)")
    if width == 0 or height == 0:
        raise ImageError(f"{name} has no pixels ({width}x{height})")


def _open_checked(source, name: str):
    """Open (the header only) and refuse oversized images before any pixel is decoded."""
    import warnings

    from PIL import Image

    if _is_path(source):
        _check_regular_file(source, name)
    with warnings.catch_warnings():
        # Pillow warns above its own, global limit (and raises above twice that); ours is lower
        # and is applied just below, per call.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        image = Image.open(source)
    try:
        _check_size(image, name)
    except BaseException:
        image.close()
        raise
    return image


def _check_regular_file(path, name: str) -> None:
    """Refuse a FIFO, device or socket before opening it: reading a FIFO waits forever for a writer, a
    device may never end. (A folder is left to `open`, which says so.)"""
    mode = os.stat(path).st_mode
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise ImageError(f"{name}: {NOT_REGULAR}; only image files are read")


def _to_grayscale(image):
    """Decode to 8-bit "L" (or float "F" in [0, 1] for 16-bit and float images), transparency on white."""
    from PIL import Image

    if image.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        values = np.asarray(image, dtype=np.float32)
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
        return Image.fromarray(scaled.astype(np.float32), mode="F")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("L")
    if image.mode == "L":
        image.load()
        return image
    if image.mode not in ("1", "P", "RGB", "CMYK", "YCbCr"):
        image = image.convert("RGB")  # LAB, HSV and the like convert to "L" only through RGB
    return image.convert("L")


def _array_to_float(array: np.ndarray, name: str) -> np.ndarray:
    """An image array -> (rows, columns) float32 grayscale in [0, 1], transparency on white."""
    if array.ndim == 3 and array.shape[2] in (1, 3, 4):
        channels = _unit_scale(array)
        if array.shape[2] == 4:
            alpha = channels[..., 3:4]
            channels = channels[..., :3] * alpha + (1.0 - alpha)
        if channels.shape[2] == 3:
            channels = channels @ np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601, as Pillow
        else:
            channels = channels[..., 0]
        array = channels
    if array.ndim != 2 or min(array.shape) == 0 or not np.issubdtype(array.dtype, np.number):
        raise ImageError(f"{name}: expected an image array (rows, columns) or (rows, columns, 1|3|4 channels) "
                         f"of numbers, got {array.dtype} {array.shape}")
    return np.ascontiguousarray(_unit_scale(array), dtype=np.float32)


def _unit_scale(array: np.ndarray) -> np.ndarray:
    """uint8 -> [0, 1]; other numbers are taken as already in [0, 1]."""
    if array.dtype == np.uint8:
        return array.astype(np.float32) / np.float32(255.0)
    return np.nan_to_num(np.clip(array.astype(np.float32), 0.0, 1.0))


def _shrink(picture):
    from PIL import Image

    width, height = picture.size
    longest = max(width, height)
    if longest <= WORKING_SIZE:
        return picture
    scale = WORKING_SIZE / longest
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    # BOX averages each output pixel's whole footprint: anti-aliased, and it lowers the noise.
    # (`reducing_gap` would save about 1% of the time but shifts the ink box by a pixel now and then.)
    return picture.resize(size, Image.Resampling.BOX)
