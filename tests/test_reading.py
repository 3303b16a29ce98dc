"""reading.py and `digitlab read`: a line of digits -> the number, with a box per digit; bad files reported."""

import json

import numpy as np
import pytest
from PIL import Image

from digitlab.data import datasets, line_strip
from digitlab.inference import loading
from digitlab.inference.reading import Reading, read_number
from digitlab.training import line_model


def line_picture(digits: list[np.ndarray], gap: int, scale: int = 3, margin: int = 12) -> tuple[np.ndarray, list]:
    """MNIST-style digits (light on black, 28x28) side by side, `gap` pixels apart (negative: they overlap),
    dark on light paper, enlarged; and each digit's ink box in the picture's pixels."""
    crops = []
    for digit in digits:
        columns = np.flatnonzero(digit.max(axis=0) > 30)
        crops.append(digit[:, columns[0]:columns[-1] + 1].astype(np.float32))
    width = sum(crop.shape[1] for crop in crops) + gap * (len(crops) - 1) + 2 * margin
    canvas = np.zeros((28 + 2 * margin, width), dtype=np.float32)
    boxes, left = [], margin
    for crop in crops:
        region = canvas[margin:margin + 28, left:left + crop.shape[1]]
        np.maximum(region, crop, out=region)
        rows = np.flatnonzero(crop.max(axis=1) > 30)
        boxes.append((left * scale, (margin + rows[0]) * scale, (left + crop.shape[1]) * scale,
                      (margin + rows[-1] + 1) * scale))
        left += crop.shape[1] + gap
    paper = (255 - canvas).clip(0, 255).astype(np.uint8)
    picture = Image.fromarray(paper).resize((paper.shape[1] * scale, paper.shape[0] * scale), Image.Resampling.BILINEAR)
    return np.asarray(picture), boxes


# --- with a tiny model: the shape of the answer, errors ------------------------------------------


@pytest.fixture(scope="module")
def tiny_classifier(tiny_run):
    return loading.load_classifier(tiny_run)


def blob(width=30, height=60):
    return (np.pad(np.full((height - 20, width - 10), 255, np.uint8), ((10, 10), (5, 5)))).astype(np.uint8)


def test_separate_marks_give_one_digit_each_left_to_right_in_picture_pixels(tiny_classifier):
    strokes = np.zeros((28, 28), np.uint8)
    strokes[4:24, 12:16] = 255  # a "1"-like bar
    picture, truth = line_picture([strokes, strokes, strokes], gap=25)
    reading = read_number(tiny_classifier, picture, min_confidence=0.0)
    assert isinstance(reading, Reading) and len(reading.digits) == 3 and len(reading.text) == 3
    for digit, (left, top, right, bottom) in zip(reading.digits, truth, strict=True):
        x0, y0, x1, y1 = digit.box
        assert abs(x0 - left) <= 6 and abs(x1 - right) <= 6 and abs(y0 - top) <= 6 and abs(y1 - bottom) <= 6
        assert digit.probabilities.shape == (10,) and digit.digit == int(np.argmax(digit.probabilities))
    assert 0.0 < reading.confidence <= 1.0
    answer = reading.to_dict()
    assert answer["text"] == reading.text and [item["box"] for item in answer["digits"]] == [
        list(digit.box) for digit in reading.digits]


def test_a_blank_picture_reads_nothing_and_a_high_threshold_leaves_digits_out(tiny_classifier):
    blank = np.full((60, 200), 235, np.uint8)
    assert read_number(tiny_classifier, blank) == Reading("", (), 0.0, ())
    strokes = np.zeros((28, 28), np.uint8)
    strokes[4:24, 12:16] = 255
    picture, _ = line_picture([strokes, strokes], gap=20)
    assert read_number(tiny_classifier, picture, min_confidence=1.0).text == ""
    with pytest.raises(ValueError, match="between 0 and 1"):
        read_number(tiny_classifier, picture, min_confidence=1.5)


def test_the_cli_reads_each_file_reports_a_broken_one_and_draws_boxes(run_cli, tiny_run, tmp_path):
    strokes = np.zeros((28, 28), np.uint8)
    strokes[4:24, 12:16] = 255
    picture, _ = line_picture([strokes, strokes], gap=20)
    folder = tmp_path / "lines"
    folder.mkdir()
    Image.fromarray(picture).save(folder / "a.png")
    Image.fromarray(picture).save(folder / "b.jpg")
    (folder / "c.png").write_bytes(b"not a picture")
    code, out, err = run_cli("read", str(folder), "--model", str(tiny_run), "--json", "--min-confidence", "0",
                             "--save-annotated", str(tmp_path / "seen"))
    answers = [json.loads(line) for line in out.strip().splitlines()]
    assert code == 1 and [answer["path"].rsplit("/", 1)[1] for answer in answers] == ["a.png", "b.jpg", "c.png"]
    assert len(answers[0]["text"]) == 2 and len(answers[0]["digits"]) == 2 and "error" in answers[2]
    assert "1 of 3 images failed" in err
    annotated = Image.open(tmp_path / "seen" / "a.png")
    assert annotated.size == (picture.shape[1], picture.shape[0]) and annotated.mode == "RGB"
    code, out, _ = run_cli("read", str(folder / "a.png"), "--model", str(tiny_run), "--min-confidence", "0")
    assert code == 0 and out.startswith(str(folder / "a.png") + ": ") and "%" in out


# --- with the tutorial's network on real MNIST digits (slow) ---------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("gap", [6, 1])
def test_lines_of_real_digits_are_read_whole(tutorial_classifier, gap):
    _, (test_images, test_labels) = datasets.load("mnist")
    rng = np.random.default_rng(gap)
    # Digits the network gets right alone, so that what is tested is the cutting and the framing.
    alone = tutorial_classifier.probabilities(test_images[:2000] / np.float32(255)).argmax(axis=1)
    right = np.flatnonzero(alone == test_labels[:2000])
    exact = 0
    for _ in range(30):
        chosen = rng.choice(right, size=int(rng.integers(2, 7)), replace=False)
        picture, truth = line_picture(list(test_images[chosen]), gap=gap)
        reading = read_number(tutorial_classifier, picture, min_confidence=0.0)
        read_right = reading.text == "".join(str(label) for label in test_labels[chosen])
        exact += read_right
        if read_right:  # each box holds its digit's middle
            for digit, (left, _, right_edge, _) in zip(reading.digits, truth, strict=True):
                assert digit.box[0] <= (left + right_edge) / 2 <= digit.box[2]
    print(f"gap {gap}: {exact} of 30 lines read exactly")
    assert exact >= 26, f"{exact} of 30 lines read exactly"


def test_a_bar_or_a_dot_is_not_read_as_digits(tiny_classifier):
    for rows, columns in ((slice(95, 110), slice(50, 550)), (slice(95, 110), slice(300, 315))):
        picture = np.full((200, 600), 255, np.uint8)
        picture[rows, columns] = 0
        assert read_number(tiny_classifier, picture, min_confidence=0.0).text == ""


def test_boxes_are_in_the_files_own_pixels_for_a_big_jpeg_and_a_small_number(tiny_classifier, tmp_path):
    strokes = np.zeros((28, 28), np.uint8)
    strokes[4:24, 12:16] = 255
    line, truth = line_picture([strokes, strokes], gap=20, scale=4)  # (about 160 x 300) dark on light
    page = np.full((1800, 2400), 255, np.uint8)  # the number small in a big photo, decoded at reduced scale
    page[1000:1000 + line.shape[0], 1500:1500 + line.shape[1]] = line
    Image.fromarray(page).save(tmp_path / "page.jpg", quality=92)
    reading = read_number(tiny_classifier, tmp_path / "page.jpg", min_confidence=0.0)
    assert len(reading.digits) == 2
    for digit, (left, top, right, bottom) in zip(reading.digits, truth, strict=True):
        x0, y0, x1, y1 = digit.box
        assert abs(x0 - (1500 + left)) <= 12 and abs(x1 - (1500 + right)) <= 12
        assert abs(y0 - (1000 + top)) <= 12 and abs(y1 - (1000 + bottom)) <= 12
    from digitlab.inference.read_files import read_files

    (result,) = read_files(tiny_classifier, [tmp_path / "page.jpg"], min_confidence=0.0, save_annotated=tmp_path / "seen")
    assert [digit.box for digit in result.reading.digits] == [digit.box for digit in reading.digits]
    assert Image.open(result.annotated_path).size == (2400, 1800)  # drawn on the file's own pixels, as the boxes are


# --- separators, with a line model whose answers are known ----------------------------------------------


def rule_line_model():
    """A real Keras line model with set weights: per 4 columns of the strip, ink in the top rows reads "1",
    ink in the middle rows only a dash, ink in the bottom rows only a point, no ink the blank."""
    import keras

    classes, rows, step = line_model.CLASSES, line_strip.STRIP_HEIGHT, line_model.COLUMNS_PER_STEP
    one, point, dash = 2, line_model.DIGIT_CLASSES + line_model.SEPARATORS.index("."), \
        line_model.DIGIT_CLASSES + line_model.SEPARATORS.index("-")
    top, middle, bottom = slice(2, 8), slice(9, 15), slice(17, 22)
    kernel = np.zeros((rows, step, 1, classes), np.float32)
    bias = np.full(classes, -100.0, np.float32)
    kernel[..., 0, 0], bias[0] = -1.0, 2.0  # blank: no ink
    kernel[top, :, 0, one], bias[one] = 1.0, 0.0
    kernel[middle, :, 0, dash], kernel[top, :, 0, dash], kernel[bottom, :, 0, dash], bias[dash] = 1.0, -3.0, -3.0, 0.0
    kernel[bottom, :, 0, point], kernel[top, :, 0, point], kernel[middle, :, 0, point], bias[point] = 1.0, -3.0, -3.0, 0.0
    convolution = keras.layers.Conv2D(classes, (rows, step), strides=(1, step))
    model = keras.Sequential([keras.Input((rows, None, 1)), convolution, keras.layers.Reshape((-1, classes))])
    convolution.set_weights([kernel, bias])
    return model


def marks_picture(layout: str, bar_height: int = 90, gap: int = 30, space: int = 130) -> np.ndarray:
    """Dark marks on light paper, left to right as `layout` says: "1" a bar, "-" a dash half way up, "." a
    dot on the baseline, " " a wider gap before the next mark."""
    from PIL import ImageDraw

    canvas = Image.new("L", (60 + len(layout) * (gap + 40) + layout.count(" ") * space, bar_height + 60), 235)
    draw = ImageDraw.Draw(canvas)
    left, top = 30, 30
    for character in layout:
        if character == " ":
            left += space - gap
            continue
        if character == "1":
            draw.rectangle((left, top, left + 12, top + bar_height), fill=25)
            left += 12 + gap
        elif character == "-":
            draw.rectangle((left, top + bar_height // 2 - 5, left + 30, top + bar_height // 2 + 5), fill=25)
            left += 30 + gap
        else:
            draw.ellipse((left, top + bar_height - 14, left + 14, top + bar_height), fill=25)
            left += 14 + gap
    return np.asarray(canvas)


@pytest.fixture(scope="module")
def separator_run(tiny_run, tmp_path_factory):
    """tiny_run's classifier with the rule line model beside it: a reader run whose line model reads separators."""
    import shutil

    folder = tmp_path_factory.mktemp("separators") / "run"
    shutil.copytree(tiny_run, folder)
    rule_line_model().save(folder / line_model.LINE_MODEL_FILE)
    return folder


def test_separators_and_a_wider_gap_are_read_with_their_kinds_and_boxes(separator_run):
    classifier = loading.load_classifier(separator_run)
    picture = marks_picture("1-1 1.1")
    reading = read_number(classifier, picture, min_confidence=0.0)
    assert reading.text == "1-1 1.1"
    assert [digit.digit for digit in reading.digits] == [1, 1, 1, 1]  # digits stay digits
    kinds = [character.kind for character in reading.characters]
    assert kinds == ["digit", "dash", "digit", "space", "digit", "point", "digit"]
    boxes = [character.box for character in reading.characters]
    assert all(left[2] <= right[0] + 2 for left, right in zip(boxes, boxes[1:], strict=False))  # left to right
    dash_box, point_box = boxes[1], boxes[5]
    assert dash_box[3] - dash_box[1] < 0.3 * (boxes[0][3] - boxes[0][1])  # the dash's own ink, not a digit's
    assert point_box[1] > boxes[4][1] + 0.6 * (boxes[4][3] - boxes[4][1])  # the point sits low
    assert boxes[3][2] - boxes[3][0] >= 100  # the space's box is the gap
    answer = reading.to_dict()
    assert [item["kind"] for item in answer["characters"]] == kinds and answer["text"] == "1-1 1.1"
    only = read_number(classifier, picture, min_confidence=0.0, digits_only=True)
    assert only.text == "1111" and only.to_dict()["digits"] == answer["digits"] and "characters" not in only.to_dict()
    assert only.confidence == pytest.approx(np.prod([c.confidence for c in reading.characters if c.kind == "digit"]))


def test_marks_before_the_first_digit_or_after_the_last_are_no_separators(separator_run):
    classifier = loading.load_classifier(separator_run)
    assert read_number(classifier, marks_picture("-11."), min_confidence=0.0).text == "11"
    assert read_number(classifier, marks_picture("1 - 1"), min_confidence=0.0).text == "1-1"  # no space beside a mark


def test_the_cli_reads_separators_and_digits_only_restores_the_digits_alone(run_cli, separator_run, tmp_path):
    Image.fromarray(marks_picture("11.1")).save(tmp_path / "price.png")
    code, out, _ = run_cli("read", str(tmp_path / "price.png"), "--model", str(separator_run), "--json",
                           "--min-confidence", "0")
    answer = json.loads(out)
    assert code == 0 and answer["text"] == "11.1" and len(answer["digits"]) == 3
    assert [item["character"] for item in answer["characters"]] == ["1", "1", ".", "1"]
    code, out, _ = run_cli("read", str(tmp_path / "price.png"), "--model", str(separator_run), "--json",
                           "--min-confidence", "0", "--digits-only")
    answer = json.loads(out)
    assert code == 0 and answer["text"] == "111" and set(answer) == {"path", "text", "digits", "confidence"}
    code, out, _ = run_cli("read", str(tmp_path / "price.png"), "--model", str(separator_run), "--min-confidence", "0")
    assert code == 0 and ": 11.1 (" in out


def test_a_line_of_200_digits_20000_pixels_wide_is_read_whole_in_windows(separator_run):
    classifier = loading.load_classifier(separator_run)
    canvas = np.full((100, 20_000), 235, np.uint8)
    for index in range(200):  # a ring 60 wide every 100 pixels, 40 apart: 200 digits (each a "1" to this model)
        canvas[10:90, 20 + 100 * index:80 + 100 * index] = 25
        canvas[16:84, 26 + 100 * index:74 + 100 * index] = 235
    reading = read_number(classifier, canvas, min_confidence=0.0)
    assert reading.text == "1" * 200
    lefts = [digit.box[0] for digit in reading.digits]
    assert all(abs(left - (20 + 100 * index)) <= 6 for index, left in enumerate(lefts))  # each box on its ring
