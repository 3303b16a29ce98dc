"""The data cache when things go wrong: DIGITLAB_DATA naming a file, a read-only or full disk, a corrupt
cache, a --from folder that is not there, and `kill -9` in the middle of a fetch.

The user's mistakes exit 2, the machine's failures exit 1; either way one `error:` line, no
traceback, and nothing half-written in the cache.
"""

import dataclasses
import errno
import gzip
import hashlib
import json
import os
import random
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import make_images, write_fake_dataset
from digitlab.data import datasets, sources
from digitlab.data.sources import FolderSource, KerasNpzSource
from digitlab.errors import DataFolderError, DataUnavailableError, StorageError


def assert_one_line_error(err: str) -> None:
    """stderr ends with one `error:` line (progress bars may come before it), and has no traceback."""
    lines = err.strip().splitlines()
    assert lines and lines[-1].startswith("error:") and "Traceback" not in err, err
    assert sum(line.startswith("error:") for line in lines) == 1, err


def cache_files(root: Path) -> list[str]:
    """Every file and folder under the cache root, relative to it."""
    return sorted(str(path.relative_to(root)) for path in root.rglob("*")) if root.exists() else []


@pytest.fixture
def fake_mnist(fake_source_dir, monkeypatch):
    """'mnist' whose checksums are those of the tiny fake files; returns their folder."""
    folder, checksums = fake_source_dir
    monkeypatch.setitem(datasets.DATASETS, "mnist", dataclasses.replace(datasets.DATASETS["mnist"], checksums=checksums))
    return folder


# --- DIGITLAB_DATA naming a file (the user's input: exit 2) ---------------------------------------


@pytest.mark.parametrize("command", [["data", "fetch"], ["data", "path"], ["data", "verify"], ["data", "info"]])
def test_digitlab_data_naming_a_file_exits_2_naming_the_variable(run_cli, monkeypatch, tmp_path, command):
    not_a_folder = tmp_path / "data.txt"
    not_a_folder.write_text("a file")
    monkeypatch.setenv("DIGITLAB_DATA", str(not_a_folder))
    code, out, err = run_cli(*command, "mnist")
    assert code == 2 and out == ""
    assert_one_line_error(err)
    assert "$DIGITLAB_DATA" in err and "is a file, not a folder" in err
    assert not_a_folder.read_text() == "a file"


def test_digitlab_data_under_a_file_names_the_file(monkeypatch, tmp_path):
    (tmp_path / "data.txt").write_text("a file")
    monkeypatch.setenv("DIGITLAB_DATA", str(tmp_path / "data.txt" / "cache"))
    with pytest.raises(DataFolderError, match=r"data.txt is a file, not a folder"):
        datasets.dataset_dir("mnist")


def test_train_with_digitlab_data_naming_a_file_exits_2_before_any_run_folder(run_cli, monkeypatch, tmp_path):
    (tmp_path / "data.txt").write_text("a file")
    monkeypatch.setenv("DIGITLAB_DATA", str(tmp_path / "data.txt"))
    code, _, err = run_cli("train", "--epochs", "1", "--run-dir", str(tmp_path / "run"))
    assert code == 2 and "$DIGITLAB_DATA" in err
    assert_one_line_error(err)
    assert not (tmp_path / "run").exists()


def test_the_command_itself_prints_one_line_and_no_traceback(tmp_path):
    (tmp_path / "data.txt").write_text("a file")
    environment = {**os.environ, "DIGITLAB_DATA": str(tmp_path / "data.txt")}
    completed = subprocess.run([sys.executable, "-m", "digitlab", "data", "fetch", "mnist"], env=environment,
                               capture_output=True, text=True, timeout=120)
    assert completed.returncode == 2 and completed.stdout == ""
    assert_one_line_error(completed.stderr)


# --- the --from folder (the user's input: exit 2) ----------------------------------------------------


def test_a_from_folder_that_does_not_exist_exits_2_and_creates_nothing(run_cli, data_root, tmp_path):
    code, _, err = run_cli("data", "fetch", "mnist", "--from", str(tmp_path / "typo"))
    assert code == 2 and "typo does not exist" in err and "--from" in err
    assert_one_line_error(err)
    assert not data_root.exists()


def test_digitlab_data_from_naming_a_file_is_named_in_the_error(monkeypatch, data_root, tmp_path):
    (tmp_path / "files.zip").write_bytes(b"PK")
    monkeypatch.setenv("DIGITLAB_DATA_FROM", str(tmp_path / "files.zip"))
    with pytest.raises(DataFolderError, match=r"\$DIGITLAB_DATA_FROM .*files.zip is a file, not a folder"):
        datasets.fetch("mnist")


def test_a_from_folder_with_a_truncated_file_is_the_users_to_fix(data_root, fake_mnist, tmp_path):
    path = fake_mnist / datasets.TEST_LABELS
    path.write_bytes(path.read_bytes()[:-3])
    sources = [FolderSource(fake_mnist, given_by_user=True), FolderSource(tmp_path / "mirror-down")]
    with pytest.raises(DataFolderError, match="t10k-labels-idx1-ubyte: truncated") as caught:
        datasets.fetch("mnist", sources=sources)
    assert caught.value.exit_status == 2
    assert not (data_root / "mnist" / datasets.TEST_LABELS).exists()


def test_a_complete_cache_needs_no_source_so_a_stale_from_folder_does_not_matter(data_root, fake_mnist, tmp_path):
    datasets.fetch("mnist", sources=[FolderSource(fake_mnist)])
    result = datasets.fetch("mnist", from_dir=tmp_path / "gone")
    assert set(result.origins.values()) == {"cache"}


# --- a read-only cache (the machine's failure: exit 1) ----------------------------------------------


def refuse_mkdir(monkeypatch, under: Path, error_number: int) -> None:
    """Creating a folder under `under` fails as a read-only mount would make it fail.

    Tests run as root, whom chmod does not stop, so the OS's answer is simulated at the OS boundary.
    """
    real_mkdir = Path.mkdir

    def mkdir(self, *args, **kwargs):
        if under in self.parents:
            raise OSError(error_number, os.strerror(error_number), str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)


def test_a_read_only_empty_cache_exits_1_suggesting_digitlab_data(run_cli, monkeypatch, data_root, fake_mnist):
    data_root.mkdir()
    refuse_mkdir(monkeypatch, data_root, errno.EROFS)
    code, _, err = run_cli("data", "fetch", "mnist", "--from", str(fake_mnist))
    assert code == 1 and "read-only" in err and "DIGITLAB_DATA" in err
    assert_one_line_error(err)
    assert cache_files(data_root) == []


def test_a_corrupt_file_in_a_read_only_cache_is_a_storage_error(monkeypatch, data_root, fake_mnist):
    directory = datasets.fetch("mnist", sources=[FolderSource(fake_mnist)]).directory
    (directory / datasets.TEST_LABELS).write_bytes(b"\x00\x00\x08\x01")
    real_unlink = Path.unlink

    def unlink(self, *args, **kwargs):
        if self.parent == directory:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        return real_unlink(self, *args, **kwargs)

    monkeypatch.setattr(Path, "unlink", unlink)
    with pytest.raises(StorageError, match="cannot remove the corrupt cached file .*read-only"):
        datasets.fetch("mnist", sources=[FolderSource(fake_mnist)], notice=lambda message: None)


# --- a disk that fills during a fetch (the machine's failure: exit 1) --------------------------------


class FullDiskFile:
    """A file being written on a disk with `room` bytes left: the write after that raises ENOSPC."""

    def __init__(self, stream, room: int) -> None:
        self.stream, self.room = stream, room

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stream.close()

    def write(self, data) -> int:
        if len(data) > self.room:
            self.stream.write(data[: self.room])
            self.room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self.stream.name)
        self.room -= len(data)
        return self.stream.write(data)


def test_a_disk_filling_while_copying_exits_1_and_leaves_no_scratch(run_cli, monkeypatch, data_root, fake_mnist):
    real_open = open

    def open_on_a_full_disk(file, mode="r", *args, **kwargs):
        stream = real_open(file, mode, *args, **kwargs)
        return FullDiskFile(stream, room=100_000) if "w" in mode else stream

    monkeypatch.setattr(sources, "open", open_on_a_full_disk, raising=False)  # the write boundary of sources
    code, _, err = run_cli("data", "fetch", "mnist", "--from", str(fake_mnist))
    assert code == 1 and "the disk is full" in err and "nothing was added to the data cache" in err
    assert_one_line_error(err)
    assert cache_files(data_root) == []  # no scratch, no half file, not even the empty folders

    monkeypatch.undo()  # space freed: the same fetch now works
    monkeypatch.setenv("DIGITLAB_DATA", str(data_root))
    monkeypatch.setitem(datasets.DATASETS, "mnist", dataclasses.replace(
        datasets.DATASETS["mnist"], checksums=write_fake_dataset(fake_mnist)))
    assert len(datasets.fetch("mnist", sources=[FolderSource(fake_mnist)]).origins) == 4


def test_a_disk_filling_in_the_idx_writer_is_a_storage_error_and_leaves_no_scratch(monkeypatch, data_root,
                                                                                   tmp_path):
    train_images, train_labels = make_images(64, seed=1)
    test_images, test_labels = make_images(16, seed=2)
    archive = tmp_path / "mnist.npz"
    np.savez(archive, x_train=train_images, y_train=train_labels, x_test=test_images, y_test=test_labels)
    checksums = write_fake_dataset(tmp_path / "expected", train_count=64, test_count=16)
    monkeypatch.setitem(datasets.DATASETS, "mnist", dataclasses.replace(datasets.DATASETS["mnist"], checksums=checksums))
    source = KerasNpzSource(archive.as_uri())  # urllib reads file:// like http://: no network needed
    real_write_bytes = Path.write_bytes

    def write_bytes_on_a_full_disk(self, data):
        real_write_bytes(self, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))

    monkeypatch.setattr(Path, "write_bytes", write_bytes_on_a_full_disk)  # what idx.write_idx calls
    with pytest.raises(StorageError, match="the disk is full") as caught:
        datasets.fetch("mnist", sources=[source])
    assert "\n" not in str(caught.value) and cache_files(data_root) == []
    monkeypatch.setattr(Path, "write_bytes", real_write_bytes)
    assert len(datasets.fetch("mnist", sources=[source]).origins) == 4


# --- a corrupt cache is repaired, and said so -----------------------------------------------------------


def corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def test_fetch_tells_each_repaired_file_through_notice(data_root, fake_mnist):
    directory = datasets.fetch("mnist", sources=[FolderSource(fake_mnist)]).directory
    corrupt(directory / datasets.TRAIN_LABELS)
    (directory / datasets.TEST_IMAGES).write_bytes(b"")  # truncated to nothing
    notices = []
    result = datasets.fetch("mnist", sources=[FolderSource(fake_mnist)], notice=notices.append)
    assert sorted(result.repaired) == sorted([datasets.TRAIN_LABELS, datasets.TEST_IMAGES])
    assert len(notices) == 2 and all("failed its checksum" in text and "fetched again" in text for text in notices)
    assert any(datasets.TRAIN_LABELS in text for text in notices)
    assert all(status.state == "ok" for status in datasets.verify("mnist"))


def test_load_passes_notice_on_so_train_can_print_the_repair(data_root, fake_mnist):
    directory = datasets.fetch("mnist", sources=[FolderSource(fake_mnist)]).directory
    corrupt(directory / datasets.TEST_LABELS)
    notices = []
    (_, _), (_, test_labels) = datasets.load("mnist", from_dir=fake_mnist, notice=notices.append)
    assert len(test_labels) == 128 and len(notices) == 1 and datasets.TEST_LABELS in notices[0]


def test_without_a_notice_callback_a_repair_is_a_warning(data_root, fake_mnist):
    directory = datasets.fetch("mnist", sources=[FolderSource(fake_mnist)]).directory
    corrupt(directory / datasets.TRAIN_IMAGES)
    with pytest.warns(datasets.CacheRepairedWarning, match="train-images-idx3-ubyte failed its checksum"):
        datasets.load("mnist", from_dir=fake_mnist)


def test_data_fetch_prints_the_repair_once(run_cli, data_root, fake_mnist):
    directory = datasets.fetch("mnist", sources=[FolderSource(fake_mnist)]).directory
    corrupt(directory / datasets.TRAIN_LABELS)
    code, _, err = run_cli("data", "fetch", "mnist", "--from", str(fake_mnist))
    assert code == 0 and err.count("failed its checksum") == 1 and err.startswith("warning:")


def test_a_corrupt_cache_with_no_source_exits_1_and_keeps_no_corrupt_file(run_cli, monkeypatch, data_root,
                                                                          fake_mnist, tmp_path):
    directory = datasets.fetch("mnist", sources=[FolderSource(fake_mnist)]).directory
    corrupt(directory / datasets.TEST_LABELS)
    monkeypatch.setattr(datasets, "default_sources", lambda name, from_dir=None: [FolderSource(tmp_path / "none")])
    code, _, err = run_cli("data", "fetch", "mnist")
    assert code == 1 and "failed its checksum" in err and "could not get verified mnist files" in err
    assert not (directory / datasets.TEST_LABELS).exists()
    assert all(status.state in ("ok", "missing") for status in datasets.verify("mnist"))


def test_no_working_source_is_the_machines_failure(data_root, fake_mnist, tmp_path):
    with pytest.raises(DataUnavailableError) as caught:
        datasets.fetch("mnist", sources=[FolderSource(tmp_path / "none")])
    assert caught.value.exit_status == 1


# --- `digitlab data ...` stays light: no Keras, no JAX ------------------------------------------------------


def test_data_commands_import_neither_keras_nor_jax(tmp_path, fake_source_dir):
    folder, checksums = fake_source_dir
    script = textwrap.dedent("""
        import atexit, dataclasses, json, sys
        atexit.register(lambda: print("heavy:", sorted({"keras", "jax"} & set(sys.modules))))
        from digitlab import cli
        from digitlab.data import datasets

        datasets.DATASETS["mnist"] = dataclasses.replace(datasets.DATASETS["mnist"], checksums=json.loads(sys.argv[1]))
        sys.argv = ["digitlab", "data", *sys.argv[2:]]
        cli.main()
    """)
    environment = {**os.environ, "DIGITLAB_DATA": str(tmp_path / "cache")}
    for arguments in (["fetch", "mnist", "--from", str(folder)], ["verify", "mnist"], ["info", "mnist"],
                      ["path", "mnist"]):
        completed = subprocess.run([sys.executable, "-c", script, json.dumps(checksums), *arguments],
                                   env=environment, capture_output=True, text=True, timeout=120)
        assert completed.returncode == 0, completed.stderr
        assert "heavy: []" in completed.stdout, (arguments, completed.stdout)


# --- kill -9 in the middle of `digitlab data fetch` ------------------------------------------------------


FETCH_WITH_FAKE_CHECKSUMS = textwrap.dedent("""
    import dataclasses, json, sys
    from digitlab import cli
    from digitlab.data import datasets

    # The tiny fake files' checksums in place of the real ones, as the fixtures do in-process.
    datasets.DATASETS["mnist"] = dataclasses.replace(datasets.DATASETS["mnist"], checksums=json.loads(sys.argv[1]))
    sys.argv = ["digitlab", "data", "fetch", "mnist", "--from", sys.argv[2]]
    cli.main()
""")


@pytest.mark.slow
def test_kill_9_at_random_moments_leaves_the_cache_valid_or_empty(tmp_path):
    source = tmp_path / "gz"
    # Bigger than the other fixtures so that the copy takes long enough to be killed in the middle;
    # gzipped here at level 1, as the fixture's level 9 takes seconds on noisy images.
    checksums = write_fake_dataset(source, train_count=20_000, test_count=2_000)
    for name in checksums:
        raw = source / name
        (source / (name + ".gz")).write_bytes(gzip.compress(raw.read_bytes(), compresslevel=1))
        raw.unlink()
    root = tmp_path / "cache"
    environment = {**os.environ, "DIGITLAB_DATA": str(root)}
    environment.pop("DIGITLAB_DATA_FROM", None)
    command = [sys.executable, "-c", FETCH_WITH_FAKE_CHECKSUMS, json.dumps(checksums), str(source)]

    def assert_cache_valid_or_empty(moment: str) -> None:
        directory = root / "mnist"
        for path in directory.iterdir() if directory.exists() else ():
            if path.name.startswith(".partial-"):
                continue  # scratch: never part of the cache; the next fetch removes it
            assert path.name in checksums, f"{moment}: unexpected {path.name} in the cache"
            assert hashlib.sha256(path.read_bytes()).hexdigest() == checksums[path.name], \
                f"{moment}: {path.name} in the cache is half-written"

    def start_and_wait_for_new_scratch() -> tuple[subprocess.Popen, float]:
        """Start a fetch; return it once it has made a new scratch folder (or ended), and when that was."""
        before = set(root.glob("mnist/.partial-*"))
        process = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.perf_counter() + 60
        while not set(root.glob("mnist/.partial-*")) - before and process.poll() is None \
                and time.perf_counter() < deadline:
            time.sleep(0.002)
        return process, time.perf_counter()

    started = time.perf_counter()
    process, copy_started = start_and_wait_for_new_scratch()
    assert process.wait(timeout=120) == 0
    whole_run, copying = time.perf_counter() - started, time.perf_counter() - copy_started
    for stale in (root / "mnist").iterdir():
        stale.unlink()

    rng = random.Random(14)
    for attempt in range(8):
        if attempt % 2:  # while copying, verifying and renaming
            process, _ = start_and_wait_for_new_scratch()
            delay = rng.uniform(0.0, copying)
        else:  # anywhere in the run, start-up included
            process = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            delay = rng.uniform(0.0, whole_run)
        time.sleep(delay)
        process.kill()  # SIGKILL: no handler, no cleanup runs
        process.wait(timeout=60)
        assert_cache_valid_or_empty(f"attempt {attempt}, killed after {delay:.3f} s")
        if all((root / "mnist" / name).exists() for name in checksums):
            for name in checksums:  # it finished before the kill: start the next attempt from scratch
                (root / "mnist" / name).unlink()

    completed = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert sorted(os.listdir(root / "mnist")) == sorted(checksums)  # every file, and the scratch gone
    assert_cache_valid_or_empty("after the last fetch")

