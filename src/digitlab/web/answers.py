"""What the API answers: the answer shapes, the request errors with their statuses and codes, and the
request body and error answers as the OpenAPI description declares them.

Answers are written as JSON bytes directly (`classify.py`); the pydantic models here describe them
on `/docs` and `/openapi.json`. Every error is `{"error": "what is wrong and what to do", "code": "..."}`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class RequestError(Exception):
    """A request the API cannot answer: carries the HTTP status, a message and a short code."""

    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


class BodyTooLarge(RequestError):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is over the limit of {limit / 1024 / 1024:g} MB; "
                              "send a smaller image (a digit needs only a few kilobytes)", "too_large")


class BodyTooSlow(RequestError):
    def __init__(self, seconds: float) -> None:
        super().__init__(408, f"the request body did not arrive within {seconds:g} s; send it at once (a digit "
                              "needs only a few kilobytes)", "too_slow")


class PredictionAnswer(BaseModel):
    digit: int = Field(description="The most probable class (for MNIST: the digit).", examples=[7])
    label: str = Field(description="The class's name from the run's config (for MNIST: the digit).", examples=["7"])
    probabilities: list[float] = Field(description="One probability per class, summing to 1.")
    preprocessed: list[list[float]] = Field(
        description="The 28x28 image the network saw, values in [0, 1], light ink on black (rows of columns).")


class HealthAnswer(BaseModel):
    status: str = Field(description="Always `ok` while the server answers.", examples=["ok"])
    model: str = Field(description="The name of the model served (its run folder's name).")
    process: int = Field(description="The server process's id: tells the workers of `--workers N` apart.")


class ErrorAnswer(BaseModel):
    error: str = Field(description="What is wrong and what to do.")
    code: str = Field(description="A short machine-readable kind: no_ink, bad_image, bad_json, bad_pixels, "
                                  "no_image, bad_multipart, bad_request, bad_host, too_slow, too_large, "
                                  "not_found, method_not_allowed, internal.")


PIXELS_EXAMPLE = {"pixels": [[0] * 28 for _ in range(10)] + [[0] * 13 + [255, 255] + [0] * 13 for _ in range(12)]
                  + [[0] * 28 for _ in range(6)]}
# An image file: never empty (an empty body or file is 400 `no_image`).
IMAGE_FILE = {"type": "string", "format": "binary", "minLength": 1}
PREDICT_REQUEST_BODY = {
    "required": True,
    "description": "An image file as multipart field `file`, the image file as the body, or JSON pixels.",
    "content": {
        "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {"file": IMAGE_FILE}}},
        "application/json": {
            "schema": {"type": "object", "required": ["pixels"], "properties": {"pixels": {
                "type": "array", "minItems": 28, "maxItems": 28,
                "description": "28 rows of 28 grayscale values 0-255, white on black or dark on light",
                "items": {"type": "array", "minItems": 28, "maxItems": 28,
                          "items": {"type": "number", "minimum": 0, "maximum": 255}}}}},
            "example": PIXELS_EXAMPLE},
        "image/png": {"schema": IMAGE_FILE},
        "image/jpeg": {"schema": IMAGE_FILE},
        "application/octet-stream": {"schema": IMAGE_FILE},
    },
}


def _error(description: str, **examples: str) -> dict[str, Any]:
    """One declared error answer: the ErrorAnswer model, a description and an example per code."""
    return {"model": ErrorAnswer, "description": description, "content": {"application/json": {"examples": {
        code: {"value": {"error": message, "code": code}} for code, message in examples.items()}}}}


BAD_HOST = "the Host header names a host this server was not started for (see `digitlab serve --allowed-host`)"
# Any request can meet these (the Host is checked before anything else).
HOST_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _error("`bad_host`: the Host header is not one this server answers to (DNS rebinding protection).",
                bad_host=BAD_HOST),
}
PREDICT_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _error("`bad_json`: malformed JSON or no `pixels`; `no_image`: an empty body or no multipart field "
                "`file`; `bad_multipart`: a body that is not multipart; `bad_request`: an invalid "
                "Content-Length; `bad_host`: a Host this server does not answer to.",
                bad_json="the body is not valid JSON", no_image="the request has no body",
                bad_multipart="the multipart body cannot be read", bad_host=BAD_HOST),
    408: _error("`too_slow`: the body did not arrive in time (10 s by default).",
                too_slow="the request body did not arrive within 10 s"),
    413: _error("`too_large`: the body is over 5 MB (refused from its Content-Length before it is read).",
                too_large="the request body is over the limit of 5 MB"),
    422: _error("`bad_image`: not an image, truncated, or over 50 megapixels; `bad_pixels`: `pixels` not 28 rows "
                "of 28 numbers 0-255; `no_ink`: a blank image (no guess).",
                bad_image="the request body is not an image", bad_pixels="`pixels` must be 28 rows of 28 numbers",
                no_ink="no ink found"),
}
