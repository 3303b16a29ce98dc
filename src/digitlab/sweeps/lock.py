"""A sweep folder claimed by one `digitlab sweep` at a time: a lock file held for the whole sweep.

Two sweeps on one folder would each clear what they take for the other's unfinished trials. The
claim is an advisory `flock` (Windows: a byte-range lock) on `sweep.lock` in the sweep folder: the
kernel releases it when the process ends in any way (`kill -9` included), so a lock left by a dead process is stale by
construction and the next sweep takes it. The file also names the holder (process, host, start
time) for the error message.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from pathlib import Path
from types import TracebackType

from digitlab import runs
from digitlab.errors import StorageError, SweepFolderBusyError

LOCK_FILE = "sweep.lock"

try:  # Linux and macOS
    import fcntl
except ImportError:  # pragma: no cover - Windows: a byte-range lock, also dropped when the process ends
    fcntl = None
    import msvcrt


class SweepLock:
    """Hold `sweep_dir/sweep.lock` while a sweep runs: `with SweepLock(folder): ...`.

    Raises:
        SweepFolderBusyError: another living process holds the folder.
        StorageError: the lock file cannot be created.
    """

    def __init__(self, sweep_dir: str | Path) -> None:
        self.path = Path(sweep_dir) / LOCK_FILE
        self._handle: int | None = None

    def acquire(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise StorageError(f"cannot create the sweep folder's lock file {self.path}: {err.strerror or err}; "
                               "give --sweep-dir a folder you can write to") from err
        try:
            _lock(handle)
        except OSError as err:
            holder = _describe_holder(self.path)
            os.close(handle)
            raise SweepFolderBusyError(
                f"sweep folder {self.path.parent} is in use by another `digitlab sweep` ({holder}); wait for it "
                "to end, or give this one another --sweep-dir") from err
        # Who holds it, for the message another sweep shows (the lock itself is the flock, not this text).
        os.ftruncate(handle, 0)
        os.write(handle, json.dumps(_holder()).encode())
        self._handle = handle

    def release(self) -> None:
        if self._handle is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._handle, 0)
        os.close(self._handle)  # closing drops the flock
        self._handle = None

    def __enter__(self) -> SweepLock:
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.release()


def _holder() -> dict[str, object]:
    return {"pid": os.getpid(), "host": socket.gethostname(), "started_at": runs.utc_now()}


def _describe_holder(path: Path) -> str:
    try:
        holder = json.loads(path.read_text() or "{}")
        return f"process {holder['pid']} on {holder['host']}, started {holder['started_at']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that is starting"


def _lock(handle: int) -> None:
    """Take the lock without waiting; OSError when another process holds it."""
    if fcntl is not None:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    else:  # pragma: no cover - Windows
        msvcrt.locking(handle, msvcrt.LK_NBLCK, 1)
