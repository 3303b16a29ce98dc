"""Digits in handwriting other than MNIST's writers: handwriting fonts from Debian, framed like MNIST.

A measuring set, never a training one: `nondigits.find_truetype_fonts` leaves these fonts out, so no
recipe draws with them. Each digit is a font's glyph at a random stroke weight, turned, slanted,
stretched and bent a little (a smooth random displacement, as a hand never draws the same digit
twice), then cropped to its ink and framed as MNIST framed its digits (`framing.fit_in_frame`). The
twenty fonts come from the ten Debian packages of HANDWRITING_PACKAGES, about fifteen hands: a
permanent marker (Yusei Magic), a pencil or pen (Klee One), the six fonts of Red Hat's "Because we
had to" campaign (bwht), Daniel Kahn Gillmor's hand (dkg: upright, italic, bold), Steve Jordi's two
(Delphine, SteveHand), Breip, Rufscript, Dancing Script, and comic lettering (Comic Neue, Humor Sans).
`lines.build_line_set` and `lines.single_digit_photos` photograph them as they photograph MNIST's digits.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from digitlab.data.framing import MNIST_SIZE, fit_in_frame, stroke_width
from digitlab.data.nondigits import MISSING_CHARACTER, ink_crop, to_uint8
from digitlab.errors import DataUnavailableError

# The Debian packages of the fonts, as `apt-get install` takes them.
HANDWRITING_PACKAGES = ("fonts-breip", "fonts-bwht", "fonts-comic-neue", "fonts-dancingscript", "fonts-dkg-handwriting",
                        "fonts-humor-sans", "fonts-klee", "fonts-rufscript", "fonts-sjfonts", "fonts-yusei-magic")
# The font files the digits are drawn with, sorted. Left out of these packages' files: breipfont.ttf
# (the same hand as Breip.ttf) and fonts-femkeklaver (its digits are hollow outlines, not strokes).
HANDWRITING_FONTS = tuple(sorted(
    [f"/usr/share/fonts/opentype/bwht/BecauseWe{hand}-Regular.otf"
     for hand in ("Build", "Connect", "Create", "Learn", "Mentor", "Organize")]
    + [f"/usr/share/fonts/opentype/comic-neue/ComicNeue-{style}.otf" for style in ("Regular", "Italic", "Bold")]
    + ["/usr/share/fonts/opentype/dancingscript/DancingScript-Regular.otf",
       "/usr/share/fonts/truetype/breip/Breip.ttf",
       "/usr/share/fonts/truetype/fifthhorseman/dkg.ttf",
       "/usr/share/fonts/truetype/fifthhorseman/dkgIt.ttf",
       "/usr/share/fonts/truetype/fifthhorseman/dkgBd.ttf",
       "/usr/share/fonts/truetype/humor-sans/Humor-Sans.ttf",
       "/usr/share/fonts/truetype/klee/KleeOne-Regular.ttf",
       "/usr/share/fonts/truetype/rufscript/Rufscript010.ttf",
       "/usr/share/fonts/truetype/sjfonts/Delphine.ttf",
       "/usr/share/fonts/truetype/sjfonts/SteveHand.ttf",
       "/usr/share/fonts/truetype/yusei-magic/YuseiMagic-Regular.ttf"]))
# How tall a font's "0" is drawn (pixels), whatever its own size: about three times MNIST's 20-pixel box.
GLYPH_HEIGHT = 56
# How much a pen is made thinner (-) or bolder (+), in pixels on each side of a stroke at GLYPH_HEIGHT;
# thinner only where strokes are at least THINNABLE pixels wide.
PEN_CHANGES = (-1, 0, 0, 1, 2)
THINNABLE = 6.0
# The fewest pixels (at GLYPH_HEIGHT) a hole of a glyph has to count as a loop: rough brush fonts leave specks
# of paper inside their strokes.
GLYPH_HOLE = 25
# Limits of the random pose: rotation (degrees), slant (horizontal shear), horizontal stretch; smaller
# than a non-digit's, so a 6 never turns into a 9 or a 7 into a 1.
ROTATION_DEGREES = 10.0
SLANT = 0.2
STRETCH = (0.85, 1.15)
# The bend: a displacement of up to this many pixels (at GLYPH_HEIGHT), smooth over a grid of 4x4 knots.
BEND_PIXELS = 2.5
BEND_KNOTS = 4
# Poses tried for a digit whose loops every pen fills.
POSES = 3
# Room around the glyph on the canvas it is posed on, in pixels each side (a turned, slanted 0 fits).
PADDING = 20


def find_handwriting_fonts() -> tuple[str, ...]:
    """The fonts of HANDWRITING_FONTS installed on this machine, sorted."""
    return tuple(path for path in HANDWRITING_FONTS if os.path.isfile(path))


def handwriting_digits(count: int, seed: int, fonts: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Draw `count` digits in handwriting fonts, light ink on black, framed like MNIST.

    Digits 0-9 and the fonts come in equal shares: with `count` a multiple of 10 x the number of
    fonts, every font draws every digit equally often. The order is shuffled by `seed`, and the same
    seed gives the same images on machines with the same fonts.

    Args:
        fonts: font files to draw with; default: every installed one of HANDWRITING_FONTS.

    Returns:
        (images, labels): (count, 28, 28) uint8 and (count,) uint8.

    Raises:
        ValueError: `count` is negative, or a font given is not a file or lacks a digit.
        DataUnavailableError: no handwriting font is installed (the message says what to install).
    """
    if isinstance(count, bool) or not isinstance(count, int | np.integer) or count < 0:
        raise ValueError(f"count must be a whole number, 0 or more, got {count!r}")
    fonts = _checked_fonts(fonts)
    rng = np.random.default_rng(seed)
    order = rng.permutation(count)
    labels = (order % 10).astype(np.uint8)
    font_indices = (order // 10) % len(fonts)
    images = np.zeros((count, MNIST_SIZE, MNIST_SIZE), dtype=np.uint8)
    for index in range(count):
        glyph = font_glyph(fonts[int(font_indices[index])], str(int(labels[index])))
        images[index] = to_uint8(_framed(glyph, rng))
    return images, labels


def _framed(glyph: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A glyph drawn with a random pen and pose, framed like MNIST (28x28, 0..1).

    A bold pen or a squeezing pose can fill a small loop (the holes of an 8 in a heavy font, at MNIST's
    size): then the digit is drawn again with thinner pens, then in other poses (POSES in all), until
    its holes are open in the frame, as a reader sees them (a hole gained, as a 4 whose open top
    closes, leaves the digit readable).
    """
    holes = _holes(glyph > 0.5, smallest=GLYPH_HOLE)
    changes = sorted({change for change in PEN_CHANGES if change >= 0 or stroke_width(glyph) >= THINNABLE})
    change = changes[int(rng.integers(0, len(changes)))]
    for _ in range(POSES):
        pose = rng.integers(0, 2**32)  # the same pose for every pen tried
        for pen in [change] + [thinner for thinner in reversed(changes) if thinner < change]:
            posed = _bent_and_posed(_with_pen(glyph, pen), np.random.default_rng(pose))
            frame = fit_in_frame(ink_crop(to_uint8(posed)))
            if _holes(frame > 0.3) >= holes:  # faint joins of thin strokes still close a loop
                return frame
    return frame


def handwritten(texts: Sequence[str], fonts: Sequence[str], rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """One of `texts` written in one of `fonts`, both drawn at random (again while the font lacks the text).

    Returns:
        (glyph, text): the text's ink as `font_glyph` draws it, and the text.
    """
    for _ in range(1000):
        text = texts[int(rng.integers(0, len(texts)))]
        glyph = font_glyph(fonts[int(rng.integers(0, len(fonts)))], text)
        if glyph is not None:
            return glyph, text
    raise ValueError(f"none of the fonts {list(fonts)} has glyphs for the texts {list(texts)}")


def _checked_fonts(fonts: Sequence[str] | None) -> tuple[str, ...]:
    """The fonts to draw with: each a file with a glyph for every digit."""
    if fonts is None:
        fonts = find_handwriting_fonts()
        if not fonts:
            raise DataUnavailableError(
                "no handwriting font is installed (looked for the files of HANDWRITING_FONTS under /usr/share/fonts); "
                f"install them with `sudo apt-get install -y {' '.join(HANDWRITING_PACKAGES)}`")
    if isinstance(fonts, str) or len(fonts) == 0:
        raise ValueError(f"fonts must be a non-empty sequence of font files, got {fonts!r}")
    fonts = tuple(str(path) for path in fonts)
    for path in fonts:
        if not os.path.isfile(path):
            raise ValueError(f"font {path} is not a file; pass installed fonts (see find_handwriting_fonts())")
        missing = _missing_digits(path)
        if missing:
            raise ValueError(f"font {path} has no glyph for {', '.join(missing)}: it cannot draw every digit")
    return fonts


@functools.cache
def _missing_digits(path: str) -> tuple[str, ...]:
    return tuple(digit for digit in "0123456789" if font_glyph(path, digit) is None)


@functools.cache
def _font(path: str) -> ImageFont.FreeTypeFont:
    """The font at the size that draws its "0" GLYPH_HEIGHT pixels tall (fonts differ a lot at one size)."""
    probe = ImageFont.truetype(path, size=100)
    _, top, _, bottom = probe.getbbox("0")
    return ImageFont.truetype(path, size=max(8, round(100 * GLYPH_HEIGHT / max(bottom - top, 1))))


@functools.lru_cache(maxsize=1024)
def font_glyph(path: str, text: str) -> np.ndarray | None:
    """Text in a font, its "0" GLYPH_HEIGHT pixels tall: (rows, columns) float32 ink 0..1, light on black,
    cropped to its box; None when the font lacks a glyph for a character of it."""
    font = _font(path)
    missing = bytes(font.getmask(MISSING_CHARACTER))
    if not text or any(bytes(font.getmask(character)) == missing for character in text):
        return None  # drawn as the font's "missing glyph" box
    left, top, right, bottom = font.getbbox(text)
    image = Image.new("L", (max(1, right - left), max(1, bottom - top)), 0)
    ImageDraw.Draw(image).text((-left, -top), text, fill=255, font=font)
    return np.asarray(image, dtype=np.float32) / 255.0


def _with_pen(glyph: np.ndarray, change: int) -> np.ndarray:
    """The glyph's strokes grown (change > 0) or shrunk (< 0) by `change` pixels on each side."""
    from scipy import ndimage

    if change == 0:
        return glyph
    padded = np.pad(glyph, max(change, 0))
    footprint = np.ones((2 * abs(change) + 1, 2 * abs(change) + 1), dtype=bool)
    operation = ndimage.grey_dilation if change > 0 else ndimage.grey_erosion
    return operation(padded, footprint=footprint)


def _holes(inked: np.ndarray, smallest: int = 1) -> int:
    """How many pieces of paper of at least `smallest` pixels the ink encloses (a 0 has one, an 8 two)."""
    from scipy import ndimage

    labelled, pieces = ndimage.label(np.pad(~inked, 1, constant_values=True))
    sizes = np.bincount(labelled.ravel())[2:]  # the paper's pieces but the one around the glyph (label 1)
    return int(np.count_nonzero(sizes >= smallest))


def _bent_and_posed(glyph: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A glyph's ink (rows, columns, 0..1) turned, slanted, stretched and bent about its centre, on a padded canvas."""
    from scipy import ndimage

    rows, columns = glyph.shape[0] + 2 * PADDING, glyph.shape[1] + 2 * PADDING
    canvas = np.zeros((rows, columns), dtype=np.float32)
    canvas[PADDING:PADDING + glyph.shape[0], PADDING:PADDING + glyph.shape[1]] = glyph
    angle = math.radians(rng.uniform(-ROTATION_DEGREES, ROTATION_DEGREES))
    slant, stretch = rng.uniform(-SLANT, SLANT), rng.uniform(*STRETCH)
    # From each result pixel (x, y) back to the glyph: the inverse of stretch . slant . rotate.
    cosine, sine = math.cos(angle), math.sin(angle)
    inverse = np.array([[cosine / stretch, sine - cosine * slant], [-sine / stretch, cosine + sine * slant]])
    y, x = np.indices((rows, columns), dtype=np.float32)
    centre_y, centre_x = (rows - 1) / 2, (columns - 1) / 2
    source_x = inverse[0, 0] * (x - centre_x) + inverse[0, 1] * (y - centre_y) + centre_x
    source_y = inverse[1, 0] * (x - centre_x) + inverse[1, 1] * (y - centre_y) + centre_y
    source_x += _smooth_field((rows, columns), rng) * BEND_PIXELS
    source_y += _smooth_field((rows, columns), rng) * BEND_PIXELS
    return ndimage.map_coordinates(canvas, [source_y, source_x], order=1, mode="constant", cval=0.0)


def _smooth_field(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """(rows, columns) float32 in [-1, 1]: random values at BEND_KNOTS x BEND_KNOTS knots, smoothly between."""
    knots = rng.uniform(-1, 1, size=(BEND_KNOTS, BEND_KNOTS)).astype(np.float32)
    field = np.asarray(Image.fromarray(knots, mode="F").resize((shape[1], shape[0]), Image.Resampling.BICUBIC))
    return np.clip(field, -1.0, 1.0)
