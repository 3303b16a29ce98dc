"""One answer for what is on a picture (inference/looking.py): the rule alone, then `look` with the bundled
reader (its classifier and line model, ONNX) on drawings made as the page sends them."""

import math

import numpy as np
import pytest
from PIL import Image

from digitlab.errors import ImageError
from digitlab.inference import looking
from digitlab.inference.loading import load_bundled_reader
from digitlab.inference.reading import ReadDigit, Reading
from digitlab.inference.rejection import NOT_A_DIGIT, SEVERAL_DIGITS, UNSURE, Decision
from drawn import FOUR, ONE, SEVEN, THIRTY_EIGHT, TWO, moved, sent_image


def reading(text: str, confidence: float) -> Reading:
    digits = tuple(ReadDigit(int(character), (10 * index, 0, 10 * index + 8, 10), np.eye(10)[int(character)])
                   for index, character in enumerate(text))
    return Reading(text, digits, confidence)


@pytest.mark.parametrize("decision, read, kind, reason", [
    # The classifier names one digit, the reader reads it alone or nothing: one digit.
    (Decision(7, None, 0.97), reading("7", 0.99), looking.DIGIT, None),
    (Decision(1, None, 0.9), reading("", 0.0), looking.DIGIT, None),
    # Two digits read, surer than the classifier's one: a number (a touching 38 is "an 8, 69%").
    (Decision(8, None, 0.69), reading("38", 0.8), looking.NUMBER, None),
    # ... or read at least NUMBER_LEVEL sure, however sure the classifier is of its one digit.
    (Decision(8, None, 0.999), reading("38", 0.98), looking.NUMBER, None),
    # A classifier surer of its digit than a hesitant reading of two: the digit (a loose 8 cut in two).
    (Decision(8, None, 0.95), reading("48", 0.6), looking.DIGIT, None),
    # The classifier names none for the ink's width or its doubt: any number read is the answer.
    (Decision(None, SEVERAL_DIGITS, 0.1), reading("42", 0.5), looking.NUMBER, None),
    (Decision(None, UNSURE, 0.2), reading("42", 0.5), looking.NUMBER, None),
    # Even what it calls "not a digit" (it learnt pairs of digits as not one digit).
    (Decision(None, NOT_A_DIGIT, 0.1), reading("38", 0.7), looking.NUMBER, None),
    # One scribble read as "1" by the reader, refused by the classifier that saw all of it: no number of one digit.
    (Decision(None, SEVERAL_DIGITS, 0.3), reading("1", 0.9), looking.NOT_A_DIGIT, SEVERAL_DIGITS),
    (Decision(None, NOT_A_DIGIT, 0.1), reading("", 0.0), looking.NOT_A_DIGIT, NOT_A_DIGIT),
    (Decision(None, UNSURE, 0.3), reading("4", 0.5), looking.UNSURE, UNSURE),
])
def test_one_digit_a_number_or_neither_with_a_line_model(decision, read, kind, reason):
    assert looking.choose(decision, read) == (kind, reason)


@pytest.mark.parametrize("decision, read, kind, reason", [
    # Read by cutting, the digits are the classifier's own answers for pieces: a number only where it says
    # "several digits" (a star cut into pieces reads "417").
    (Decision(None, SEVERAL_DIGITS, 0.1), reading("42", 0.5), looking.NUMBER, None),
    (Decision(8, None, 0.69), reading("38", 0.99), looking.DIGIT, None),
    (Decision(None, NOT_A_DIGIT, 0.1), reading("417", 0.71), looking.NOT_A_DIGIT, NOT_A_DIGIT),
    (Decision(None, UNSURE, 0.2), reading("42", 0.95), looking.UNSURE, UNSURE),
    (Decision(None, SEVERAL_DIGITS, 0.3), reading("1", 0.9), looking.NOT_A_DIGIT, SEVERAL_DIGITS),
])
def test_one_digit_a_number_or_neither_when_the_line_is_cut(decision, read, kind, reason):
    assert looking.choose(decision, read, line_model=False) == (kind, reason)


@pytest.fixture(scope="module")
def reader():
    return load_bundled_reader()


def test_touching_digits_are_the_number_the_reader_reads_not_the_classifier_s_one_digit(reader):
    picture = sent_image(THIRTY_EIGHT)
    answer = looking.look(reader, picture)
    assert answer.digit == 8  # the classifier alone takes the pair for one 8...
    assert (answer.kind, answer.text, answer.reason) == (looking.NUMBER, "38", None)  # ...the answer is 38
    assert answer.confidence == answer.reading.confidence >= looking.NUMBER_LEVEL
    # What the line model saw: its strip, with a box per digit, left to right, inside the strip.
    assert answer.seen.kind == looking.SEEN_LINE and answer.seen.pixels.shape[0] == 24
    [three, eight] = answer.seen.boxes
    assert three[0] < eight[0] and three[2] <= eight[2]
    assert all(box[2] <= answer.seen.pixels.shape[1] for box in (three, eight))
    # The boxes on the picture are about the reader's (a stroke both digits share is cut where it cuts), in its pixels.
    for boxed, digit in zip(answer.boxed, answer.reading.digits, strict=True):
        assert all(abs(a - b) <= 4 for a, b in zip(boxed.box, digit.box, strict=True)), (boxed, digit)
    assert [boxed.label for boxed in answer.boxed] == ["3", "8"]
    assert answer.boxed[0].box[0] < picture.width / 3 and answer.boxed[1].box[2] > picture.width / 2


@pytest.mark.parametrize("scale", [1.0, 0.2])
def test_a_number_reads_the_same_written_large_or_small(reader, scale):
    answer = looking.look(reader, sent_image(moved(FOUR + TWO, scale)))
    assert (answer.kind, answer.text) == (looking.NUMBER, "42")
    # Each box holds its own strokes: the 4's bar, which reaches past the midpoint to the 2, is the 4's.
    four, two = (boxed.box for boxed in answer.boxed)
    assert four[2] < two[0], (four, two)
    assert answer.reading.digits[0].box[2] > answer.reading.digits[1].box[0]  # the reader's own boxes overlap


@pytest.mark.parametrize("strokes, digit", [(SEVEN, "7"), (ONE, "1"), (moved(ONE, 0.15), "1")])
def test_one_digit_is_seen_as_28_by_28_and_boxed_even_when_thin(reader, strokes, digit):
    picture = sent_image(strokes)
    answer = looking.look(reader, picture)
    assert (answer.kind, answer.text, answer.seen.kind) == (looking.DIGIT, digit, looking.SEEN_DIGIT)
    assert answer.seen.pixels.shape == (28, 28) and answer.seen.boxes == ()
    np.testing.assert_array_equal(answer.seen.pixels, answer.prepared)
    [boxed] = answer.boxed
    left, top, right, bottom = boxed.box
    ink = np.argwhere(np.asarray(picture) < 128)  # (points, 2): rows, columns of the dark pixels
    assert left <= ink[:, 1].min() + 2 and right >= ink[:, 1].max() - 1, (boxed.box, ink.min(0), ink.max(0))
    assert top <= ink[:, 0].min() + 2 and bottom >= ink[:, 0].max() - 1, (boxed.box, ink.min(0), ink.max(0))


def test_a_reader_without_its_line_model_shows_each_digit_framed(reader):
    cutting = load_bundled_reader(line_model=False)
    answer = looking.look(cutting, sent_image(FOUR + TWO))
    assert (answer.kind, answer.text) == (looking.NUMBER, "42")
    assert answer.seen.kind == looking.SEEN_DIGITS and answer.seen.pixels.shape == (28, 2 * 28 + looking.TILE_GAP)
    assert answer.seen.boxes == ((0, 0, 28, 28), (28 + looking.TILE_GAP, 0, 2 * 28 + looking.TILE_GAP, 28))
    assert answer.seen.pixels[:, :28].max() > 0.9 and answer.seen.pixels[:, 28:28 + looking.TILE_GAP].max() == 0


def test_boxes_are_in_the_file_s_pixels_for_a_big_jpeg(reader, tmp_path):
    """A big JPEG is decoded at reduced scale: the boxes still come back in its own pixels."""
    picture = sent_image(FOUR + TWO)
    big = picture.resize((picture.width * 12, picture.height * 12), Image.Resampling.BICUBIC)
    path = tmp_path / "big-42.jpg"
    big.save(path, quality=90)
    small, large = looking.look(reader, picture), looking.look(reader, path)
    assert large.text == small.text == "42"
    for near, far in zip(small.boxed, large.boxed, strict=True):
        assert all(math.isclose(12 * a, b, abs_tol=12 * 6) for a, b in zip(near.box, far.box, strict=True)), (near, far)


def test_a_blank_picture_is_an_error_and_the_answer_has_texts_for_people(reader):
    with pytest.raises(ImageError, match="no ink"):
        looking.look(reader, Image.new("L", (100, 100), 255))
    answer = looking.look(reader, sent_image(SEVEN)).to_dict(reader.class_names)
    assert answer["confidence_text"] == ">99%" and answer["probability_texts"][7] == ">99%"
    assert all(text in ("0%", "<1%") for index, text in enumerate(answer["probability_texts"]) if index != 7)
    assert answer["label"] == "7" and len(answer["seen"]["pixels"]) == 28 and answer["seen"]["boxes"] == []
