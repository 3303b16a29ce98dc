"""The FastAPI app: the drawing page, `POST /api/predict`, `GET /api/health`, `GET /api/model`.

No ML logic lives here: every image goes through `prepare_image` and the loaded
`predict.Classifier` (one compiled forward pass, safe to call from several threads). This module
owns what HTTP adds: reading the three kinds of request body, the 5 MB body limit, turning every
failure into a JSON error with the right 4xx status, and keeping blocking work off the event loop.

Request bodies accepted by `POST /api/predict`:

- `multipart/form-data` with the image file in the field `file` (what an HTML form or `curl -F` sends);
- `application/json`: `{"pixels": [[28 numbers 0-255] x 28]}`, one grayscale digit, either
  polarity (white on black like MNIST, or dark on light);
- any other content type: the body is the image file itself (PNG, JPEG, BMP, GIF, TIFF, WebP).

All three are prepared by the same `prepare_image` (so a 28x28 `pixels` digit drawn small or
off-centre is scaled and centred like a photo); the answer's `preprocessed` is what the network saw.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from digitlab import __version__
from digitlab.errors import ImageError
from digitlab.inference.images import MNIST_SIZE, prepare_image_batch
from digitlab.web.batching import MAX_BATCH_SIZE, Batcher

# Request bodies larger than this are refused with 413 before they are read (Content-Length) or as
# soon as they pass it (chunked bodies, counted while they stream in).
MAX_BODY_BYTES = 5 * 1024 * 1024
# Large bodies (photos, scans) are prepared in worker threads, at most this many at once per
# process, so that decoding a big photo neither blocks the event loop nor holds up the small
# drawings, which go through the batcher (batching.py). Preparing is NumPy/Pillow work that mostly
# holds the GIL: on 2 cores, 4 threads cost about 35% more CPU per request than 2 (contention).
# The cap also bounds the memory large uploads take at once.
IMAGE_THREADS = 2
# Bodies up to this size (a drawing, a scanned digit, JSON pixels) are batched.
BATCHED_BODY_BYTES = 256 * 1024
STATIC_DIR = Path(__file__).parent / "static"

log = logging.getLogger("digitlab.web")

# The page loads nothing from elsewhere; say so to the browser too.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; "
                               "script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
                               "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


class RequestError(Exception):
    """A request the API cannot answer: carries the HTTP status, a message and a short code."""

    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


class BodyTooLarge(RequestError):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is over the limit of {limit / 1024 / 1024:g} MB; "
                              "send a smaller image (a digit needs only a few kilobytes)", "too_large")


# --- response shapes (for the OpenAPI page; responses are written as JSON bytes directly) ------


class PredictionAnswer(BaseModel):
    digit: int = Field(description="The most probable class (for MNIST: the digit).", examples=[7])
    label: str = Field(description="The class's name from the run's config (for MNIST: the digit).", examples=["7"])
    probabilities: list[float] = Field(description="One probability per class, summing to 1.")
    preprocessed: list[list[float]] = Field(
        description="The 28x28 image the network saw, values in [0, 1], light ink on black (rows of columns).")


class ErrorAnswer(BaseModel):
    error: str = Field(description="What is wrong and what to do.")
    code: str = Field(description="A short machine-readable kind: no_ink, bad_image, bad_json, bad_pixels, "
                                  "no_image, bad_multipart, too_large, not_found, method_not_allowed, internal.")


PIXELS_EXAMPLE = {"pixels": [[0] * 28 for _ in range(10)] + [[0] * 13 + [255, 255] + [0] * 13 for _ in range(12)]
                  + [[0] * 28 for _ in range(6)]}
PREDICT_REQUEST_BODY = {
    "required": True,
    "description": "An image file as multipart field `file`, the image file as the body, or JSON pixels.",
    "content": {
        "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                           "properties": {"file": {"type": "string", "format": "binary"}}}},
        "application/json": {
            "schema": {"type": "object", "required": ["pixels"], "properties": {"pixels": {
                "type": "array", "minItems": 28, "maxItems": 28,
                "description": "28 rows of 28 grayscale values 0-255, white on black or dark on light",
                "items": {"type": "array", "minItems": 28, "maxItems": 28,
                          "items": {"type": "number", "minimum": 0, "maximum": 255}}}}},
            "example": PIXELS_EXAMPLE},
        "image/png": {"schema": {"type": "string", "format": "binary"}},
        "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    },
}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorAnswer, "description": "Malformed JSON or multipart body, or no image in the request."},
    413: {"model": ErrorAnswer, "description": "The body is over 5 MB."},
    422: {"model": ErrorAnswer, "description": "Not an image, truncated, too many pixels, pixels of the wrong "
                                               "shape or range, or no ink (a blank image)."},
}


def create_app(classifier, cors_origins: Sequence[str] = (), max_body_bytes: int = MAX_BODY_BYTES,
               image_threads: int = IMAGE_THREADS) -> FastAPI:
    """Build the app around a loaded classifier.

    Args:
        classifier: a `digitlab.inference.predict.Classifier` (see `load_classifier`).
        cors_origins: origins allowed to call the API from other pages ("*" for any); none by default.
        max_body_bytes: larger request bodies get 413.
        image_threads: large images prepared at once, in worker threads (small ones are batched).
    """
    description = classifier.describe()
    limiter: list[anyio.CapacityLimiter] = []  # created on first use, inside the event loop
    batcher: list[Batcher] = []  # started with the app

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        # Compile the forward pass for every batch size the batcher may use before the first request
        # arrives, rather than during one.
        size = MNIST_SIZE
        for count in sorted({1, *(2 ** power for power in range(MAX_BATCH_SIZE.bit_length()))}):
            await anyio.to_thread.run_sync(classifier.probabilities, np.zeros((count, size, size), np.float32))
        batcher.append(Batcher(functools.partial(_classify_batch, classifier)))
        try:
            yield
        finally:
            batcher.pop().close()

    app = FastAPI(title="digitlab", version=__version__, lifespan=lifespan,
                  description="Draw a digit at `/`, or send one to `POST /api/predict`.")
    app.state.classifier = classifier

    async def run_blocking(function, *arguments):
        if not limiter:
            limiter.append(anyio.CapacityLimiter(image_threads))
        return await anyio.to_thread.run_sync(function, *arguments, limiter=limiter[0])

    # --- errors: always JSON, never an HTML page ---------------------------------------------

    @app.exception_handler(RequestError)
    async def request_error(_request: Request, error: RequestError) -> JSONResponse:
        return JSONResponse({"error": error.message, "code": error.code}, status_code=error.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, error: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 400: "bad_request"}
        return JSONResponse({"error": str(error.detail), "code": codes.get(error.status_code, "http_error")},
                            status_code=error.status_code, headers=getattr(error, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": f"invalid request: {error.errors()}", "code": "bad_request"}, status_code=422)

    @app.exception_handler(Exception)
    async def unexpected_error(_request: Request, error: Exception) -> JSONResponse:
        log.exception("unexpected error while answering a request")
        return JSONResponse({"error": f"internal error ({type(error).__name__}); the server keeps running, "
                                      "see its log", "code": "internal"}, status_code=500)

    # --- the page ------------------------------------------------------------------------------

    page = (STATIC_DIR / "index.html").read_bytes()

    @app.get("/", include_in_schema=False)
    async def index() -> Response:
        return Response(page, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    # --- the API -------------------------------------------------------------------------------

    @app.get("/api/health", summary="Is the server up, and which model does it serve?")
    async def health() -> dict[str, Any]:
        # The process id tells the workers of `digitlab serve --workers N` apart.
        return {"status": "ok", "model": description["name"], "process": os.getpid()}

    @app.get("/api/model", summary="The loaded model: name, training settings, metrics, input shape, classes.")
    async def model_info() -> dict[str, Any]:
        return description

    @app.post("/api/predict", summary="Classify one digit: an image upload, image bytes or JSON pixels.",
              response_model=PredictionAnswer, responses=ERROR_RESPONSES,
              openapi_extra={"requestBody": PREDICT_REQUEST_BODY})
    async def predict(request: Request) -> Response:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type == "multipart/form-data":
            kind, data = IMAGE, await _read_upload(request, max_body_bytes)
            size = len(data.getbuffer())
        elif content_type == "application/json" or content_type.endswith("+json"):
            kind, data = JSON, await request.body()
            size = len(data)
        else:
            body = await request.body()
            if not body:
                raise RequestError(400, "the request has no body; send an image file (as the body or as multipart "
                                        "field `file`) or JSON {\"pixels\": [[...] x 28]}", "no_image")
            kind, data, size = IMAGE, _named_bytes(body, "the request body"), len(body)
        if size <= BATCHED_BODY_BYTES and batcher:
            answer = await batcher[0].submit((kind, data))
        else:
            answer = await run_blocking(_classify_one, classifier, kind, data)
        return Response(answer, media_type="application/json")

    if cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Content-Type"])
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    return app


class BodyLimit:
    """ASGI middleware: refuse bodies over `max_bytes` without reading them into memory.

    A declared Content-Length over the limit is answered 413 at once; a chunked body is counted as
    it streams in and reading stops (413) as soon as it passes the limit.
    """

    def __init__(self, app, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = next((value for name, value in scope["headers"] if name == b"content-length"), None)
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                length = -1
            if length < 0:
                await _send_json(send, 400, {"error": f"invalid Content-Length header {declared.decode('latin-1')!r}",
                                             "code": "bad_request"})
                return
            if length > self.max_bytes:
                error = BodyTooLarge(self.max_bytes)
                await _drain(receive, limit=4 * self.max_bytes)
                await _send_json(send, error.status, {"error": error.message, "code": error.code})
                return
        received = 0

        async def counted_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)  # answered 413 by the app's RequestError handler
            return message

        await self.app(scope, counted_receive, send)


async def _drain(receive, limit: int) -> None:
    """Read and discard what the client is still sending (up to `limit` bytes), so that it reads our
    413 instead of meeting a connection reset while it writes."""
    seen = 0
    while seen <= limit:
        message = await receive()
        if message["type"] != "http.request":
            return
        seen += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


async def _send_json(send, status: int, values: dict[str, Any]) -> None:
    body = json.dumps(values).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _read_upload(request: Request, max_bytes: int) -> io.BytesIO:
    """The bytes of multipart field `file`."""
    from starlette.datastructures import UploadFile

    try:
        form = await request.form(max_files=2, max_fields=20, max_part_size=max_bytes)
    except StarletteHTTPException as err:  # Starlette's answer to a body that is not multipart
        raise RequestError(400, f"the multipart body cannot be read ({err.detail}); send the image as "
                                "`curl -F file=@digit.png ...`", "bad_multipart") from err
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            fields = ", ".join(sorted(form.keys())) or "none"
            raise RequestError(400, f"the multipart upload has no file in field `file` (fields: {fields}); send "
                                    "it as `curl -F file=@digit.png ...`", "no_image")
        data = await upload.read()
        if not data:
            raise RequestError(400, f"the uploaded file {upload.filename or ''!r} is empty", "no_image")
        return _named_bytes(data, upload.filename or "the uploaded file")
    finally:
        await form.close()


def _named_bytes(data: bytes, name: str) -> io.BytesIO:
    stream = io.BytesIO(data)
    stream.name = name  # error messages name the file
    return stream


# --- blocking work, run in the batcher's thread or a worker thread -----------------------------

# A payload for `_classify_batch`: ("image", file object of the image's bytes) or ("json", body bytes).
IMAGE, JSON = "image", "json"


def _classify_one(classifier, kind: str, data) -> bytes:
    """`_classify_batch` for one payload: the answer, or its RequestError raised."""
    outcome = _classify_batch(classifier, [(kind, data)])[0]
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def _classify_batch(classifier, payloads: Sequence[tuple[str, Any]]) -> list:
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
    for position, outcome in zip(positions, prepare_image_batch(sources)):
        if isinstance(outcome, BaseException):
            outcomes[position] = _image_error(outcome)
        else:
            prepared.append(outcome)
            prepared_positions.append(position)
    if prepared:
        probabilities = classifier.probabilities(np.stack(prepared))  # (images, classes)
        for position, image, image_probabilities in zip(prepared_positions, prepared, probabilities):
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
