"""Digits in handwriting fonts: framed like MNIST, every font draws every digit, loops stay open, deterministic
per seed, never drawn by training; photographed as lines and singles as MNIST's digits are."""

import numpy as np
import pytest

from digitlab.data import handwriting, nondigits
from digitlab.data.lines import build_line_set, single_digit_photos
from digitlab.errors import DataUnavailableError

ndimage = pytest.importorskip("scipy.ndimage")


def holes(inked: np.ndarray, smallest: int = 1) -> int:
    """Pieces of paper of at least `smallest` pixels the ink encloses: a 0 has one, an 8 two."""
    labelled, _ = ndimage.label(np.pad(~inked, 1, constant_values=True))
    return int(np.count_nonzero(np.bincount(labelled.ravel())[2:] >= smallest))


def centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    weights = image.astype(np.float64)
    rows, columns = np.indices(image.shape)
    return float((rows * weights).sum() / weights.sum()), float((columns * weights).sum() / weights.sum())


@pytest.fixture(scope="module")
def fonts() -> tuple[str, ...]:
    found = handwriting.find_handwriting_fonts()
    assert found, f"install the fonts: apt-get install {' '.join(handwriting.HANDWRITING_PACKAGES)} (scripts/test does)"
    return found


@pytest.fixture(scope="module")
def drawn(fonts):
    return handwriting.handwriting_digits(10 * len(fonts) * 2, seed=3)


def test_fonts_are_sorted_installed_handwriting_fonts(fonts):
    assert list(handwriting.HANDWRITING_FONTS) == sorted(handwriting.HANDWRITING_FONTS)
    assert set(fonts) <= set(handwriting.HANDWRITING_FONTS) and list(fonts) == sorted(fonts)


def test_training_never_draws_with_a_handwriting_font(fonts):
    training_fonts = nondigits.find_truetype_fonts()
    assert training_fonts, "the DejaVu and Liberation fonts are what training draws with"
    assert not set(training_fonts) & set(fonts)
    assert not any(nondigits.is_training_font(path) for path in handwriting.HANDWRITING_FONTS)
    # Every file of the packages, used here or not (breipfont.ttf, fonts-femkeklaver), is kept from training too.
    assert not nondigits.is_training_font("/usr/share/fonts/truetype/femkeklaver/femkeklaver.ttf")
    assert not nondigits.is_training_font("/usr/share/fonts/truetype/breip/breipfont.ttf")
    assert nondigits.is_training_font("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


def test_digits_are_uint8_frames_with_balanced_labels(drawn, fonts):
    images, labels = drawn
    count = 10 * len(fonts) * 2
    assert images.shape == (count, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (count,) and labels.dtype == np.uint8
    assert np.bincount(labels, minlength=10).tolist() == [count // 10] * 10
    assert (images.reshape(count, -1).max(axis=1) >= 200).all()  # every digit has strong ink


def test_digits_are_framed_like_mnist(drawn):
    images, _ = drawn
    centres = np.array([centre_of_mass(image) for image in images])
    assert np.abs(centres - 14.0).max() < 1.0
    for image in images:
        rows, columns = np.flatnonzero(image.max(axis=1) > 25), np.flatnonzero(image.max(axis=0) > 25)
        assert max(rows[-1] - rows[0], columns[-1] - columns[0]) + 1 in range(19, 23)


def test_every_font_draws_every_digit_with_its_loops_open(fonts):
    for font in fonts:
        images, labels = handwriting.handwriting_digits(20, seed=5, fonts=[font])
        assert sorted(set(labels.tolist())) == list(range(10)), font
        for image, label in zip(images, labels, strict=True):
            glyph = handwriting.font_glyph(font, str(label))
            # A bold pen never fills a loop: a human reads an 8 with two holes, not a blob.
            # (Specks of paper inside a rough brush's strokes are not loops: 5x5 pixels of the glyph at least.)
            assert holes(image > 76) >= holes(glyph > 0.5, smallest=25), (font, label)


def test_the_ten_digits_are_told_apart_by_a_nearest_mean_rule(drawn):
    """A weak but honest check that each label draws one shape across fonts and poses: the mean image of
    each digit (one seed) names most digits of another seed (chance: 10%; MNIST's own test digits: 82%)."""
    images, labels = drawn
    means = np.stack([images[labels == digit].reshape(-1, 784).mean(axis=0) for digit in range(10)])
    others, truth = handwriting.handwriting_digits(400, seed=4)
    distances = ((others.reshape(-1, 1, 784).astype(np.float64) - means[None]) ** 2).sum(axis=2)
    assert (distances.argmin(axis=1) == truth).mean() > 0.6


def test_same_seed_same_digits_other_seed_other_digits():
    first, first_labels = handwriting.handwriting_digits(30, seed=8)
    second, second_labels = handwriting.handwriting_digits(30, seed=8)
    other, _ = handwriting.handwriting_digits(30, seed=9)
    assert np.array_equal(first, second) and np.array_equal(first_labels, second_labels)
    assert not np.array_equal(first, other)


def test_digits_photograph_as_lines_and_singles(drawn):
    images, labels = drawn
    lines = build_line_set(images, labels, 6, seed=1)
    assert all(line.text.isdigit() and len(line.boxes) == len(line.text) for line in lines)
    singles = single_digit_photos(images, labels, 5, seed=2)
    assert all(len(photo.text) == 1 and photo.layout == "single" for photo in singles)


def test_arguments_are_checked(fonts, tmp_path):
    with pytest.raises(ValueError, match="count"):
        handwriting.handwriting_digits(-1, seed=0)
    with pytest.raises(ValueError, match="non-empty"):
        handwriting.handwriting_digits(5, seed=0, fonts=[])
    with pytest.raises(ValueError, match="not a file"):
        handwriting.handwriting_digits(5, seed=0, fonts=[str(tmp_path / "none.ttf")])
    assert handwriting.handwriting_digits(0, seed=0)[0].shape == (0, 28, 28)


def test_no_font_installed_says_what_to_install(monkeypatch):
    monkeypatch.setattr(handwriting, "HANDWRITING_FONTS", ("/nonexistent-fonts/hand.ttf",))
    with pytest.raises(DataUnavailableError, match="apt-get install -y fonts-breip"):
        handwriting.handwriting_digits(5, seed=0)
