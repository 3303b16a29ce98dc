"""Where a sweep's trials train: one interface (`TrialExecutor`), and the two local executors.

An executor gets trials to train, each with its final folder, and reports each one as it ends. It
trains them here, in local processes (`--jobs N`), or on a Ray cluster (`ray_executor`); the sweep
folder it leaves is the same either way.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import multiprocessing
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Protocol

from digitlab.errors import ConfigError
from digitlab.sweeps.plan import Trial
from digitlab.sweeps.worker import Trainer, start_worker

EXECUTORS = ("local", "ray")


@dataclasses.dataclass(frozen=True)
class TrialJob:
    """One trial to train, and the folder its run must end up in."""

    trial: Trial
    run_dir: Path
    # What trains it (default `worker.train_trial`); must be picklable for processes and Ray.
    trainer: Trainer


@dataclasses.dataclass(frozen=True)
class TrialOutcome:
    """How a trial ended: the trainer's status, and the machine that trained it."""

    status: str
    # The host (and, on Ray, the node) that trained the trial: sweep.csv's `node` column.
    node: str


# Called on the sweep's own thread once per trial, as each ends.
OnOutcome = Callable[[TrialJob, TrialOutcome], None]


class TrialExecutor(Protocol):
    """Trains trials somewhere; the sweep folder it leaves is the same for every executor."""

    # Trials trained at once (a search asks for this many at a time).
    parallel: int

    def run(self, jobs: Sequence[TrialJob], on_outcome: OnOutcome) -> None:
        """Train every job, calling `on_outcome` as each ends. Ctrl-C raises KeyboardInterrupt here after
        the running trials were stopped (kept as interrupted or dropped), the finished ones reported."""

    def close(self) -> None:
        """Let go of what the executor started (processes, a cluster connection)."""


@dataclasses.dataclass
class InProcessExecutor:
    """One trial after the other in this process (the tests' tiny data sets exist only here)."""

    backend: str | None = None
    data_root: str | None = None
    parallel: int = 1

    def run(self, jobs: Sequence[TrialJob], on_outcome: OnOutcome) -> None:
        for job in jobs:
            status = job.trainer(job.trial.config.to_dict(), str(job.run_dir), self.backend, self.data_root)
            with interrupts_deferred():
                on_outcome(job, TrialOutcome(status, socket.gethostname()))
            if status == "interrupted":
                raise KeyboardInterrupt

    def close(self) -> None:
        pass


@dataclasses.dataclass
class ProcessExecutor:
    """`parallel` trials at a time, each in a fresh process of its own, the cores shared between them.

    A fresh process per trial makes every trial start alike (one-time costs such as JAX's first
    compilations would otherwise fall on the first trial's fit time), and a crashing trial cannot
    corrupt the others. The processes end with the sweep, even when it is killed (`worker.die_with_parent`).
    """

    parallel: int
    backend: str | None = None
    data_root: str | None = None

    def run(self, jobs: Sequence[TrialJob], on_outcome: OnOutcome) -> None:
        if not jobs:
            return
        threads = max(1, (os.cpu_count() or 1) // self.parallel)
        # spawn, not fork: a forked copy of a process that has started JAX's threads can hang.
        with concurrent.futures.ProcessPoolExecutor(
                max_workers=min(self.parallel, len(jobs)), mp_context=multiprocessing.get_context("spawn"),
                initializer=start_worker, initargs=(threads, os.getpid()), max_tasks_per_child=1) as pool:
            futures = {pool.submit(job.trainer, job.trial.config.to_dict(), str(job.run_dir), self.backend,
                                   self.data_root): job for job in jobs}
            interrupted = False
            try:
                for future in concurrent.futures.as_completed(futures):
                    status = future.result()
                    with interrupts_deferred():
                        on_outcome(futures[future], TrialOutcome(status, socket.gethostname()))
                    interrupted = interrupted or status == "interrupted"
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
        if interrupted:
            raise KeyboardInterrupt

    def close(self) -> None:
        pass


def local_executor(jobs: int, isolate: bool = True, backend: str | None = None,
                   data_root: str | Path | None = None) -> TrialExecutor:
    """`--jobs N` processes (`isolate`), or this process (jobs must be 1)."""
    if jobs < 1:
        raise ConfigError(f"--jobs must be 1 or more, got {jobs}")
    if jobs > 1 and not isolate:
        raise ConfigError("parallel trials (jobs > 1) run in processes of their own; isolate must be True")
    data_root_text = None if data_root is None else str(data_root)
    if not isolate:
        return InProcessExecutor(backend, data_root_text)
    return ProcessExecutor(jobs, backend, data_root_text)


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold a Ctrl-C that comes inside the block until the block ends, then raise it.

    Around what records a trial (its folder unpacked, the study told): a Ctrl-C at that moment would
    leave it half recorded (Optuna's journal stops mid-write and says so with a traceback).
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach only the main thread
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda number, frame: received.append(number))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        raise KeyboardInterrupt
