"""images.prepare_image: any image of a digit -> 28x28 like MNIST. Small synthetic images only."""

import io
import math
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageDraw

from digitlab.data import framing, ink
from digitlab.errors import ImageError
from digitlab.inference import images


def draw_shape(size=(200, 160), box=(60, 30, 110, 130), ink=0, paper=255, width=12) -> Image.Image:
    """A '7'-like stroke figure (asymmetric, so a wrong flip or shift shows) in grayscale."""
    image = Image.new("L", size, paper)
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = box
    draw.line([(left, top), (right, top), (left + (right - left) // 3, bottom)], fill=ink, width=width)
    return image


def centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    rows, columns = np.indices(image.shape)
    return float((rows * image).sum() / image.sum()), float((columns * image).sum() / image.sum())


def ink_box(image: np.ndarray, level: float = 0.05) -> tuple[int, int]:
    rows = np.nonzero((image > level).any(axis=1))[0]
    columns = np.nonzero((image > level).any(axis=0))[0]
    return rows[-1] - rows[0] + 1, columns[-1] - columns[0] + 1


def encode(image: Image.Image, format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


@pytest.fixture
def reference() -> np.ndarray:
    return images.prepare_image(draw_shape())


def test_result_is_28x28_float32_light_ink_on_black(reference):
    assert reference.shape == (28, 28) and reference.dtype == np.float32
    assert reference.min() == 0.0 and reference.max() == pytest.approx(1.0)
    # Black background: the corners and most of the frame are empty, like MNIST.
    assert reference[:3, :3].max() == 0 and (reference > 0).mean() < 0.4


def test_longest_side_is_20_pixels_with_the_aspect_ratio_kept():
    tall = images.prepare_image(draw_shape(box=(60, 20, 100, 140)))  # 40 wide, 120 tall (+ pen)
    height, width = ink_box(tall)
    assert height in (20, 21) and 6 <= width <= 10
    wide = images.prepare_image(draw_shape(size=(300, 120), box=(40, 30, 240, 80)))
    height, width = ink_box(wide)
    assert width in (20, 21) and height < 10


def test_centre_of_mass_is_at_the_centre_of_the_frame(reference):
    row, column = centre_of_mass(reference)
    assert abs(row - ink.MNIST_CENTRE) <= 0.5 and abs(column - ink.MNIST_CENTRE) <= 0.5


def test_position_and_size_in_the_picture_do_not_matter(reference):
    moved = images.prepare_image(draw_shape(size=(420, 340), box=(250, 110, 350, 310), width=24))
    assert np.abs(moved - reference).mean() < 0.03


def test_dark_ink_on_light_paper_and_light_ink_on_dark_give_the_same_digit(reference):
    light_on_dark = images.prepare_image(draw_shape(ink=255, paper=0))
    assert np.abs(light_on_dark - reference).mean() < 0.01


def test_uneven_lighting_and_noise_are_removed(reference):
    page = np.asarray(draw_shape(ink=40, paper=230), dtype=np.float32) / 255
    rows, columns = page.shape
    lighting = np.linspace(0.45, 1.0, columns)[None, :] * np.linspace(0.8, 1.0, rows)[:, None]
    noisy = page * lighting + np.random.default_rng(0).normal(0, 0.03, page.shape)
    prepared = images.prepare_image(Image.fromarray((np.clip(noisy, 0, 1) * 255).astype(np.uint8)))
    assert np.abs(prepared - reference).mean() < 0.03
    # Without the lighting correction the dark side of the page would show up as ink.
    assert (prepared[reference == 0] > 0.2).mean() < 0.02


def test_bold_strokes_are_thinned_and_hairlines_thickened(monkeypatch):
    bold, hairline = draw_shape(width=30), draw_shape(size=(90, 70), box=(30, 15, 50, 55), width=1)
    thinned, thickened = images.prepare_image(bold), images.prepare_image(hairline)
    monkeypatch.setattr(framing, "STROKE_WIDTH_RANGE", (0.0, 100.0))  # leave widths alone
    as_drawn_bold, as_drawn_hairline = images.prepare_image(bold), images.prepare_image(hairline)
    assert ink.stroke_width(thinned) < ink.stroke_width(as_drawn_bold) - 0.5
    assert ink.stroke_width(thickened) > ink.stroke_width(as_drawn_hairline) + 0.25


def arc(centre_x, centre_y, radius_x, radius_y, start, stop, count=12) -> list[tuple[float, float]]:
    return [(centre_x + radius_x * math.cos(math.radians(angle)), centre_y + radius_y * math.sin(math.radians(angle)))
            for angle in np.linspace(start, stop, count)]


# Pen paths of three digits in a box one unit tall (x to the right, y down), one list per stroke.
PEN_PATHS = {
    "3": [arc(0.36, 0.26, 0.3, 0.24, -160, 90) + arc(0.36, 0.75, 0.34, 0.25, -90, 160)[1:]],
    "4": [[(0.04, 0.0), (0.0, 0.6), (0.85, 0.6)], [(0.61, 0.0), (0.61, 1.0)]],
    "7": [[(0.0, 0.02), (0.75, 0.0), (0.3, 1.0)]],
}


def draw_with_brush(digit: str, height: int, brush: int, corner=(10, 10)) -> Image.Image:
    """`digit`'s pen path `height` pixels tall on a white 280x280 pad, drawn as the drawing page
    draws: dark, with a round brush `brush` pixels wide (round caps and joins)."""
    image = Image.new("L", (280, 280), 255)
    pen = ImageDraw.Draw(image)
    for stroke in PEN_PATHS[digit]:
        points = [(corner[0] + brush / 2 + x * height, corner[1] + brush / 2 + y * height) for x, y in stroke]
        pen.line(points, fill=20, width=brush, joint="curve")
        for x, y in (points[0], points[-1]):
            pen.ellipse((x - brush / 2, y - brush / 2, x + brush / 2, y + brush / 2), fill=20)
    return image


def correlation(first: np.ndarray, second: np.ndarray) -> float:
    return float(np.corrcoef(first.ravel(), second.ravel())[0, 1])


# MNIST's stroke widths, 5th to 95th percentile (`framing.stroke_width` on the 10,000 test digits).
MNIST_STROKE_WIDTHS = (1.3, 3.1)


@pytest.mark.parametrize(("digit", "height"), [("3", 44), ("4", 40), ("7", 40)])
@pytest.mark.parametrize("corner", [(10, 10), (200, 196)], ids=["top-left", "bottom-right"])
def test_a_small_digit_drawn_with_a_thick_brush_gets_mnist_strokes_and_keeps_its_shape(digit, height, corner,
                                                                                        monkeypatch):
    # A brush like the drawing page's (7.5% of the pad: 21 pixels on 280) on a digit about 60 pixels
    # tall in a corner: strokes a third of its height, where MNIST's are a tenth.
    small = images.prepare_image(draw_with_brush(digit, height, brush=19, corner=corner))
    large = images.prepare_image(draw_with_brush(digit, 200, brush=24))  # the same digit, strokes as MNIST's
    low, high = MNIST_STROKE_WIDTHS
    assert low <= framing.stroke_width(small) <= high
    # The 3's bays and the 4's opening stay open: the thinned digit looks like the large one.
    assert correlation(small, large) > 0.7
    monkeypatch.setattr(framing, "BOLD_WIDTH", math.inf)  # only one pixel thinner, as before
    as_before = images.prepare_image(draw_with_brush(digit, height, brush=19, corner=corner))
    assert framing.stroke_width(as_before) > high
    assert correlation(as_before, large) < correlation(small, large)


def test_framing_resizes_and_filters_as_pillow_does():
    # framing does Pillow's bilinear resize and MinFilter/MaxFilter(3) in NumPy (faster on digits
    # this small): the same numbers, to within a float32 rounding.
    from PIL import ImageFilter

    rng = np.random.default_rng(0)
    for rows, columns, size in [(45, 33, (30, 40)), (12, 7, (22, 40)), (96, 60, (26, 40)), (1, 5, (40, 8)),
                                (40, 40, (40, 40))]:
        ink = rng.random((rows, columns), dtype=np.float32)
        expected = np.asarray(Image.fromarray(ink).resize(size, Image.Resampling.BILINEAR))
        np.testing.assert_allclose(framing._resized(ink, size), expected, rtol=0, atol=1e-6)
        for extreme, pillow_filter in ((np.minimum, ImageFilter.MinFilter(3)), (np.maximum, ImageFilter.MaxFilter(3))):
            filtered = np.asarray(Image.fromarray(ink).filter(pillow_filter))
            np.testing.assert_array_equal(framing._neighbourhood(ink, extreme, square=True), filtered)


@pytest.mark.parametrize("format", ["PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP"])
def test_reads_every_common_format(tmp_path, reference, format):
    path = tmp_path / f"digit.{format.lower()}"
    path.write_bytes(encode(draw_shape().convert("RGB"), format))
    assert np.abs(images.prepare_image(path) - reference).mean() < 0.03


def test_exif_orientation_is_applied(tmp_path, reference):
    upside_down = draw_shape().rotate(180)
    exif = Image.Exif()
    exif[0x0112] = 3  # "rotate 180 to display"
    path = tmp_path / "phone.jpg"
    path.write_bytes(encode(upside_down, "JPEG", exif=exif, quality=95))
    assert np.abs(images.prepare_image(path) - reference).mean() < 0.03
    exif[0x0112] = 1
    path.write_bytes(encode(upside_down, "JPEG", exif=exif, quality=95))
    assert np.abs(images.prepare_image(path) - reference).mean() > 0.05  # the check can fail


def big_photo(shape: Image.Image, size=(2400, 1800), corner=(700, 500), scale=6) -> Image.Image:
    """`shape` drawn `scale` times larger on a big light page, in colour: a phone photo of a digit."""
    page = Image.new("L", size, 235)
    page.paste(shape.resize((shape.width * scale, shape.height * scale), Image.Resampling.BICUBIC), corner)
    return page.convert("RGB")


def test_a_big_jpeg_is_decoded_at_reduced_scale_and_prepares_to_the_same_digit(tmp_path, reference):
    path = tmp_path / "photo.jpg"
    big_photo(draw_shape()).save(path, quality=90)
    decoded = images.read_image(path)
    # libjpeg decoded it at 1/2 scale (its longest side keeps at least JPEG_DRAFT_SIZE = 1024 pixels), in grayscale
    assert decoded.mode == "L" and decoded.size == (1200, 900)
    drafted = images.prepare_image(path)
    full = images.prepare_image(Image.open(path))  # an image already opened is decoded in full
    assert np.abs(drafted - full).mean() < 0.02 and correlation(drafted, full) > 0.97
    assert np.abs(drafted - reference).mean() < 0.03
    small = tmp_path / "small.jpg"
    draw_shape().save(small, quality=90)
    assert images.read_image(small).size == (200, 160)  # no bigger than the preparation needs: decoded in full


@pytest.mark.parametrize("orientation", [1, 6])
def test_decoding_with_the_files_scale_opens_the_file_once_and_matches_file_scale(tmp_path, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation  # 6: stored on its side, "rotate 90 clockwise to display"
    big = tmp_path / "big.jpg"
    big.write_bytes(encode(big_photo(draw_shape()), "JPEG", exif=exif, quality=90))
    png = tmp_path / "digit.png"
    draw_shape().save(png)
    sources = [big, str(big), png, io.BytesIO(big.read_bytes()), draw_shape(), np.asarray(draw_shape())]
    for source in sources:
        expected = images.decode_picture(source, "x")
        if hasattr(source, "seek"):
            source.seek(0)
        picture, scale = images.decode_picture_and_scale(source, "x")
        np.testing.assert_array_equal(np.asarray(picture), np.asarray(expected))
        if hasattr(source, "seek"):
            source.seek(0)
        assert scale == images.file_scale(source, picture)
    assert images.decode_picture_and_scale(big, "x")[1] == 2.0  # 2400 file pixels across the 1200 decoded


def test_transparency_is_composited_on_white(tmp_path, reference):
    shape = np.asarray(draw_shape(), dtype=np.uint8)
    rgba = np.zeros((*shape.shape, 4), dtype=np.uint8)  # black ink, transparent elsewhere
    rgba[..., 3] = 255 - shape
    path = tmp_path / "drawn.png"
    Image.fromarray(rgba, mode="RGBA").save(path)
    assert np.abs(images.prepare_image(path) - reference).mean() < 0.01
    assert np.abs(images.prepare_image(rgba) - reference).mean() < 0.01  # the same as an array


def test_arrays_pil_images_and_file_objects_are_accepted(reference):
    shape = draw_shape()
    pixels = np.asarray(shape)
    for source in (shape, shape.convert("RGB"), pixels, pixels / 255.0, np.stack([pixels] * 3, axis=2),
                   io.BytesIO(encode(shape, "PNG"))):
        assert np.abs(images.prepare_image(source) - reference).mean() < 0.01


def test_sixteen_bit_images_are_scaled_not_clipped(tmp_path, reference):
    deep = (np.asarray(draw_shape(), dtype=np.uint16) * 257).astype(np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(deep).save(path)
    assert np.abs(images.prepare_image(path) - reference).mean() < 0.01


def test_a_small_digit_in_a_big_picture_keeps_its_shape(reference):
    big = Image.new("L", (2000, 1600), 255)
    big.paste(draw_shape(), (1500, 1200))
    assert np.abs(images.prepare_image(big) - reference).mean() < 0.03


# --- bad input: each gets a clear ImageError ----------------------------------------------------


def test_not_an_image(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("this is not a picture")
    with pytest.raises(ImageError, match="not an image"):
        images.prepare_image(path)


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageError, match="empty.jpg"):
        images.prepare_image(path)


@pytest.mark.parametrize("format", ["PNG", "JPEG"])
def test_truncated_file(tmp_path, format):
    data = encode(draw_shape(size=(400, 400)).convert("RGB"), format)
    path = tmp_path / f"cut.{format.lower()}"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="truncated|corrupt|broken"):
        images.prepare_image(path)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        images.prepare_image(tmp_path / "nowhere.png")
    with pytest.raises(ImageError, match="folder"):
        images.prepare_image(tmp_path)


def test_blank_page_has_no_ink(tmp_path):
    with pytest.raises(ImageError, match="no ink"):
        images.prepare_image(Image.new("L", (300, 200), 240))
    # A photographed blank page: uneven light and sensor noise, still no digit.
    rows, columns = 200, 300
    page = 0.9 * np.linspace(0.5, 1.0, columns)[None, :] * np.ones((rows, 1))
    page = page + np.random.default_rng(1).normal(0, 0.02, page.shape)
    path = tmp_path / "blank.jpg"
    Image.fromarray((np.clip(page, 0, 1) * 255).astype(np.uint8)).save(path, quality=80)
    with pytest.raises(ImageError, match="no ink"):
        images.prepare_image(path)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims width x height pixels and holds none: a decompression bomb's header."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def test_decompression_bombs_are_refused_before_decoding(tmp_path):
    # Over our 50-megapixel limit but under Pillow's own: our check must catch it.
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(8000, 7000))
    with pytest.raises(ImageError, match="56 megapixels"):
        images.prepare_image(path)
    # Far over Pillow's limit too (10 gigapixels in a few bytes).
    path.write_bytes(png_header_only(100_000, 100_000))
    with pytest.raises(ImageError, match="megapixels"):
        images.prepare_image(path)
    # A real, cheaply compressed 1-bit image of 56 megapixels.
    real = tmp_path / "real-bomb.png"
    Image.new("1", (8000, 7000), 1).save(real)
    assert real.stat().st_size < 100_000
    with pytest.raises(ImageError, match="over the limit"):
        images.prepare_image(real)


def test_bad_arrays():
    with pytest.raises(ImageError, match="image array"):
        images.prepare_image(np.zeros((4, 5, 6, 7)))
    with pytest.raises(ImageError, match="no ink"):
        images.prepare_image(np.zeros((28, 28), dtype=np.uint8))
