"""Non-digits of kinds no training draws: every kind and style drawn, framed like MNIST, deterministic per
seed, none a trained kind or a digit-like glyph; photographed as lines.non_digit_photos photographs."""

import numpy as np
import pytest

from digitlab.data import handwriting, nondigits, unseen
from digitlab.errors import DataUnavailableError


def centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    weights = image.astype(np.float64)
    rows, columns = np.indices(image.shape)
    return float((rows * weights).sum() / weights.sum()), float((columns * weights).sum() / weights.sum())


@pytest.fixture(scope="module")
def drawn():
    return unseen.render_unseen(16 * 25, seed=11)


def test_images_are_uint8_frames_with_ink_and_a_kind_each(drawn):
    images, kinds = drawn
    assert images.shape == (400, 28, 28) and images.dtype == np.uint8
    assert len(kinds) == 400 and all(":" in kind for kind in kinds)
    assert (images.reshape(400, -1).max(axis=1) >= 200).all()
    names = [kind.split(":")[0] for kind in kinds]
    assert {name: names.count(name) for name in unseen.UNSEEN_KINDS} == dict.fromkeys(unseen.UNSEEN_KINDS, 25)


def test_every_style_is_drawn(drawn):
    _, kinds = drawn
    for kind, styles in unseen.STYLES.items():
        assert {described.split(":")[1] for described in kinds if described.startswith(kind + ":")} == set(styles)
    letters = {described.split(":")[1] for described in kinds if described.startswith("hand-letter:")}
    assert letters <= set(unseen.HAND_LETTERS) and len(letters) >= 10


def test_images_are_framed_like_mnist(drawn):
    images, _ = drawn
    centres = np.array([centre_of_mass(image) for image in images])
    assert np.abs(centres - 14.0).max() < 1.0
    sides = []
    for image in images:
        rows, columns = np.flatnonzero(image.max(axis=1) > 25), np.flatnonzero(image.max(axis=0) > 25)
        sides.append(max(rows[-1] - rows[0], columns[-1] - columns[0]) + 1)
    assert np.median(sides) == 20  # MNIST's box
    assert np.mean((np.array(sides) >= 18) & (np.array(sides) <= 22)) > 0.95


def test_kinds_are_none_that_training_draws():
    assert not set(unseen.UNSEEN_KINDS) & set(nondigits.KINDS)
    # Letters that are digits in disguise are never drawn; a and g (a 9 in some hands) on purpose.
    assert set(unseen.HAND_LETTERS) & nondigits.EXCLUDED_LETTERS == {"a", "g"}
    # ... and the fonts they are written in are not training's.
    assert not any(nondigits.is_training_font(path) for path in handwriting.find_handwriting_fonts())


def test_same_seed_same_images_other_seed_other_images():
    first, first_kinds = unseen.render_unseen(40, seed=3)
    second, second_kinds = unseen.render_unseen(40, seed=3)
    other, _ = unseen.render_unseen(40, seed=4)
    assert np.array_equal(first, second) and first_kinds == second_kinds
    assert not np.array_equal(first, other)


def test_chosen_kinds_only():
    _, kinds = unseen.render_unseen(12, seed=0, kinds=("spiral", "word"))
    assert sorted({kind.split(":")[0] for kind in kinds}) == ["spiral", "word"]


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="count"):
        unseen.render_unseen(-1, seed=0)
    with pytest.raises(ValueError, match="kinds"):
        unseen.render_unseen(5, seed=0, kinds=())
    with pytest.raises(ValueError, match="kinds"):
        unseen.render_unseen(5, seed=0, kinds=("face",))  # a kind training draws
    with pytest.raises(ValueError, match="kinds"):
        unseen.render_unseen(5, seed=0, kinds="spiral")
    assert unseen.render_unseen(0, seed=0)[0].shape == (0, 28, 28)


def test_without_handwriting_fonts_only_letters_and_words_need_them(monkeypatch):
    monkeypatch.setattr(handwriting, "HANDWRITING_FONTS", ("/nonexistent-fonts/hand.ttf",))
    with pytest.raises(DataUnavailableError, match="apt-get install"):
        unseen.render_unseen(5, seed=0)
    images, _ = unseen.render_unseen(5, seed=0, kinds=("smiley", "grid"))
    assert images.shape == (5, 28, 28)


def test_photos_are_photographed_non_digits():
    photos = unseen.unseen_non_digit_photos(20, seed=5)
    _, kinds = unseen.render_unseen(20, seed=5)
    assert [photo.kind for photo in photos] == kinds
    for photo in photos:
        assert photo.text == "" and photo.layout == "single" and photo.image.dtype == np.uint8
        (x0, y0, x1, y1), = photo.boxes
        assert 0 <= x0 < x1 <= photo.image.shape[1] and 0 <= y0 < y1 <= photo.image.shape[0]
    again = unseen.unseen_non_digit_photos(20, seed=5)
    assert all(np.array_equal(first.image, second.image) for first, second in zip(photos, again, strict=True))
