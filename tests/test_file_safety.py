"""Files digitlab reads and writes, broken on purpose: a full disk for every writer (ENOSPC injected at the one
atomic writer, and a real small tmpfs when a mount namespace can be made), outputs that would replace inputs or
existing files, a file that vanishes mid-run, a FIFO named as an image, file names that are not UTF-8, long
lists of failures, read-only and removed folders.

The CLI runs in-process (conftest.run_cli) on a real tiny trained run; no mocks but the injected disk errors.
"""

from __future__ import annotations

import base64
import errno
import functools
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from digitlab import runs, storage
from digitlab.analysis import plots
from digitlab.data import files, synthetic
from digitlab.data.synthetic import digit_picture
from digitlab.errors import ImageError, OutputFolderError, StorageError
from digitlab.inference import images, read_files
from digitlab.inference.predict import save_prepared_image
from digitlab.inference.reading import ReadDigit, Reading

# How long a command may take on a FIFO before the test calls it a hang (and unblocks it).
HANG_SECONDS = 60


def full_disk(monkeypatch, only: str | None = None) -> None:
    """Make the next atomic writes (of files named with `only` in them, else all) fail as a full disk does:
    after the whole file went to its temporary name, when it is flushed to the disk."""
    real_sync = storage._sync_file

    def sync_on_a_full_disk(path: Path) -> None:
        if only is None or only in path.name:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real_sync(path)

    monkeypatch.setattr(storage, "_sync_file", sync_on_a_full_disk)


def folder_bytes(folder: Path) -> dict[str, bytes]:
    """Every file in `folder` (hidden temporaries included) and its bytes."""
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file()}


def tiny_keras_model():
    from digitlab.backend import import_keras

    keras = import_keras()
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])


def reading_of_one_digit() -> Reading:
    return Reading(text="1", digits=(ReadDigit(1, (10, 10, 40, 60), np.full(10, 0.1, np.float32)),), confidence=0.9)


# Every kind of file digitlab writes, each written by the code that writes it (`step` varies the contents).
WRITERS = {
    "config.json": lambda folder, step: runs.write_json(folder / "config.json", {"step": step}),
    "history.csv": lambda folder, step: runs.write_history(folder / "history.csv", {"loss": [1.0 / (step + 1)]}),
    "report.html": lambda folder, step: storage.write_text_atomic(folder / "report.html", f"<p>{step}</p>"),
    "confusion_matrix.png": lambda folder, step: plots.plot_confusion_matrix(
        np.eye(3, dtype=int) * (step + 5), ["a", "b", "c"], folder / "confusion_matrix.png"),
    "learning_curves.png": lambda folder, step: plots.plot_learning_curves(
        {"loss": [1.0, 0.5 + step], "accuracy": [0.5, 0.6]}, None, folder / "learning_curves.png"),
    "mistakes.png": lambda folder, step: plots.plot_image_grid(
        np.full((2, 28, 28), step * 40, np.uint8), ["x", "y"], folder / "mistakes.png", title="grid"),
    "sweep_accuracy.png": lambda folder, step: plots.plot_sweep_accuracy_vs_time(
        [{"label": "a", "fit_seconds": [1.0, 2.0 + step], "test_accuracy": [0.9, 0.95]}],
        folder / "sweep_accuracy.png"),
    "preprocessed.png": lambda folder, step: storage.OutputFolder(folder, [Path("in/preprocessed.jpg")],
                                                                  overwrite=True).write(
        0, functools.partial(save_prepared_image, np.full((28, 28), step / 3, np.float32))),
    "annotated.png": lambda folder, step: annotated_write(folder, step),
    "model.onnx": lambda folder, step: storage.write_bytes_atomic(folder / "model.onnx", bytes([step]) * 100),
    "hand-0000.png": lambda folder, step: synthetic.write_handwritten(
        folder, np.full((3, 28, 28), 200, np.uint8), np.arange(3), count=1, seed=step),
}


def annotated_write(folder: Path, step: int) -> Path:
    source = folder.parent / "line.png"
    digit_picture(step, size=(80, 60)).save(source)
    outputs = storage.OutputFolder(folder, [Path("in/annotated.png")], overwrite=True)
    return outputs.write(0, functools.partial(read_files._write_annotated, source, reading_of_one_digit()))


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_a_full_disk_leaves_the_old_file_whole_and_nothing_else_for_every_writer(name, tmp_path, monkeypatch):
    folder = tmp_path / "out"
    folder.mkdir()
    WRITERS[name](folder, 1)
    written = folder_bytes(folder)
    assert len(written) == 1 and all(written.values())  # (the photo-like digit may be a .jpg)

    full_disk(monkeypatch)
    with pytest.raises(StorageError, match="No space left on device; free some space") as caught:
        WRITERS[name](folder, 2)
    assert "\n" not in str(caught.value)
    assert folder_bytes(folder) == written  # the old file, byte for byte; no temporary file left


def test_a_keras_model_is_saved_whole_or_not_at_all(tmp_path, monkeypatch):
    model = tiny_keras_model()
    target = tmp_path / runs.MODEL_FILE
    with storage.atomic_path(target) as partial:  # as train.py and line_model.py save models
        model.save(partial)
    saved = target.read_bytes()
    full_disk(monkeypatch)
    with pytest.raises(StorageError, match="free some space"), storage.atomic_path(target) as partial:
        model.save(partial)
    assert folder_bytes(tmp_path) == {runs.MODEL_FILE: saved}


def test_a_report_on_a_full_disk_keeps_the_old_pngs_and_says_so(tiny_mnist, tmp_path, monkeypatch, run_cli):
    from digitlab.analysis import report
    from digitlab.config import TrainingConfig
    from digitlab.training.train import train

    run_dir = train(TrainingConfig(epochs=1, batch_size=32, hidden_units=(16,)), run_dir=tmp_path / "run",
                    verbose=0).run_dir
    report.write_report(run_dir, mistakes=6, samples=6)
    before = folder_bytes(run_dir)
    full_disk(monkeypatch, only=report.CONFUSION_MATRIX_FILE)
    code, _, err = run_cli("report", str(run_dir), "--samples", "12")
    assert code == 1 and err.startswith("error: cannot write") and "free some space" in err
    assert "Traceback" not in err and err.strip().count("\n") == 0
    after = folder_bytes(run_dir)
    assert after[report.CONFUSION_MATRIX_FILE] == before[report.CONFUSION_MATRIX_FILE]
    assert after[report.REPORT_FILE] == before[report.REPORT_FILE]
    assert sorted(after) == sorted(before)  # no temporary file left


# A child process in its own mount namespace: a 512 KiB tmpfs filled up, a read-only tmpfs; each writer tried
# on the full disk after it wrote its file once. Prints one JSON object.
TMPFS_CHILD = r"""
import json, os, sys
from pathlib import Path
import numpy as np
from digitlab import runs
from digitlab.analysis import plots

full, read_only = Path(sys.argv[1]), Path(sys.argv[2])
writers = {
    "confusion_matrix.png": lambda path, size: plots.plot_confusion_matrix(
        np.arange(size * size).reshape(size, size), [str(i) for i in range(size)], path),
    "metrics.json": lambda path, size: runs.write_json(path, {"values": list(range(size * 300))}),
    "report.html": lambda path, size: runs.write_text_atomic(path, "<p>" * size * 2000),
}
outcomes = {}
for name, write in writers.items():
    path = full / name
    write(path, 3)
    old = path.read_bytes()
    filler = full / "filler"
    with open(filler, "wb", buffering=0) as stream:
        try:
            while True:
                stream.write(b"\0" * 4096)
        except OSError:
            pass
    try:
        write(path, 10)
        error = None
    except Exception as err:
        error = f"{type(err).__name__}: {err}"
    filler.unlink()
    outcomes[name] = {"error": error, "old_kept": path.read_bytes() == old,
                      "files": sorted(os.listdir(full))}
try:
    runs.write_json(read_only / "metrics.json", {})
    outcomes["read_only"] = None
except Exception as err:
    outcomes["read_only"] = f"{type(err).__name__}: {err}"
print(json.dumps(outcomes))
"""


def test_a_real_full_tmpfs_and_a_read_only_one(tmp_path):
    if shutil.which("unshare") is None:
        pytest.skip("no unshare: a real tmpfs cannot be mounted (the injected full disk above still runs)")
    full, read_only = tmp_path / "full", tmp_path / "read-only"
    full.mkdir()
    read_only.mkdir()
    script = ('mount -t tmpfs -o size=512k tmpfs "$1" && mount -t tmpfs -o ro,size=64k tmpfs "$2" && '
              'echo mounted && exec "$3" -c "$4" "$1" "$2"')
    try:
        done = subprocess.run(["unshare", "-rm", "sh", "-c", script, "sh", str(full), str(read_only), sys.executable,
                               TMPFS_CHILD], capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        pytest.fail("the writers on a full tmpfs did not finish in 300 s")
    marker, _, printed = done.stdout.partition("\n")
    if marker != "mounted":  # no user namespace, or no tmpfs in it (unprivileged CI runners may forbid both)
        pytest.skip(f"a tmpfs cannot be mounted here ({done.stderr.strip()[-200:]}); the injected full disk runs")
    assert done.returncode == 0, done.stderr
    outcomes = json.loads(printed)
    for name in ("confusion_matrix.png", "metrics.json", "report.html"):
        outcome = outcomes[name]
        assert outcome["error"] and "StorageError" in outcome["error"] and "free some space" in outcome["error"], \
            (name, outcome)
        assert outcome["old_kept"], f"{name} was left truncated on the full disk"
        assert outcome["files"] == sorted({"confusion_matrix.png", "metrics.json", "report.html"}
                                          & set(outcome["files"])), outcome["files"]  # no temporary left
    assert "StorageError" in outcomes["read_only"] and "read-only" in outcomes["read_only"].lower()
    assert "free some space" not in outcomes["read_only"]


# --- advice per errno ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("code", "said", "not_said"), [
    (errno.ENOSPC, "free some space", None),
    (errno.EDQUOT, "free some space", None),
    (errno.EROFS, "choose another folder", "free some space"),
    (errno.EACCES, "permissions", "free some space"),
    (errno.EPERM, "permissions", "free some space"),
    (errno.ENOENT, "was removed", "free some space"),
    (errno.EIO, "Input/output error", "free some space"),
])
def test_each_write_error_gets_its_own_advice(code, said, not_said, tmp_path):
    message = str(storage.write_error(OSError(code, os.strerror(code)), tmp_path / "out" / "a.png"))
    assert said in message and (not_said is None or not_said not in message)
    cache = str(files.cache_write_error(OSError(code, os.strerror(code)), tmp_path / "a"))
    assert (code in (errno.ENOSPC, errno.EDQUOT)) == ("Free some space" in cache)


def test_writing_into_proc_or_a_removed_folder_does_not_advise_freeing_space(tmp_path):
    with pytest.raises(StorageError) as caught:
        runs.write_json(Path("/proc/self/metrics.json"), {})
    assert "free some space" not in str(caught.value)
    outputs = storage.OutputFolder(tmp_path / "out", [tmp_path / "a.png"])
    (tmp_path / "out").rmdir()  # removed while the command runs
    with pytest.raises(StorageError, match="was removed") as caught:
        outputs.write(0, functools.partial(save_prepared_image, np.zeros((28, 28), np.float32)))
    assert "free some space" not in str(caught.value)


# --- outputs never replace inputs or existing files -------------------------------------------------------


@pytest.fixture
def image_folder(tmp_path) -> Path:
    folder = tmp_path / "imgs"
    folder.mkdir()
    for seed in range(3):
        digit_picture(seed).save(folder / f"d{seed}.png")
    return folder


@pytest.mark.parametrize("command", [("predict", "--save-preprocessed"), ("read", "--save-annotated")])
@pytest.mark.parametrize("overwrite", [(), ("--overwrite",)])
def test_outputs_into_the_input_folder_never_replace_an_input(command, overwrite, run_cli, tiny_run, image_folder):
    before = folder_bytes(image_folder)
    name, option = command
    code, out, err = run_cli(name, str(image_folder), "--model", str(tiny_run), option, str(image_folder), *overwrite)
    assert code == 2 and err.startswith("error:") and "would replace input images" in err, err
    assert out == "" and folder_bytes(image_folder) == before


@pytest.mark.parametrize("command", [("predict", "--save-preprocessed"), ("read", "--save-annotated")])
def test_existing_files_are_replaced_only_with_overwrite(command, run_cli, tiny_run, image_folder, tmp_path):
    name, option = command
    output = tmp_path / "out"
    output.mkdir()
    (output / "d1.png").write_bytes(b"mine")
    code, out, err = run_cli(name, str(image_folder), "--model", str(tiny_run), option, str(output))
    assert code == 2 and "already holds 1 of the files" in err and "--overwrite" in err and out == ""
    assert folder_bytes(output) == {"d1.png": b"mine"}  # checked before the work: nothing written

    code, out, err = run_cli(name, str(image_folder), "--model", str(tiny_run), option, str(output), "--overwrite")
    assert code == 0, err
    assert sorted(folder_bytes(output)) == ["d0.png", "d1.png", "d2.png"]
    with Image.open(output / "d1.png") as written:
        written.verify()


def test_an_output_folder_is_checked_before_the_model_loads(run_cli, image_folder, tmp_path):
    (tmp_path / "a-file").write_text("mine")
    missing_model = tmp_path / "no-such-run"
    for folder, said in [(tmp_path / "a-file", "is a file, not a folder"),
                         (Path("/proc/digitlab-out"), "takes no new files"),
                         (tmp_path / "a-file" / "under", "cannot be written")]:
        code, _, err = run_cli("predict", str(image_folder), "--model", str(missing_model),
                               "--save-preprocessed", str(folder))
        assert code == 2 and said in err and "Traceback" not in err and "free some space" not in err, err
        assert "no-such-run" not in err  # the folder was checked first: the model was never looked at
    assert (tmp_path / "a-file").read_text() == "mine"


def test_a_file_appearing_at_a_target_meanwhile_is_not_replaced(tmp_path):
    outputs = storage.OutputFolder(tmp_path / "out", [tmp_path / "a.png", tmp_path / "b.png"])
    (tmp_path / "out" / "b.png").write_bytes(b"mine")  # after the check, before the write
    outputs.write(0, functools.partial(save_prepared_image, np.zeros((28, 28), np.float32)))
    with pytest.raises(OutputFolderError, match="appeared while digitlab ran"):
        outputs.write(1, functools.partial(save_prepared_image, np.zeros((28, 28), np.float32)))
    assert (tmp_path / "out" / "b.png").read_bytes() == b"mine"
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["a.png", "b.png"]


def test_a_failed_write_is_that_files_error_and_the_others_are_written(run_cli, tiny_run, image_folder, tmp_path,
                                                                       monkeypatch):
    full_disk(monkeypatch, only="d1.png")
    code, out, err = run_cli("predict", str(image_folder), "--model", str(tiny_run), "--save-preprocessed",
                             str(tmp_path / "out"), "--json")
    results = [json.loads(line) for line in out.splitlines()]
    assert code == 1 and [Path(result["path"]).name for result in results] == ["d0.png", "d1.png", "d2.png"]
    assert "free some space" in results[1]["error"] and "error" not in results[0] and "error" not in results[2]
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["d0.png", "d2.png"]
    assert "1 of 3 images failed" in err


# --- a file that vanishes mid-run ----------------------------------------------------------------------------


def test_read_goes_on_when_a_file_vanishes_before_its_annotated_copy(run_cli, tiny_run, tmp_path, monkeypatch):
    folder = tmp_path / "lines"
    folder.mkdir()
    for index in range(20):  # more than one batch of files
        digit_picture(index, size=(160, 60)).save(folder / f"line-{index:02d}.png")
    real_batch = read_files._segmented_batch

    def read_then_lose_one(classifier, batch, min_confidence):
        outcomes = real_batch(classifier, batch, min_confidence)
        (folder / "line-03.png").unlink(missing_ok=True)  # gone after it was read, before it is annotated
        return outcomes

    monkeypatch.setattr(read_files, "_segmented_batch", read_then_lose_one)
    code, out, err = run_cli("read", str(folder), "--model", str(tiny_run), "--save-annotated", str(tmp_path / "seen"),
                             "--json")
    results = [json.loads(line) for line in out.splitlines()]
    assert code == 1 and "Traceback" not in err and len(results) == 20
    lost = results[3]
    assert lost["path"].endswith("line-03.png") and "no longer exists" in lost["error"] and "text" in lost
    assert all("error" not in result for index, result in enumerate(results) if index != 3)
    assert len(list((tmp_path / "seen").iterdir())) == 19 and "1 of 20 images failed" in err


# --- FIFOs, devices, sockets ---------------------------------------------------------------------------------


class FifoWatchdog:
    """Unblocks a reader stuck on `fifo` after HANG_SECONDS (by opening it for writing, then closing it), so
    that a hang fails the test instead of stopping the suite; `hung` says whether it had to."""

    def __init__(self, fifo: Path) -> None:
        self.fifo, self.hung, self.stop = fifo, False, threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop.set()
        self.thread.join()

    def _watch(self) -> None:
        if self.stop.wait(HANG_SECONDS):
            return
        while not self.stop.is_set():
            try:
                descriptor = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)  # ENXIO while nobody reads
            except OSError:
                time.sleep(0.05)
                continue
            self.hung = True
            os.close(descriptor)
            return


def test_a_fifo_named_as_an_image_is_that_files_error_not_a_hang(run_cli, tiny_run, tmp_path):
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)
    digit_picture(1).save(tmp_path / "good.png")
    with FifoWatchdog(fifo) as watchdog:
        code, out, err = run_cli("predict", str(fifo), str(tmp_path / "good.png"), "--model", str(tiny_run))
    assert not watchdog.hung, "predict waited on the FIFO"
    assert code == 1 and "not a regular file" in err and "good.png:" in out
    with FifoWatchdog(fifo) as watchdog:
        code, out, err = run_cli("read", str(fifo), "--model", str(tiny_run), "--json")
    assert not watchdog.hung and code == 1 and "not a regular file" in json.loads(out)["error"]


def test_a_file_turned_into_a_fifo_after_it_was_read_is_refused_without_waiting(tmp_path):
    fifo = tmp_path / "line.png"
    os.mkfifo(fifo)  # what `read` opens again to draw the annotated copy
    with FifoWatchdog(fifo) as watchdog, pytest.raises(ImageError, match="changed after it was read: not a regular"):
        read_files._full_picture(fifo)
    assert not watchdog.hung
    with pytest.raises(OSError, match="not a regular file"):
        storage.open_regular_file(fifo)


def test_a_device_is_not_read_as_an_image():
    with pytest.raises(ImageError, match="not a regular file"):
        images.read_image("/dev/zero")  # would never end


# --- names that are not UTF-8 or hold control characters ---------------------------------------------------------


def test_odd_file_names_are_escaped_in_text_and_lossless_in_json(run_cli, tiny_run, tmp_path):
    raw = os.fsencode(tmp_path) + b"/bad\xff\x1b[31m\nname.png"
    with open(raw, "wb") as stream:
        digit_picture(4).save(stream, format="PNG")
    with open(os.fsencode(tmp_path) + b"/broken\x1b[2J.png", "wb") as stream:
        stream.write(b"not an image")
    folder = str(tmp_path)

    code, out, err = run_cli("predict", folder, "--model", str(tiny_run))
    assert code == 1
    for text in (out, err):
        assert "\x1b" not in text and "\udcff" not in text
    assert len(out.splitlines()) == 1 and "bad\\xff\\x1b[31m\\nname.png:" in out
    assert "broken\\x1b[2J.png" in err

    code, out, _ = run_cli("predict", folder, "--model", str(tiny_run), "--json")
    lines = out.encode("utf-8", "surrogateescape").splitlines()
    for line in lines:
        line.decode("utf-8")  # strictly valid UTF-8
        assert b"\\udc" not in line
    results = {json.loads(line)["path"]: json.loads(line) for line in lines}
    (odd,) = [result for result in results.values() if "path_bytes" in result]
    assert base64.b64decode(odd["path_bytes"]) == raw and odd["path_utf8"] is False
    assert Path(os.fsdecode(base64.b64decode(odd["path_bytes"]))).is_file()


def test_a_long_list_of_failures_is_summarised(run_cli, tiny_run, tmp_path):
    for index in range(60):
        (tmp_path / f"broken-{index:03d}.png").write_bytes(b"not an image")
    code, out, err = run_cli("predict", str(tmp_path), "--model", str(tiny_run))
    last = err.strip().splitlines()[-1]
    assert code == 1 and last.startswith("60 of 60 images failed: ") and "... and 40 more" in last
    assert "broken-019.png" in last and "broken-020.png" not in last
    assert len(last) < 20 * len(str(tmp_path / "broken-000.png, ")) + 100  # 20 names, not 60
    code, out, err = run_cli("predict", str(tmp_path), "--model", str(tiny_run), "--json")
    assert len([json.loads(line)["error"] for line in out.splitlines()]) == 60  # --json names every file
