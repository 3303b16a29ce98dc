"""Read and prepare image files in worker processes (or threads) while the model classifies others.

Decoding the files is most of what classifying a folder costs, so `digitlab predict` hands it to
one worker process per core, a chunk of files at a time, and classifies each batch as it is ready.

    with ImagePreparer() as preparer:
        for image, error in preparer.map(paths, ahead=512):  # in order: (28x28 image, None) or (None, message)
            ...
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from digitlab.backend import available_cores
from digitlab.errors import DigitlabError
from digitlab.inference.images import prepare_image_batch

# Images handed to a worker process at once: large enough to amortise the inter-process overhead
# and to prepare them as one batch (`prepare_image_batch`), small enough to share out.
WORKER_CHUNK = 32


class ImagePreparer:
    """Worker processes (or threads) that read and prepare image files in parallel (decoding is the slow part).

    Processes are started at once, in the background, so that starting them overlaps with loading the
    model. Create the preparer before Keras is imported and they are forked, which takes milliseconds;
    afterwards they are spawned (forking a process that runs JAX can deadlock), which takes about a second
    and, as always with "spawn", needs the `if __name__ == "__main__":` guard in scripts. Threads start at
    no cost but share one GIL: 1,450 against 2,000 images/s, two of each on 2 idle cores (decoding and
    resizing release it; benchmarks/predict_speed.py); on a slower machine, 942-1,210 against 1,774-1,862.
    Use as a context manager, or call `close()`.
    """

    def __init__(self, workers: int | None = None, processes: bool = True) -> None:
        import multiprocessing
        import sys
        from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

        self.workers, self.processes = workers or available_cores(), processes
        heavy = any(name in sys.modules for name in ("jax", "keras", "tensorflow", "torch"))
        method = "fork" if not heavy and "fork" in multiprocessing.get_all_start_methods() else "spawn"
        self._executor = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context(method),
                                             initializer=_start_worker) if processes else ThreadPoolExecutor(self.workers)
        # The worker processes start now (a task each), not while the first images wait.
        self._warming = [self._executor.submit(_started) for _ in range(self.workers if processes else 0)]

    def map(self, paths: Sequence[Path], ahead: int) -> Iterator[tuple[np.ndarray | None, str | None]]:
        """(prepared image, None) or (None, error message) per path, in order, as they are ready.

        Files are handed out in chunks, up to `ahead` images ahead of what has been taken (the caller's
        batch and the next: the workers never wait while it classifies, prints or saves one), so that a
        long list is neither submitted at once nor left waiting while the results are used.
        """
        from collections import deque

        size = max(1, min(WORKER_CHUNK, math.ceil(len(paths) / self.workers)))
        ahead = max(2 * self.workers, math.ceil(ahead / size))  # chunks in flight
        chunks = (paths[start:start + size] for start in range(0, len(paths), size))
        pending: deque = deque()
        try:
            for chunk in chunks:
                pending.append(self._executor.submit(prepare_files, chunk))
                if len(pending) > ahead:
                    yield from pending.popleft().result()
            while pending:
                yield from pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> ImagePreparer:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def prepare_files(paths: Sequence[Path]) -> list[tuple[np.ndarray | None, str | None]]:
    """Runs in worker processes too: never raises, so one bad file cannot stop the others."""
    outcomes = []
    for path, outcome in zip(paths, prepare_image_batch(paths), strict=True):
        if not isinstance(outcome, BaseException):
            outcomes.append((outcome, None))
        elif isinstance(outcome, DigitlabError):
            outcomes.append((None, str(outcome)))
        else:  # an image that trips Pillow or NumPy in a way not foreseen: report it
            outcomes.append((None, f"{path}: cannot be prepared ({type(outcome).__name__}: {outcome})"))
    return outcomes


def prepare_files_lazily(paths: Sequence[Path]) -> Iterator[tuple[np.ndarray | None, str | None]]:
    """`prepare_files` in this process, a chunk at a time."""
    for start in range(0, len(paths), WORKER_CHUNK):
        yield from prepare_files(paths[start:start + WORKER_CHUNK])


def _start_worker() -> None:
    """Each worker process: Pillow's decoders imported once, and NumPy's BLAS kept to one thread. Its
    products here are small (the paper's fit, the framing's resize), and OpenBLAS's threads wait by
    spinning on the cores the other workers use: two workers prepared 580-680 images/s with them,
    1,400-1,530 without (benchmarks/predict_speed.py)."""
    from PIL import Image, JpegImagePlugin, PngImagePlugin  # noqa: F401  (imports are the point)
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")


def _started() -> None:
    """A task that does nothing: submitted once per worker, so that each process starts at once."""
