"""The HTTP API (web/app.py, serve.py, `digitlab serve`) against a real uvicorn server on 127.0.0.1.

A tiny model trained on the conftest's fake MNIST is served from a background thread on a free port;
requests are real HTTP through httpx. Good images, refusals (`digit: null` and why), numbers read
(`/api/read`), every kind of bad input, the limits, the page. A slow test serves the tutorial's
network trained on real MNIST to check that a drawn "42" is read right.
"""

import io
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time

import httpx
import numpy as np
import pytest
from PIL import Image, ImageDraw

from conftest import make_images
from digitlab.config import TrainingConfig
from digitlab.data.synthetic import digit_picture
from digitlab.inference import loading
from digitlab.inference.reading import read_number
from digitlab.inference.rejection import DEFAULT_MIN_CONFIDENCE
from digitlab.training.train import train
from digitlab.web import app as web_app
from digitlab.web import server as web_server


def encode(image: Image.Image, format: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def classifier(tiny_run):
    return loading.load_classifier(tiny_run)


@pytest.fixture(scope="module")
def server(classifier):
    """The app on uvicorn in a background thread, on a free port of 127.0.0.1; yields an httpx client."""
    with web_server.running(classifier) as address, httpx.Client(base_url=address, timeout=30) as client:
        yield client


def arc(x: float, y: float, radius: float, start: float, end: float, steps: int = 24) -> list:
    """Points along a circular arc, angles in degrees (clockwise on screen: y grows downwards)."""
    return [(x + radius * math.cos(math.radians(start + (end - start) * step / steps)),
             y + radius * math.sin(math.radians(start + (end - start) * step / steps))) for step in range(steps + 1)]


# Strokes in pad coordinates (0-1), as the page draws them: a 4 on the left and a 2 on the right.
FOUR = [[(0.30, 0.25), (0.18, 0.58), (0.42, 0.58)], [(0.36, 0.35), (0.36, 0.78)]]
TWO = [arc(0.70, 0.38, 0.12, 200, 360) + [(0.58, 0.75), (0.84, 0.75)]]
# The same 42 squashed to 0.6 of its height: its ink is 1.9 times wider than tall, as no one digit is.
WIDE_42 = [[(x, 0.5 + (y - 0.5) * 0.6) for x, y in stroke] for stroke in FOUR + TWO]


def drawing(strokes, size: int = 224, brush: float = 0.05, stretch: float = 1) -> Image.Image:
    """Strokes drawn dark on white as the page's pad does (its brush: 0.05 of the pad's side), on a
    pad `stretch` times wider than tall."""
    image = Image.new("L", (round(size * stretch), size), 255)
    draw, width = ImageDraw.Draw(image), round(brush * size)
    for stroke in strokes:
        points = [(x * size * stretch, y * size) for x, y in stroke]
        draw.line(points, fill=0, width=width, joint="curve")
        for x, y in (points[0], points[-1]):  # round ends, like the page's lineCap
            draw.ellipse((x - width / 2, y - width / 2, x + width / 2, y + width / 2), fill=0)
    return image


def assert_error(response, status: int, code: str, *words: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    answer = response.json()
    assert answer["code"] == code and isinstance(answer["error"], str) and answer["error"], answer
    for word in words:
        assert word in answer["error"], answer
    return answer


def assert_prediction(classifier, answer: dict, expected_probabilities: np.ndarray, expected_image: np.ndarray) -> None:
    """The answer is what the Python API gives: the probabilities, the image, and the digit or why none."""
    probabilities = np.array(answer["probabilities"])
    assert probabilities.shape == (10,) and abs(probabilities.sum() - 1) < 1e-4
    decision = classifier.decide(expected_probabilities, expected_image)[0]  # the tiny model is often "unsure"
    assert (answer["digit"], answer["reason"]) == (decision.digit, decision.reason), answer
    assert answer["label"] == (None if decision.digit is None else str(decision.digit))
    assert answer["confidence"] == pytest.approx(decision.confidence, abs=1e-5)
    np.testing.assert_allclose(probabilities, expected_probabilities, atol=1e-5)
    image = np.array(answer["preprocessed"])
    assert image.shape == (28, 28) and image.min() >= 0 and image.max() <= 1
    np.testing.assert_allclose(image, expected_image, atol=6e-4)  # rounded to 3 decimals


# --- good requests ----------------------------------------------------------------------------


def test_health_names_the_model(server, tiny_run):
    response = server.get("/api/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "model": tiny_run.name, "process": os.getpid()}


def test_model_info_gives_the_config_and_metrics(server, tiny_run):
    info = server.get("/api/model").json()
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    assert info["name"] == tiny_run.name and info["source"] == str(tiny_run)
    assert info["training"]["hidden_units"] == [32] and info["training"]["epochs"] == 1
    assert info["metrics"]["test_accuracy"] == metrics["test_accuracy"] and info["metrics"]["status"] == "finished"
    assert info["input_shape"] == [784] and info["class_names"] == [str(label) for label in range(10)]


def test_a_multipart_upload_is_classified_like_the_python_api(server, classifier):
    picture = digit_picture(1)
    expected = classifier.predict(picture)
    response = server.post("/api/predict", files={"file": ("one.png", encode(picture), "image/png")})
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    assert_prediction(classifier, response.json(), expected.probabilities[0], expected.images[0])


def test_raw_image_bytes_are_classified(server, classifier):
    data = encode(digit_picture(2).convert("RGB"), "JPEG", quality=90)
    expected = classifier.predict(io.BytesIO(data))
    for content_type in ("image/jpeg", "application/octet-stream"):
        response = server.post("/api/predict", content=data, headers={"Content-Type": content_type})
        assert response.status_code == 200, response.text
        assert_prediction(classifier, response.json(), expected.probabilities[0], expected.images[0])


def test_json_pixels_go_through_the_same_preparation(server, classifier):
    images, _ = make_images(3, seed=5)  # (3, 28, 28) uint8, white on black like MNIST
    for image in images:
        expected = classifier.predict(image)
        response = server.post("/api/predict", json={"pixels": image.tolist()})
        assert response.status_code == 200, response.text
        assert_prediction(classifier, response.json(), expected.probabilities[0], expected.images[0])
    # Dark on light, and floats: the same digit, inverted, gives the same answer.
    inverted = (255.0 - images[0]).tolist()
    answer = server.post("/api/predict", json={"pixels": inverted}).json()
    np.testing.assert_allclose(answer["probabilities"], classifier.predict(images[0]).probabilities[0], atol=0.05)


# --- refusals: digit null and why ------------------------------------------------------------


def test_an_answer_says_why_when_it_names_no_digit(server, classifier):
    picture = digit_picture(1)
    expected = classifier.predict(picture)
    decision = classifier.decide(expected.probabilities, expected.images)[0]
    answer = server.post("/api/predict", content=encode(picture)).json()
    assert (answer["digit"], answer["reason"]) == (decision.digit, decision.reason)
    assert answer["confidence"] == pytest.approx(decision.confidence, abs=1e-5)
    # min_confidence=1: no model is that sure, so any image is refused as "unsure": still an answer
    # (200), with the probabilities and the image the network saw.
    for options in ({"params": {"min_confidence": "1"}, "content": encode(picture)},
                    {"files": {"file": ("one.png", encode(picture), "image/png")}, "data": {"min_confidence": "1"}},
                    {"params": {"min_confidence": "1"}, "json": {"pixels": make_images(1, seed=5)[0][0].tolist()}}):
        response = server.post("/api/predict", **options)
        assert response.status_code == 200, response.text
        refused = response.json()
        assert refused["digit"] is None and refused["label"] is None and refused["reason"] == "unsure", refused
        assert "hint" not in refused
        assert len(refused["probabilities"]) == 10 and abs(sum(refused["probabilities"]) - 1) < 1e-4
        assert refused["confidence"] == pytest.approx(max(refused["probabilities"]), abs=1e-5)
        assert np.array(refused["preprocessed"]).shape == (28, 28)
    # min_confidence=0: the best digit is always named, however unsure.
    named = server.post("/api/predict", params={"min_confidence": 0}, content=encode(picture)).json()
    assert named["digit"] == int(expected.digits[0]) and named["reason"] is None


def test_several_digits_are_refused_with_a_hint_to_read_them(server):
    response = server.post("/api/predict", content=encode(drawing(WIDE_42)))
    assert response.status_code == 200, response.text
    answer = response.json()
    # The ink is much wider than one digit: refused whatever the (tiny) model says.
    assert answer["digit"] is None and answer["reason"] == "several digits", answer
    assert "/api/read" in answer["hint"]
    assert len(answer["probabilities"]) == 10


def test_a_mixed_batch_decides_each_image_with_its_own_threshold(classifier):
    from digitlab.web import classify

    payloads = [(classify.IMAGE, io.BytesIO(encode(digit_picture(seed))), threshold)
                for seed, threshold in ((1, 1.0), (1, 0.0), (2, 0.5), (2, 1.0))]
    answers = [json.loads(outcome) for outcome in classify.classify_batch(classifier, payloads)]
    assert [answer["reason"] for answer in (answers[0], answers[3])] == ["unsure", "unsure"]
    assert answers[1]["digit"] == int(np.argmax(answers[1]["probabilities"])) and answers[1]["reason"] is None
    assert answers[0]["probabilities"] == answers[1]["probabilities"]
    for (kind, data, threshold), answer in zip(payloads, answers, strict=True):  # as each alone
        data.seek(0)
        alone = json.loads(classify.classify_one(classifier, kind, data, threshold))
        assert (alone["digit"], alone["reason"]) == (answer["digit"], answer["reason"])
        np.testing.assert_allclose(alone["probabilities"], answer["probabilities"], atol=1e-5)


@pytest.mark.parametrize("value", ["high", "-0.1", "1.5", "nan", "inf", ""])
def test_a_bad_min_confidence_is_refused(server, value):
    picture = encode(digit_picture(1))
    for path in ("/api/predict", "/api/read"):
        assert_error(server.post(path, params={"min_confidence": value}, content=picture), 422,
                     "bad_min_confidence", "min_confidence", "between 0 and 1")
        assert_error(server.post(path, files={"file": ("one.png", picture, "image/png")},
                                 data={"min_confidence": value}), 422, "bad_min_confidence", "min_confidence")


# --- reading numbers --------------------------------------------------------------------------


def test_two_digits_side_by_side_are_read_as_a_number(server, classifier):
    # Well apart (the 42 on a pad twice as wide as tall): the tiny model cannot take them for one digit.
    picture = drawing(FOUR + TWO, stretch=2)
    for options in ({"content": encode(picture)}, {"files": {"file": ("42.png", encode(picture), "image/png")}}):
        # min_confidence=0: the tiny model is unsure of these drawings, but each digit found is kept.
        response = server.post("/api/read", params={"min_confidence": 0}, **options)
        assert response.status_code == 200 and response.headers["content-type"] == "application/json"
        answer = response.json()
        assert set(answer) - {"characters"} == {"text", "digits", "confidence"}  # characters: a separator reader's
        assert len(answer["text"]) == 2 and len(answer["digits"]) == 2, answer
        (left, right) = [digit["box"] for digit in answer["digits"]]
        # Left to right, apart, each inside the picture and on its own half of it, about where it was drawn.
        assert 0 <= left[0] < left[2] <= right[0] < right[2] <= 448 and left[2] <= 224 <= right[0], answer
        assert all(0 <= box[1] < box[3] <= 224 for box in (left, right))
        assert abs(left[0] - 0.18 * 448) < 15 and abs(right[2] - 0.84 * 448) < 15 and abs(left[3] - 0.78 * 224) < 15
        assert answer["text"] == "".join(str(digit["digit"]) for digit in answer["digits"])
        for digit in answer["digits"]:
            assert len(digit["probabilities"]) == 10 and abs(sum(digit["probabilities"]) - 1) < 1e-4
        assert answer["confidence"] == pytest.approx(
            math.prod(digit["probabilities"][digit["digit"]] for digit in answer["digits"]), rel=1e-4)
        # What the library reads, to the JSON's rounding.
        assert answer == json.loads(json.dumps(read_number(classifier, picture, min_confidence=0).to_dict()))
    # With min_confidence=1 no digit is sure enough: nothing is read, and that is an answer too.
    nothing = server.post("/api/read", params={"min_confidence": 1}, content=encode(picture)).json()
    assert {key: value for key, value in nothing.items() if key != "characters"} == \
        {"text": "", "digits": [], "confidence": 0.0} and not nothing.get("characters")


def test_boxes_are_in_the_pixels_of_the_image_sent(server):
    """Also for a big JPEG (decoded at a reduced scale) and for one stored on its side (EXIF orientation)."""
    picture = drawing(FOUR + TWO, size=1200, stretch=2)  # 2400x1200
    small = server.post("/api/read", params={"min_confidence": 0}, content=encode(drawing(FOUR + TWO, stretch=2)))
    expected = [[value * 1200 / 224 for value in digit["box"]] for digit in small.json()["digits"]]
    sideways = picture.transpose(Image.Transpose.ROTATE_90)  # stored turned left: EXIF orientation 6 turns it back
    exif = Image.Exif()
    exif[0x0112] = 6
    for name, body in (("png", encode(picture)), ("jpeg", encode(picture, "JPEG", quality=90)),
                       ("sideways jpeg", encode(sideways, "JPEG", quality=90, exif=exif.tobytes()))):
        answer = server.post("/api/read", params={"min_confidence": 0}, content=body).json()
        boxes = [digit["box"] for digit in answer["digits"]]
        assert len(boxes) == 2, (name, answer)
        # Near the small drawing's boxes scaled up: one pixel there is 5.4 here, and the JPEG is read
        # at a reduced scale; boxes in the decoded pixels would be that many times too small.
        np.testing.assert_allclose(boxes, expected, atol=24, err_msg=name)
        # Each character's box is its digit's, in the same pixels.
        assert [character["box"] for character in answer["characters"] if character["kind"] == "digit"] == boxes, name


def test_read_takes_json_pixels_and_a_blank_image_reads_as_nothing(server, classifier):
    image = make_images(1, seed=5)[0][0]  # (28, 28) uint8, white on black
    answer = server.post("/api/read", params={"min_confidence": 0}, json={"pixels": image.tolist()}).json()
    assert len(answer["text"]) >= 1 and all(0 <= value <= 28 for digit in answer["digits"] for value in digit["box"])
    blank = encode(Image.new("L", (280, 280), 255))
    for response in (server.post("/api/read", content=blank), server.post("/api/read", json={"pixels": [[0] * 28] * 28})):
        assert response.status_code == 200 and response.json() | {"characters": []} == \
            {"text": "", "digits": [], "confidence": 0.0, "characters": []}


def test_read_refuses_bad_input_as_predict_does(server):
    assert_error(server.post("/api/read", content=b"hello, not a picture", headers={"Content-Type": "image/png"}),
                 422, "bad_image", "not an image")
    assert_error(server.post("/api/read", files={"file": ("notes.txt", b"plain text", "text/plain")}), 422,
                 "bad_image", "notes.txt")
    assert_error(server.post("/api/read", content=b""), 400, "no_image", "no body")
    assert_error(server.post("/api/read", files={"file": ("empty.png", b"", "image/png")}), 400, "no_image", "empty")
    assert_error(server.post("/api/read", content=b'{"pixels": [', headers={"Content-Type": "application/json"}),
                 400, "bad_json")
    assert_error(server.post("/api/read", json={"pixels": [[0] * 28] * 27}), 422, "bad_pixels", "28 rows")
    assert_error(server.post("/api/read", content=bytes(web_app.MAX_BODY_BYTES + 1)), 413, "too_large")
    bomb = encode(Image.new("1", (12_000, 12_000)))
    assert_error(server.post("/api/read", files={"file": ("bomb.png", bomb, "image/png")}), 422, "bad_image",
                 "12000x12000")  # too many pixels, or too much memory to prepare them
    assert_error(server.get("/api/read"), 405, "method_not_allowed")
    # Far more pieces of ink than a line of digits has (150 ticks): refused, saying what to do.
    ticks = [[(0.01 + 0.98 / 150 * index, 0.3), (0.01 + 0.98 / 150 * index, 0.7)] for index in range(150)]
    assert_error(server.post("/api/read", content=encode(drawing(ticks, size=200, brush=0.025, stretch=10))), 422,
                 "not_one_line", "too much ink", "crop")


def health_while_posting(server, path: str, body: bytes, count: int) -> tuple[float, list]:
    """Seconds /api/health takes to answer while `count` clients post `body` to `path`; and their responses."""
    done = []
    threads = [threading.Thread(target=lambda: done.append(httpx.post(f"{server.base_url}{path}", content=body,
                                                                      timeout=60)))
               for _ in range(count)]
    for thread in threads:
        thread.start()
    time.sleep(0.05)
    started = time.perf_counter()
    assert server.get("/api/health").status_code == 200
    health_seconds = time.perf_counter() - started
    for thread in threads:
        thread.join()
    return health_seconds, done


def test_the_event_loop_answers_while_numbers_are_read(server):
    """Reading runs in worker threads: health answers at once while large pictures are read."""
    health_seconds, done = health_while_posting(server, "/api/read", encode(drawing(FOUR + TWO, size=1800)), 4)
    assert [response.status_code for response in done] == [200] * 4 and health_seconds < 1.0


@pytest.fixture(scope="module")
def mnist_server(tmp_path_factory):
    """The tutorial's network trained on real MNIST for one epoch (about 96%), served."""
    run = train(TrainingConfig(epochs=1), run_dir=tmp_path_factory.mktemp("mnist") / "run", verbose=0)
    with web_server.running(loading.load_classifier(run.run_dir)) as address, \
            httpx.Client(base_url=address, timeout=30) as client:
        yield client


@pytest.mark.slow
def test_a_real_model_reads_42_and_a_4_drawn_small(mnist_server):
    for strokes in (FOUR + TWO, WIDE_42):  # across the pad, and squashed
        reading = mnist_server.post("/api/read", content=encode(drawing(strokes))).json()
        assert reading["text"] == "42" and reading["confidence"] > 0.5, reading
        assert [digit["digit"] for digit in reading["digits"]] == [4, 2]
    # Much wider than one digit: refused as one, with the hint to read it.
    answer = mnist_server.post("/api/predict", content=encode(drawing(WIDE_42))).json()
    assert answer["digit"] is None and answer["reason"] == "several digits" and "/api/read" in answer["hint"], answer
    # A 4 across the pad, and in a fifth of it (the brush is then thick for the digit).
    small_four = [[(0.5 + (x - 0.3) * 0.4, 0.5 + (y - 0.5) * 0.4) for x, y in stroke] for stroke in FOUR]
    for strokes in (FOUR, small_four):
        picture = encode(drawing(strokes))
        four = mnist_server.post("/api/predict", content=picture).json()
        assert four["digit"] == 4 and four["reason"] is None and four["confidence"] >= DEFAULT_MIN_CONFIDENCE, four
        assert mnist_server.post("/api/read", content=picture).json()["text"] == "4"


# --- one answer: /api/look --------------------------------------------------------------------------


LOOK_KEYS = {"kind", "text", "confidence", "confidence_text", "reason", "digit", "label", "probabilities",
             "probability_texts", "boxes", "reading", "seen"}


def test_look_answers_what_the_library_decides_for_every_kind_of_body(server, classifier):
    from digitlab.analysis.formatting import format_probability
    from digitlab.inference.looking import look

    picture = drawing(FOUR + TWO, stretch=2)
    pixels = make_images(1, seed=5)[0][0]  # (28, 28) uint8, white on black
    expected_picture = json.loads(json.dumps(look(classifier, picture, 0.0).to_dict(classifier.class_names)))
    expected_pixels = json.loads(json.dumps(look(classifier, pixels / 255.0, 0.0).to_dict(classifier.class_names)))
    for options, expected in (({"content": encode(picture)}, expected_picture),
                              ({"files": {"file": ("42.png", encode(picture), "image/png")}}, expected_picture),
                              ({"json": {"pixels": pixels.tolist()}}, expected_pixels)):
        response = server.post("/api/look", params={"min_confidence": 0}, **options)
        assert response.status_code == 200 and response.headers["content-type"] == "application/json"
        answer = response.json()
        assert set(answer) == LOOK_KEYS and answer["kind"] in ("digit", "number", "not a digit", "unsure")
        assert answer == expected
        # Every probability also as the one text people read.
        assert answer["probability_texts"] == [format_probability(value) for value in answer["probabilities"]]
        assert answer["confidence_text"] == format_probability(answer["confidence"])
    # min_confidence=1: no digit is that sure, alone or in a number.
    unsure = server.post("/api/look", params={"min_confidence": 1}, content=encode(picture)).json()
    assert unsure["kind"] in ("unsure", "not a digit") and unsure["text"] == "" and unsure["boxes"] == [], unsure


def test_look_refuses_what_predict_refuses(server):
    blank = encode(Image.new("L", (280, 280), 255))
    assert_error(server.post("/api/look", content=blank), 422, "no_ink", "no ink")
    assert_error(server.post("/api/look", content=b"not a picture"), 422, "bad_image")
    assert_error(server.post("/api/look", json={"pixels": [[0] * 27] * 28}), 422, "bad_pixels")
    assert_error(server.post("/api/look", params={"min_confidence": "high"}, content=blank), 422,
                 "bad_min_confidence")
    assert_error(server.post("/api/look", content=b""), 400, "no_image")


@pytest.fixture(scope="module")
def bundled_server():
    """The bundled reader (ONNX classifier and line model), served as `digitlab serve` does with no run."""
    with web_server.running(loading.load_bundled_reader()) as address, \
            httpx.Client(base_url=address, timeout=30) as client:
        yield client


def test_touching_digits_are_one_number_where_predict_sees_one_digit(bundled_server):
    """The page's "38": /api/predict alone takes the touching pair for an 8; /api/look answers 38, and
    /api/predict and /api/read still answer as they did."""
    from drawn import THIRTY_EIGHT, sent_image

    body = encode(sent_image(THIRTY_EIGHT))
    predicted = bundled_server.post("/api/predict", content=body).json()
    assert predicted["digit"] == 8, predicted
    assert bundled_server.post("/api/read", content=body).json()["text"] == "38"
    answer = bundled_server.post("/api/look", content=body).json()
    assert (answer["kind"], answer["text"], answer["reason"]) == ("number", "38", None), answer
    assert answer["digit"] == 8  # the one-digit view is kept, for those who want it
    assert [boxed["label"] for boxed in answer["boxes"]] == ["3", "8"]
    np.testing.assert_allclose([boxed["box"] for boxed in answer["boxes"]],
                               [digit["box"] for digit in answer["reading"]["digits"]], atol=4)
    # What the line model saw: its strip, 24 rows, with a box per digit inside it.
    seen = answer["seen"]
    assert seen["kind"] == "line" and len(seen["pixels"]) == 24 and len(seen["boxes"]) == 2
    assert all(0 <= x0 < x1 <= len(seen["pixels"][0]) and 0 <= y0 < y1 <= 24 for x0, y0, x1, y1 in seen["boxes"])


@pytest.mark.parametrize("scale", [1.0, 0.2])
def test_a_number_written_small_reads_as_written_large(bundled_server, scale):
    from drawn import moved, sent_image

    answer = bundled_server.post("/api/look", content=encode(sent_image(moved(FOUR + TWO, scale)))).json()
    assert (answer["kind"], answer["text"]) == ("number", "42"), answer


def test_one_digit_is_boxed_and_seen_as_28_by_28(bundled_server):
    from drawn import ONE, sent_image

    picture = sent_image(ONE)
    answer = bundled_server.post("/api/look", content=encode(picture)).json()
    assert (answer["kind"], answer["text"], answer["label"], answer["digit"]) == ("digit", "1", "1", 1), answer
    assert answer["confidence_text"] == answer["probability_texts"][1]
    [boxed] = answer["boxes"]
    assert boxed["label"] == "1" and 0 <= boxed["box"][0] < boxed["box"][2] <= picture.width
    assert answer["seen"]["kind"] == "digit" and np.array(answer["seen"]["pixels"]).shape == (28, 28)


def test_look_boxes_are_in_the_pixels_of_a_big_jpeg(bundled_server):
    from drawn import sent_image

    picture = sent_image(FOUR + TWO)
    small = bundled_server.post("/api/look", content=encode(picture)).json()
    big = picture.resize((picture.width * 10, picture.height * 10), Image.Resampling.BICUBIC)
    large = bundled_server.post("/api/look", content=encode(big, "JPEG", quality=90)).json()
    assert small["text"] == large["text"] == "42"
    expected = [[10 * value for value in boxed["box"]] for boxed in small["boxes"]]
    np.testing.assert_allclose([boxed["box"] for boxed in large["boxes"]], expected, atol=60)
    np.testing.assert_allclose([digit["box"] for digit in large["reading"]["digits"]],
                               [[10 * value for value in digit["box"]] for digit in small["reading"]["digits"]], atol=60)


# --- bad requests -----------------------------------------------------------------------------


def test_a_blank_image_is_no_ink_not_a_guess(server):
    blank = encode(Image.new("L", (280, 280), 255))
    assert_error(server.post("/api/predict", files={"file": ("blank.png", blank, "image/png")}), 422, "no_ink",
                 "no ink")
    assert_error(server.post("/api/predict", content=blank, headers={"Content-Type": "image/png"}), 422, "no_ink")
    assert_error(server.post("/api/predict", json={"pixels": [[0] * 28] * 28}), 422, "no_ink", "no ink")


def test_not_an_image_is_refused(server):
    answer = assert_error(server.post("/api/predict", content=b"hello, not a picture",
                                      headers={"Content-Type": "image/png"}), 422, "bad_image", "not an image")
    assert "request body" in answer["error"]
    # An upload's error names the file.
    assert_error(server.post("/api/predict", files={"file": ("notes.txt", b"plain text", "text/plain")}), 422,
                 "bad_image", "notes.txt", "not an image")


def test_a_truncated_image_is_refused(server):
    data = encode(digit_picture(3).convert("RGB"), "JPEG", quality=90)
    assert_error(server.post("/api/predict", files={"file": ("cut.jpg", data[: len(data) // 2], "image/jpeg")}),
                 422, "bad_image", "truncated")
    png = encode(digit_picture(3))
    assert_error(server.post("/api/predict", content=png[: len(png) // 2]), 422, "bad_image")


@pytest.mark.parametrize("pixels, words", [
    ([[0] * 28] * 27, ["28 rows", "got 27 rows"]),
    ([[0] * 28] * 27 + [[0] * 29], ["row 27 has 29 values"]),
    ([[0] * 28] * 27 + [[300] + [0] * 27], ["300", "0-255"]),
    ([[0] * 28] * 27 + [[-1] + [0] * 27], ["-1", "0-255"]),
    ([[0] * 28] * 27 + [["7"] + [0] * 27], ["row 27 holds something other than numbers"]),
    ([[0] * 28] * 27 + [[True] + [0] * 27], ["row 27 holds something other than numbers"]),
    ([[0] * 28] * 27 + [[None] + [0] * 27], ["row 27 holds something other than numbers"]),
    ([[[0, 0, 0]] * 28] * 28, ["row 0 holds something other than numbers"]),
    ("an image", ['got "an image"']),
    ([0] * 28, ["row 0 is not a list"]),
])
def test_pixels_of_the_wrong_shape_or_range_are_refused(server, pixels, words):
    assert_error(server.post("/api/predict", json={"pixels": pixels}), 422, "bad_pixels", *words)


def test_non_finite_and_huge_pixels_are_refused(server):
    body = json.dumps({"pixels": [[0] * 28] * 27 + [[0] * 27 + [float("nan")]]})  # Python writes NaN
    assert "NaN" in body
    assert_error(server.post("/api/predict", content=body, headers={"Content-Type": "application/json"}), 422,
                 "bad_pixels")
    assert_error(server.post("/api/predict", json={"pixels": [[0] * 28] * 27 + [[10**400] + [0] * 27]}), 422,
                 "bad_pixels", "too large")


@pytest.mark.parametrize("body, words", [
    (b'{"pixels": [[0, 0', ["not valid JSON"]),
    (b"\xff\xfe{", ["not valid JSON"]),
    (b"[1, 2, 3]", ["no `pixels`"]),
    (b'{"pixel": []}', ["no `pixels`"]),
    (b'{"pixels": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", ["nested too deeply"]),
])
def test_malformed_json_is_refused(server, body, words):
    assert_error(server.post("/api/predict", content=body, headers={"Content-Type": "application/json"}), 400,
                 "bad_json", *words)


def test_a_request_without_an_image_is_refused(server):
    assert_error(server.post("/api/predict", content=b""), 400, "no_image", "no body")
    assert_error(server.post("/api/predict", data={"name": "seven"}, files={"other": ("a.png", b"x", "image/png")}),
                 400, "no_image", "field `file`", "other")
    assert_error(server.post("/api/predict", files={"file": ("empty.png", b"", "image/png")}), 400, "no_image",
                 "empty")
    # A multipart body that is not multipart.
    assert_error(server.post("/api/predict", content=b"garbage",
                             headers={"Content-Type": "multipart/form-data; boundary=xyz"}), 400, "bad_multipart",
                 "multipart")


def test_bodies_over_5_mb_get_413(server):
    big = bytes(web_app.MAX_BODY_BYTES + 1)
    # Declared with Content-Length: refused before it is read.
    assert_error(server.post("/api/predict", content=big, headers={"Content-Type": "image/png"}), 413, "too_large",
                 "5 MB")
    assert_error(server.post("/api/predict", files={"file": ("big.png", big, "image/png")}), 413, "too_large")

    # Chunked (no Content-Length): counted while it streams in.
    def chunks():
        for _ in range(12):
            yield bytes(512 * 1024)

    response = server.post("/api/predict", content=chunks(), headers={"Content-Type": "image/png"})
    assert "content-length" not in response.request.headers
    assert_error(response, 413, "too_large")
    # Just under the limit is read (and refused only as not an image).
    assert_error(server.post("/api/predict", content=bytes(web_app.MAX_BODY_BYTES - 10)), 422, "bad_image")


def test_a_decompression_bomb_is_refused_before_it_is_decoded(server):
    bomb = encode(Image.new("1", (12_000, 12_000)))  # 144 megapixels in about 18 kB
    assert len(bomb) < 100_000
    started = time.perf_counter()
    assert_error(server.post("/api/predict", files={"file": ("bomb.png", bomb, "image/png")}), 422, "bad_image",
                 "12000x12000")  # too many pixels, or too much memory to prepare them
    assert time.perf_counter() - started < 2  # refused from the header, not after decoding 144 MB


def test_unknown_paths_and_methods_answer_json(server):
    assert_error(server.get("/api/nothing"), 404, "not_found")
    assert_error(server.get("/api/predict"), 405, "method_not_allowed")


def test_the_server_still_answers_after_a_burst_of_bad_requests(server, classifier):
    bad_requests = [
        {"content": b"not an image"},
        {"content": b'{"pixels": [', "headers": {"Content-Type": "application/json"}},
        {"json": {"pixels": [[999] * 28] * 28}},
        {"content": encode(Image.new("1", (12_000, 12_000)))},
        {"content": encode(digit_picture(4))[:200]},
        {"content": bytes(web_app.MAX_BODY_BYTES + 100)},
        {"json": {"pixels": [[0] * 28] * 28}},
    ]
    statuses, failures = [], []

    def send(options):
        try:
            with httpx.Client(base_url=str(server.base_url), timeout=30) as client:
                statuses.append(client.post("/api/predict", **options).status_code)
        except Exception as err:  # noqa: BLE001 - collected and asserted below
            failures.append(err)

    threads = [threading.Thread(target=send, args=(options,)) for options in bad_requests * 4]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures and len(statuses) == len(bad_requests) * 4
    assert all(400 <= status < 500 for status in statuses), statuses
    assert server.get("/api/health").json()["status"] == "ok"
    picture = digit_picture(6)
    answer = server.post("/api/predict", content=encode(picture)).json()
    expected = classifier.predict(picture)
    assert answer["digit"] == classifier.decide(expected.probabilities, expected.images)[0].digit


def test_the_event_loop_answers_while_images_are_prepared(server):
    """Preparing runs in worker threads: health answers at once while big uploads are worked on."""
    big = encode(Image.fromarray(np.random.default_rng(0).integers(0, 255, (1500, 1500), dtype=np.uint8)))
    health_seconds, done = health_while_posting(server, "/api/predict", big, 3)
    assert len(done) == 3 and health_seconds < 1.0


# --- the page, CORS, OpenAPI ------------------------------------------------------------------


def test_the_page_is_served_and_loads_nothing_from_elsewhere(server):
    page = server.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert 'id="pad"' in page.text and 'id="bars"' in page.text and 'id="seen"' in page.text
    assert "Upload an image" in page.text and "Clear" in page.text
    for asset in re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text):
        response = server.get(asset)
        assert response.status_code == 200 and response.content, asset
    for path in web_app.STATIC_DIR.iterdir():
        # No CDN, no web fonts, no external scripts: the page works offline.
        assert not re.search(r"https?://|//cdn|@import|url\(", path.read_text(encoding="utf-8")), path.name


def test_no_cors_unless_asked(server, classifier):
    headers = {"Origin": "http://elsewhere.example", "Access-Control-Request-Method": "POST"}
    assert "access-control-allow-origin" not in server.get("/api/health", headers=headers).headers
    assert "access-control-allow-origin" not in server.options("/api/predict", headers=headers).headers
    with web_server.running(classifier, cors_origins=["http://elsewhere.example"]) as address:
        allowed = httpx.options(f"{address}/api/predict", headers=headers)
        assert allowed.headers["access-control-allow-origin"] == "http://elsewhere.example"


def test_openapi_describes_the_three_request_kinds(server):
    schema = server.get("/openapi.json").json()
    for path in ("/api/predict", "/api/read"):
        operation = schema["paths"][path]["post"]
        body = operation["requestBody"]["content"]
        assert {"multipart/form-data", "application/json", "image/png"} <= set(body)
        assert "min_confidence" in body["multipart/form-data"]["schema"]["properties"]
        assert [(parameter["name"], parameter["in"], parameter["schema"]["maximum"])
                for parameter in operation["parameters"]] == [("min_confidence", "query", 1)]
        # The answers besides 200: each error status with the ErrorAnswer shape (more in test_web_reliability.py).
        responses = operation["responses"]
        assert {"400", "408", "413", "422"} <= set(responses) and "ErrorAnswer" in json.dumps(responses["422"])
        assert "bad_min_confidence" in responses["422"]["content"]["application/json"]["examples"]
        assert responses["200"]["content"]["application/json"]["examples"], path
    assert "PredictionAnswer" in json.dumps(schema) and server.get("/docs").status_code == 200
    answer = schema["components"]["schemas"]["PredictionAnswer"]["properties"]
    assert {"digit", "label", "reason", "confidence", "hint", "probabilities", "preprocessed"} == set(answer)
    reading = schema["paths"]["/api/read"]["post"]["responses"]["200"]["content"]["application/json"]
    assert reading["schema"]["$ref"].endswith("/ReadingAnswer")
    assert reading["examples"]["a number"]["value"]["text"] == "42"
    assert "no_ink" not in json.dumps(schema["paths"]["/api/read"]["post"]["responses"]["422"])


# --- the command line -------------------------------------------------------------------------


def test_digitlab_serve_prints_the_address_and_serves(tiny_run):
    process = subprocess.Popen([sys.executable, "-m", "digitlab", "serve", "--model", str(tiny_run), "--port", "0",
                                "--allowed-host", "digits.example", "--allowed-host", "other.example"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        address = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert address, (line, process.stderr.read() if process.poll() is not None else "")
        for _ in range(200):  # the address is printed once bound; the app starts a moment later
            try:
                response = httpx.get(f"{address.group()}/api/health", timeout=5)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        assert response.json() == {"status": "ok", "model": tiny_run.name, "process": process.pid}
        # --allowed-host: these names are answered besides this machine's; others are refused (DNS rebinding).
        for host in ("digits.example", "other.example:8000", "localhost"):
            assert httpx.get(f"{address.group()}/api/health", headers={"Host": host}).status_code == 200, host
        assert_error(httpx.get(f"{address.group()}/api/health", headers={"Host": "evil.example"}), 400, "bad_host")
    finally:
        process.terminate()
        process.wait(30)


@pytest.mark.slow
def test_digitlab_serve_with_two_worker_processes(tiny_run):
    process = subprocess.Popen([sys.executable, "-m", "digitlab", "serve", "--model", str(tiny_run), "--port", "0",
                                "--workers", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        address = re.search(r"http://127\.0\.0\.1:\d+", process.stdout.readline()).group()
        answers = []
        for _ in range(1200):  # each worker loads the model itself
            try:
                answers.append(httpx.post(f"{address}/api/predict", content=encode(digit_picture(7)), timeout=10))
            except httpx.TransportError:
                time.sleep(0.05)
            if len(answers) >= 20:
                break
        assert len(answers) == 20 and all(answer.status_code == 200 for answer in answers)
        assert len({answer.json()["digit"] for answer in answers}) == 1
        # New connections are spread over both workers (SO_REUSEPORT on Linux), once both are up.
        workers = set()
        deadline = time.monotonic() + 120
        while len(workers) < 2 and time.monotonic() < deadline:
            for _ in range(16):
                with httpx.Client(base_url=address, timeout=10) as client:  # a new connection each time
                    workers.add(client.get("/api/health").json()["process"])
        assert len(workers) == 2 and process.pid not in workers
    finally:
        process.terminate()
        process.wait(30)
    assert process.returncode is not None
    for worker in workers:  # the workers stop with the server
        for _ in range(100):
            try:
                os.kill(worker, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"worker {worker} still runs after the server stopped")


def test_a_worker_that_cannot_start_stops_the_server_with_an_error(tiny_run, tmp_path):
    broken = tmp_path / "broken-run"
    shutil.copytree(tiny_run, broken)
    (broken / "model.keras").write_bytes(b"not a model")  # the workers fail to load it
    process = subprocess.run([sys.executable, "-m", "digitlab", "serve", "--model", str(broken), "--port", "0",
                              "--workers", "2"], capture_output=True, text=True, timeout=300)
    assert process.returncode != 0
    assert "server worker digitlab-serve-" in process.stderr and "stopped" in process.stderr, process.stderr[-2000:]


def test_digitlab_serve_on_a_taken_port_is_one_clear_error(run_cli, tiny_run):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = run_cli("serve", "--model", str(tiny_run), "--port", str(port))
    assert code == 2 and "cannot listen on 127.0.0.1" in err and "--port" in err


def test_help_imports_neither_fastapi_nor_uvicorn():
    script = "import sys\nfrom digitlab import cli\nprint(any(name in sys.modules for name in ('fastapi', 'uvicorn')))"
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert completed.stdout.strip() == "False", completed.stderr
