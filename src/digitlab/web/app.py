"""The FastAPI app: the drawing page, `POST /api/predict`, `POST /api/read`, `GET /api/health`,
`GET /api/model`, and the OpenAPI pages `/docs` and `/redoc`, served offline.

No ML logic lives here: every image goes through `prepare_image`, the loaded `predict.Classifier`
(one compiled forward pass, safe to call from several threads) and its `decide`, or through
`reading.read_number` for `/api/read`, by way of `classify.py`. This module owns what HTTP adds:
reading the three kinds of request body, turning every failure into a JSON error with the right 4xx
status, and keeping blocking work off the event loop. What is refused before the app reads a request
(an unknown Host, a body too large or too slow) is in `guards.py`; the answers' shapes are in
`answers.py`.

Request bodies accepted by `POST /api/predict` and `POST /api/read`:

- `multipart/form-data` with the image file in the field `file` (what an HTML form or `curl -F` sends);
- `application/json`: `{"pixels": [[28 numbers 0-255] x 28]}`, one grayscale digit, either
  polarity (white on black like MNIST, or dark on light);
- any other content type: the body is the image file itself (PNG, JPEG, BMP, GIF, TIFF, WebP).

For `/api/predict` all three are prepared by the same `prepare_image` (so a 28x28 `pixels` digit drawn small or
off-centre is scaled and centred like a photo); the answer's `preprocessed` is what the network saw.
Both take `min_confidence` (0-1) as a query parameter or a multipart field.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from digitlab import __version__
from digitlab.errors import ModelError
from digitlab.inference.images import BATCH_MAX_PIXELS, MNIST_SIZE
from digitlab.web.answers import (
    HOST_RESPONSES,
    IMAGE_REQUEST_BODY,
    LOOK_RESPONSES,
    MIN_CONFIDENCE_PARAMETERS,
    PREDICT_RESPONSES,
    READ_RESPONSES,
    HealthAnswer,
    LookAnswer,
    PredictionAnswer,
    ReadingAnswer,
    RequestError,
)
from digitlab.web.batching import MAX_BATCH_SIZE, Batcher
from digitlab.web.classify import (
    IMAGE,
    JSON,
    check_image_memory,
    classify_batch,
    classify_one,
    look_one,
    min_confidence_from,
    read_one,
)
from digitlab.web.guards import AllowedHosts, BodyGuard, HostGuard

# Request bodies larger than this are refused with 413 before they are read (Content-Length) or as
# soon as they pass it (chunked bodies, counted while they stream in).
MAX_BODY_BYTES = 5 * 1024 * 1024
# A body not wholly arrived this long after the request's headers is refused with 408: a slow client
# must not hold a request (and the memory of its half-read body) for long. 5 MB in 10 s is 4 Mbit/s.
BODY_TIMEOUT_SECONDS = 10.0
# Large bodies (photos, scans) are prepared in worker threads, at most this many at once per
# process, so that decoding a big photo neither blocks the event loop nor holds up the small
# drawings, which go through the batcher (batching.py). Preparing is NumPy/Pillow work that mostly
# holds the GIL: on 2 cores, 4 threads cost about 35% more CPU per request than 2 (contention).
# The cap also bounds the memory large uploads take at once. Numbers (`/api/read`) are read in these
# threads too: 5-15 ms of CPU work each, whatever their size (each is cut into digits its own way).
IMAGE_THREADS = 2
# Bodies up to this size (a drawing, a scanned digit, JSON pixels) are batched.
BATCHED_BODY_BYTES = 256 * 1024
STATIC_DIR = Path(__file__).parent / "static"
# Swagger UI and ReDoc, from the fastapi-offline package (its static/ folder), served under this path
# so that /docs and /redoc work without internet.
DOCS_ASSETS = "/docs/assets"

log = logging.getLogger("digitlab.web")

# The page loads nothing from elsewhere; say so to the browser too.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; "
                               "script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
                               "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


class BatchedClassifier:
    """The classifier as the running app uses it: small bodies through the batcher (started and
    stopped with the app), large ones and numbers to read in at most `image_threads` worker threads
    at once."""

    def __init__(self, classifier, image_threads: int) -> None:
        self.classifier, self.image_threads = classifier, image_threads
        self.batcher: Batcher | None = None
        self.limiter: anyio.CapacityLimiter | None = None  # made inside the event loop

    async def start(self) -> None:
        # Compile the forward pass for every batch size the batcher may use before the first request
        # arrives, rather than during one.
        size = MNIST_SIZE
        for count in sorted({1, *(2 ** power for power in range(MAX_BATCH_SIZE.bit_length()))}):
            await anyio.to_thread.run_sync(self.classifier.probabilities, np.zeros((count, size, size), np.float32))
        self.batcher = Batcher(functools.partial(classify_batch, self.classifier))

    def stop(self) -> None:
        if self.batcher is not None:
            self.batcher.close()
            self.batcher = None

    async def classify(self, kind: str, data, size: int, min_confidence: float) -> bytes:
        """The answer for one payload (see `classify.py`); raises its RequestError."""
        # A small file may hold a large picture: that goes to the threads too, never holding up a batch.
        if (size <= BATCHED_BODY_BYTES and self.batcher is not None
                and (kind == JSON or check_image_memory(data) <= BATCH_MAX_PIXELS)):
            return await self.batcher.submit((kind, data, min_confidence))
        return await anyio.to_thread.run_sync(classify_one, self.classifier, kind, data, min_confidence,
                                              limiter=self._limiter())

    async def look(self, kind: str, data, min_confidence: float) -> bytes:
        """One digit, a number or neither in one payload (see `classify.look_one`); raises its RequestError."""
        return await anyio.to_thread.run_sync(look_one, self.classifier, kind, data, min_confidence,
                                              limiter=self._limiter())

    async def read(self, kind: str, data, min_confidence: float) -> bytes:
        """The number in one payload (see `classify.read_one`); raises its RequestError."""
        return await anyio.to_thread.run_sync(read_one, self.classifier, kind, data, min_confidence,
                                              limiter=self._limiter())

    def _limiter(self) -> anyio.CapacityLimiter:
        if self.limiter is None:
            self.limiter = anyio.CapacityLimiter(self.image_threads)
        return self.limiter


def create_app(classifier, cors_origins: Sequence[str] = (), allowed_hosts: AllowedHosts | None = None,
               max_body_bytes: int = MAX_BODY_BYTES, body_timeout_seconds: float = BODY_TIMEOUT_SECONDS,
               image_threads: int = IMAGE_THREADS) -> FastAPI:
    """Build the app around a loaded classifier.

    Args:
        classifier: a `digitlab.inference.predict.Classifier` (see `load_classifier`).
        cors_origins: origins allowed to call the API from other pages ("*" for any); none by default.
        allowed_hosts: the Host headers answered (others get 400 `bad_host`); default: this machine's
            local names (`AllowedHosts.for_address("127.0.0.1")`).
        max_body_bytes: larger request bodies get 413.
        body_timeout_seconds: a body not arrived this long after the headers gets 408.
        image_threads: large images prepared at once, in worker threads (small ones are batched).
    """
    predictor = BatchedClassifier(classifier, image_threads)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        await predictor.start()
        try:
            yield
        finally:
            predictor.stop()

    # docs_url=None, redoc_url=None: FastAPI's own pages load Swagger UI and ReDoc from a CDN.
    app = FastAPI(title="digitlab", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Draw a digit or a number at `/`; send one digit to `POST /api/predict`, a number "
                              "(a line of digits) to `POST /api/read`.")
    app.state.classifier, app.state.predictor = classifier, predictor
    _add_error_handlers(app)
    _add_page(app)
    _add_docs(app)
    _add_api(app, predictor, classifier.describe(), max_body_bytes)
    if cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Content-Type"])
    # The last added runs first: the Host is checked before anything else, then the body's size and time.
    app.add_middleware(BodyGuard, max_bytes=max_body_bytes, timeout_seconds=body_timeout_seconds)
    app.add_middleware(HostGuard, allowed=allowed_hosts or AllowedHosts.for_address("127.0.0.1"))
    return app


def _add_error_handlers(app: FastAPI) -> None:
    """Errors are always JSON, never an HTML page."""

    @app.exception_handler(RequestError)
    async def request_error(_request: Request, error: RequestError) -> JSONResponse:
        # After a 408 the rest of the body may still come, or never: close the connection.
        headers = {"Connection": "close"} if error.status == 408 else None
        return JSONResponse({"error": error.message, "code": error.code}, status_code=error.status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, error: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 400: "bad_request"}
        return JSONResponse({"error": str(error.detail), "code": codes.get(error.status_code, "http_error")},
                            status_code=error.status_code, headers=getattr(error, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": f"invalid request: {error.errors()}", "code": "bad_request"}, status_code=422)

    @app.exception_handler(ClientDisconnect)
    async def client_left(request: Request, _error: ClientDisconnect) -> JSONResponse:
        # Not a server error: one line in the log, no traceback. Nobody reads the answer.
        client = f"{request.client.host}:{request.client.port}" if request.client else "a client"
        log.warning("%s left before its request body arrived (%s %s)", client, request.method, request.url.path)
        return JSONResponse({"error": "the client left before its request body arrived", "code": "client_left"},
                            status_code=400)

    @app.exception_handler(ModelError)
    async def model_failed(_request: Request, error: ModelError) -> JSONResponse:
        # The model served failed on this request (outputs that are not numbers, a run-time error): the
        # server's fault, never the image's. One line in the log; the server keeps running.
        log.error("the model failed on a request: %s", error)
        return JSONResponse({"error": f"the model this server runs is broken, not the image: {error}",
                             "code": "model_failed"}, status_code=500)

    @app.exception_handler(Exception)
    async def unexpected_error(_request: Request, error: Exception) -> JSONResponse:
        log.exception("unexpected error while answering a request")
        return JSONResponse({"error": f"internal error ({type(error).__name__}); the server keeps running, "
                                      "see its log", "code": "internal"}, status_code=500)


def _add_page(app: FastAPI) -> None:
    page = (STATIC_DIR / "index.html").read_bytes()

    @app.get("/", include_in_schema=False)
    async def index() -> Response:
        return Response(page, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


# The docs pages may load only what this server serves: ReDoc's page otherwise fetches its logo from
# cdn.redoc.ly. Inline scripts and styles are how FastAPI's pages start Swagger UI and ReDoc; ReDoc
# runs a web worker from a blob: URL.
DOCS_POLICY = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
               "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'")


def _add_docs(app: FastAPI) -> None:
    """/docs (Swagger UI) and /redoc (ReDoc) on assets served from here: FastAPI's recipe for
    self-hosting them, with the files the fastapi-offline package ships."""
    app.mount(DOCS_ASSETS, StaticFiles(packages=[("fastapi_offline", "static")]), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_swagger_ui_html(openapi_url=f"{root}{app.openapi_url}", title="digitlab - Swagger UI",
                                   swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
                                   swagger_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
                                   # No badge that asks validator.swagger.io about the description.
                                   swagger_ui_parameters={"validatorUrl": None})
        page.headers["Content-Security-Policy"] = DOCS_POLICY
        return page

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_redoc_html(openapi_url=f"{root}{app.openapi_url}", title="digitlab - ReDoc",
                              redoc_js_url=f"{root}{DOCS_ASSETS}/redoc.standalone.js",
                              redoc_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png", with_google_fonts=False)
        page.headers["Content-Security-Policy"] = DOCS_POLICY
        return page


def _add_api(app: FastAPI, predictor: BatchedClassifier, description: dict[str, Any], max_body_bytes: int) -> None:
    @app.get("/api/health", summary="Is the server up, and which model does it serve?", response_model=HealthAnswer,
             responses=HOST_RESPONSES)
    async def health() -> dict[str, Any]:
        # The process id tells the workers of `digitlab serve --workers N` apart.
        return {"status": "ok", "model": description["name"], "process": os.getpid()}

    @app.get("/api/model", summary="The loaded model: name, training settings, metrics, input shape, classes.",
             responses=HOST_RESPONSES)
    async def model_info() -> dict[str, Any]:
        return description

    @app.post("/api/predict", summary="Classify one digit: an image upload, image bytes or JSON pixels.",
              description="The digit, or `digit: null` with the `reason` it is refused (`not a digit`, "
                          "`several digits` (with a `hint` to use `/api/read`), `unsure`); an answer (200) either "
                          "way, with the probabilities.",
              response_model=PredictionAnswer, responses=PREDICT_RESPONSES,
              openapi_extra={"requestBody": IMAGE_REQUEST_BODY, "parameters": MIN_CONFIDENCE_PARAMETERS})
    async def predict(request: Request) -> Response:
        kind, data, size, min_confidence = await _payload(request, max_body_bytes)
        return Response(await predictor.classify(kind, data, size, min_confidence), media_type="application/json")

    @app.post("/api/look", summary="What is on an image: one digit, a number, or neither (what the drawing page "
                                   "asks).",
              description="One answer from both networks: the image taken as one digit (`/api/predict`) and read as "
                          "a number (`/api/read`). Several digits read with more confidence than the one digit make a "
                          "`number` (touching digits, which look like no one digit); else a digit named makes a "
                          "`digit`; else `not a digit` or `unsure`. With what the network was shown (`seen`) and "
                          "every probability also as text.",
              response_model=LookAnswer, responses=LOOK_RESPONSES,
              openapi_extra={"requestBody": IMAGE_REQUEST_BODY, "parameters": MIN_CONFIDENCE_PARAMETERS})
    async def look(request: Request) -> Response:
        kind, data, _, min_confidence = await _payload(request, max_body_bytes)
        return Response(await predictor.look(kind, data, min_confidence), media_type="application/json")

    @app.post("/api/read", summary="Read a number (a line of digits): an image upload, image bytes or JSON pixels.",
              description="The digits read left to right (`text`), each with its box in the image's pixels and "
                          "its probabilities; marks that are not digits are left out, and a blank image reads "
                          "as `\"\"`.",
              response_model=ReadingAnswer, responses=READ_RESPONSES,
              openapi_extra={"requestBody": IMAGE_REQUEST_BODY, "parameters": MIN_CONFIDENCE_PARAMETERS})
    async def read(request: Request) -> Response:
        kind, data, _, min_confidence = await _payload(request, max_body_bytes)
        return Response(await predictor.read(kind, data, min_confidence), media_type="application/json")


async def _payload(request: Request, max_body_bytes: int) -> tuple[str, Any, int, float]:
    """The request's image (kind and data, as `classify.py` takes them), its size and `min_confidence`."""
    min_confidence = request.query_params.get("min_confidence")
    if min_confidence is not None:
        min_confidence_from(min_confidence)  # a bad query value is an error even when the form's field wins
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        data, form_min_confidence = await _read_upload(request, max_body_bytes)
        kind, size = IMAGE, len(data.getbuffer())
        min_confidence = form_min_confidence if form_min_confidence is not None else min_confidence
    elif content_type == "application/json" or content_type.endswith("+json"):
        kind, data = JSON, await request.body()
        size = len(data)
    else:
        body = await request.body()
        if not body:
            raise RequestError(400, "the request has no body; send an image file (as the body or as multipart "
                                    "field `file`) or JSON {\"pixels\": [[...] x 28]}", "no_image")
        kind, data, size = IMAGE, _named_bytes(body, "the request body"), len(body)
    return kind, data, size, min_confidence_from(min_confidence)


async def _read_upload(request: Request, max_bytes: int) -> tuple[io.BytesIO, str | None]:
    """The bytes of multipart field `file`, and the field `min_confidence` (None when not sent)."""
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
        min_confidence = form.get("min_confidence")
        if min_confidence is not None and not isinstance(min_confidence, str):
            raise RequestError(422, "the multipart field `min_confidence` is a file; send a number from 0 to 1",
                               "bad_min_confidence")
        return _named_bytes(data, upload.filename or "the uploaded file"), min_confidence
    finally:
        await form.close()


def _named_bytes(data: bytes, name: str) -> io.BytesIO:
    stream = io.BytesIO(data)
    stream.name = name  # error messages name the file
    return stream
