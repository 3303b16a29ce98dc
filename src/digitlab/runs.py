"""Run folders: create them without ever overwriting a run, write their files atomically, read them back.

A run folder holds `config.json` (written first), then `history.csv`, `model.keras` and, last,
`metrics.json`, whose `status` is "finished" or "interrupted". A folder without `metrics.json`
is a run that never finished.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from digitlab.config import TrainingConfig
from digitlab.errors import RunFolderError

DEFAULT_RUNS_ROOT = "runs"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.csv"
MODEL_FILE = "model.keras"


def check_run_dir_free(path: str | Path) -> None:
    """Raise unless `path` does not exist or is an empty folder (a run is never overwritten)."""
    path = Path(path)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise RunFolderError(f"run folder {path} already exists and is not empty; "
                             "choose another --run-dir or leave it out to get a new timestamped folder")


def create_run_dir(run_dir: str | Path | None, short_name: str, runs_root: str | Path = DEFAULT_RUNS_ROOT) -> Path:
    """Create the run folder: `run_dir` if given (must be new or empty), else runs/<timestamp>-<name>."""
    if run_dir is not None:
        path = Path(run_dir)
        check_run_dir_free(path)
        path.mkdir(parents=True, exist_ok=True)
        return path
    root = Path(runs_root)
    root.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    for attempt in range(1, 1000):
        suffix = "" if attempt == 1 else f"-{attempt}"
        path = root / f"{stamp}-{short_name}{suffix}"
        try:
            path.mkdir()  # exclusive: two runs started in the same second get different folders
            return path
        except FileExistsError:
            continue
    raise RunFolderError(f"could not create a new run folder under {root}")


def write_text_atomic(path: Path, text: str) -> None:
    """Write to a temporary file beside `path`, then rename: readers never see half a file."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.chmod(temporary, 0o644)  # mkstemp makes files private; run files are ordinary files
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


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


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise RunFolderError(f"{path} is missing: {path.parent} is not a complete digitlab run") from err
    except (OSError, json.JSONDecodeError) as err:
        raise RunFolderError(f"{path} cannot be read as JSON: {err}") from err


def read_run_config(run_dir: str | Path) -> tuple[TrainingConfig, dict[str, Any]]:
    """The run's TrainingConfig and the whole `config.json` (backend, versions, data checksums)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunFolderError(f"run folder {run_dir} does not exist; list your runs with `ls runs/`")
    saved = read_json(run_dir / CONFIG_FILE)
    return TrainingConfig.from_dict(saved["training"]), saved


def load_model(run_dir: str | Path, backend: str | None = None):
    """Load a run's `model.keras` in Keras's safe mode (no arbitrary code)."""
    from digitlab.backend import import_keras

    path = Path(run_dir) / MODEL_FILE
    if not path.is_file():
        raise RunFolderError(f"{path} is missing: the run in {run_dir} never saved a model; train it again")
    keras = import_keras(backend)
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except Exception as err:  # Keras raises many kinds for a bad file
        raise RunFolderError(f"{path} is not a loadable Keras model: {err}") from err


def latest_finished_run(runs_root: str | Path = DEFAULT_RUNS_ROOT) -> Path:
    """The most recently finished run under `runs_root` (by the time in its metrics.json)."""
    root = Path(runs_root)
    finished = []
    for metrics_path in root.glob(f"*/{METRICS_FILE}"):
        try:
            metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        if metrics.get("status") == "finished" and (metrics_path.parent / MODEL_FILE).is_file():
            finished.append((metrics.get("finished_at", ""), metrics_path.parent))
    if not finished:
        raise RunFolderError(f"no finished run under {root}/; train one with `digitlab train`")
    return max(finished)[1]
