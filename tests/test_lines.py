"""Photographed lines of digits: layouts as named (apart, touching, overlapping), boxes on each digit's ink
left to right, photos mostly dark on light, the truth written beside them in one piece or not at all."""

import itertools
import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

from digitlab.data import labelled_sets, lines, marks, photograph
from digitlab.errors import DataFolderError

ndimage = pytest.importorskip("scipy.ndimage")  # an independent judge of what touches

# Simple connected strokes standing in for MNIST digits (no download in tests).
STROKES = {
    0: [(9, 4), (18, 4), (20, 14), (18, 24), (9, 24), (7, 14), (9, 4)],
    1: [(14, 4), (13, 24)],
    4: [(17, 24), (17, 4), (7, 17), (21, 17)],
    7: [(7, 5), (20, 5), (12, 24)],
}


def fake_digit(label: int, rng: np.random.Generator) -> np.ndarray:
    image = Image.new("L", (28, 28), 0)
    dx, dy = (int(value) for value in rng.integers(-2, 3, 2))
    ImageDraw.Draw(image).line([(x + dx, y + dy) for x, y in STROKES[label]], fill=255, width=int(rng.integers(2, 4)),
                               joint="curve")
    return np.asarray(image)


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(9)
    labels = np.array([0, 1, 4, 7] * 6)
    return np.stack([fake_digit(int(label), rng) for label in labels]), labels


def components(ink: np.ndarray, level: float = 0.4) -> int:
    """Pieces of ink of more than a few pixels, 8-connected."""
    labelled, count = ndimage.label(ink >= level, structure=np.ones((3, 3)))
    sizes = np.bincount(labelled.ravel())[1:]
    return int(np.count_nonzero(sizes > 4))


def test_compose_line_gives_ink_and_one_box_per_digit_left_to_right(digits):
    images, labels = digits
    rng = np.random.default_rng(0)
    for layout in lines.LAYOUTS:
        ink, boxes = lines.compose_line(images[:5], labels[:5], rng, layout)
        assert ink.dtype == np.float32 and ink.ndim == 2 and ink.min() >= 0 and ink.max() <= 1
        assert len(boxes) == 5
        centres = [(x0 + x1) / 2 for x0, _, x1, _ in boxes]
        assert centres == sorted(centres), layout
        for x0, y0, x1, y1 in boxes:
            assert 0 <= x0 < x1 <= ink.shape[1] and 0 <= y0 < y1 <= ink.shape[0]
        # No ink outside the boxes, and ink in every box.
        covered = np.zeros(ink.shape, dtype=bool)
        for x0, y0, x1, y1 in boxes:
            covered[y0:y1, x0:x1] = True
            assert ink[y0:y1, x0:x1].max() > 0.5
        assert ink[~covered].max(initial=0) <= lines.BOX_LEVEL


@pytest.mark.parametrize("seed", range(6))
def test_apart_digits_stand_alone_and_touching_ones_are_one_piece(digits, seed):
    images, labels = digits
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(images), 4)
    apart, apart_boxes = lines.compose_line(images[picks], labels[picks], rng, "apart")
    assert components(apart) == 4
    assert all(left[2] <= right[0] for left, right in itertools.pairwise(apart_boxes))  # clear gaps
    touching, _ = lines.compose_line(images[picks], labels[picks], rng, "touching")
    assert components(touching) == 1
    assert components(touching, level=lines.TOUCH_LEVEL) == 1


def test_overlapping_boxes_overlap_by_a_share_of_a_digit(digits):
    images, labels = digits
    rng = np.random.default_rng(3)
    shares = []
    for _ in range(10):
        picks = rng.integers(0, len(images), 3)
        _, boxes = lines.compose_line(images[picks], labels[picks], rng, "overlapping")
        for left, right in itertools.pairwise(boxes):
            mean_width = (left[2] - left[0] + right[2] - right[0]) / 2
            shares.append((left[2] - right[0]) / mean_width)
    # 10-25% before the line is turned and slanted by up to 5 degrees, which moves boxes a little.
    assert min(shares) > 0 and 0.08 < np.median(shares) < 0.3


def test_render_photo_scales_and_is_mostly_dark_on_light():
    ink = np.zeros((30, 60), dtype=np.float32)
    ink[8:22, 10:14] = 1.0
    rng = np.random.default_rng(1)
    photo, scale = photograph.render_photo(ink, rng, dark_on_light=True)
    assert photo.dtype == np.uint8 and 1.5 <= scale <= 3.0
    assert photo.shape == (round(30 * scale), round(60 * scale))
    stroke = photo[round(10 * scale):round(20 * scale), round(10.5 * scale):round(13.5 * scale)]
    assert np.median(photo) > 150 and stroke.mean() < np.median(photo) - 60  # dark ink on light paper
    negative, _ = photograph.render_photo(ink, rng, dark_on_light=False)
    assert np.median(negative) < 100
    drawn = [np.median(photograph.render_photo(ink, rng)[0]) > 128 for _ in range(200)]
    assert 0.75 <= np.mean(drawn) <= 0.95  # about 15% light ink on a dark board


def test_line_sets_follow_lengths_layouts_and_truth(digits):
    images, labels = digits
    line_set = lines.build_line_set(images, labels, 24, seed=2, lengths=(2, 4), layouts=("apart", "touching"))
    assert [line.layout for line in line_set] == ["apart", "touching"] * 12
    assert {len(line.text) for line in line_set} == {2, 3, 4}
    for line in line_set:
        assert line.image.dtype == np.uint8 and len(line.boxes) == len(line.text)
        assert set(line.text) <= set("0147")
        for (x0, y0, x1, y1), digit in zip(line.boxes, line.text, strict=True):
            assert 0 <= x0 < x1 <= line.image.shape[1] and 0 <= y0 < y1 <= line.image.shape[0]
            if digit == "1":  # the text names the digit in each box: a 1's box is narrow, a 0's is not
                assert (x1 - x0) < 0.55 * (y1 - y0)
            elif digit == "0":
                assert (x1 - x0) > 0.55 * (y1 - y0)
    again = lines.build_line_set(images, labels, 24, seed=2, lengths=(2, 4), layouts=("apart", "touching"))
    for one, other in zip(line_set, again, strict=True):
        assert np.array_equal(one.image, other.image) and one.boxes == other.boxes
    other_seed = lines.build_line_set(images, labels, 24, seed=3, lengths=(2, 4))
    assert [line.text for line in other_seed] != [line.text for line in line_set]


def test_boxes_sit_on_the_ink_of_the_photo(digits):
    images, labels = digits
    for line in lines.build_line_set(images, labels, 12, seed=5, lengths=(3, 5)):
        pixels = line.image.astype(np.float32)
        paper = np.median(pixels)
        extreme = pixels.min() if line.dark_on_light else pixels.max()
        inked = np.abs(pixels - paper) > 0.6 * abs(extreme - paper)
        covered = np.zeros(pixels.shape, dtype=bool)
        for x0, y0, x1, y1 in line.boxes:
            covered[max(0, y0 - 2):y1 + 2, max(0, x0 - 2):x1 + 2] = True
            assert inked[y0:y1, x0:x1].any()
        assert inked[covered].sum() >= 0.97 * inked.sum()


def test_single_digit_and_non_digit_photos(digits):
    images, labels = digits
    singles = lines.single_digit_photos(images, labels, 8, seed=1)
    assert len(singles) == 8 and all(photo.layout == lines.SINGLE and len(photo.boxes) == 1 for photo in singles)
    assert all(photo.text in "0147" and len(photo.text) == 1 and photo.kind == "" for photo in singles)
    others = lines.non_digit_photos(6, seed=1)
    assert len(others) == 6 and all(photo.text == "" and photo.kind and len(photo.boxes) == 1 for photo in others)
    assert all(photo.image.dtype == np.uint8 and photo.image.ndim == 2 for photo in others)


def test_writing_a_set_puts_exact_pixels_and_the_truth_in_a_new_folder(digits, tmp_path):
    images, labels = digits
    line_set = lines.build_line_set(images, labels, 4, seed=0) + lines.non_digit_photos(1, seed=0)
    labels_path = lines.write_line_set(tmp_path / "set", line_set)
    assert labels_path == tmp_path / "set" / labelled_sets.LABELS_FILE
    records = [json.loads(text) for text in labels_path.read_text(encoding="utf-8").splitlines()]
    assert len(records) == 5
    for record, line in zip(records, line_set, strict=True):
        with Image.open(tmp_path / "set" / record["path"]) as written:
            assert np.array_equal(np.asarray(written), line.image)
        assert record["text"] == line.text and record["layout"] == line.layout
        assert [tuple(box) for box in record["boxes"]] == list(line.boxes)
    assert records[-1]["kind"] == line_set[-1].kind and "kind" not in records[0]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["set"]  # no scratch folder left behind
    (tmp_path / "empty").mkdir()
    assert lines.write_line_set(tmp_path / "empty", line_set[:1]).is_file()  # an empty folder is fine


def test_writing_refuses_a_non_empty_folder_or_a_file(digits, tmp_path):
    images, labels = digits
    line_set = lines.build_line_set(images, labels, 2, seed=0)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "mine.txt").write_text("keep me")
    with pytest.raises(DataFolderError, match="not empty"):
        lines.write_line_set(tmp_path / "full", line_set)
    assert [path.name for path in (tmp_path / "full").iterdir()] == ["mine.txt"]
    (tmp_path / "a-file").write_text("")
    with pytest.raises(ValueError, match="is a file"):
        lines.write_line_set(tmp_path / "a-file", line_set)


def test_a_failed_write_leaves_nothing(digits, tmp_path):
    images, labels = digits
    line_set = lines.build_line_set(images, labels, 2, seed=0)
    broken = lines.SyntheticLine(np.zeros((4, 4, 4, 4), dtype=np.uint8), "1", ((0, 0, 1, 1),), "apart", True)
    with pytest.raises(TypeError):
        lines.write_line_set(tmp_path / "set", [*line_set, broken])
    assert list(tmp_path.iterdir()) == []


def test_bad_input_is_refused(digits):
    images, labels = digits
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="layout"):
        lines.compose_line(images[:2], labels[:2], rng, "stacked")
    with pytest.raises(ValueError, match="labels"):
        lines.compose_line(images[:2], labels[:3], rng, "apart")
    with pytest.raises(ValueError, match="no ink"):
        lines.compose_line(np.zeros((1, 28, 28), dtype=np.uint8), [3], rng, "apart")
    with pytest.raises(ValueError, match="lengths"):
        lines.build_line_set(images, labels, 2, seed=0, lengths=(3, 2))
    with pytest.raises(ValueError, match="layouts"):
        lines.build_line_set(images, labels, 2, seed=0, layouts=())
    with pytest.raises(ValueError, match="uint8"):
        lines.build_line_set(images.astype(np.float32), labels, 2, seed=0)
    with pytest.raises(ValueError, match="0..9"):
        lines.single_digit_photos(images, labels + 10, 2, seed=0)


# --- separators -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_marks_are_drawn_as_people_write_them(seed):
    rng = np.random.default_rng(seed)
    height = 40.0
    point, point_lift = marks.draw_mark(".", height, rng)
    assert max(point.shape) <= 0.4 * height and components(point) == 1 and abs(point_lift) <= 0.12 * height
    assert max(point.shape) >= 0.12 * height  # not a speck: the front end keeps it
    dash, dash_lift = marks.draw_mark("-", height, rng)
    assert dash.shape[1] > 2 * dash.shape[0] and components(dash) == 1
    assert 0.15 * height < dash_lift + dash.shape[0] / 2 < 0.7 * height  # its middle half way up the digits
    slash, _ = marks.draw_mark("/", height, rng)
    assert slash.shape[0] > 0.7 * height and slash.shape[0] > slash.shape[1] and components(slash) == 1
    colon, colon_lift = marks.draw_mark(":", height, rng)
    assert components(colon) == 2 and colon.shape[0] > 2 * colon.shape[1] - 4 and colon_lift < 0.2 * height
    comma, comma_lift = marks.draw_mark(",", height, rng)
    assert comma_lift < 0 and components(comma) == 1  # its tail reaches below the baseline
    for ink in (point, dash, slash, colon, comma):
        assert ink.dtype == np.float32 and ink.max() > 0.9 and ink.min() >= 0.0


def test_slashes_lean_both_ways():
    rng = np.random.default_rng(0)
    leans = []
    for _ in range(40):
        slash, _ = marks.draw_mark("/", 40.0, rng)
        rows, columns = np.nonzero(slash > 0.5)
        leans.append(np.polyfit(rows, columns, 1)[0])  # columns per row going down: < 0 for "/", > 0 for "\"
    assert sum(lean < 0 for lean in leans) > 20 and sum(lean > 0 for lean in leans) >= 4


def test_compose_glyphs_puts_marks_between_digits_with_a_box_each_and_spaces_as_wider_gaps(digits):
    images, _ = digits
    rng = np.random.default_rng(1)
    ink, boxes = lines.compose_glyphs([images[0], images[2], ".", images[3], lines.SPACE, images[1]], rng, "touching")
    assert len(boxes) == 5  # the space has no box
    centres = [(x0 + x1) / 2 for x0, _, x1, _ in boxes]
    assert centres == sorted(centres)
    digit_height = np.median([y1 - y0 for x0, y0, x1, y1 in (boxes[0], boxes[1], boxes[3], boxes[4])])
    point = boxes[2]
    assert point[3] - point[1] < 0.45 * digit_height and point[1] > boxes[1][1] + 0.5 * digit_height
    assert point[0] >= boxes[1][2] - 2 and point[2] <= boxes[3][0] + 2  # apart from its neighbours
    assert boxes[4][0] - boxes[3][2] >= 0.7 * digit_height  # the space
    with pytest.raises(ValueError, match="unknown mark"):
        lines.compose_glyphs([images[0], "?", images[1]], rng, "apart")
    with pytest.raises(ValueError, match="between glyphs"):
        lines.compose_glyphs([lines.SPACE, images[0]], rng, "apart")
    with pytest.raises(ValueError, match="at least one image"):
        lines.compose_glyphs(["."], rng, "apart")


def test_separator_sets_follow_their_formats_with_a_box_per_digit_and_mark(digits):
    images, labels = digits
    made = lines.build_separator_set(images, labels, 2 * len(lines.SEPARATOR_FORMATS), seed=4)
    assert len(made) == 2 * len(lines.SEPARATOR_FORMATS)
    for line, (_, groups, separator) in zip(made, 2 * lines.SEPARATOR_FORMATS, strict=True):
        parts = line.text.split(separator)
        assert len(parts) == len(groups) and all(part.isdigit() for part in parts)
        assert all(fewest <= len(part) <= most for part, (fewest, most) in zip(parts, groups, strict=True))
        assert len(line.boxes) == len(line.text.replace(lines.SPACE, ""))
        assert line.image.dtype == np.uint8 and line.layout in lines.LAYOUTS
    again = lines.build_separator_set(images, labels, 3, seed=4)
    assert [line.text for line in again] == [line.text for line in made[:3]]
    assert all(np.array_equal(a.image, b.image) for a, b in zip(again, made, strict=False))


def test_lines_without_marks_are_drawn_as_before(digits):
    """Seeded sets of plain lines (benchmarks, the bundled reader's check sample) must not change with marks:
    a line of images alone draws the same random numbers whether composed by compose_line or compose_glyphs,
    and a line with marks draws more."""
    images, labels = digits
    first = lines.compose_line(images[:4], labels[:4], np.random.default_rng(3), "apart")
    second = lines.compose_glyphs(list(images[:4]), np.random.default_rng(3), "apart")
    assert np.array_equal(first[0], second[0]) and first[1] == second[1]
    marked = lines.compose_glyphs([images[0], "-", *images[1:4]], np.random.default_rng(3), "apart")
    assert marked[0].shape != first[0].shape and len(marked[1]) == 5
