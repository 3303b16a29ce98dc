"""Run folders: create them without ever overwriting a run, write their files atomically, read them back.

A run folder holds `config.json` (written first), then `history.csv`, `model.keras` and, last,
`metrics.json`, whose `status` is "finished" or "interrupted". A folder without `metrics.json`
is a run that never finished. The two JSON files are typed by `record.RunConfig` and
`record.RunMetrics`; `read_run` is the one way every command reads them back.
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import errno
import io
import json
import os
import socket
import zipfile
from pathlib import Path
from typing import Any

from digitlab.errors import ModelError, RunFolderError, StorageError
from digitlab.record import Run, RunConfig, RunMetrics
from digitlab.storage import write_text_atomic  # the one atomic writer (runs.write_text_atomic for callers)

DEFAULT_RUNS_ROOT = "runs"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.csv"
MODEL_FILE = "model.keras"


def check_run_dir_free(path: str | Path) -> None:
    """Raise unless `path` is an empty folder, or does not exist and lies under folders (never over a run).
    A folder holding only the claim of a process that died counts as empty (`claim_run_dir` takes it over).

    Raises:
        RunFolderError: `path` is a file, a folder that is not empty (a run, another train's claim) or
            cannot be listed, or lies under a file. (A folder that cannot be created says so when `create_run_dir` tries.)
    """
    path = Path(path)
    if path.is_dir():
        try:
            taken = any(path.iterdir())
        except OSError as err:
            raise RunFolderError(f"run folder {path} cannot be listed ({err.strerror or err}); "
                                 "choose another --run-dir") from err
        if taken:
            entries = sorted(entry.name for entry in path.iterdir())
            if CLAIM_FILE in entries:  # a train holds it, or held it and died
                state, holder = _claim_state(path)
                if state == "live":
                    raise RunFolderError(_busy_message(path, holder))
                if entries != [CLAIM_FILE]:
                    raise RunFolderError(_stale_message(path, holder))
                return  # only a dead process's claim: `claim_run_dir` takes it over
            raise RunFolderError(f"run folder {path} already exists and is not empty; "
                                 "choose another --run-dir or leave it out to get a new timestamped folder")
        return
    if path.exists() or path.is_symlink():
        raise RunFolderError(f"run folder {path} is a file, not a folder; give --run-dir a folder that does not "
                             "exist yet or is empty (the file is left as it is)")
    for parent in path.parents:
        if parent.is_dir():
            return
        if parent.exists() or parent.is_symlink():
            raise RunFolderError(f"cannot create run folder {path}: {parent} is a file, not a folder; "
                                 "give --run-dir a path under a folder")


def create_run_dir(run_dir: str | Path | None, short_name: str, runs_root: str | Path = DEFAULT_RUNS_ROOT) -> Path:
    """Create the run folder: `run_dir` if given (must be new or empty), else runs/<timestamp>-<name>."""
    def cannot_create(folder: Path, err: OSError) -> RunFolderError | StorageError:
        if err.errno in (errno.ENOSPC, errno.EDQUOT):  # the machine's problem, not the path's (exit 1)
            return StorageError(f"cannot create run folder {folder}: {err.strerror}; free some space, then run "
                                "the command again")
        # ENOENT although the parents exist: a file system that takes no new folders, such as /proc.
        reason = ("that file system does not allow new folders" if err.errno == errno.ENOENT
                  else "a file is in the way" if err.errno in (errno.EEXIST, errno.ENOTDIR)
                  else err.strerror or str(err))
        return RunFolderError(f"cannot create run folder {folder}: {reason}; choose a --run-dir in a folder "
                              "you can write to")

    if run_dir is not None:
        path = Path(run_dir)
        check_run_dir_free(path)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise cannot_create(path, err) from err
        return path
    root = Path(runs_root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise cannot_create(root, err) from err
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")  # UTC, like every time recorded
    for attempt in range(1, 1000):
        suffix = "" if attempt == 1 else f"-{attempt}"
        path = root / f"{stamp}-{short_name}{suffix}"
        try:
            path.mkdir()  # exclusive: two runs started in the same second get different folders
            return path
        except FileExistsError:
            continue
        except OSError as err:
            raise cannot_create(path, err) from err
    raise RunFolderError(f"could not create a new run folder under {root}")


# ----------------------------------------------------------------------------- claims

# Present in a run folder while a `train` writes it: who holds it (JSON: pid, host, started_at). The file
# is created exclusively (O_EXCL) and flock-ed for the run's life, so a second `train` on the folder is
# refused at once, and a claim whose process died (the kernel drops its flock) is known to be stale.
CLAIM_FILE = ".digitlab-claim"
# Tries at creating a folder and claiming it, when the folder vanishes in between (a failed run removing
# its empty folder) or a claim is released while we look at it.
CLAIM_ATTEMPTS = 20


class RunClaim:
    """A run folder this process alone writes, from `claim_run_dir` until `release` (or `abandon`)."""

    def __init__(self, path: Path, descriptor: int) -> None:
        self.path = path
        self._descriptor: int | None = descriptor  # the claim file, flock-ed; None once released

    def __repr__(self) -> str:
        return f"RunClaim({str(self.path)!r}, held={self.held})"

    def __enter__(self) -> RunClaim:
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()

    @property
    def held(self) -> bool:
        return self._descriptor is not None

    def release(self) -> None:
        """Give the folder up (the run in it is complete or removed): the claim file goes. Safe to call twice."""
        if self._descriptor is None:
            return
        claim_path = self.path / CLAIM_FILE
        with contextlib.suppress(OSError):
            if os.stat(claim_path).st_ino == os.fstat(self._descriptor).st_ino:  # still ours: remove it
                claim_path.unlink()
        os.close(self._descriptor)  # drops the flock too
        self._descriptor = None

    def abandon(self) -> None:
        """Remove what the failed run wrote, then the claim, then the folder if that leaves it empty."""
        remove_failed_run(self.path)  # the folder stays: the claim file is still in it
        self.release()
        with contextlib.suppress(OSError):
            self.path.rmdir()  # only if nothing else is in it (another train may have claimed it since)


def claim_run_dir(run_dir: str | Path | None, short_name: str, runs_root: str | Path = DEFAULT_RUNS_ROOT) -> RunClaim:
    """Create the run folder as `create_run_dir` does and claim it for this process alone.

    Two `train`s given one `--run-dir` at the same moment: exactly one gets it, the other a RunFolderError.
    A claim left by a process that died (kill -9, power cut) is taken over when the folder holds nothing
    else; when it holds the dead run's files, the error says so and how to clear it.

    Raises:
        RunFolderError: another live process holds the folder, it holds a run (finished or left by a dead
            process), or it cannot be created (see `create_run_dir`).
        StorageError: the disk is full.
    """
    for _ in range(CLAIM_ATTEMPTS):
        path = create_run_dir(run_dir, short_name, runs_root)
        taken = _take_claim(path)
        if taken is None:
            continue  # the folder or the claim went away while we looked: start again
        descriptor, created = taken
        # Only now is what the folder holds settled: another train may have finished here since we checked.
        try:
            others = sorted(entry.name for entry in path.iterdir() if entry.name != CLAIM_FILE)
        except OSError as err:
            others = [f"({err.strerror or err})"]
        if others:
            if created:
                (path / CLAIM_FILE).unlink(missing_ok=True)
                os.close(descriptor)
                raise RunFolderError(f"run folder {path} already exists and is not empty; choose another --run-dir "
                                     "or leave it out to get a new timestamped folder")
            holder = _read_claim(descriptor)
            os.close(descriptor)  # the dead process's claim file stays: it tells the next one the same
            raise RunFolderError(_stale_message(path, holder))
        _write_claim(descriptor)
        return RunClaim(path, descriptor)
    raise RunFolderError(f"could not claim run folder {run_dir if run_dir is not None else runs_root}: it kept "
                         "changing while digitlab looked (other processes creating and removing it); try again")


def _take_claim(path: Path) -> tuple[int, bool] | None:
    """(the claim file's descriptor, flock-ed; whether we created it), or None when the folder or the file went
    away meanwhile. A claim file another live process holds is a RunFolderError."""
    import fcntl

    claim_path = path / CLAIM_FILE
    try:
        descriptor, created = os.open(claim_path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644), True
    except FileExistsError:
        try:
            descriptor, created = os.open(claim_path, os.O_RDWR), False  # a claim: live, or left by a dead process
        except FileNotFoundError:
            return None  # released meanwhile
    except FileNotFoundError:
        return None  # the folder was removed meanwhile (a failed run leaving nothing behind)
    except OSError as err:
        raise RunFolderError(f"cannot claim run folder {path}: {err.strerror or err}; choose a --run-dir in a "
                             "folder you can write to") from err
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # held by a live process (possibly one that opened the file we had just created)
        holder = _read_claim(descriptor)
        os.close(descriptor)
        raise RunFolderError(_busy_message(path, holder)) from None
    try:
        same = os.stat(claim_path).st_ino == os.fstat(descriptor).st_ino
    except FileNotFoundError:
        same = False
    if not same:  # the holder released (removed) it between our open and our flock
        os.close(descriptor)
        return None
    return descriptor, created


def _write_claim(descriptor: int) -> None:
    """Say in the claim file who holds it, for the messages of those refused."""
    text = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started_at": utc_now()})
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, text.encode("utf-8"), 0)


def _read_claim(descriptor: int) -> dict[str, Any]:
    """What a claim file says of its holder ({} if nothing readable: it may be a moment old)."""
    try:
        values = json.loads(os.pread(descriptor, 4096, 0).decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return values if isinstance(values, dict) else {}


def _holder(values: dict[str, Any]) -> str:
    """'process 123 on host, since 2026-...' from a claim file's values (or 'another process')."""
    pid, host, since = values.get("pid"), values.get("host"), values.get("started_at")
    text = f"process {pid}" if isinstance(pid, int) else "another process"
    text += f" on {host}" if isinstance(host, str) and host else ""
    return text + (f", since {since}" if isinstance(since, str) and since else "")


def _busy_message(path: Path, holder: dict[str, Any]) -> str:
    return (f"run folder {path} is being written by another `digitlab train` ({_holder(holder)}); wait for it "
            "to finish, or choose another --run-dir")


def _stale_message(path: Path, holder: dict[str, Any]) -> str:
    return (f"run folder {path} holds a run that never finished: {_holder(holder)} stopped while writing it "
            f"(killed or crashed). Nothing resumes it; remove the folder (rm -r {path}) to train there again, "
            "or choose another --run-dir")


def _claim_state(path: Path) -> tuple[str, dict[str, Any]]:
    """("live" or "stale", the holder) of a folder's claim file: live while a process holds its flock (the
    kernel drops the flock of a process that dies, however it dies)."""
    import fcntl

    try:
        descriptor = os.open(path / CLAIM_FILE, os.O_RDONLY)
    except OSError:
        return "stale", {}  # gone since the folder was listed
    try:
        holder = _read_claim(descriptor)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)  # a probe, released when closed below
        except OSError:
            return "live", holder
        return "stale", holder
    finally:
        os.close(descriptor)


def remove_failed_run(path: Path) -> None:
    """Remove what a run that failed wrote into `path`: the folder itself when it is left empty."""
    for name in (METRICS_FILE, MODEL_FILE, HISTORY_FILE, CONFIG_FILE):
        (path / name).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        path.rmdir()  # only if nothing else is in it


def write_json(path: Path, values: dict[str, Any]) -> None:
    write_text_atomic(path, json.dumps(values, indent=2, sort_keys=False) + "\n")


def write_history(path: Path, history: dict[str, list[float]]) -> None:
    """One row per epoch: epoch, then each Keras metric (loss, accuracy, val_loss, ...)."""
    preferred = ["loss", "accuracy", "val_loss", "val_accuracy"]
    names = [name for name in preferred if name in history] + [name for name in history if name not in preferred]
    epochs = len(history[names[0]]) if names else 0
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["epoch", *names])
    for epoch in range(epochs):
        writer.writerow([epoch + 1, *(f"{float(history[name][epoch]):.6g}" for name in names)])
    write_text_atomic(path, buffer.getvalue())


def read_history(path: str | Path) -> dict[str, list[float]]:
    """history.csv back into {"loss": [...], "accuracy": [...], ...} (empty if the file is missing)."""
    path = Path(path)
    if not path.is_file():
        return {}
    with path.open(newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    names = [name for name in (rows[0].keys() if rows else []) if name != "epoch"]
    return {name: [float(row[name]) for row in rows] for name in names}


def read_json(path: str | Path) -> dict[str, Any]:
    """The JSON object in `path`: the one reader of every JSON file digitlab writes.

    Raises:
        RunFolderError: the file is missing, unreadable, not JSON, or not a JSON object.
    """
    path = Path(path)
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise RunFolderError(f"{path} is missing: {path.parent} is not a complete digitlab run") from err
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RunFolderError(f"{path} cannot be read as JSON ({err}); restore it from a copy of the run "
                             "or train the run again") from err
    if not isinstance(values, dict):
        raise RunFolderError(f"{path} is not a digitlab run file (expected a JSON object, got {type(values).__name__})")
    return values


def read_run(run_dir: str | Path) -> Run:
    """The run in `run_dir`: its config.json and, when it got that far, its metrics.json.

    Run folders written before the record had a version (digitlab 0.1.0) load too.

    Raises:
        RunFolderError: the folder does not exist, or a file in it is not a digitlab run file.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunFolderError(f"run folder {run_dir} does not exist; list your runs with `ls runs/`")
    config = RunConfig.from_dict(read_json(run_dir / CONFIG_FILE), source=run_dir / CONFIG_FILE)
    metrics_path = run_dir / METRICS_FILE
    metrics = RunMetrics.from_dict(read_json(metrics_path), source=metrics_path) if metrics_path.is_file() else None
    return Run(run_dir, config, metrics)


def read_run_config(run_dir: str | Path) -> RunConfig:
    """The run's config.json as a RunConfig (see `read_run` for the errors)."""
    return read_run(run_dir).config


def load_model(path: str | Path, backend: str | None = None, compile: bool = True):
    """Load a run's model (a run folder or a `.keras` file) in Keras's safe mode: no arbitrary code runs.

    Raises:
        ModelError: there is no model there, or the file is not a loadable Keras 3 model.
    """
    from digitlab.backend import import_keras

    path = Path(path)
    model_path = path / MODEL_FILE if path.is_dir() else path
    if path.is_dir() and not model_path.is_file():
        raise ModelError(f"{path} holds no {MODEL_FILE}: it is not a finished digitlab run; "
                         "give a run folder written by `digitlab train` or a .keras file")
    if not model_path.exists():
        raise ModelError(f"model {path} does not exist; give a run folder (see `ls runs/`) or a .keras file")
    if model_path.suffix == ".keras" and not zipfile.is_zipfile(model_path):
        # Keras itself calls such a file "not found"; say what it is.
        size = model_path.stat().st_size
        raise ModelError(f"{model_path} is not a Keras model file: a .keras file is a zip archive, and this one "
                         f"({size:,} bytes) is {'empty' if size == 0 else 'truncated or another kind of file'}; "
                         "train the run again or restore the file from a copy")
    keras = import_keras(backend)
    try:
        return keras.saving.load_model(model_path, safe_mode=True, compile=compile)
    except Exception as err:  # Keras raises many kinds for a file that is not a model
        raise ModelError(f"{model_path} is not a loadable Keras model ({_first_sentence(err)}); give a run folder "
                         "written by `digitlab train` or a .keras file saved by Keras 3") from err


def _first_sentence(err: BaseException) -> str:
    # Keras's messages can run to a paragraph; the first sentence says what is wrong.
    return (str(err).strip() or type(err).__name__).splitlines()[0].split(". ")[0][:300]


def utc_now() -> str:
    """The time now in UTC, as ISO 8601 to the second (every time digitlab records is UTC)."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def latest_finished_run(runs_root: str | Path = DEFAULT_RUNS_ROOT) -> Path:
    """The most recently finished run under `runs_root` (by the time in its metrics.json)."""
    root = Path(runs_root)
    finished = []
    for metrics_path in root.glob(f"*/{METRICS_FILE}"):
        try:
            metrics = RunMetrics.from_dict(read_json(metrics_path), source=metrics_path)
        except RunFolderError:
            continue
        if metrics.status == "finished" and (metrics_path.parent / MODEL_FILE).is_file():
            finished.append((metrics.finished_at, metrics_path.parent))
    if not finished:
        raise RunFolderError(f"no finished run under {root}/; train one with `digitlab train --recipe reader` (it reads "
                             "numbers and refuses non-digits; plain `digitlab train` is the tutorial's digit classifier)")
    return max(finished)[1]
