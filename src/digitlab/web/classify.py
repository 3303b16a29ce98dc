"""Classifying and reading request payloads: the blocking work, run in the batcher's thread
(`batching.py`) or in a worker thread. No HTTP here: a payload is ("image", file object,
min_confidence) or ("json", body bytes, min_confidence), and each outcome is the answer as JSON bytes
or the `RequestError` to answer with.

No ML logic either: images go through `images.prepare_image_batch`, the loaded classifier and its
`decide` (a digit, or none and why), or through `reading.read_number` for a number.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import orjson

from digitlab.errors import ImageError, ModelError
from digitlab.inference.images import MNIST_SIZE, draft_for_reading, prepare_image_batch, read_image
from digitlab.inference.looking import look
from digitlab.inference.reading import read_number
from digitlab.inference.rejection import DEFAULT_MIN_CONFIDENCE, SEVERAL_DIGITS, check_min_confidence
from digitlab.web.answers import SEVERAL_DIGITS_HINT, RequestError

# A payload for `classify_batch`: (IMAGE, file object of the image's bytes, min_confidence) or
# (JSON, body bytes, min_confidence).
IMAGE, JSON = "image", "json"

log = logging.getLogger("digitlab.web")

# The most memory preparing one image may take, estimated from its header before any pixel is decoded
# (`check_image_memory`); larger ones get 422. Bytes, not pixels: a 108 KB 16-bit PNG of 7000x7000
# pixels takes about 470 MB to prepare, an 8-bit one of the same size about 140 MB. Per worker, up to IMAGE_THREADS
# images (web/app.py) and one batch are prepared at once.
MAX_IMAGE_BYTES = 256 * 1024 * 1024
# Peak memory that preparing an image takes per pixel, by the mode Pillow decodes it to: the decoded
# pixels, their grayscale and float copies (measured by benchmarks/image_memory.py on 3000x3000 images).
BYTES_PER_PIXEL = {"1": 3, "L": 3, "P": 3, "RGB": 3, "YCbCr": 3, "LAB": 3, "HSV": 3, "CMYK": 5, "RGBX": 5,
                   "LA": 9, "La": 9, "PA": 9, "RGBA": 11, "RGBa": 11, "I;16": 10, "I;16L": 10, "I;16B": 10,
                   "I;16N": 10, "I": 14, "F": 14}
# Modes not in the table (rare ones) are costed as the dearest.
DEFAULT_BYTES_PER_PIXEL = 14


def min_confidence_from(text: str | None) -> float:
    """A `min_confidence` parameter as sent (None: not sent) -> the threshold; RequestError (422) if bad."""
    if text is None:
        return DEFAULT_MIN_CONFIDENCE
    try:
        return check_min_confidence(float(text))
    except ValueError as err:
        shown = text if len(text) <= 20 else text[:20] + "..."
        raise RequestError(422, f"min_confidence must be a number between 0 and 1 (a probability), got {shown!r}",
                           "bad_min_confidence") from err


def classify_one(classifier, kind: str, data, min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> bytes:
    """`classify_batch` for one payload: the answer, or its RequestError raised."""
    outcome = classify_batch(classifier, [(kind, data, min_confidence)])[0]
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def classify_batch(classifier, payloads: Sequence[tuple[str, Any, float]], max_image_bytes: int = MAX_IMAGE_BYTES) -> list:
    """Prepare and classify several images at once: per payload, the answer as JSON bytes or the
    RequestError to answer with. Each image is prepared exactly as alone; one model call for all.

    One payload's failure, whatever it is, is that payload's outcome only: a bad body or image is its
    RequestError; should the model or an answer fail on the batch, each image is tried alone, so
    that only the one it fails on gets the error."""
    outcomes: list = [None] * len(payloads)
    sources, positions = [], []
    for position, (kind, data, _) in enumerate(payloads):
        try:
            if kind == JSON:
                sources.append(_pixels_from_json(data))
            else:
                check_image_memory(data, max_image_bytes)
                sources.append(data)
            positions.append(position)
        except Exception as err:  # noqa: BLE001  (the client's body: its own error, never the batch's)
            outcomes[position] = _request_error(err)
    prepared, prepared_positions = [], []
    for position, outcome in zip(positions, _prepare_each(sources), strict=True):
        if isinstance(outcome, BaseException):
            outcomes[position] = _image_error(outcome)
        else:
            prepared.append(outcome)
            prepared_positions.append(position)
    if prepared:
        try:
            answers = _classify_prepared(classifier, prepared, [payloads[position][2] for position in prepared_positions])
        except Exception:  # noqa: BLE001  (find the image it fails on: each alone)
            if len(prepared) == 1:
                raise
            log.warning("classifying a batch of %d failed; classifying each image alone", len(prepared), exc_info=True)
            answers = []
            for image, position in zip(prepared, prepared_positions, strict=True):
                try:
                    answers.extend(_classify_prepared(classifier, [image], [payloads[position][2]]))
                except Exception as err:  # noqa: BLE001  (this request's failure, answered as such)
                    answers.append(err)
        for position, answer in zip(prepared_positions, answers, strict=True):
            outcomes[position] = answer
    return outcomes


def _prepare_each(sources: list) -> list:
    """`prepare_image_batch`, or each source alone should the batch fail as a whole."""
    try:
        return prepare_image_batch(sources)
    except Exception:  # noqa: BLE001
        if len(sources) == 1:
            raise
        log.warning("preparing a batch of %d images failed; preparing each alone", len(sources), exc_info=True)
        outcomes = []
        for source in sources:
            if hasattr(source, "seek"):
                source.seek(0)
            try:
                outcomes.extend(prepare_image_batch([source]))
            except Exception as err:  # noqa: BLE001
                outcomes.append(err)
        return outcomes


def _classify_prepared(classifier, prepared: list, thresholds: list[float]) -> list[bytes]:
    """The answers for prepared (28, 28) images, each decided with its own threshold; one model call."""
    images = np.stack(prepared)  # (images, 28, 28)
    probabilities = classifier.probabilities(images)  # (images, classes)
    thresholds = np.array(thresholds)
    decisions: list = [None] * len(prepared)
    # One `decide` per threshold asked for (nearly always one for the whole batch).
    for threshold in np.unique(thresholds):
        rows = np.flatnonzero(thresholds == threshold)
        for row, decision in zip(rows, classifier.decide(probabilities[rows], images[rows], float(threshold)),
                                 strict=True):
            decisions[row] = decision
    return [_answer(classifier, images[row], probabilities[row], decisions[row]) for row in range(len(prepared))]


def check_image_memory(data, max_bytes: int = MAX_IMAGE_BYTES) -> int:
    """Refuse an image whose preparing would take more than `max_bytes` of memory, from its header
    alone (size and mode; a large JPEG as decoded at reduced scale): RequestError (422). Returns its
    pixel count (0 when it is no image Pillow knows: decoding it says what is wrong)."""
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the limit is applied just below
            with Image.open(data) as header:  # the header only: no pixel decoded
                width, height = header.size
                draft_for_reading(header)  # a big JPEG: the reduced scale read_image decodes it at
                pixels = header.size[0] * header.size[1]
                mode = "RGBA" if "transparency" in header.info else header.mode  # composited on white
                turned = header.getexif().get(0x0112, 1) != 1  # a turned copy is made
    except Exception:  # noqa: BLE001  (not an image: decoding it says so, naming the file)
        return 0
    finally:
        if hasattr(data, "seek"):
            data.seek(0)
    estimated = pixels * (BYTES_PER_PIXEL.get(mode, DEFAULT_BYTES_PER_PIXEL) + (4 if turned else 0))
    if estimated > max_bytes:
        raise RequestError(422, f"the image ({width}x{height}, mode {mode}) would take about "
                                f"{estimated / 2**20:,.0f} MB of memory to prepare, over this server's limit of "
                                f"{max_bytes / 2**20:,.0f} MB; send a smaller image or an 8-bit one", "bad_image")
    return pixels


def read_one(classifier, kind: str, data, min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> bytes:
    """The number in one payload (`reading.read_number`) as JSON bytes; its RequestError raised.

    The boxes are in the pixels of the image sent (for JSON pixels: of the 28x28 grid)."""
    def answer(source) -> tuple[dict, list[dict]]:
        reading = read_number(classifier, source, min_confidence=min_confidence).to_dict()
        return reading, [*reading["digits"], *reading.get("characters", ())]

    return _answered(kind, data, answer, "reading")


def look_one(classifier, kind: str, data, min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> bytes:
    """What is in one payload, one digit, a number or neither (`looking.look`), as JSON bytes; its
    RequestError raised. The boxes are in the pixels of the image sent (for JSON pixels: of the 28x28 grid)."""
    def answer(source) -> tuple[dict, list[dict]]:
        looked = look(classifier, source, min_confidence=min_confidence).to_dict(classifier.class_names)
        return looked, [*looked["boxes"], *looked["reading"]["digits"], *looked["reading"].get("characters", ())]

    return _answered(kind, data, answer, "looking at")


def _answered(kind: str, data, answer: Callable[[Any], tuple[dict, list[dict]]], doing: str) -> bytes:
    """`answer(source)` for one payload as JSON bytes, its boxes scaled to the pixels of the image sent.

    `answer` gives the answer and the items in it whose "box" is in the decoded picture's pixels. The
    client's image failing is a RequestError (422); a ModelError is the model's failure, never the image's."""
    try:
        source, scale = (_pixels_from_json(data), (1.0, 1.0)) if kind == JSON else _decoded(data)
        answered, boxed = answer(source)
    except (RequestError, ModelError):
        raise
    except Exception as err:  # noqa: BLE001  (the client's image, as in `prepare_image_batch`)
        if not isinstance(err, (ImageError, MemoryError)):
            log.warning("%s an image failed unexpectedly", doing, exc_info=err)
        raise _image_error(err) from err
    if scale != (1.0, 1.0):
        for item in boxed:
            left, top, right, bottom = item["box"]
            item["box"] = [math.floor(left * scale[0]), math.floor(top * scale[1]),
                           math.ceil(right * scale[0]), math.ceil(bottom * scale[1])]
    return orjson.dumps(answered)


def _decoded(data) -> tuple[Any, tuple[float, float]]:
    """The image as `read_image` decodes it (a large JPEG at a reduced scale, turned upright by its EXIF
    orientation), and the file's pixels per decoded pixel across and down: what turns boxes in the
    decoded picture into boxes in the image the client sent. RequestError if it is too large to prepare."""
    import warnings

    from PIL import Image

    check_image_memory(data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # read_image refuses those itself
            with Image.open(data) as header:  # the header only: no pixel decoded
                width, height = header.size
                if header.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # stored on its side: turned upright
                    width, height = height, width
    except Exception:  # noqa: BLE001  (not an image: read_image says so, naming the file)
        width = height = None
    data.seek(0)
    picture = read_image(data)
    if width is None or picture.size == (width, height):
        return picture, (1.0, 1.0)
    return picture, (width / picture.size[0], height / picture.size[1])


def _answer(classifier, prepared: np.ndarray, probabilities: np.ndarray, decision) -> bytes:
    """The JSON answer for one prepared (28, 28) image, its class probabilities and the decision on them."""
    answer = {
        "digit": decision.digit,
        "label": None if decision.digit is None else classifier.class_names[decision.digit],
        "reason": decision.reason,
        "confidence": _short_float(decision.confidence),
        "probabilities": [_short_float(value) for value in probabilities],
        # float64 first, so that rounding gives 0.753 rather than float32's 0.7529999852180481.
        "preprocessed": np.round(prepared.astype(np.float64), 3),
    }
    if decision.reason == SEVERAL_DIGITS:
        answer["hint"] = SEVERAL_DIGITS_HINT
    return orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)


def _request_error(error: BaseException) -> RequestError:
    """Whatever reading a request's body raised -> its RequestError (unforeseen ones logged, answered 400)."""
    if isinstance(error, RequestError):
        return error
    log.warning("reading a request body failed unexpectedly", exc_info=error)
    return RequestError(400, f"the request body cannot be read ({type(error).__name__}: {str(error)[:200]})",
                        "bad_request")


def _image_error(error: BaseException) -> RequestError:
    """What `prepare_image` raised for a client's image -> the RequestError to answer with (422)."""
    if isinstance(error, ImageError):
        message = str(error)
        code = "no_ink" if "no ink" in message else "not_one_line" if "too much ink" in message else "bad_image"
        return RequestError(422, message, code)
    if isinstance(error, MemoryError):
        return RequestError(422, "the image is too large to decode in the memory available", "bad_image")
    # Pillow can trip in ways not foreseen on hostile input: still the client's image.
    return RequestError(422, f"the image cannot be read ({type(error).__name__}: {error})", "bad_image")


def _pixels_from_json(body: bytes) -> np.ndarray:
    """A JSON body {"pixels": [[...] x 28]} -> (28, 28) float32 in [0, 1]; RequestError if malformed."""
    try:
        values = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise RequestError(400, f"the body is not valid JSON ({err}); send {{\"pixels\": [[...28 numbers "
                                "0-255...] x 28]}", "bad_json") from err
    except ValueError as err:  # an integer of thousands of digits (Python's int-string limit), say
        raise RequestError(422, f"the JSON holds a value Python cannot read ({str(err)[:120]}); send "
                                "{\"pixels\": [[...28 numbers 0-255...] x 28]}", "bad_pixels") from err
    except RecursionError as err:  # thousands of nested brackets
        raise RequestError(400, "the JSON is nested too deeply; send {\"pixels\": [[...28 numbers 0-255...] x 28]}",
                           "bad_json") from err
    if not isinstance(values, dict) or "pixels" not in values:
        raise RequestError(400, "the JSON has no `pixels`; send {\"pixels\": [[...28 numbers 0-255...] x 28]}",
                           "bad_json")
    return _pixels_array(values["pixels"])


def _pixels_array(pixels) -> np.ndarray:
    """JSON pixels -> (28, 28) float32 in [0, 1]; RequestError (422) unless 28 rows of 28 numbers 0-255."""
    size = MNIST_SIZE
    shape_hint = f"`pixels` must be {size} rows of {size} numbers 0-255"
    if not isinstance(pixels, list) or len(pixels) != size:
        found = f"{len(pixels)} rows" if isinstance(pixels, list) else f"{json.dumps(pixels)[:40]}"
        raise RequestError(422, f"{shape_hint}; got {found}", "bad_pixels")
    for index, row in enumerate(pixels):
        if not isinstance(row, list):
            raise RequestError(422, f"{shape_hint}; row {index} is not a list", "bad_pixels")
        if len(row) != size:
            raise RequestError(422, f"{shape_hint}; row {index} has {len(row)} values", "bad_pixels")
        # bool is an int in Python but not a pixel; strings and nulls are refused too.
        if not all(type(value) is int or type(value) is float for value in row):
            raise RequestError(422, f"{shape_hint}; row {index} holds something other than numbers", "bad_pixels")
    try:
        array = np.asarray(pixels, dtype=np.float64)  # (28, 28)
    except OverflowError as err:  # an integer with hundreds of digits
        raise RequestError(422, f"{shape_hint}; found a number too large for a pixel", "bad_pixels") from err
    if not np.isfinite(array).all() or array.min() < 0 or array.max() > 255:
        bad = array[~np.isfinite(array) | (array < 0) | (array > 255)]
        raise RequestError(422, f"{shape_hint}; found {bad.flat[0]:g} (values must lie in 0-255)", "bad_pixels")
    return (array / 255.0).astype(np.float32)


def _short_float(value) -> float:
    value = float(value)
    return float(f"{value:.6g}") if math.isfinite(value) else 0.0
