"""Classifying request payloads: the blocking work, run in the batcher's thread (`batching.py`) or in a
worker thread. No HTTP here: a payload is ("image", file object) or ("json", body bytes), and each
outcome is the answer as JSON bytes or the `RequestError` to answer with.

No ML logic either: images go through `images.prepare_image_batch` and the loaded classifier.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson

from digitlab.errors import ImageError
from digitlab.inference.images import MNIST_SIZE, prepare_image_batch
from digitlab.web.answers import RequestError

# A payload for `classify_batch`: ("image", file object of the image's bytes) or ("json", body bytes).
IMAGE, JSON = "image", "json"


def classify_one(classifier, kind: str, data) -> bytes:
    """`classify_batch` for one payload: the answer, or its RequestError raised."""
    outcome = classify_batch(classifier, [(kind, data)])[0]
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def classify_batch(classifier, payloads: Sequence[tuple[str, Any]]) -> list:
    """Prepare and classify several images at once: per payload, the answer as JSON bytes or the
    RequestError to answer with. Each image is prepared exactly as alone; one model call for all."""
    outcomes: list = [None] * len(payloads)
    sources, positions = [], []
    for position, (kind, data) in enumerate(payloads):
        try:
            sources.append(_pixels_from_json(data) if kind == JSON else data)
            positions.append(position)
        except RequestError as err:
            outcomes[position] = err
    prepared, prepared_positions = [], []
    for position, outcome in zip(positions, prepare_image_batch(sources), strict=True):
        if isinstance(outcome, BaseException):
            outcomes[position] = _image_error(outcome)
        else:
            prepared.append(outcome)
            prepared_positions.append(position)
    if prepared:
        probabilities = classifier.probabilities(np.stack(prepared))  # (images, classes)
        for position, image, image_probabilities in zip(prepared_positions, prepared, probabilities, strict=True):
            outcomes[position] = _answer(classifier, image, image_probabilities)
    return outcomes


def _answer(classifier, prepared: np.ndarray, probabilities: np.ndarray) -> bytes:
    """The JSON answer for one prepared (28, 28) image and its class probabilities."""
    digit = int(probabilities.argmax())
    return orjson.dumps({
        "digit": digit,
        "label": classifier.class_names[digit],
        "probabilities": [_short_float(value) for value in probabilities],
        # float64 first, so that rounding gives 0.753 rather than float32's 0.7529999852180481.
        "preprocessed": np.round(prepared.astype(np.float64), 3),
    }, option=orjson.OPT_SERIALIZE_NUMPY)


def _image_error(error: BaseException) -> RequestError:
    """What `prepare_image` raised for a client's image -> the RequestError to answer with (422)."""
    if isinstance(error, ImageError):
        message = str(error)
        return RequestError(422, message, "no_ink" if "no ink" in message else "bad_image")
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
