"""What the API answers: the answer shapes, the request errors with their statuses and codes, and the
request body and error answers as the OpenAPI description declares them.

Answers are written as JSON bytes directly (`classify.py`); the pydantic models here describe them
on `/docs` and `/openapi.json`. Every error is `{"error": "what is wrong and what to do", "code": "..."}`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from digitlab.inference.rejection import DEFAULT_MIN_CONFIDENCE


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
    digit: int | None = Field(description="The digit (class index) named, or null when the image is refused: "
                                           "not one digit, or not sure enough (see `reason`).", examples=[7])
    label: str | None = Field(description="The class's name from the run's config (for MNIST: the digit); null "
                                           "when `digit` is.", examples=["7"])
    reason: str | None = Field(description="Why no digit is named: `not a digit` (the model's own class for "
                                            "what is not a digit), `several digits` (ink much wider than one "
                                            "digit: send it to `/api/read`), `unsure` (the best digit's "
                                            "probability is under `min_confidence`); null when a digit is named.",
                               examples=[None, "several digits"])
    confidence: float = Field(description="The probability of the most probable digit (never of `not a "
                                          "digit`); under `min_confidence` the answer is `unsure`.",
                              examples=[0.97])
    hint: str | None = Field(None, description="What to do instead, for `several digits`: read the number.",
                             examples=["it looks like several digits: POST the image to /api/read"])
    probabilities: list[float] = Field(description="One probability per class, summing to 1 (refused or not).")
    preprocessed: list[list[float]] = Field(
        description="The 28x28 image the network saw, values in [0, 1], light ink on black (rows of columns).")


class ReadDigitAnswer(BaseModel):
    digit: int = Field(description="The digit (class index).", examples=[4])
    box: list[int] = Field(description="Where it is: [x0, y0, x1, y1] in the image's own pixels, x1 and y1 "
                                       "exclusive.", min_length=4, max_length=4, examples=[[32, 46, 104, 184]])
    probabilities: list[float] = Field(description="The model's probabilities for this digit, one per class.")


class ReadCharacterAnswer(BaseModel):
    character: str = Field(description="The character as in `text`: a digit, `.`, `,`, `-`, `/`, `:` or a space.",
                           examples=["."])
    kind: str = Field(description="`digit`, `point`, `comma`, `dash`, `slash`, `colon` or `space`.", examples=["point"])
    box: list[int] = Field(description="Where it is: [x0, y0, x1, y1] in the image's own pixels, x1 and y1 "
                                       "exclusive; a space's box is the gap.", min_length=4, max_length=4)
    confidence: float = Field(description="How sure the model is of it (1 for a space, measured from the gap).")


class ReadingAnswer(BaseModel):
    text: str = Field(description="The digits read, left to right, with the separators written between them "
                                  "(`12.50`, `2024-12-06`, `555 0199`; a reader's line model reads them); empty "
                                  "when no digit is read (a blank image, or only marks that are not digits).",
                      examples=["12.50"])
    digits: list[ReadDigitAnswer] = Field(description="Each digit read with its box, left to right (no separators).")
    confidence: float = Field(description="How sure the whole reading is: the product of each digit's and "
                                          "separator's probability (0 when nothing was read).", examples=[0.93])
    characters: list[ReadCharacterAnswer] = Field(description="Every character of `text`, left to right, with its "
                                                              "kind and box.")


class LookedDigitAnswer(ReadDigitAnswer):
    confidence_text: str = Field(description="This digit's probability as people read it (whole percents, never "
                                             "100% or 0% for what is not certain).", examples=["97%", ">99%"])


class LookedCharacterAnswer(ReadCharacterAnswer):
    confidence_text: str = Field(description="`confidence` as people read it.", examples=["97%"])


class LookedReadingAnswer(ReadingAnswer):
    digits: list[LookedDigitAnswer] = Field(description="Each digit read with its box, left to right.")
    confidence_text: str = Field(description="`confidence` as people read it.", examples=["93%"])
    characters: list[LookedCharacterAnswer] = Field(description="Every character of `text`, left to right, with "
                                                                "its kind and box.")


class BoxedAnswer(BaseModel):
    label: str = Field(description="What it reads as: the digit's class name, or the separator.", examples=["3"])
    kind: str = Field(description="`digit`, or the separator's kind (`point`, `comma`, `dash`, `slash`, `colon`).",
                      examples=["digit"])
    box: list[int] = Field(description="[x0, y0, x1, y1] in the image's own pixels, x1 and y1 exclusive.",
                           min_length=4, max_length=4, examples=[[34, 52, 86, 168]])
    confidence: float = Field(description="How sure the network is of it.", examples=[0.999])
    confidence_text: str = Field(description="`confidence` as people read it.", examples=[">99%"])


class SeenAnswer(BaseModel):
    kind: str = Field(description="`digit`: the classifier's 28x28 input; `line`: the line model's strip (a number "
                                  "read by a reader's line model); `digits`: each digit framed like MNIST, side by "
                                  "side (a number read by cutting the line).", examples=["line"])
    pixels: list[list[float]] = Field(description="The image, values in [0, 1], light ink on black (rows of "
                                                  "columns).")
    boxes: list[list[int]] = Field(description="A box [x0, y0, x1, y1] in these pixels around each digit read, "
                                               "left to right; empty for one digit.")


class LookAnswer(BaseModel):
    kind: str = Field(description="What is on the image: `digit` (one digit), `number` (several digits, read as "
                                  "one number), `not a digit`, or `unsure` (a digit, but less probable than "
                                  "`min_confidence`).", examples=["number"])
    text: str = Field(description="The digit's name or the number read; empty unless `kind` is `digit` or "
                                  "`number`.", examples=["38"])
    confidence: float = Field(description="How sure: the digit's probability, the number's (the product of its "
                                          "digits'), or for a refusal the best digit's.", examples=[0.998])
    confidence_text: str = Field(description="`confidence` as people read it: whole percents, never 100% or 0% for "
                                             "what is not certain.", examples=[">99%"])
    reason: str | None = Field(description="Why nothing is named (`not a digit`, `several digits`: marks that are "
                                           "not one digit and hold no number, `unsure`); null otherwise.")
    digit: int | None = Field(description="The image taken as one digit (as `/api/predict` answers): the digit "
                                           "named, or null.")
    label: str | None = Field(description="That digit's class name; null when `digit` is.")
    probabilities: list[float] = Field(description="The image taken as one digit: one probability per class.")
    probability_texts: list[str] = Field(description="`probabilities` as people read them.")
    boxes: list[BoxedAnswer] = Field(description="What to box on the image sent (its pixels), left to right: "
                                                 "the number's digits and separators, the one digit, none for a "
                                                 "refusal.")
    reading: LookedReadingAnswer = Field(description="The image read as a number (as `/api/read` answers), "
                                                     "whatever `kind` is.")
    seen: SeenAnswer = Field(description="What the network whose answer this is was shown.")


class HealthAnswer(BaseModel):
    status: str = Field(description="Always `ok` while the server answers.", examples=["ok"])
    model: str = Field(description="The name of the model served (its run folder's name).")
    process: int = Field(description="The server process's id: tells the workers of `--workers N` apart.")


class ErrorAnswer(BaseModel):
    error: str = Field(description="What is wrong and what to do.")
    code: str = Field(description="A short machine-readable kind: no_ink, bad_image, bad_json, bad_pixels, "
                                  "not_one_line, bad_min_confidence, no_image, bad_multipart, bad_request, "
                                  "bad_host, too_slow, too_large, not_found, method_not_allowed, model_failed (500: the "
                                  "model served gave non-numbers or failed; not the request's fault), internal.")


PIXELS_EXAMPLE = {"pixels": [[0] * 28 for _ in range(10)] + [[0] * 13 + [255, 255] + [0] * 13 for _ in range(12)]
                  + [[0] * 28 for _ in range(6)]}
# An image file: never empty (an empty body or file is 400 `no_image`).
IMAGE_FILE = {"type": "string", "format": "binary", "minLength": 1}
MIN_CONFIDENCE_SCHEMA = {"type": "number", "minimum": 0, "maximum": 1, "default": DEFAULT_MIN_CONFIDENCE}
MIN_CONFIDENCE_HELP = ("The least probability of the best digit to name it (0-1): under it the answer is `unsure` "
                       "(`/api/predict`), or the digit is left out of the number (`/api/read`).")
# `min_confidence` as a query parameter (any kind of body; a multipart field of that name wins).
MIN_CONFIDENCE_PARAMETERS = [{"name": "min_confidence", "in": "query", "required": False,
                              "description": MIN_CONFIDENCE_HELP, "schema": MIN_CONFIDENCE_SCHEMA}]
IMAGE_REQUEST_BODY = {
    "required": True,
    "description": "An image file as multipart field `file`, the image file as the body, or JSON pixels.",
    "content": {
        "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
            "file": IMAGE_FILE, "min_confidence": {**MIN_CONFIDENCE_SCHEMA, "description": MIN_CONFIDENCE_HELP}}}},
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


def _answer_example(**answer: Any) -> dict[str, Any]:
    """An example of /api/predict's answer, without its 784 `preprocessed` numbers (to keep /docs legible)."""
    return {"summary": "`preprocessed` (28 rows of 28 numbers) left out here", "value": answer}


def _error(description: str, **examples: str) -> dict[str, Any]:
    """One declared error answer: the ErrorAnswer model, a description and an example per code."""
    return {"model": ErrorAnswer, "description": description, "content": {"application/json": {"examples": {
        code: {"value": {"error": message, "code": code}} for code, message in examples.items()}}}}


BAD_MIN_CONFIDENCE = "min_confidence must be a number between 0 and 1 (a probability), got 'high'"
SEVERAL_DIGITS_HINT = "this looks like several digits; POST the image to /api/read to read it as a number"
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
                no_ink="no ink found", bad_min_confidence=BAD_MIN_CONFIDENCE),
    200: {"description": "A digit, or `digit: null` and the `reason` it is refused (with the probabilities).",
          "content": {"application/json": {"examples": {
              "a digit": _answer_example(digit=7, label="7", reason=None, confidence=0.97,
                                         probabilities=[0.0, 0.004, 0.01, 0.003, 0.0, 0.001, 0.0, 0.97, 0.002, 0.01]),
              "several digits": _answer_example(digit=None, label=None, reason="several digits", confidence=0.41,
                                                hint=SEVERAL_DIGITS_HINT, probabilities=[
                                                    0.02, 0.03, 0.41, 0.05, 0.3, 0.02, 0.01, 0.1, 0.04, 0.02]),
              "not a digit (a model with that class)": _answer_example(
                  digit=None, label=None, reason="not a digit", confidence=0.08,
                  probabilities=[0.08, 0.01, 0.01, 0.0, 0.0, 0.01, 0.02, 0.0, 0.03, 0.01, 0.83])}}}},
}
# /api/read: the same requests and errors, except that a blank image is no error (it reads as "").
READ_RESPONSES: dict[int | str, dict[str, Any]] = {
    **PREDICT_RESPONSES,
    422: _error("`bad_image`: not an image, truncated, or over 50 megapixels; `bad_pixels`: `pixels` not 28 rows "
                "of 28 numbers 0-255; `not_one_line`: far more pieces of ink than one line of digits has (a page "
                "of text, a drawing); `bad_min_confidence`: not a number from 0 to 1.",
                bad_image="the request body is not an image", bad_pixels="`pixels` must be 28 rows of 28 numbers",
                not_one_line="the request body: too much ink to be one line of digits (60 pieces); crop it to "
                             "the number",
                bad_min_confidence=BAD_MIN_CONFIDENCE),
    200: {"description": "The number read: its digits left to right, each with its box; `text` is empty when no "
                         "digit is read.",
          "content": {"application/json": {"examples": {
              "a number": {"value": {"text": "42", "confidence": 0.93, "digits": [
                  {"digit": 4, "box": [32, 46, 104, 184],
                   "probabilities": [0.0, 0.01, 0.0, 0.0, 0.96, 0.0, 0.0, 0.01, 0.0, 0.02]},
                  {"digit": 2, "box": [122, 50, 198, 178],
                   "probabilities": [0.0, 0.01, 0.97, 0.01, 0.0, 0.0, 0.0, 0.01, 0.0, 0.0]}], "characters": [
                  {"character": "4", "kind": "digit", "box": [32, 46, 104, 184], "confidence": 0.96},
                  {"character": "2", "kind": "digit", "box": [122, 50, 198, 178], "confidence": 0.97}]}},
              "nothing read": {"value": {"text": "", "digits": [], "confidence": 0.0, "characters": []}}}}}},
}
# /api/look: the requests and errors of /api/predict (a blank image is `no_ink`); one answer of three kinds.
LOOK_RESPONSES: dict[int | str, dict[str, Any]] = {
    **PREDICT_RESPONSES,
    200: {"description": "One digit, a number, or neither, with what the network saw (`seen`: `pixels` left out in "
                         "these examples).",
          "content": {"application/json": {"examples": {
              "a number": {"value": {
                  "kind": "number", "text": "38", "confidence": 0.998, "confidence_text": ">99%", "reason": None,
                  "digit": 8, "label": "8", "probabilities": [0.0, 0.0, 0.0, 0.3, 0.0, 0.0, 0.0, 0.0, 0.69, 0.01],
                  "probability_texts": ["0%", "0%", "0%", "30%", "0%", "0%", "0%", "0%", "69%", "1%"],
                  "boxes": [{"label": "3", "kind": "digit", "box": [34, 52, 86, 168], "confidence": 0.999,
                             "confidence_text": ">99%"},
                            {"label": "8", "kind": "digit", "box": [84, 52, 158, 166], "confidence": 0.999,
                             "confidence_text": ">99%"}],
                  "reading": {"text": "38", "confidence": 0.998, "confidence_text": ">99%", "digits": [],
                              "characters": []},
                  "seen": {"kind": "line", "pixels": [], "boxes": [[2, 2, 16, 22], [14, 2, 34, 22]]}}},
              "not a digit": {"value": {
                  "kind": "not a digit", "text": "", "confidence": 0.08, "confidence_text": "8%",
                  "reason": "not a digit", "digit": None, "label": None,
                  "probabilities": [0.08, 0.01, 0.01, 0.0, 0.0, 0.01, 0.02, 0.0, 0.03, 0.01, 0.83],
                  "probability_texts": ["8%", "1%", "1%", "0%", "0%", "1%", "2%", "0%", "3%", "1%", "83%"],
                  "boxes": [], "reading": {"text": "", "confidence": 0.0, "confidence_text": "0%", "digits": [],
                                           "characters": []},
                  "seen": {"kind": "digit", "pixels": [], "boxes": []}}}}}}},
}
