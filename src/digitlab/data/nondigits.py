"""Synthetic images that are not one digit, framed like MNIST: the "not a digit" class a reader learns.

Two families. `render_non_digits` draws things a person might photograph instead of a digit:
letters (Pillow's built-in font and any TrueType font under /usr/share/fonts), symbols, scribbles,
shapes and faces, each with a random stroke width, rotation (up to 20 degrees), slant and aspect;
their size and position become MNIST's in the frame, as a digit's do. `digit_fragments`
makes what a bad segmentation of a line of MNIST digits gives: two digits squeezed into one frame,
and the right part of one digit joined to the left part of the next.

Every image goes through `framing.fit_in_frame`, as digits do, so the network cannot tell the
classes apart by their framing. Glyphs and shapes a person could read as a digit are never drawn:
they would teach the network to refuse real digits.
"""

from __future__ import annotations

import functools
import glob
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from digitlab.data.framing import MNIST_SIZE, fit_in_frame

# Letters that can pass for a digit, left out: O o Q D (0), I l i j J (1), Z z (2), S s (5), b G (6),
# T t (7), B (8), g q a y (9 or 4: a and y in some fonts and italics).
EXCLUDED_LETTERS = frozenset("OoQDIlijJZzSsbGTtBgqay")
LETTERS = tuple(letter for letter in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                if letter not in EXCLUDED_LETTERS)
# Symbols drawn; left out as digit-like: | / \ ( ) [ ] ! (a single stroke, a 1), : ; . , ' ` " (specks),
# - _ (a 1 on its side after rotation), < > (a 7 or a 4's corner), { } (a 3), § (an 8), £ (a 2 or a 4).
SYMBOLS = ("+", "#", "@", "%", "&", "?", "*", "=", "$", "~", "^")
# Drawn only with TrueType fonts: Pillow's built-in font has no glyphs for them.
TRUETYPE_SYMBOLS = ("€", "×", "÷", "Ω", "π", "λ", "Σ", "Ψ", "Δ", "µ", "¥", "¶", "±", "≠", "∞")
# Shapes drawn; never a plain circle or ellipse (a 0) or a single straight stroke (a 1).
SHAPES = ("triangle", "square", "star", "cross", "arrow", "heart", "spiral", "zigzag", "wave", "hatch",
          "house", "sun")
# Kinds of image and how often each is drawn.
KINDS = ("letter", "symbol", "scribble", "shape", "face")
KIND_SHARES = (0.35, 0.15, 0.15, 0.25, 0.10)
# Cumulative shares of glyphs drawn with an outline stroke of 0, 1 and 2 pixels (0 for most).
BOLDNESS_SHARES = (0.6, 0.9)
# Font files looked for, and fonts left out (DejaVu's maths font draws its letters as symbols).
FONT_PATTERN = "/usr/share/fonts/**/*.ttf"
FONT_EXCLUDED = ("MathTeXGyre",)
# Folders of the Debian handwriting fonts (fonts-breip, fonts-bwht, ...), never drawn in training:
# data/handwriting.py and data/unseen.py draw with them the digits and non-digits a model is measured
# on as handwriting and kinds it never saw. Without those packages installed nothing changes.
HANDWRITING_FONT_FOLDERS = ("breip", "bwht", "comic-neue", "dancingscript", "femkeklaver", "fifthhorseman",
                            "humor-sans", "klee", "rufscript", "sjfonts", "yusei-magic")
# The font size glyphs are drawn at (one, so drawn glyphs can be cached); the frame brings all to 20.
FONT_SIZE = 32
# A character no font here has a glyph for: what a font draws for it is its "missing glyph" box.
MISSING_CHARACTER = "\ue000"
# The square canvas things are drawn on, and the radius they are drawn within (room to rotate).
CANVAS = 48
RADIUS = 14.0
# Strokes of up to this many points are polygons and polylines with sharp corners, longer ones curves.
SHARP_CORNERS = 12
# Limits of the random pose: rotation (degrees), slant (horizontal shear) and horizontal stretch.
ROTATION_DEGREES = 20.0
SLANT = 0.25
STRETCH = (0.8, 1.2)
# Where a digit is cut for a fragment, as fractions of its ink width: never near an edge, so a piece
# is never effectively the whole digit.
CUT_RANGE = (0.25, 0.75)
# ... and the share of its ink each part keeps, so that neither is effectively the whole digit.
INK_CUT_RANGE = (0.2, 0.8)
# A digit narrower than this share of its height (mostly a 1) is never cut: every piece of it is a 1.
NARROW = 0.5
# Random digits drawn for a fragment before giving up on a set with too few usable ones.
MAX_DRAWS = 1000


def render_non_digits(count: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """Draw `count` images that are not a digit, light ink on black, framed like MNIST.

    The same seed gives the same images on machines with the same fonts installed.

    Returns:
        (images, kinds): (count, 28, 28) uint8 images, and what each is: "letter:K", "symbol:#",
        "shape:star", "scribble" or "face" (the part before ":" is one of KINDS).
    """
    if count < 0:
        raise ValueError(f"count must be 0 or more, got {count}")
    rng = np.random.default_rng(seed)
    fonts = _font_choices()
    kind_bounds = np.cumsum(KIND_SHARES)[:-1]
    images = np.zeros((count, MNIST_SIZE, MNIST_SIZE), dtype=np.uint8)
    kinds = []
    for index in range(count):
        kind = KINDS[int(np.searchsorted(kind_bounds, rng.random(), side="right"))]
        while True:  # a drawing that leaves no ink (possible only in theory) is drawn again
            canvas = Image.new("L", (CANVAS, CANVAS), 0)
            detail = _draw(kind, canvas, rng, fonts)
            crop = posed_crop(canvas, rng)
            if crop is not None:
                break
        images[index] = to_uint8(fit_in_frame(crop))
        kinds.append(f"{kind}:{detail}" if detail else kind)
    return images, kinds


def digit_fragments(digit_images: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Make `count` images of what a bad cut through a line of digits gives, framed like MNIST.

    Half are two whole digits side by side squeezed into one frame (a merged segment), half the
    right part of one digit joined to the left part of another (a cut in the wrong place), each
    part 25% to 75% of its digit's width and 20% to 80% of its ink. Narrow digits (mostly 1s) are
    never cut, and never merged with another narrow one: any piece of a 1 is a 1, and two 1s
    squeezed together are one bold 1.

    Args:
        digit_images: (N, 28, 28) uint8 digits, light on black, like MNIST's.

    Returns:
        (count, 28, 28) uint8 images.
    """
    digit_images = np.asarray(digit_images)
    if digit_images.ndim != 3 or digit_images.shape[1:] != (MNIST_SIZE, MNIST_SIZE) or len(digit_images) == 0:
        raise ValueError(f"digit_images must be (N, 28, 28) with N > 0, got shape {digit_images.shape}")
    if digit_images.dtype != np.uint8:
        raise ValueError(f"digit_images must be uint8 like MNIST's, got {digit_images.dtype}")
    if count < 0:
        raise ValueError(f"count must be 0 or more, got {count}")
    rng = np.random.default_rng(seed)
    images = np.zeros((count, MNIST_SIZE, MNIST_SIZE), dtype=np.uint8)
    for index in range(count):
        merged = index % 2 == 0
        first, second = _fragment_pair(digit_images, rng, merged)
        if not merged:
            first = first[:, _cut_column(first, rng):]     # the right part of the first digit
            second = second[:, :_cut_column(second, rng)]  # the left part of the next one
        joined = _side_by_side(first, second, gap=int(rng.integers(0, 4)))
        if merged:
            # Narrow handwriting: a merged pair can be as narrow as a wide digit, the hard case to refuse.
            width = joined.shape[1]
            squeezed = max(min(width, round(width * rng.uniform(0.6, 1.0))), math.ceil(NARROW * joined.shape[0]))
            joined = np.asarray(Image.fromarray(joined, mode="F").resize((squeezed, joined.shape[0]),
                                                                         Image.Resampling.BILINEAR))
        images[index] = to_uint8(fit_in_frame(np.clip(joined, 0.0, 1.0)))
    return images


def _fragment_pair(digit_images: np.ndarray, rng: np.random.Generator, merged: bool) -> tuple[np.ndarray, np.ndarray]:
    """Two digits' ink crops: for a merge, not both narrow; for a cut, neither narrow."""
    for _ in range(MAX_DRAWS):
        crops = [ink_crop(digit_images[int(pick)]) for pick in rng.integers(0, len(digit_images), 2)]
        if any(crop is None for crop in crops):
            continue  # a blank image (none in MNIST) has nothing to join
        narrow = [crop.shape[1] < NARROW * crop.shape[0] for crop in crops]
        if (merged and not all(narrow)) or (not merged and not any(narrow)):
            return crops[0], crops[1]
    raise ValueError(f"digit_images has too few {'inked' if merged else 'wide'} digits to make fragments from: "
                     f"pass MNIST-like digits, most of them wider than {NARROW:.0%} of their height")


# --- drawing ---------------------------------------------------------------------------------------


@functools.cache
def find_truetype_fonts() -> tuple[str, ...]:
    """TrueType fonts installed under /usr/share/fonts (sorted, so the same on every call)."""
    found = sorted(glob.glob(FONT_PATTERN, recursive=True))
    return tuple(path for path in found if is_training_font(path))


def is_training_font(path: str) -> bool:
    """Whether training may draw with the font file at `path`: not excluded, not a handwriting font."""
    folders = Path(path).parent.parts
    return not any(word in path for word in FONT_EXCLUDED) and not any(
        folder in folders for folder in HANDWRITING_FONT_FOLDERS)


def _font_choices() -> tuple[str | None, ...]:
    """The fonts letters are drawn with: None for Pillow's built-in font, then the TrueType files."""
    return (None, *find_truetype_fonts())


@functools.cache
def _font(path: str | None) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    if path is None:
        return ImageFont.load_default(size=FONT_SIZE)
    return ImageFont.truetype(path, size=FONT_SIZE)


def _draw(kind: str, canvas: Image.Image, rng: np.random.Generator, fonts: tuple[str | None, ...]) -> str:
    """Draw one thing of `kind` around the canvas' centre; return what it is ("" when nothing to add)."""
    if kind in ("letter", "symbol"):
        font_path = fonts[int(rng.integers(0, len(fonts)))]
        choices = LETTERS if kind == "letter" else SYMBOLS + (TRUETYPE_SYMBOLS if font_path else ())
        character = choices[int(rng.integers(0, len(choices)))]
        # A few characters are drawn bold by stroking their outline: pens differ.
        stroke = int(np.searchsorted(BOLDNESS_SHARES, rng.random()))
        glyph = _glyph(font_path, character, stroke)
        if glyph is None:  # this font lacks the symbol: draw one every font has
            character = SYMBOLS[int(rng.integers(0, len(SYMBOLS)))]
            glyph = _glyph(font_path, character, stroke)
        canvas.paste(glyph, ((CANVAS - glyph.width) // 2, (CANVAS - glyph.height) // 2))
        return character
    draw = ImageDraw.Draw(canvas)
    width = int(rng.integers(2, 6))
    if kind == "scribble":
        _draw_scribble(draw, rng, width)
        return ""
    if kind == "face":
        _draw_face(draw, rng, width)
        return ""
    shape = SHAPES[int(rng.integers(0, len(SHAPES)))]
    _draw_shape(draw, shape, rng, width)
    return shape


@functools.lru_cache(maxsize=8192)
def _glyph(font_path: str | None, character: str, stroke: int) -> Image.Image | None:
    """A character cropped to its ink, light on black; None when the font has no glyph for it."""
    font = _font(font_path)
    mask = font.getmask(character, stroke_width=stroke)
    if bytes(mask) == bytes(font.getmask(MISSING_CHARACTER, stroke_width=stroke)):
        return None  # drawn as the font's "missing glyph" box
    left, top, right, bottom = font.getbbox(character, stroke_width=stroke)
    glyph = Image.new("L", (max(1, right - left), max(1, bottom - top)), 0)
    ImageDraw.Draw(glyph).text((-left, -top), character, fill=255, font=font, stroke_width=stroke, stroke_fill=255)
    return glyph


def _points(unit_points: np.ndarray, scale: float = RADIUS) -> list[float]:
    """Points in [-1, 1] (y down) -> canvas pixels around the centre, flat (x0, y0, x1, ...) as Pillow takes them."""
    return (unit_points * scale + CANVAS / 2).ravel().tolist()


@functools.cache
def _catmull_rom_basis(samples_per_span: int) -> np.ndarray:
    """(samples_per_span, 4): the weights of a span's four control points at evenly spaced t in [0, 1)."""
    t = np.arange(samples_per_span) / samples_per_span
    powers = np.stack([np.ones_like(t), t, t**2, t**3], axis=1)
    return powers @ (0.5 * np.array([[0, 2, 0, 0], [-1, 0, 1, 0], [2, -5, 4, -1], [-1, 3, -3, 1]]))


def smooth_curve(control: np.ndarray, samples_per_span: int = 8) -> np.ndarray:
    """A Catmull-Rom curve through the control points: (points, 2) -> (samples, 2)."""
    padded = np.concatenate([control[:1], control, control[-1:]])
    spans = len(control) - 1
    windows = np.stack([padded[offset:offset + spans] for offset in range(4)], axis=1)  # (spans, 4, 2)
    curve = np.einsum("tk,skd->std", _catmull_rom_basis(samples_per_span), windows).reshape(-1, 2)
    return np.concatenate([curve, control[-1:]])


def _draw_scribble(draw: ImageDraw.ImageDraw, rng: np.random.Generator, width: int) -> None:
    if rng.random() < 0.4:
        # One tangled stroke through many points: nothing like a digit's few smooth turns.
        strokes = [rng.uniform(-1, 1, size=(int(rng.integers(8, 14)), 2))]
    else:
        # Several separate strokes, each a smooth curve through a few points.
        strokes = [rng.uniform(-1, 1, size=(int(rng.integers(3, 6)), 2)) for _ in range(int(rng.integers(2, 5)))]
    for control in strokes:
        stroke_width = max(1, width + int(rng.integers(-1, 2)))
        draw.line(_points(smooth_curve(control)), fill=255, width=stroke_width)


def _draw_face(draw: ImageDraw.ImageDraw, rng: np.random.Generator, width: int) -> None:
    centre = CANVAS / 2
    radius_x, radius_y = RADIUS * rng.uniform(0.85, 1.0), RADIUS * rng.uniform(0.85, 1.0)
    if rng.random() < 0.85:  # a few faces are only eyes and a mouth
        draw.ellipse((centre - radius_x, centre - radius_y, centre + radius_x, centre + radius_y), outline=255, width=width)
    eye_y = centre - radius_y * rng.uniform(0.2, 0.4)
    eye_radius = max(1.5, width * rng.uniform(0.6, 1.2))
    for side in (-1, 1):
        eye_x = centre + side * radius_x * rng.uniform(0.3, 0.45)
        draw.ellipse((eye_x - eye_radius, eye_y - eye_radius, eye_x + eye_radius, eye_y + eye_radius), fill=255)
    mouth_y = centre + radius_y * rng.uniform(0.15, 0.35)
    mouth_half = radius_x * rng.uniform(0.35, 0.6)
    mood = rng.integers(0, 3)
    if mood == 2:
        draw.line((centre - mouth_half, mouth_y, centre + mouth_half, mouth_y), fill=255, width=width)
        return
    height = radius_y * rng.uniform(0.15, 0.35)
    box = (centre - mouth_half, mouth_y - height, centre + mouth_half, mouth_y + height)
    start, end = (20, 160) if mood == 0 else (200, 340)  # a smile or a frown
    draw.arc(box, start, end, fill=255, width=width)


def _shape_outline(shape: str, rng: np.random.Generator) -> list[np.ndarray]:
    """The strokes of a shape, each an array of points in [-1, 1]; closed polygons repeat their start."""
    jitter = 0.08
    if shape in ("triangle", "square", "star"):
        if shape == "triangle":
            angles = np.deg2rad([-90, 30, 150]) + rng.uniform(-0.2, 0.2, 3)
            corners = np.stack([np.cos(angles), np.sin(angles)], axis=1)
        elif shape == "square":
            aspect = rng.uniform(0.75, 1.0)
            corners = np.array([[-1, -aspect], [1, -aspect], [1, aspect], [-1, aspect]]) * 0.9
        else:
            inner = rng.uniform(0.35, 0.5)
            angles = -np.pi / 2 + np.arange(10) * np.pi / 5
            radii = np.where(np.arange(10) % 2 == 0, 1.0, inner)
            corners = np.stack([np.cos(angles) * radii, np.sin(angles) * radii], axis=1)
        corners = corners + rng.uniform(-jitter, jitter, corners.shape)
        return [np.vstack([corners, corners[:1]])]
    if shape == "cross":
        if rng.random() < 0.5:  # an X
            return [np.array([[-1, -1], [1, 1]]) * 0.8, np.array([[-1, 1], [1, -1]]) * 0.8]
        return [np.array([[-1, 0.0], [1, 0]]), np.array([[0.0, -1], [0, 1]])]  # a +, arms the same length
    if shape == "arrow":
        direction = 1 if rng.random() < 0.5 else -1  # pointing left or right: an upright arrow reads as a 1
        head = rng.uniform(0.35, 0.6)
        tip = np.array([direction * 1.0, 0.0])
        return [np.array([[-direction * 1.0, 0.0], tip]),
                np.array([[tip[0] - direction * head, -head], tip, [tip[0] - direction * head, head]])]
    if shape == "heart":
        t = np.linspace(0, 2 * np.pi, 60)
        x = 16 * np.sin(t) ** 3
        y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
        return [np.stack([x, y + 2], axis=1) / 17.0]
    if shape == "spiral":
        turns = rng.uniform(2.0, 3.0)  # at least two turns: one turn is a 6 or a 0
        t = np.linspace(0, 2 * np.pi * turns, int(40 * turns))
        radius = 0.1 + 0.9 * t / t[-1]
        sign = 1 if rng.random() < 0.5 else -1
        return [np.stack([radius * np.cos(sign * t), radius * np.sin(sign * t)], axis=1)]
    if shape == "zigzag":
        corners = int(rng.integers(5, 9))  # at least four strokes: two are a Z, a 2
        x = np.linspace(-1, 1, corners)
        y = np.where(np.arange(corners) % 2 == 0, -0.5, 0.5) * rng.uniform(0.6, 1.4)
        return [np.stack([x, y], axis=1)]
    if shape == "wave":
        t = np.linspace(-1, 1, 50)
        return [np.stack([t, 0.45 * np.sin(t * np.pi * rng.uniform(1.5, 3.0))], axis=1)]
    if shape == "hatch":
        lines = int(rng.integers(3, 6))
        return [np.array([[position - 0.3, 1.0], [position + 0.3, -1.0]]) for position in np.linspace(-0.8, 0.8, lines)]
    if shape == "house":
        walls = np.array([[-0.8, -0.1], [-0.8, 1.0], [0.8, 1.0], [0.8, -0.1], [-0.8, -0.1]])
        return [walls, np.array([[-1.0, -0.1], [0.0, -1.0], [1.0, -0.1]])]
    # sun: a small circle with rays all round
    t = np.linspace(0, 2 * np.pi, 40)
    strokes = [np.stack([0.45 * np.cos(t), 0.45 * np.sin(t)], axis=1)]
    rays = int(rng.integers(6, 11))
    for angle in np.arange(rays) * 2 * np.pi / rays:
        direction = np.array([np.cos(angle), np.sin(angle)])
        strokes.append(np.stack([0.65 * direction, 1.0 * direction]))
    return strokes


def _draw_shape(draw: ImageDraw.ImageDraw, shape: str, rng: np.random.Generator, width: int) -> None:
    strokes = _shape_outline(shape, rng)
    if shape in ("triangle", "square", "star", "heart") and rng.random() < 0.25:
        draw.polygon(_points(strokes[0]), fill=255)  # filled in, as with a marker
        return
    for stroke in strokes:
        # Rounded joints where a stroke turns sharply; a smooth curve turns a little at each of its many
        # points, where they would only cost time.
        draw.line(_points(stroke), fill=255, width=width, joint="curve" if len(stroke) <= SHARP_CORNERS else None)


# --- posing, cropping, framing -----------------------------------------------------------------------


def posed_crop(canvas: Image.Image, rng: np.random.Generator) -> np.ndarray | None:
    """Rotate, slant and stretch a drawing on a square canvas about its centre; crop to its ink (0..1), or None."""
    angle = math.radians(rng.uniform(-ROTATION_DEGREES, ROTATION_DEGREES))
    slant = rng.uniform(-SLANT, SLANT)
    stretch = rng.uniform(*STRETCH)
    # The pose maps the drawing to the result: stretch . slant . rotate. Pillow wants the inverse, from
    # result pixels back to drawing pixels: rotate(-angle) . unslant . unstretch, written out (2x2).
    cosine, sine = math.cos(angle), math.sin(angle)
    a, b = cosine / stretch, sine - cosine * slant
    c, d = -sine / stretch, cosine + sine * slant
    centre = canvas.width / 2
    data = (a, b, centre - (a + b) * centre, c, d, centre - (c + d) * centre)
    posed = np.asarray(canvas.transform(canvas.size, Image.Transform.AFFINE, data,
                                        resample=Image.Resampling.BILINEAR))
    inked = posed > 25  # faint resampling fringes do not stretch the box
    rows, columns = np.flatnonzero(inked.any(axis=1)), np.flatnonzero(inked.any(axis=0))
    if len(rows) == 0:
        return None
    crop = posed[rows[0]:rows[-1] + 1, columns[0]:columns[-1] + 1]
    return crop.astype(np.float32) * np.float32(1.0 / 255.0)


def ink_crop(digit: np.ndarray) -> np.ndarray | None:
    """A uint8 digit (light on black) -> float32 0..1 cropped to its ink box, or None when it has no ink.

    The box holds the pixels above 10% ink: the faintest anti-aliased fringe of MNIST's digits is
    left out, so a crop's edges are where its strokes are.
    """
    rows = np.flatnonzero(digit.max(axis=1) > 25)
    columns = np.flatnonzero(digit.max(axis=0) > 25)
    if len(rows) == 0:
        return None
    crop = digit[rows[0]:rows[-1] + 1, columns[0]:columns[-1] + 1]
    return crop.astype(np.float32) * np.float32(1.0 / 255.0)


def _cut_column(crop: np.ndarray, rng: np.random.Generator) -> int:
    """A column to cut a digit's crop at: 25%-75% across its width, 20%-80% of its ink on the left."""
    width = crop.shape[1]
    columns = np.arange(max(1, math.ceil(width * CUT_RANGE[0])), max(2, math.floor(width * CUT_RANGE[1]) + 1))
    columns = columns[columns < width] if width > 1 else np.array([1])
    ink_left = np.cumsum(crop.sum(axis=0))
    share = ink_left[columns - 1] / max(float(ink_left[-1]), 1e-6)
    allowed = columns[(share >= INK_CUT_RANGE[0]) & (share <= INK_CUT_RANGE[1])]
    if len(allowed) == 0:  # the ink lies all to one side: cut where it halves
        allowed = columns[[int(np.argmin(np.abs(share - 0.5)))]]
    return int(allowed[int(rng.integers(0, len(allowed)))])


def _side_by_side(left: np.ndarray, right: np.ndarray, gap: int) -> np.ndarray:
    """Two float crops on one canvas, bottoms aligned, `gap` empty columns between them."""
    height = max(left.shape[0], right.shape[0])
    canvas = np.zeros((height, left.shape[1] + gap + right.shape[1]), dtype=np.float32)
    canvas[height - left.shape[0]:, :left.shape[1]] = left
    canvas[height - right.shape[0]:, left.shape[1] + gap:] = right
    return canvas


def to_uint8(frame: np.ndarray) -> np.ndarray:
    """Ink 0..1 -> uint8 0..255, rounded."""
    return (frame * 255.0 + 0.5).astype(np.uint8)


def fashion_pictures(count: int, seed: int) -> np.ndarray:
    """`count` Fashion-MNIST training pictures (clothes, shoes, bags) as non-digits: (count, 28, 28) uint8, each
    framed as a digit would be (`framing.fit_in_frame`: its ink scaled to 20 pixels and centred by mass), as
    `prepare_image` frames whatever it is shown. Varied negatives for the "not a digit" class."""
    from digitlab.data import datasets

    (pictures, _), _ = datasets.load("fashion-mnist")
    if not 0 <= count <= len(pictures):
        raise ValueError(f"count must be from 0 to {len(pictures)} (Fashion-MNIST's training pictures), got {count}")
    chosen = pictures[np.random.default_rng(seed).choice(len(pictures), count, replace=False)]
    framed = []
    for picture in chosen:
        crop = ink_crop(picture)
        framed.append(picture if crop is None else np.round(fit_in_frame(crop) * 255).astype(np.uint8))
    return np.stack(framed) if framed else np.zeros((0, 28, 28), np.uint8)
