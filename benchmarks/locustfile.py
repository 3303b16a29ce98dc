"""Locust users for the server's load test (benchmarks/load_test.py runs them against `digitlab serve`).

Three kinds of client at once, in the proportions of their weights:

- `WellFormedUser`: digits as PNG uploads, raw PNG bytes and JSON pixels to /api/predict, numbers to
  /api/read, and /api/health; every answer must be a 200 with an answer in it;
- `BadInputUser`: a 5,001-digit integer pixel, bytes that are no image, a 16-bit PNG bomb, a 6 MB
  upload (over the 5 MB limit), a Host the server was not started for; each must get its own 4xx;
- `SlowClientUser`: headers sent a byte at a time and never finished, a connection that sends
  nothing, a body that stops half way; each must be cut off by the server (408 or closed).

Request names start with "ok:", "bad:" or "slow:". Every request's outcome (name, response time,
error, when it ended) is written as JSON to $LOAD_TEST_REPORT when Locust stops, for load_test.py to
summarise.
"""

from __future__ import annotations

import io
import json
import os
import socket
import time
from urllib.parse import urlsplit

import numpy as np
from locust import HttpUser, between, events, task
from PIL import Image, ImageDraw

REPORT_VARIABLE = "LOAD_TEST_REPORT"


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _digit(text: str, size: tuple[int, int] = (160, 160)) -> Image.Image:
    """Dark digits drawn on light paper with Pillow's own font, scaled up (no font files needed)."""
    small = Image.new("L", (8 * len(text) + 8, 16), 255)
    ImageDraw.Draw(small).text((4, 2), text, fill=0)
    return small.resize(size, Image.Resampling.BILINEAR)


DIGIT_PNG = _png(_digit("7"))
NUMBER_PNG = _png(_digit("42", (320, 160)))
DIGIT_PIXELS = json.dumps({"pixels": (255 - np.asarray(_digit("3").resize((28, 28)))).astype(int).tolist()})
HUGE_INTEGER = ('{"pixels": [[' + "9" * 5001 + ", 0" * 27 + "]" + (", [" + ", ".join(["0"] * 28) + "]") * 27 + "]}")
BOMB_PNG = _png(Image.fromarray(np.zeros((7000, 7000), dtype=np.uint16)))  # ~100 KB, ~470 MB to prepare
OVERSIZED = bytes(6 * 1024 * 1024)


def _expect(response, statuses: tuple[int, ...], check=None) -> None:
    """Mark a `catch_response` request failed unless its status (and `check` of its JSON) is as expected."""
    if response.status_code not in statuses:
        response.failure(f"status {response.status_code}: {response.text[:120]}")
        return
    try:
        answer = response.json()
    except ValueError:
        response.failure(f"not JSON: {response.text[:120]}")
        return
    if check is not None and not check(answer):
        response.failure(f"unexpected answer: {response.text[:120]}")
    else:
        response.success()


def _answered(answer) -> bool:
    return "probabilities" in answer


class WellFormedUser(HttpUser):
    """A client of the drawing page or the API, sending what it should."""

    weight = 8
    wait_time = between(0.05, 0.25)

    @task(4)
    def predict_upload(self) -> None:
        with self.client.post("/api/predict", files={"file": ("seven.png", DIGIT_PNG, "image/png")},
                              name="ok: predict (upload)", catch_response=True) as response:
            _expect(response, (200,), _answered)

    @task(3)
    def predict_bytes(self) -> None:
        with self.client.post("/api/predict", data=DIGIT_PNG, headers={"Content-Type": "image/png"},
                              name="ok: predict (bytes)", catch_response=True) as response:
            _expect(response, (200,), _answered)

    @task(3)
    def predict_pixels(self) -> None:
        with self.client.post("/api/predict", data=DIGIT_PIXELS, headers={"Content-Type": "application/json"},
                              name="ok: predict (JSON pixels)", catch_response=True) as response:
            _expect(response, (200,), _answered)

    @task(2)
    def read(self) -> None:
        with self.client.post("/api/read", data=NUMBER_PNG, headers={"Content-Type": "image/png"},
                              name="ok: read", catch_response=True) as response:
            _expect(response, (200,), lambda answer: "text" in answer)

    @task(1)
    def health(self) -> None:
        with self.client.get("/api/health", name="ok: health", catch_response=True) as response:
            _expect(response, (200,), lambda answer: answer.get("status") == "ok")


class BadInputUser(HttpUser):
    """A careless or hostile client: every request must get its own error answer, promptly."""

    weight = 1
    wait_time = between(0.1, 0.5)

    @task(3)
    def huge_integer(self) -> None:
        with self.client.post("/api/predict", data=HUGE_INTEGER, headers={"Content-Type": "application/json"},
                              name="bad: 5,001-digit integer", catch_response=True) as response:
            _expect(response, (422,), lambda answer: answer["code"] == "bad_pixels")

    @task(3)
    def not_an_image(self) -> None:
        with self.client.post("/api/predict", data=b"hello, no picture", headers={"Content-Type": "image/png"},
                              name="bad: not an image", catch_response=True) as response:
            _expect(response, (422,), lambda answer: answer["code"] == "bad_image")

    @task(2)
    def bomb(self) -> None:
        with self.client.post("/api/predict", files={"file": ("bomb.png", BOMB_PNG, "image/png")},
                              name="bad: 16-bit PNG bomb", catch_response=True) as response:
            _expect(response, (422,), lambda answer: answer["code"] == "bad_image")

    @task(1)
    def oversized(self) -> None:
        # python-requests sends the whole body before it reads the answer, as urllib does.
        with self.client.post("/api/predict", data=OVERSIZED, headers={"Content-Type": "image/png"},
                              name="bad: 6 MB upload", catch_response=True) as response:
            _expect(response, (413,), lambda answer: answer["code"] == "too_large")

    @task(1)
    def bad_host(self) -> None:
        with self.client.get("/api/health", headers={"Host": "evil.example"}, name="bad: foreign Host",
                             catch_response=True) as response:
            _expect(response, (400,), lambda answer: answer["code"] == "bad_host")


class SlowClientUser(HttpUser):
    """Clients that hold a connection without finishing a request: the server must cut each off."""

    weight = 1
    wait_time = between(0.1, 0.3)

    def _connect(self) -> socket.socket:
        address = urlsplit(self.host)
        return socket.create_connection((address.hostname, address.port), timeout=30)

    def _report(self, name: str, started: float, error: str | None) -> None:
        events.request.fire(request_type="SLOW", name=name, response_time=(time.monotonic() - started) * 1000,
                            response_length=0, exception=RuntimeError(error) if error else None, context={})

    @staticmethod
    def _wait_for_cut(sock: socket.socket, trickle: bytes = b"") -> tuple[bytes, str | None]:
        """Trickle bytes (if any) until the server answers or closes; its answer, or why it is wrong."""
        sock.settimeout(0.5)
        received, deadline = b"", time.monotonic() + 60
        while time.monotonic() < deadline:
            if trickle:
                try:
                    sock.send(trickle)
                except OSError:
                    return received, None  # closed by the server
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return received, None
            if not data:
                return received, None
            received += data
        return received, "the server never cut the connection off"

    @task
    def slow_headers(self) -> None:
        started = time.monotonic()
        with self._connect() as sock:
            sock.sendall(b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            answer, error = self._wait_for_cut(sock, trickle=b"a")
        if error is None and answer and not answer.startswith(b"HTTP/1.1 408"):
            error = f"answered {answer[:40]!r}"
        self._report("slow: headers a byte at a time", started, error)

    @task
    def idle(self) -> None:
        started = time.monotonic()
        with self._connect() as sock:
            _answer, error = self._wait_for_cut(sock)
        self._report("slow: connection that sends nothing", started, error)

    @task
    def slow_body(self) -> None:
        started = time.monotonic()
        with self._connect() as sock:
            sock.sendall(b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
                         b"Content-Length: 1000\r\n\r\n\x89PNG")  # 4 bytes of 1,000, then nothing
            answer, error = self._wait_for_cut(sock)
        if error is None and not answer.startswith(b"HTTP/1.1 408"):
            error = f"answered {answer[:40]!r}"
        self._report("slow: body that stops", started, error)


_outcomes: list[tuple[str, float, str | None, float]] = []  # (name, milliseconds, error, when it ended)


@events.request.add_listener
def _record(request_type, name, response_time, response_length, exception=None, **_other) -> None:
    _outcomes.append((name, response_time, None if exception is None else str(exception)[:200], time.time()))


@events.quitting.add_listener
def _write_report(**_other) -> None:
    path = os.environ.get(REPORT_VARIABLE)
    if path:
        with open(path, "w") as report:
            json.dump(_outcomes, report)
