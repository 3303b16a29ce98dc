"""What runs in a trial's worker process: share the cores, end with the sweep, train one trial.

A worker started by a sweep must not outlive it: after `kill -9` of the sweep, an orphaned worker
would go on writing into a trial folder that the next run of the same sweep clears and trains
again. On Linux the kernel ends the worker when its parent dies (`PR_SET_PDEATHSIG`); elsewhere a
thread in the worker watches for its parent to go.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from digitlab import runs
from digitlab.config import TrainingConfig

# How often a worker without PR_SET_PDEATHSIG looks for its parent, in seconds.
PARENT_POLL_SECONDS = 1.0
# prctl's option number for "signal me when my parent dies" (linux/prctl.h).
PR_SET_PDEATHSIG = 1

# (config dict, run folder, backend, data root) -> the run's status.
Trainer = Callable[[dict[str, Any], str, str | None, str | None], str]


def train_trial(config: dict[str, Any], run_dir: str, backend: str | None, data_root: str | None,
                callbacks: tuple[Any, ...] = ()) -> str:
    """Train one trial with the library's `train` into `run_dir`; return its status.

    Args:
        callbacks: extra Keras callbacks (a search's pruning callback, see `search`).
    """
    from digitlab.training.train import train

    if "jax" in sys.modules:
        # Trials in one process would otherwise reuse compiled code, and only a configuration's first
        # seed would pay for compiling it: clearing the caches keeps fit times comparable across seeds.
        sys.modules["jax"].clear_caches()
    train(TrainingConfig.from_dict(config), run_dir=run_dir, backend=backend, data_root=data_root, verbose=0,
          callbacks=callbacks)
    return runs.read_run(run_dir).metrics.status  # train writes metrics.json last, before it returns


def limit_threads(threads: int) -> None:
    """Run before Keras is imported: share the cores between parallel trials."""
    if threads >= (os.cpu_count() or 1):
        return  # one trial at a time: let it use every core, as `digitlab train` does
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS"):
        os.environ.setdefault(variable, str(threads))
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
    if threads == 1 and "xla_cpu_multi_thread_eigen" not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false").strip()


def start_worker(threads: int, parent_pid: int) -> None:
    """A local sweep's worker process initializer: end with the sweep, then share the cores."""
    die_with_parent(parent_pid)
    limit_threads(threads)


def die_with_parent(parent_pid: int) -> None:
    """End this process (SIGKILL) as soon as the process `parent_pid` that started it has ended."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0:
            if os.getppid() != parent_pid:  # the parent died before the request took effect
                os._exit(1)
            return
    threading.Thread(target=_watch_parent, args=(parent_pid,), name="digitlab-parent-watch", daemon=True).start()


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(PARENT_POLL_SECONDS)
    os._exit(1)  # orphaned: re-parented to init (or a subreaper)
