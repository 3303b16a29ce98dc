"""Dynamic batching (web/batching.py) and the batched classification behind the API (web/classify.py)."""

import asyncio
import io
import json
import threading
import time

import httpx
import numpy as np
import pytest
from PIL import Image

from digitlab.data.synthetic import digit_picture
from digitlab.inference import loading
from digitlab.inference.images import read_image
from digitlab.web import classify
from digitlab.web import server as web_server
from digitlab.web.batching import Batcher


def png(image: Image.Image) -> io.BytesIO:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    buffer.seek(0)
    return buffer


# --- the batcher ----------------------------------------------------------------------------


def submit_all(batcher: Batcher, payloads) -> list:
    """Submit every payload at once from one event loop; each request's answer or exception."""
    async def main():
        return await asyncio.gather(*(batcher.submit(payload) for payload in payloads), return_exceptions=True)
    return asyncio.run(main())


def test_requests_waiting_together_are_one_batch_and_each_gets_its_own_answer():
    seen_batches = []
    first_call = threading.Event()

    def classify_batch(payloads):
        if not first_call.is_set():
            first_call.set()
            time.sleep(0.2)  # the others queue up meanwhile
        seen_batches.append(list(payloads))
        return [f"answer {payload}".encode() for payload in payloads]

    batcher = Batcher(classify_batch, max_batch_size=8)
    try:
        answers = submit_all(batcher, range(20))
    finally:
        batcher.close()
    assert answers == [f"answer {number}".encode() for number in range(20)]
    assert sorted(payload for batch in seen_batches for payload in batch) == list(range(20))
    assert max(len(batch) for batch in seen_batches) == 8  # batched, and never above the maximum
    assert sum(size * count for size, count in batcher.sizes().items()) == 20


def test_an_exception_for_one_payload_fails_only_its_request():
    def classify_batch(payloads):
        return [ValueError(f"bad {payload}") if payload % 3 == 0 else b"ok" for payload in payloads]

    batcher = Batcher(classify_batch)
    try:
        answers = submit_all(batcher, range(7))
    finally:
        batcher.close()
    for payload, answer in enumerate(answers):
        if payload % 3 == 0:
            assert isinstance(answer, ValueError) and str(answer) == f"bad {payload}"
        else:
            assert answer == b"ok"


def test_a_failing_batch_fails_its_requests_and_the_worker_keeps_going():
    calls = []

    def classify_batch(payloads):
        calls.append(len(payloads))
        if len(calls) == 1:
            raise RuntimeError("a bug")
        return [b"ok"] * len(payloads)

    batcher = Batcher(classify_batch)
    try:
        first = submit_all(batcher, [1])
        second = submit_all(batcher, [2, 3])
    finally:
        batcher.close()
    assert isinstance(first[0], RuntimeError) and "a bug" in str(first[0])
    assert second == [b"ok", b"ok"]


def test_a_wrong_number_of_outcomes_is_an_error_not_a_hang():
    batcher = Batcher(lambda payloads: [b"only one"])
    try:
        answers = submit_all(batcher, [1])  # one payload: fine
        assert answers == [b"only one"]
        answers = asyncio.run(asyncio.wait_for(_submit_two(batcher), timeout=10))
    finally:
        batcher.close()
    assert all(isinstance(answer, (RuntimeError, bytes)) for answer in answers)


async def _submit_two(batcher):
    # Two at once may land in one batch (RuntimeError for both) or in two (b"only one" each).
    return await asyncio.gather(batcher.submit(1), batcher.submit(2), return_exceptions=True)


def test_a_closed_batcher_refuses_new_work_and_invalid_sizes_are_refused():
    batcher = Batcher(lambda payloads: [b""] * len(payloads))
    batcher.close()
    with pytest.raises(RuntimeError, match="closed"):
        submit_all_or_raise(batcher, [1])
    with pytest.raises(ValueError, match="at least 1"):
        Batcher(lambda payloads: [], max_batch_size=0)


def submit_all_or_raise(batcher, payloads):
    async def main():
        return [await batcher.submit(payload) for payload in payloads]
    return asyncio.run(main())


# --- batched classification -----------------------------------------------------------------


@pytest.fixture(scope="module")
def classifier(tiny_run):
    return loading.load_classifier(tiny_run)


def test_a_mixed_batch_gives_each_request_what_it_would_get_alone(classifier):
    pixels = (np.asarray(digit_picture(3).convert("L").resize((28, 28))) < 128).astype(int) * 255
    payloads = [
        (classify.IMAGE, png(digit_picture(7)), 0.5),
        (classify.IMAGE, png(Image.new("L", (64, 64), 255)), 0.5),  # blank: no ink
        (classify.IMAGE, io.BytesIO(b"not an image"), 0.5),
        (classify.JSON, b'{"pixels": [', 0.5),
        (classify.JSON, json.dumps({"pixels": pixels.tolist()}).encode(), 0.5),
        (classify.JSON, json.dumps({"pixels": [[300] * 28] * 28}).encode(), 0.5),
        (classify.IMAGE, png(digit_picture(1)), 0.5),
    ]
    batched = classify.classify_batch(classifier, payloads)
    assert len(batched) == len(payloads)
    expected_codes = [None, "no_ink", "bad_image", "bad_json", None, "bad_pixels", None]
    for (kind, data, threshold), outcome, code in zip(payloads, batched, expected_codes, strict=True):
        if hasattr(data, "seek"):
            data.seek(0)
        if code is None:
            alone = json.loads(classify.classify_one(classifier, kind, data, threshold))
            answer = json.loads(outcome)
            assert answer["digit"] == alone["digit"] and answer["label"] == alone["label"]
            assert answer["reason"] == alone["reason"] and answer["confidence"] == pytest.approx(alone["confidence"])
            np.testing.assert_allclose(answer["probabilities"], alone["probabilities"], atol=1e-5)
            assert answer["preprocessed"] == alone["preprocessed"]  # prepared exactly as alone
        else:
            assert isinstance(outcome, classify.RequestError) and outcome.code == code, outcome
            with pytest.raises(classify.RequestError) as raised:
                classify.classify_one(classifier, kind, data, threshold)
            assert raised.value.code == code and raised.value.status == outcome.status


def test_many_concurrent_requests_on_the_real_server_each_get_their_own_answer(classifier):
    bodies = [png(digit_picture(seed)).getvalue() for seed in range(40)]
    predictions = [classifier.predict(Image.open(io.BytesIO(body))) for body in bodies]
    # min_confidence=0: the tiny model's best guess, however unsure (unless the ink is too wide for one digit).
    expected = [classifier.decide(prediction.probabilities, prediction.images, 0)[0].digit for prediction in predictions]
    answers: list = [None] * len(bodies)

    with web_server.running(classifier) as address:
        def send(index):
            with httpx.Client(base_url=address, timeout=60) as client:
                answers[index] = client.post("/api/predict", params={"min_confidence": 0}, content=bodies[index])

        threads = [threading.Thread(target=send, args=(index,)) for index in range(len(bodies))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert all(answer is not None and answer.status_code == 200 for answer in answers)
    assert [answer.json()["digit"] for answer in answers] == expected


def test_an_answer_for_a_closed_event_loop_does_not_stop_the_worker():
    release = threading.Event()

    def classify_batch(payloads):
        release.wait(10)
        return [b"ok"] * len(payloads)

    batcher = Batcher(classify_batch)
    try:
        loop = asyncio.new_event_loop()
        loop.create_task(batcher.submit("from a loop that closes"))
        loop.run_until_complete(asyncio.sleep(0.05))  # the job is queued
        for task in asyncio.all_tasks(loop):
            task.cancel()
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()
        release.set()
        answers = asyncio.run(asyncio.wait_for(_submit_two(batcher), timeout=10))
        assert answers == [b"ok", b"ok"]  # the worker is still there (a dead one times out)
    finally:
        release.set()
        batcher.close()


# --- one request's bad data never fails its batch -------------------------------------------------


def test_a_payload_that_breaks_the_whole_batch_fails_only_its_own_request():
    """classify_batch raising for the whole batch (one poisoned payload): each is run alone, so only
    the poisoned request fails."""
    def classify_batch(payloads):
        if "poison" in payloads:
            raise ValueError("poisoned")
        return [f"answer {payload}".encode() for payload in payloads]

    release = threading.Event()
    first = True

    def slow_first(payloads):
        nonlocal first
        if first:
            first = False
            release.wait(5)  # the others queue up, to share one batch
        return classify_batch(payloads)

    batcher = Batcher(slow_first)
    try:
        async def main():
            waiting = [asyncio.ensure_future(batcher.submit("warm"))]
            await asyncio.sleep(0.05)
            waiting += [asyncio.ensure_future(batcher.submit(payload)) for payload in ("a", "poison", "b", "c")]
            await asyncio.sleep(0.05)
            release.set()
            return await asyncio.gather(*waiting, return_exceptions=True)
        answers = asyncio.run(main())
    finally:
        batcher.close()
    assert answers[0] == b"answer warm"
    assert answers[1] == b"answer a" and answers[3] == b"answer b" and answers[4] == b"answer c"
    assert isinstance(answers[2], ValueError) and "poisoned" in str(answers[2])
    assert max(batcher.sizes()) == 4  # the four did share a batch


def huge_integer_body() -> bytes:
    """{"pixels": ...} with one pixel of 5,001 digits: over Python's int-string limit (4,300 digits)."""
    rows = [b"[" + b", ".join([b"0"] * 28) + b"]"] * 28
    rows[0] = b"[" + b"9" * 5001 + b", 0" * 27 + b"]"
    return b'{"pixels": [' + b", ".join(rows) + b"]}"


def test_an_integer_of_5001_digits_is_its_own_422_and_the_batch_is_answered(classifier):
    payloads = [(classify.IMAGE, png(digit_picture(7)), 0.5), (classify.JSON, huge_integer_body(), 0.5),
                (classify.IMAGE, png(digit_picture(1)), 0.5)]
    outcomes = classify.classify_batch(classifier, payloads)
    assert isinstance(outcomes[1], classify.RequestError), outcomes[1]
    assert outcomes[1].status == 422 and outcomes[1].code == "bad_pixels" and "digits" in outcomes[1].message
    for outcome in (outcomes[0], outcomes[2]):
        assert isinstance(outcome, bytes) and "probabilities" in json.loads(outcome)
    with pytest.raises(classify.RequestError) as raised:  # alone, and by way of /api/read's path
        classify.read_one(classifier, classify.JSON, huge_integer_body())
    assert raised.value.code == "bad_pixels"


class FailsOnOneImage:
    """The real classifier, except that its forward pass fails on any batch holding `poison`."""

    def __init__(self, classifier, poison: np.ndarray) -> None:
        self.classifier, self.poison, self.calls = classifier, poison, []

    def probabilities(self, images):
        self.calls.append(len(images))
        if any(np.array_equal(image, self.poison) for image in images):
            raise RuntimeError("the model failed on this image")
        return self.classifier.probabilities(images)

    def __getattr__(self, name):
        return getattr(self.classifier, name)


def test_a_model_failure_on_one_image_fails_only_that_request(classifier):
    from digitlab.inference.images import prepare_image

    poison_picture = digit_picture(4)
    failing = FailsOnOneImage(classifier, prepare_image(poison_picture))
    payloads = [(classify.IMAGE, png(digit_picture(7)), 0.5), (classify.IMAGE, png(poison_picture), 0.5),
                (classify.IMAGE, png(digit_picture(1)), 0.5)]
    outcomes = classify.classify_batch(failing, payloads)
    assert failing.calls[0] == 3  # tried as one batch first
    assert isinstance(outcomes[1], RuntimeError) and "this image" in str(outcomes[1])
    assert isinstance(outcomes[0], bytes) and isinstance(outcomes[2], bytes)


def sixteen_bit_png(width: int, height: int) -> io.BytesIO:
    return png(Image.fromarray(np.zeros((height, width), dtype=np.uint16)))


def test_image_memory_is_judged_in_bytes_from_the_header():
    bomb = sixteen_bit_png(7000, 7000)
    assert len(bomb.getvalue()) < 1024 * 1024  # a small file...
    with pytest.raises(classify.RequestError) as raised:  # ...that would take ~470 MB to prepare
        classify.check_image_memory(bomb)
    assert raised.value.status == 422 and raised.value.code == "bad_image"
    assert "7000x7000" in raised.value.message and "I;16" in raised.value.message and "MB" in raised.value.message
    assert bomb.tell() == 0  # left where it was found, for decoding
    # The same size at 8 bits is within the limit (as its pixel count always was); so is a smaller 16-bit one.
    assert classify.check_image_memory(png(Image.new("L", (7000, 7000)))) == 49_000_000
    assert classify.check_image_memory(sixteen_bit_png(2000, 2000)) == 4_000_000
    # A large JPEG is judged as it is decoded: at reduced scale, in grayscale.
    photo = io.BytesIO()
    Image.new("RGB", (8000, 6000), (200, 190, 180)).save(photo, format="JPEG")
    photo.seek(0)
    decoded = read_image(photo)
    photo.seek(0)
    assert decoded.size[0] < 8000 and classify.check_image_memory(photo) == decoded.size[0] * decoded.size[1]
    # Not an image: left to the decoder, which says what is wrong.
    assert classify.check_image_memory(io.BytesIO(b"not an image")) == 0
    # And a lower limit refuses more.
    with pytest.raises(classify.RequestError):
        classify.check_image_memory(png(Image.new("L", (2000, 2000))), max_bytes=1024 * 1024)
