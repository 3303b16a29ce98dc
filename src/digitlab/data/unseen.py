"""Non-digits of kinds no training draws, for measuring refusals on things a model never saw.

Besides what `nondigits.render_non_digits` draws for the reader to learn (letters, symbols, scribbles,
shapes, faces), a person may photograph smileys, grids, spirals, hearts, arrows, ticks, stars, stick
figures, houses, trees, clouds, shading, waves, flowers, or write letters and words in their own hand:
this module draws those by rules of its own, letters and words in the handwriting fonts no training
uses (`data/handwriting.py`), posed as nondigits poses its drawings and framed like MNIST. Letters
that are digits in disguise (O, l, S, Z, B) are never drawn; "a" and "g", a 9 in some hands, are.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageChops, ImageDraw

from digitlab.data import handwriting
from digitlab.data.framing import MNIST_SIZE, fit_in_frame
from digitlab.data.lines import SINGLE, SyntheticLine, compose_line
from digitlab.data.nondigits import posed_crop, smooth_curve, to_uint8
from digitlab.data.photograph import LIGHT_ON_DARK_SHARE, render_photo
from digitlab.errors import DataUnavailableError

# The variants of each drawn kind (the detail of "kind:detail").
STYLES = {
    "smiley": ("emoji", "closed-eyes", "wink", "grin", "hair", "glasses"), "spiral": ("round", "square", "tight"),
    "grid": ("tic-tac-toe", "squares", "ruled", "lattice"), "heart": ("pierced", "double", "broken", "nested"),
    "arrow": ("curved", "diagonal", "block", "double"), "tick": ("check", "ballot", "checkbox", "crossed-box"),
    "star": ("pentagram", "sparkle", "hexagram", "burst"), "figure": ("arms-up", "arms-down", "waving"),
    "house": ("windows", "chimney"), "tree": ("pine", "bushy"), "cloud": ("plain", "rain"), "flower": ("daisy", "stem"),
    "shading": ("hatched", "cross-hatched", "coloured-in", "blob"), "waves": ("water", "loops", "sawtooth")}
UNSEEN_KINDS = ("smiley", "grid", "spiral", "heart", "arrow", "tick", "star", "figure", "house", "tree", "cloud",
                "shading", "waves", "flower", "hand-letter", "word")
# Letters drawn in handwriting fonts: most look like no digit; a and g can pass for a 9 in some hands.
HAND_LETTERS = tuple("KXAMWRHNEFYehkmnrwxag")
WORDS = ("hi", "ok", "yes", "no", "cat", "the", "and", "hey", "max", "mark")
# The square canvas drawings are made on, and the pixels one unit of a drawing spans (a drawing lies
# within [-1, 1] units of the centre: room to turn and slant it on the canvas).
CANVAS = 112
SCALE = 28.0
# How far a hand strays from a stroke's straight path, in units.
WOBBLE = 0.03


def render_unseen(count: int, seed: int, kinds: Sequence[str] = UNSEEN_KINDS) -> tuple[np.ndarray, list[str]]:
    """Draw `count` non-digits of kinds no training uses, light ink on black, framed like MNIST.

    The kinds come in equal shares, in an order shuffled by `seed`; the same seed gives the same images
    where the same fonts are installed.

    Returns:
        (images, kinds): (count, 28, 28) uint8, and what each is: "kind:detail" ("smiley:wink", "word:yes").

    Raises:
        ValueError: `count` is negative or `kinds` names an unknown kind.
        DataUnavailableError: "hand-letter" or "word" asked for and no handwriting font installed.
    """
    if isinstance(count, bool) or not isinstance(count, int | np.integer) or count < 0:
        raise ValueError(f"count must be a whole number, 0 or more, got {count!r}")
    if isinstance(kinds, str) or len(kinds) == 0 or any(kind not in UNSEEN_KINDS for kind in kinds):
        raise ValueError(f"kinds must be a non-empty sequence of {', '.join(UNSEEN_KINDS)}; got {kinds!r}")
    fonts = handwriting.find_handwriting_fonts()
    if not fonts and {"hand-letter", "word"} & set(kinds) and count:
        raise DataUnavailableError(
            "no handwriting font is installed for the kinds hand-letter and word; install them with "
            f"`sudo apt-get install -y {' '.join(handwriting.HANDWRITING_PACKAGES)}`, or ask for other kinds")
    rng = np.random.default_rng(seed)
    order = rng.permutation(count)
    images = np.zeros((count, MNIST_SIZE, MNIST_SIZE), dtype=np.uint8)
    described = []
    for index in range(count):
        kind = kinds[int(order[index]) % len(kinds)]
        while True:  # a drawing posed off its canvas' ink (possible only in theory) is drawn again
            if kind in ("hand-letter", "word"):  # on a canvas with room to pose it
                glyph, detail = handwriting.handwritten(HAND_LETTERS if kind == "hand-letter" else WORDS, fonts, rng)
                size = int(1.5 * math.hypot(*glyph.shape)) + 8
                canvas = Image.new("L", (size, size), 0)
                canvas.paste(Image.fromarray(to_uint8(glyph)), ((size - glyph.shape[1]) // 2, (size - glyph.shape[0]) // 2))
            else:
                canvas = Image.new("L", (CANVAS, CANVAS), 0)
                detail = STYLES[kind][int(rng.integers(0, len(STYLES[kind])))]
                _DRAWERS[kind](_Pen(canvas, rng), rng, detail)
            crop = posed_crop(canvas, rng)
            if crop is not None:
                break
        images[index] = to_uint8(fit_in_frame(crop))
        described.append(f"{kind}:{detail}")
    return images, described


def unseen_non_digit_photos(count: int, seed: int) -> list[SyntheticLine]:
    """Photograph `render_unseen(count, seed)` as `lines.non_digit_photos` photographs its non-digits."""
    images, kinds = render_unseen(count, seed)
    rng = np.random.default_rng([seed, 1])  # not the drawing's own stream
    photos = []
    for image, kind in zip(images, kinds, strict=True):
        ink, boxes = compose_line(image[None], [0], rng, "apart")
        dark_on_light = bool(rng.random() >= LIGHT_ON_DARK_SHARE)
        photo, scale = render_photo(ink, rng, dark_on_light)
        (x0, y0, x1, y1), (rows, columns) = boxes[0], photo.shape  # the box in the photo's pixels, rounded outwards
        box = (max(0, math.floor(x0 * scale)), max(0, math.floor(y0 * scale)), min(columns, math.ceil(x1 * scale)),
               min(rows, math.ceil(y1 * scale)))
        photos.append(SyntheticLine(photo, "", (box,), SINGLE, dark_on_light, kind))
    return photos


class _Pen:
    """Draws strokes given in units around the canvas' centre (y down), a little unsteadily, one width."""

    def __init__(self, canvas: Image.Image, rng: np.random.Generator) -> None:
        self.canvas, self.rng = canvas, rng
        self.draw = ImageDraw.Draw(canvas)
        self.width = int(rng.integers(3, 7))

    def pixels(self, points: np.ndarray) -> list[float]:
        return (np.asarray(points, dtype=float) * SCALE + self.canvas.width / 2).ravel().tolist()

    def line(self, points, wobble: float = WOBBLE, width: int | None = None) -> None:
        """A stroke through `points` ((n, 2) units), straight between them, with a hand's wobble."""
        points = _wobbly(np.asarray(points, dtype=float), self.rng, wobble)
        self.draw.line(self.pixels(points), fill=255, width=width or self.width, joint="curve")

    def curve(self, control, wobble: float = WOBBLE) -> None:
        """A smooth stroke through the control points."""
        self.line(smooth_curve(np.asarray(control, dtype=float)), wobble)

    def ellipse(self, centre, radius_x: float, radius_y: float | None = None, fill: int | None = None,
                start: float = 0.0, end: float = 360.0) -> None:
        """An ellipse's outline (or its arc from `start` to `end` degrees), or the ellipse filled with `fill`."""
        radius_y = radius_x if radius_y is None else radius_y
        angles = np.radians(np.linspace(start, end, max(8, int(abs(end - start) / 6))))
        points = np.stack([centre[0] + radius_x * np.cos(angles), centre[1] + radius_y * np.sin(angles)], axis=1)
        if fill is None:
            self.line(points, wobble=WOBBLE / 2)
        else:
            self.draw.polygon(self.pixels(points), fill=fill)


def _wobbly(points: np.ndarray, rng: np.random.Generator, wobble: float) -> np.ndarray:
    """The polyline resampled every 0.05 units, each point pushed aside by a smooth random amount."""
    if wobble <= 0 or len(points) < 2:
        return points
    lengths = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(points, axis=0).T))])
    if lengths[-1] <= 0:
        return points
    along = np.unique(np.concatenate([np.linspace(0, lengths[-1], max(2, int(lengths[-1] / 0.05))), lengths]))
    dense = np.stack([np.interp(along, lengths, points[:, axis]) for axis in (0, 1)], axis=1)
    knots = np.linspace(0, lengths[-1], 5)
    offsets = np.stack([np.interp(along, knots, rng.uniform(-wobble, wobble, 5)) for _ in (0, 1)], axis=1)
    return dense + offsets


def _circle_points(centre, radius: float, count: int, phase: float = -math.pi / 2) -> np.ndarray:
    angles = phase + np.arange(count) * 2 * math.pi / count
    return np.stack([centre[0] + radius * np.cos(angles), centre[1] + radius * np.sin(angles)], axis=1)


def _heart(centre=(0.0, 0.0), size: float = 1.0) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, 50)
    x, y = 16 * np.sin(t) ** 3, -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
    return np.stack([x, y + 2], axis=1) / 17.0 * size + np.asarray(centre)


def _arrow_head(pen: _Pen, tip: np.ndarray, direction: np.ndarray, size: float = 0.45) -> None:
    direction = direction / np.linalg.norm(direction)
    side = np.array([-direction[1], direction[0]])
    pen.line([tip - size * direction + size * 0.7 * side, tip, tip - size * direction - size * 0.7 * side])


def _draw_smiley(pen: _Pen, rng: np.random.Generator, style: str) -> None:
    radius = rng.uniform(0.85, 1.0)
    ink = 0 if style == "emoji" else 255  # an emoji: a filled face, its features cut out of it
    if style == "emoji":
        pen.ellipse((0, 0), radius, fill=255)
    else:
        pen.ellipse((0, 0), radius, radius * rng.uniform(0.9, 1.05))
    eye_y, eye_x = -0.3 * radius, 0.38 * radius
    if style == "closed-eyes":
        for side in (-1, 1):
            pen.ellipse((side * eye_x, eye_y + 0.08), 0.16, 0.12, start=200, end=340)
    elif style == "glasses":
        for side in (-1, 1):
            pen.ellipse((side * eye_x, eye_y), 0.2)
        pen.line([(-eye_x + 0.2, eye_y), (eye_x - 0.2, eye_y)])
    else:
        for side in (-1, 1):
            if style == "wink" and side == 1:
                pen.line([(eye_x - 0.14, eye_y), (eye_x + 0.14, eye_y)])
            else:
                pen.ellipse((side * eye_x, eye_y), 0.09, 0.14 if style == "emoji" else 0.09, fill=ink)
    if style == "grin":  # an open mouth: a D on its side
        mouth = [(0.5 * radius * math.cos(a), 0.15 + 0.45 * radius * math.sin(a)) for a in np.linspace(0, math.pi, 20)]
        pen.line(np.vstack([mouth, mouth[:1]]))
    else:
        frown = style == "emoji" and rng.random() < 0.3
        start, end = (200, 340) if frown else (20, 160)
        box_centre = (0, 0.55 if frown else 0.05)
        if style == "emoji":
            pen.draw.arc([*pen.pixels([[-0.5, box_centre[1] - 0.35]]), *pen.pixels([[0.5, box_centre[1] + 0.35]])],
                         start, end, fill=0, width=pen.width + 1)
        else:
            pen.ellipse(box_centre, 0.5 * radius, 0.4 * radius, start=start, end=end)
    if style == "hair":
        for x in np.linspace(-0.4, 0.4, int(rng.integers(3, 7))):
            top = -math.sqrt(max(radius**2 - x**2, 0))
            pen.line([(x, top), (x * 1.4 + rng.uniform(-0.1, 0.1), top - rng.uniform(0.25, 0.45))])


def _draw_grid(pen: _Pen, rng: np.random.Generator, style: str) -> None:
    if style == "tic-tac-toe":
        for offset in (-1 / 3, 1 / 3):
            pen.line([(offset, -1), (offset, 1)])
            pen.line([(-1, offset), (1, offset)])
        for cell in rng.choice(9, int(rng.integers(0, 4)), replace=False):
            x, y = (cell % 3 - 1) * 2 / 3, (cell // 3 - 1) * 2 / 3
            pen.line([(x - 0.18, y - 0.18), (x + 0.18, y + 0.18)])
            pen.line([(x - 0.18, y + 0.18), (x + 0.18, y - 0.18)])
    elif style == "squares":
        columns, rows = (int(value) for value in rng.integers(3, 6, 2))
        for x in np.linspace(-0.9, 0.9, columns + 1):
            pen.line([(x, -0.9), (x, 0.9)])
        for y in np.linspace(-0.9, 0.9, rows + 1):
            pen.line([(-0.9, y), (0.9, y)])
    elif style == "ruled":
        for y in np.linspace(-0.8, 0.8, int(rng.integers(4, 7))):
            pen.line([(-1, y), (1, y)])
        if rng.random() < 0.5:
            pen.line([(-0.6, -1), (-0.6, 1)])  # the margin
    else:  # diagonal lines both ways inside a frame: a trellis
        square = np.array([(-0.9, -0.9), (0.9, -0.9), (0.9, 0.9), (-0.9, 0.9), (-0.9, -0.9)])
        spacing = rng.uniform(0.45, 0.6)
        _clipped(pen, square, [math.pi / 4, -math.pi / 4], spacing)


def _draw_spiral(pen: _Pen, rng: np.random.Generator, style: str) -> None:
    sign = 1 if rng.random() < 0.5 else -1
    pen.width = min(pen.width, 4)  # many rings in a small frame: a thinner pen keeps them apart
    if style == "square":
        turns = int(rng.integers(2, 4))
        points, position, direction = [(0.0, 0.0)], np.zeros(2), np.array([1.0, 0.0])
        for segment in range(4 * turns):
            position = position + direction * (1.0 / (2 * turns)) * (segment // 2 + 1)
            points.append(tuple(position))
            direction = np.array([-sign * direction[1], sign * direction[0]])
        pen.line(np.asarray(points) - np.mean(points, axis=0))
        return
    turns = rng.uniform(2.2, 3.0) if style == "round" else rng.uniform(3.0, 3.6)
    if style == "tight":
        pen.width = 3
    t = np.linspace(0, 2 * np.pi * turns, int(30 * turns))
    radius = 0.05 + 0.95 * t / t[-1]
    pen.line(np.stack([radius * np.cos(sign * t), radius * np.sin(sign * t)], axis=1), wobble=WOBBLE / 2)


def _draw_heart(pen: _Pen, rng: np.random.Generator, style: str) -> None:
    if style == "double":
        pen.line(_heart((-0.35, -0.2), 0.6))
        pen.line(_heart((0.35, 0.25), 0.6))
        return
    pen.line(_heart((0, 0), 0.8))
    if style == "pierced":
        start, tip = np.array([-1.0, 0.7]), np.array([1.0, -0.6])
        pen.line([start, tip])
        _arrow_head(pen, tip, tip - start, 0.3)
        for along in (0.05, 0.15):  # the feathers
            base = start + along * (tip - start)
            pen.line([base, base + (-0.2, -0.15)])
    elif style == "broken":
        pen.line(np.stack([rng.uniform(-0.15, 0.15, 5), np.linspace(-0.45, 0.75, 5)], axis=1), wobble=0)  # the crack
    else:
        pen.line(_heart((0, 0.05), 0.45))


def _draw_arrow(pen: _Pen, rng: np.random.Generator, style: str) -> None:
    angle = rng.uniform(0, 2 * math.pi)
    direction = np.array([math.cos(angle), math.sin(angle)])
    if style == "curved":
        start = rng.uniform(0, 360)
        sweep = rng.uniform(150, 270) * (1 if rng.random() < 0.5 else -1)
        angles = np.radians(np.linspace(start, start + sweep, 40))
        arc = np.stack([0.8 * np.cos(angles), 0.8 * np.sin(angles)], axis=1)
        pen.line(arc)
        _arrow_head(pen, arc[-1], arc[-1] - arc[-4])
    elif style == "block":
        shape = np.array([[-1, -0.25], [0.2, -0.25], [0.2, -0.6], [1, 0], [0.2, 0.6], [0.2, 0.25], [-1, 0.25]])
        turn = np.array([[direction[0], -direction[1]], [direction[1], direction[0]]])
        outline = shape @ turn.T
        pen.line(np.vstack([outline, outline[:1]]))
    else:
        if style == "diagonal":  # from 20 to 70 degrees off the horizontal, any quadrant
            angle = math.radians(rng.uniform(20, 70)) + math.pi / 2 * int(rng.integers(0, 4))
            direction = np.array([math.cos(angle), math.sin(angle)])
        tail, tip = -0.9 * direction, 0.9 * direction
        pen.line([tail, tip])
        _arrow_head(pen, tip, direction)
        if style == "double":
            _arrow_head(pen, tail, -direction)


def _draw_tick(pen: _Pen, rng: np.random.Generator, style: str) -> None:
    check = np.array([[-0.6, 0.0], [-0.15, 0.55], [0.8, -0.8]]) + rng.uniform(-0.08, 0.08, (3, 2))
    cross = [np.array([[-0.55, -0.55], [0.55, 0.55]]), np.array([[0.55, -0.55], [-0.3, 0.4], [-0.6, 0.5]])]
    if style in ("checkbox", "crossed-box"):
        pen.line([(-0.7, -0.5), (0.5, -0.5), (0.5, 0.7), (-0.7, 0.7), (-0.7, -0.5)])
        check, cross = check * 0.9 + (0.0, 0.05), [stroke * 0.7 + (-0.1, 0.1) for stroke in cross]
    if style in ("check", "checkbox"):
        pen.line(check)
    else:
        pen.line(cross[0])
        pen.curve(cross[1])  # the second stroke of a hand's cross hooks at its end


def _draw_star(pen: _Pen, rng: np.random.Generator, style: str) -> None:
    if style == "pentagram":
        corners = _circle_points((0, 0.1), 1.0, 5)[[0, 2, 4, 1, 3, 0]]
        pen.line(corners + rng.uniform(-0.06, 0.06, corners.shape))
    elif style == "sparkle":
        t = np.linspace(0, 2 * np.pi, 80)
        pen.line(np.stack([np.cos(t) ** 3, np.sin(t) ** 3], axis=1) * rng.uniform(0.8, 1.0), wobble=WOBBLE / 2)
    elif style == "hexagram":
        for phase in (-math.pi / 2, math.pi / 2):
            triangle = _circle_points((0, 0), 0.95, 3, phase)
            pen.line(np.vstack([triangle, triangle[:1]]))
    else:
        spikes = int(rng.integers(8, 13))
        radii = np.where(np.arange(2 * spikes) % 2 == 0, 1.0, rng.uniform(0.45, 0.65))
        angles = np.arange(2 * spikes) * math.pi / spikes
        outline = np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
        pen.line(np.vstack([outline, outline[:1]]), wobble=0.01)


def _draw_figure(pen: _Pen, rng: np.random.Generator, style: str) -> None:
    pen.ellipse((0, -0.72), 0.24)
    pen.line([(0, -0.48), (0, 0.3)])
    hands = {"arms-up": (-0.85, -0.85), "arms-down": (0.15, 0.15), "waving": (-0.9, 0.1)}[style]
    for side, hand_y in zip((-1, 1), hands, strict=True):
        pen.line([(0, -0.25), (side * rng.uniform(0.5, 0.7), hand_y)])
        pen.line([(0, 0.3), (side * rng.uniform(0.3, 0.5), 1.0)])


def _draw_house(pen: _Pen, rng: np.random.Generator, style: str) -> None:
    pen.line([(-0.75, -0.15), (-0.75, 0.95), (0.75, 0.95), (0.75, -0.15)])
    pen.line([(-0.95, -0.1), (0, -0.9), (0.95, -0.1)])
    door = rng.uniform(-0.35, 0.1)
    pen.line([(door, 0.95), (door, 0.4), (door + 0.3, 0.4), (door + 0.3, 0.95)])
    window = 0.45 if door < -0.1 else -0.5
    pen.line([(window - 0.17, 0.05), (window + 0.17, 0.05), (window + 0.17, 0.35), (window - 0.17, 0.35),
              (window - 0.17, 0.05)])
    pen.line([(window, 0.05), (window, 0.35)], width=max(2, pen.width - 1))
    if style == "chimney":
        pen.line([(0.4, -0.45), (0.4, -0.8), (0.6, -0.8), (0.6, -0.26)])


def _draw_tree(pen: _Pen, rng: np.random.Generator, style: str) -> None:
    if style == "pine":
        for top, bottom, half in ((-1.0, -0.35, 0.4), (-0.6, 0.1, 0.6), (-0.2, 0.55, 0.8)):
            pen.line([(-half, bottom), (0, top), (half, bottom), (-half, bottom)])
        pen.line([(-0.12, 0.55), (-0.12, 0.95), (0.12, 0.95), (0.12, 0.55)])
        return
    bumps = _circle_points((0, -0.3), 0.55, int(rng.integers(6, 9)))
    for bump in bumps:
        pen.ellipse(bump, 0.28, start=0, end=360)
    pen.line([(-0.15, 0.25), (-0.12, 1.0)])
    pen.line([(0.15, 0.25), (0.12, 1.0)])


def _draw_cloud(pen: _Pen, rng: np.random.Generator, style: str) -> None:
    bumps = int(rng.integers(3, 5))
    base = 0.35 if style == "plain" else 0.05  # rain falls below
    for index, x in enumerate(np.linspace(-0.5, 0.5, bumps)):
        inner = 0 < index < bumps - 1
        pen.ellipse((x, base - (0.25 if inner else 0.0)), 0.5 if inner else 0.38, start=180 if inner or x > 0 else 90,
                    end=360 if inner or x < 0 else 450)
    pen.line([(-0.5, base + 0.38), (0.5, base + 0.38)])
    if style == "rain":
        for x in np.linspace(-0.6, 0.6, int(rng.integers(3, 6))):
            pen.line([(x, base + 0.55), (x - 0.15, base + 0.9)])


def _draw_shading(pen: _Pen, rng: np.random.Generator, style: str) -> None:
    corners = _circle_points((0, 0), 1.0, 7) * rng.uniform(0.6, 1.0, (7, 1))
    outline = smooth_curve(np.vstack([corners, corners[:1]]))
    if style == "blob":
        pen.draw.polygon(pen.pixels(outline), fill=255)
        return
    angle = rng.uniform(0, math.pi)
    if style == "coloured-in":  # back and forth, as a child colours a shape in
        _clipped(pen, outline, [angle], rng.uniform(0.2, 0.28), back_and_forth=True)
    else:
        _clipped(pen, outline, [angle] if style == "hatched" else [angle, angle + math.pi / 2], rng.uniform(0.25, 0.35))


def _clipped(pen: _Pen, outline: np.ndarray, angles: list[float], spacing: float, back_and_forth: bool = False) -> None:
    """Parallel lines at each angle, `spacing` units apart, kept to the inside of the closed outline."""
    region = Image.new("L", pen.canvas.size, 0)
    ImageDraw.Draw(region).polygon(pen.pixels(outline), fill=255)
    lines = Image.new("L", pen.canvas.size, 0)
    hatch = _Pen(lines, pen.rng)
    hatch.width = max(2, pen.width - 1)
    for angle in angles:
        along, across = np.array([math.cos(angle), math.sin(angle)]), np.array([-math.sin(angle), math.cos(angle)])
        offsets = np.arange(-1.2, 1.2, spacing)
        if back_and_forth:  # one stroke, turning at each end
            ends = np.where(np.arange(len(offsets)) % 2 == 0, -1.3, 1.3)
            hatch.line(offsets[:, None] * across + ends[:, None] * along, wobble=0.04)
        else:
            for offset in offsets:
                hatch.line([offset * across - 1.5 * along, offset * across + 1.5 * along], wobble=0.01)
    pen.canvas.paste(ImageChops.lighter(pen.canvas, ImageChops.multiply(lines, region)), (0, 0))
    pen.line(outline, wobble=0)


def _draw_waves(pen: _Pen, rng: np.random.Generator, style: str) -> None:
    if style == "loops":  # a prolate cycloid: a row of loops, as a pen testing itself
        loops = int(rng.integers(4, 7))
        t = np.linspace(0, 2 * math.pi * loops, 40 * loops)
        x, y = t - 2.2 * np.sin(t), -2.2 * np.cos(t)
        pen.line(np.stack([x / (x.max() / 2) - 1, y / 2.2 * 0.45], axis=1), wobble=0.01)
        return
    for y in np.linspace(-0.6, 0.6, int(rng.integers(2, 5))):
        if style == "water":
            x = np.linspace(-1, 1, 60)
            pen.line(np.stack([x, y + 0.15 * np.sin(x * math.pi * rng.uniform(2.0, 3.0))], axis=1), wobble=0.01)
        else:
            corners = int(rng.integers(6, 10))
            pen.line(np.stack([np.linspace(-1, 1, corners), y + np.where(np.arange(corners) % 2 == 0, -0.15, 0.15)],
                              axis=1))


def _draw_flower(pen: _Pen, rng: np.random.Generator, style: str) -> None:
    centre, size = ((0.0, -0.3), 0.65) if style == "stem" else ((0.0, 0.0), 1.0)
    petals = int(rng.integers(5, 9))
    for angle in np.arange(petals) * 2 * math.pi / petals + rng.uniform(0, 1):
        direction = np.array([math.cos(angle), math.sin(angle)])
        side = np.array([-direction[1], direction[0]])
        base = np.asarray(centre) + 0.25 * size * direction
        pen.curve([base - 0.12 * size * side, base + 0.45 * size * direction - 0.2 * size * side,
                   base + 0.75 * size * direction, base + 0.45 * size * direction + 0.2 * size * side,
                   base + 0.12 * size * side])
    pen.ellipse(centre, 0.2 * size)
    if style == "stem":
        pen.line([(0, centre[1] + 0.9 * size), (0.05, 1.0)])
        pen.curve([(0.02, 0.75), (0.35, 0.55), (0.55, 0.6)])


_DRAWERS = {"smiley": _draw_smiley, "grid": _draw_grid, "spiral": _draw_spiral, "heart": _draw_heart, "arrow": _draw_arrow,
            "tick": _draw_tick, "star": _draw_star, "figure": _draw_figure, "house": _draw_house, "tree": _draw_tree,
            "cloud": _draw_cloud, "shading": _draw_shading, "waves": _draw_waves, "flower": _draw_flower}
