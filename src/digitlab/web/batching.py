"""Dynamic batching for the API: the digits that arrive together are prepared and classified together.

One request alone costs about 0.5 ms to prepare and 0.1-0.2 ms for the model call, most of it
per-call overhead of many small NumPy operations and one compiled-function dispatch. A batch pays
that overhead once: with 8-16 digits together, preparing costs about 0.3 ms per digit and the
model call a few microseconds per digit (measured on 2 cores; `benchmarks/serve_speed.py` shows
the effect on the whole server).

A batch is whatever is waiting when the worker thread becomes free: nothing ever waits for a batch
to fill, so a lone request is answered as fast as before, and under load the batches grow by
themselves. Each digit is prepared exactly as alone (`images.prepare_image_batch`), and one bad
image only fails its own request.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any

log = logging.getLogger("digitlab.web")

# Largest batch one worker call takes (more waiting requests go in the next batch).
MAX_BATCH_SIZE = 32


@dataclasses.dataclass(frozen=True)
class _Job:
    # The request's payload, handed to `classify_batch` as is.
    payload: Any
    # Settled with the answer bytes or the request's exception.
    future: asyncio.Future
    # The event loop the future belongs to (results are handed back through it: thread-safe).
    loop: asyncio.AbstractEventLoop


_STOP = object()


class Batcher:
    """Runs `classify_batch(payloads) -> [answer bytes or exception, ...]` in one worker thread,
    on every payload waiting at the time, and hands each request its own outcome.

    Use `await batcher.submit(payload)` from the event loop; `close()` stops the thread.
    """

    def __init__(self, classify_batch: Callable[[Sequence[Any]], list], max_batch_size: int = MAX_BATCH_SIZE,
                 name: str = "digitlab-batcher") -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
        self.classify_batch, self.max_batch_size = classify_batch, max_batch_size
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        # Batch sizes seen so far, for `sizes()` (how well batching works under the current load).
        self._size_counts: dict[int, int] = {}
        self._closed = False
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    async def submit(self, payload: Any) -> bytes:
        """The answer for one payload; raises what `classify_batch` gave for it."""
        if self._closed:
            raise RuntimeError("the batcher is closed")
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put(_Job(payload, future, loop))
        return await future

    def sizes(self) -> dict[int, int]:
        """How many batches of each size have run."""
        return dict(sorted(self._size_counts.items()))

    def close(self, timeout: float = 10.0) -> None:
        """Finish the batches already queued, then stop the worker thread."""
        if not self._closed:
            self._closed = True
            self._queue.put(_STOP)
            self._thread.join(timeout)

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is _STOP:
                return
            jobs = [job]
            stop = False
            while len(jobs) < self.max_batch_size:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is _STOP:
                    stop = True
                    break
                jobs.append(job)
            self._size_counts[len(jobs)] = self._size_counts.get(len(jobs), 0) + 1
            try:
                outcomes = self._run(jobs)
            except Exception as error:  # noqa: BLE001  (one payload must not fail the others: each alone)
                if len(jobs) == 1:
                    log.exception("a request failed in the batcher")
                    outcomes = [error]
                else:
                    log.warning("a batch of %d failed; running each request alone", len(jobs), exc_info=True)
                    outcomes = self._run_each(jobs)
            for job, outcome in zip(jobs, outcomes, strict=True):
                # RuntimeError: that request's event loop has closed, so nobody waits for it.
                with contextlib.suppress(RuntimeError):
                    job.loop.call_soon_threadsafe(_settle, job.future, outcome)
            if stop:
                return

    def _run_each(self, jobs: list[_Job]) -> list:
        """Each job's outcome, from a batch of its own."""
        outcomes = []
        for job in jobs:
            _rewind(job.payload)
            try:
                outcomes.extend(self._run([job]))
            except Exception as error:  # noqa: BLE001  (a bug fails this request, not the thread)
                log.exception("a request failed in the batcher")
                outcomes.append(error)
        return outcomes

    def _run(self, jobs: list[_Job]) -> list:
        outcomes = self.classify_batch([job.payload for job in jobs])
        if len(outcomes) != len(jobs):
            raise RuntimeError(f"classify_batch gave {len(outcomes)} outcomes for {len(jobs)} payloads")
        return outcomes


def _rewind(payload: Any) -> None:
    """Put any file objects in a payload back at their start, to be read again."""
    for part in payload if isinstance(payload, tuple) else (payload,):
        if hasattr(part, "seek"):
            part.seek(0)


def _settle(future: asyncio.Future, outcome: Any) -> None:
    if future.done():  # the request was cancelled (say the client went away)
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
