"""Synthetic non-digits: framed like MNIST, deterministic per seed, never a digit-like glyph; fragments
of lines of digits: pieces and pairs, never one whole digit."""

import numpy as np
import pytest
from PIL import Image, ImageDraw

from digitlab.data import nondigits
from digitlab.data.framing import MNIST_BOX, MNIST_CENTRE, fit_in_frame


def fake_digit(label: int, rng: np.random.Generator) -> np.ndarray:
    """A 28x28 uint8 stand-in for an MNIST digit: a simple stroke drawing, a little shifted."""
    image = Image.new("L", (28, 28), 0)
    draw = ImageDraw.Draw(image)
    dx, dy = (int(value) for value in rng.integers(-2, 3, 2))
    width = int(rng.integers(2, 4))
    strokes = {
        0: [(9, 4), (18, 4), (20, 14), (18, 24), (9, 24), (7, 14), (9, 4)],
        1: [(14, 4), (13, 24)],
        4: [(17, 24), (17, 4), (7, 17), (21, 17)],
        7: [(7, 5), (20, 5), (12, 24)],
    }[label]
    draw.line([(x + dx, y + dy) for x, y in strokes], fill=255, width=width, joint="curve")
    return np.asarray(image)


@pytest.fixture(scope="module")
def fake_digits() -> np.ndarray:
    rng = np.random.default_rng(5)
    return np.stack([fake_digit(label, rng) for label in (0, 4, 7, 0, 4, 7, 1, 0, 4, 7) * 3])


def centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    weights = image.astype(np.float64)
    rows, columns = np.indices(image.shape)
    return float((rows * weights).sum() / weights.sum()), float((columns * weights).sum() / weights.sum())


def longest_side(image: np.ndarray) -> int:
    rows, columns = np.flatnonzero(image.max(axis=1) > 25), np.flatnonzero(image.max(axis=0) > 25)
    return max(rows[-1] - rows[0] + 1, columns[-1] - columns[0] + 1)


@pytest.fixture(scope="module")
def drawn():
    return nondigits.render_non_digits(300, seed=11)


def test_non_digits_are_uint8_frames_with_ink_and_a_kind_each(drawn):
    images, kinds = drawn
    assert images.shape == (300, 28, 28) and images.dtype == np.uint8
    assert len(kinds) == 300
    assert (images.reshape(300, -1).max(axis=1) >= 200).all()  # every image has strong ink
    assert {kind.split(":")[0] for kind in kinds} == set(nondigits.KINDS)  # every kind is drawn


def test_non_digits_are_framed_like_mnist(drawn):
    images, _ = drawn
    centres = np.array([centre_of_mass(image) for image in images])
    assert np.abs(centres - MNIST_CENTRE).max() < 1.0
    sides = np.array([longest_side(image) for image in images])
    assert abs(np.median(sides) - MNIST_BOX) <= 1
    assert np.mean((sides >= MNIST_BOX - 2) & (sides <= MNIST_BOX + 2)) > 0.95


def test_the_same_seed_draws_the_same_images_and_another_seed_others():
    first, first_kinds = nondigits.render_non_digits(40, seed=3)
    again, again_kinds = nondigits.render_non_digits(40, seed=3)
    other, _ = nondigits.render_non_digits(40, seed=4)
    assert np.array_equal(first, again) and first_kinds == again_kinds
    assert not np.array_equal(first, other)


def test_no_digit_like_glyph_or_shape_is_drawn(drawn):
    _, kinds = drawn
    letters = [kind.split(":", 1)[1] for kind in kinds if kind.startswith("letter:")]
    symbols = [kind.split(":", 1)[1] for kind in kinds if kind.startswith("symbol:")]
    shapes = [kind.split(":", 1)[1] for kind in kinds if kind.startswith("shape:")]
    assert letters and symbols and shapes
    assert not set(letters) & nondigits.EXCLUDED_LETTERS
    assert set(letters) <= set(nondigits.LETTERS)
    assert set(symbols) <= set(nondigits.SYMBOLS + nondigits.TRUETYPE_SYMBOLS)
    assert set(shapes) <= set(nondigits.SHAPES)
    # The glyphs that read as digits are on the list, and nothing that reads as one is drawn at all.
    assert set("OoQDIlSsZzBbGgq") <= nondigits.EXCLUDED_LETTERS
    assert not set("|/\\()[]!0123456789") & set(nondigits.LETTERS + nondigits.SYMBOLS + nondigits.TRUETYPE_SYMBOLS)
    assert not {"circle", "ellipse", "line"} & set(nondigits.SHAPES)


def test_letters_come_from_the_built_in_font_when_no_font_is_installed(monkeypatch):
    nondigits.find_truetype_fonts.cache_clear()
    monkeypatch.setattr(nondigits, "FONT_PATTERN", "/nonexistent-fonts/**/*.ttf")
    try:
        images, kinds = nondigits.render_non_digits(60, seed=2)
    finally:
        nondigits.find_truetype_fonts.cache_clear()
    assert len(images) == 60 and any(kind.startswith("letter:") for kind in kinds)
    # Pillow's own font lacks these, so they are never asked of it.
    assert not {kind.split(":", 1)[1] for kind in kinds if kind.startswith("symbol:")} & set(nondigits.TRUETYPE_SYMBOLS)


def test_bad_counts_are_refused():
    with pytest.raises(ValueError, match="count"):
        nondigits.render_non_digits(-1, seed=0)
    images, kinds = nondigits.render_non_digits(0, seed=0)
    assert images.shape == (0, 28, 28) and kinds == []


def test_fragments_are_framed_deterministic_and_none_is_a_whole_digit(fake_digits):
    fragments = nondigits.digit_fragments(fake_digits, 40, seed=1)
    assert fragments.shape == (40, 28, 28) and fragments.dtype == np.uint8
    assert np.array_equal(fragments, nondigits.digit_fragments(fake_digits, 40, seed=1))
    assert not np.array_equal(fragments, nondigits.digit_fragments(fake_digits, 40, seed=2))
    centres = np.array([centre_of_mass(fragment) for fragment in fragments])
    assert np.abs(centres - MNIST_CENTRE).max() < 1.0
    # Compared with every whole digit framed the same way, each fragment differs clearly.
    wholes = np.stack([fit_in_frame(nondigits.ink_crop(digit)) for digit in fake_digits])
    distances = np.abs(fragments[:, None].astype(np.float32) / 255 - wholes[None]).mean(axis=(2, 3))
    assert distances.min() > 0.05


def test_a_merged_pair_is_wider_than_a_digit_and_a_cut_keeps_part_of_each(fake_digits):
    fragments = nondigits.digit_fragments(fake_digits, 20, seed=4)
    for fragment in fragments[::2]:  # merged pairs: at least half as wide as tall
        rows, columns = np.flatnonzero(fragment.max(axis=1) > 25), np.flatnonzero(fragment.max(axis=0) > 25)
        assert columns[-1] - columns[0] + 1 >= 0.45 * (rows[-1] - rows[0] + 1)
    rng = np.random.default_rng(0)
    for digit in fake_digits:
        crop = nondigits.ink_crop(digit)
        if crop.shape[1] < nondigits.NARROW * crop.shape[0]:
            continue
        column = nondigits._cut_column(crop, rng)
        assert 0.25 * crop.shape[1] - 1 <= column <= 0.75 * crop.shape[1] + 1
        share = crop[:, :column].sum() / crop.sum()
        assert 0.2 <= share <= 0.8


def test_fragments_refuse_bad_digits():
    with pytest.raises(ValueError, match="28, 28"):
        nondigits.digit_fragments(np.zeros((3, 20, 20), dtype=np.uint8), 2, seed=0)
    with pytest.raises(ValueError, match="uint8"):
        nondigits.digit_fragments(np.ones((3, 28, 28), dtype=np.float32), 2, seed=0)
    ones = np.stack([fake_digit(1, np.random.default_rng(seed)) for seed in range(4)])
    with pytest.raises(ValueError, match="too few"):  # a 1 is never cut, and two 1s never merged
        nondigits.digit_fragments(ones, 2, seed=0)
