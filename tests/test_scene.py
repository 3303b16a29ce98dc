"""Finding the writing in a photo of a sheet on a table (inference/writing.py), through predict, read and the API.

Scenes are made by data/scenes.py from digits drawn here with Pillow's own font (no MNIST needed), read
by the bundled reader; the digits used (0, 2, 3, 4, 5, 7) are the ones it names right when drawn so.
"""

from __future__ import annotations

import io
import json

import httpx
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from digitlab.data.scenes import lined_paper_photo, make_scene
from digitlab.inference.images import find_writing, read_image

# Digits the bundled reader names right when drawn in Pillow's font.
FONT_DIGITS = (0, 2, 3, 4, 5, 7)


def font_digit(digit: int) -> np.ndarray:
    """(28, 28) uint8, light on black, framed as MNIST frames its digits (longest side 20 pixels, centred)."""
    font = ImageFont.load_default(size=80)
    canvas = Image.new("L", (120, 120), 0)
    ImageDraw.Draw(canvas).text((20, 5), str(digit), fill=255, font=font, stroke_width=3, stroke_fill=255)
    pixels = np.asarray(canvas)
    rows, columns = np.flatnonzero(pixels.max(axis=1)), np.flatnonzero(pixels.max(axis=0))
    glyph = Image.fromarray(pixels[rows[0]:rows[-1] + 1, columns[0]:columns[-1] + 1])
    scale = 20 / max(glyph.size)
    glyph = glyph.resize((max(1, round(glyph.size[0] * scale)), max(1, round(glyph.size[1] * scale))),
                         Image.Resampling.LANCZOS)
    framed = Image.new("L", (28, 28), 0)
    framed.paste(glyph, ((28 - glyph.size[0]) // 2, (28 - glyph.size[1]) // 2))
    return np.asarray(framed)


def scene_of(text: str, paper: str, seed: int, size=(800, 600), turn: float = 10.0):
    digits = [int(character) for character in text]
    return make_scene(np.stack([font_digit(digit) for digit in digits]), digits, np.random.default_rng(seed), paper,
                      "wood", size, turn)


def inside_polygon(point, corners) -> bool:
    """Whether `point` (x, y) lies inside the convex polygon `corners` (in order)."""
    signs = []
    for (x0, y0), (x1, y1) in zip(corners, corners[1:] + corners[:1], strict=True):
        signs.append((x1 - x0) * (point[1] - y0) - (y1 - y0) * (point[0] - x0) > 0)
    return all(signs) or not any(signs)


def overlap(first, second) -> float:
    left, top = max(first[0], second[0]), max(first[1], second[1])
    right, bottom = min(first[2], second[2]), min(first[3], second[3])
    inter = max(0, right - left) * max(0, bottom - top)
    union = (first[2] - first[0]) * (first[3] - first[1]) + (second[2] - second[0]) * (second[3] - second[1]) - inter
    return inter / union


@pytest.fixture(scope="module")
def reader():
    from digitlab.inference.loading import load_bundled_reader

    return load_bundled_reader()


def test_the_writing_on_ruled_paper_on_wood_turned_10_degrees_is_found_and_cropped():
    scene = scene_of("7", "ruled", seed=0, size=(640, 480), turn=10.0)
    picture = read_image(io.BytesIO(scene.jpeg))
    writing = find_writing(picture)
    assert writing.found and writing.sheet and writing.lines >= 3
    assert writing.turn == pytest.approx(10.0, abs=2.0)  # turned straight by the sheet's own turn
    left, top, right, bottom = writing.crop_box  # in the photo's pixels (decoded in full: 640 pixels wide)
    digit = scene.boxes[0]
    assert left <= digit[0] + 2 and top <= digit[1] + 2 and right >= digit[2] - 2 and bottom >= digit[3] - 2
    # The table is left out: every corner of the crop lies on the sheet, and the crop is a small part of the photo.
    for corner in ((left, top), (right, top), (right, bottom), (left, bottom)):
        assert inside_polygon(corner, list(scene.corners)), corner
    assert (right - left) * (bottom - top) < 0.1 * picture.size[0] * picture.size[1]


def test_rule_lines_and_the_table_are_not_ink():
    scene = scene_of("4", "ruled", seed=3, size=(640, 480), turn=-10.0)
    writing = find_writing(read_image(io.BytesIO(scene.jpeg)))
    crop = np.asarray(writing.picture, dtype=np.float32)  # (rows, columns): ink on even paper
    rows, columns = np.nonzero(crop < np.median(crop) - 0.15)  # anything darker than the paper
    assert len(rows) > 50
    # Each dark pixel carried back to the photo: inside the digit's box (a rule line through the crop would not be).
    matrix = np.asarray(writing.to_picture_map)
    photo = np.stack([columns + 0.5, rows + 0.5, np.ones(len(rows))], axis=1) @ matrix.T  # (pixels, 2)
    left, top, right, bottom = scene.boxes[0]
    inside = (photo[:, 0] >= left - 3) & (photo[:, 0] <= right + 3) & (photo[:, 1] >= top - 3) & (photo[:, 1] <= bottom + 3)
    assert inside.mean() > 0.99
    # The crop's rows outside the digit hold no line: their darkest pixel is paper.
    digit_rows = np.unique(rows)
    others = np.setdiff1d(np.arange(crop.shape[0]), np.arange(digit_rows.min() - 2, digit_rows.max() + 3))
    assert len(others) > 0 and crop[others].min() > np.median(crop) - 0.15


def test_a_picture_without_a_sheet_or_printed_lines_is_handed_on_as_it_is():
    drawing = Image.new("L", (400, 300), 255)
    ImageDraw.Draw(drawing).text((150, 80), "7", fill=0, font=ImageFont.load_default(size=150))
    writing = find_writing(drawing)
    assert not writing.found and writing.picture is drawing
    assert writing.to_picture((1, 2, 3, 4)) == (1, 2, 3, 4)


def test_a_number_read_from_squared_paper_has_its_boxes_in_the_photos_pixels(reader):
    from digitlab.inference.reading import read_number

    scene = scene_of("407", "squared", seed=1, turn=10.0)
    reading = read_number(reader, io.BytesIO(scene.jpeg))
    assert reading.text == "407"
    for digit, truth in zip(reading.digits, scene.boxes, strict=True):
        assert overlap(digit.box, truth) > 0.6, (digit.box, truth)


def test_predict_and_read_on_a_phone_photo_of_a_sheet_on_a_table(tmp_path, run_cli, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no runs/ here: the bundled reader answers
    single, number = tmp_path / "seven.jpg", tmp_path / "number.jpg"
    single.write_bytes(scene_of("7", "ruled", seed=0, size=(1600, 1200), turn=12.0).jpeg)
    number_scene = scene_of("52", "ruled", seed=2, size=(1600, 1200), turn=-8.0)
    number.write_bytes(number_scene.jpeg)
    code, out, _ = run_cli("predict", str(single), "--json")
    assert code == 0 and json.loads(out.splitlines()[0])["digit"] == 7
    code, out, _ = run_cli("read", str(number), "--json")
    answer = json.loads(out.splitlines()[0])
    assert code == 0 and answer["text"] == "52"
    for digit, truth in zip(answer["digits"], number_scene.boxes, strict=True):
        assert overlap(digit["box"], truth) > 0.6  # in the photo's own pixels


def test_the_api_reads_an_uploaded_photo_of_a_digit_on_lined_paper(reader):
    from digitlab.web import server as web_server

    photo = lined_paper_photo(font_digit(3), seed=4, size=(1280, 960), label=3)
    with web_server.running(reader) as address, httpx.Client(base_url=address, timeout=60) as client:
        answer = client.post("/api/predict", files={"file": ("photo.jpg", photo, "image/jpeg")}).json()
        assert answer["digit"] == 3, answer.get("reason")
        assert client.post("/api/read", content=photo).json()["text"] == "3"


def test_scenes_are_drawn_from_their_seed_alone():
    first, again = scene_of("25", "plain", seed=9, size=(320, 240)), scene_of("25", "plain", seed=9, size=(320, 240))
    assert first.jpeg == again.jpeg and first.boxes == again.boxes
    assert Image.open(io.BytesIO(first.jpeg)).size == (320, 240)
    with pytest.raises(ValueError, match="paper"):
        scene_of("2", "dotted", seed=0)


def test_photos_of_clean_pages_are_handed_on_as_they_are():
    """What the line and single-digit benchmarks photograph (data/lines.py: a page lit unevenly, blurred, noisy,
    sometimes chalk on a board), and a big page lit with a vignette: no sheet on a table, no printed lines."""
    from digitlab.data.lines import compose_line, render_photo

    rng = np.random.default_rng(0)
    digits = np.stack([font_digit(digit) for digit in FONT_DIGITS])
    for index in range(12):
        picks = rng.integers(0, len(digits), int(rng.integers(1, 7)))
        ink, _ = compose_line(digits[picks], list(picks), rng, "apart")
        photo, _ = render_photo(np.pad(ink, 40) if index % 2 else ink, rng)  # some with room around, over 200 pixels
        assert not find_writing(Image.fromarray(photo)).found, index
    page = np.full((900, 1200), 200, dtype=np.float32)
    rows, columns = np.mgrid[0:900, 0:1200]
    page *= 1.0 - 0.45 * (((rows - 300) / 900) ** 2 + ((columns - 500) / 1200) ** 2)  # a vignette, off centre
    ink = np.asarray(Image.fromarray(font_digit(5)).resize((280, 280), Image.Resampling.BICUBIC), dtype=np.float32)
    page[400:680, 600:880] *= 1.0 - 0.8 * ink / 255.0
    page += rng.normal(0, 3, page.shape)
    assert not find_writing(Image.fromarray(np.clip(page, 0, 255).astype(np.uint8))).found
