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
