"""Run folders that cannot be used: a file, a path under a file, a read-only or full disk, /proc.

Each is refused with a one-line RunFolderError (the CLI exits 2) or, for a full disk, a
StorageError (exit 1), and leaves no folder or file behind.
"""

import errno
import json
import os
from pathlib import Path

import pytest

from digitlab import runs
from digitlab.errors import RunFolderError, StorageError


def refuse_mkdir(monkeypatch, under: Path, error_number: int) -> None:
    """Make creating any folder under `under` fail as the OS would (tests run as root: chmod stops nothing)."""
    real_mkdir = Path.mkdir

    def mkdir(self, *args, **kwargs):
        if self == under or under in self.parents:
            raise OSError(error_number, os.strerror(error_number), str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)


def test_a_new_or_empty_folder_is_free_and_created_with_its_parents(tmp_path):
    (tmp_path / "empty").mkdir()
    runs.check_run_dir_free(tmp_path / "empty")
    assert runs.create_run_dir(tmp_path / "a" / "b", "x") == tmp_path / "a" / "b"
    assert (tmp_path / "a" / "b").is_dir()


def test_a_folder_holding_a_run_is_refused_and_kept(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "model.keras").write_text("an earlier run")
    with pytest.raises(RunFolderError, match="already exists and is not empty"):
        runs.create_run_dir(tmp_path / "run", "x")
    assert (tmp_path / "run" / "model.keras").read_text() == "an earlier run"


def test_a_file_is_refused_as_a_file_not_as_a_taken_folder(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("mine")
    with pytest.raises(RunFolderError) as caught:
        runs.create_run_dir(path, "x")
    assert "is a file, not a folder" in str(caught.value) and "not empty" not in str(caught.value)
    assert path.read_text() == "mine"


def test_a_path_under_a_file_names_the_file(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(RunFolderError, match=r"notes.txt is a file, not a folder"):
        runs.create_run_dir(tmp_path / "notes.txt" / "run", "x")


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_a_folder_under_proc_is_refused_with_the_reason():
    with pytest.raises(RunFolderError, match="does not allow new folders") as caught:
        runs.create_run_dir("/proc/digitlab-run", "x")
    assert "--run-dir" in str(caught.value) and "\n" not in str(caught.value)


def test_a_read_only_file_system_is_a_run_folder_error(tmp_path, monkeypatch):
    refuse_mkdir(monkeypatch, tmp_path / "mount", errno.EROFS)  # as a read-only mount answers
    with pytest.raises(RunFolderError, match="cannot create run folder .*Read-only file system"):
        runs.create_run_dir(tmp_path / "mount" / "run", "x")
    with pytest.raises(RunFolderError, match="Read-only file system"):
        runs.create_run_dir(None, "x", runs_root=tmp_path / "mount" / "runs")
    assert not (tmp_path / "mount").exists()


def test_a_full_disk_when_creating_is_a_storage_error(tmp_path, monkeypatch):
    refuse_mkdir(monkeypatch, tmp_path / "full", errno.ENOSPC)
    with pytest.raises(StorageError, match="free some space"):
        runs.create_run_dir(tmp_path / "full" / "run", "x")


def test_the_default_runs_root_being_a_file_is_refused(tmp_path):
    (tmp_path / "runs").write_text("not a folder")
    with pytest.raises(RunFolderError, match="a file is in the way"):
        runs.create_run_dir(None, "x", runs_root=tmp_path / "runs")


def test_a_write_that_fills_the_disk_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"
    path.write_text("old")
    real_fdopen = os.fdopen

    class FullDisk:
        def __init__(self, stream):
            self.stream = stream

        def __enter__(self):
            return self

        def __exit__(self, *exc_info):
            self.stream.close()

        def write(self, text):
            self.stream.write(text[:3])  # part of it fits, then the disk is full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fdopen", lambda *args, **kwargs: FullDisk(real_fdopen(*args, **kwargs)))
    with pytest.raises(StorageError, match="cannot write .*metrics.json: No space left on device"):
        runs.write_text_atomic(path, "new contents")
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_train_with_a_file_as_run_dir_exits_2_with_one_line(run_cli, tmp_path, data_root):
    path = tmp_path / "notes.txt"
    path.write_text("mine")
    code, _, err = run_cli("train", "--epochs", "1", "--run-dir", str(path))
    assert code == 2 and err.startswith("error:") and "is a file, not a folder" in err
    assert err.strip().count("\n") == 0 and "Traceback" not in err
    assert path.read_text() == "mine"


def test_history_is_read_back_as_written(tmp_path):
    history = {"loss": [0.5, 0.25], "accuracy": [0.8, 0.9], "val_loss": [0.6, 0.4], "val_accuracy": [0.7, 0.85]}
    runs.write_history(tmp_path / "history.csv", history)
    assert runs.read_history(tmp_path / "history.csv") == history
    assert runs.read_history(tmp_path / "missing.csv") == {}


# --- claims: one train per run folder --------------------------------------------------------------


def claim_and_die(run_dir: Path, write_config: bool) -> int:
    """A real process that claims `run_dir` (and maybe writes config.json), then is killed with SIGKILL."""
    import signal
    import subprocess
    import sys

    code = (f"from pathlib import Path; from digitlab import runs; import time\n"
            f"claim = runs.claim_run_dir({str(run_dir)!r}, 'x')\n"
            + (f"Path({str(run_dir)!r}, 'config.json').write_text('{{}}')\n" if write_config else "")
            + "print('claimed', flush=True); time.sleep(120)")
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "claimed"
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    return process.pid


def test_a_claimed_folder_is_refused_until_released(tmp_path):
    run_dir = tmp_path / "run"
    first = runs.claim_run_dir(run_dir, "x")
    assert first.path == run_dir and (run_dir / runs.CLAIM_FILE).is_file()
    for attempt in (lambda: runs.claim_run_dir(run_dir, "x"), lambda: runs.check_run_dir_free(run_dir)):
        with pytest.raises(RunFolderError, match=rf"being written by another `digitlab train` \(process {os.getpid()}"):
            attempt()
    first.release()
    assert list(run_dir.iterdir()) == []  # released: the claim file is gone
    with runs.claim_run_dir(run_dir, "x") as second:
        assert second.held
    assert not second.held and list(run_dir.iterdir()) == []


def test_a_run_finished_in_the_folder_before_the_claim_is_not_overwritten(tmp_path):
    run_dir = tmp_path / "run"
    with runs.claim_run_dir(run_dir, "x"):
        (run_dir / runs.METRICS_FILE).write_text("{}")  # the first run finishes
    with pytest.raises(RunFolderError, match="already exists and is not empty"):
        runs.claim_run_dir(run_dir, "x")
    assert sorted(path.name for path in run_dir.iterdir()) == [runs.METRICS_FILE]


def test_abandon_removes_the_runs_files_the_claim_and_the_folder(tmp_path):
    claim = runs.claim_run_dir(tmp_path / "run", "x")
    (claim.path / runs.CONFIG_FILE).write_text("{}")
    claim.abandon()
    assert not (tmp_path / "run").exists() and not claim.held


def test_the_claim_of_a_killed_train_with_files_says_how_to_clear_it(tmp_path):
    run_dir = tmp_path / "run"
    pid = claim_and_die(run_dir, write_config=True)
    for attempt in (lambda: runs.claim_run_dir(run_dir, "x"), lambda: runs.check_run_dir_free(run_dir)):
        with pytest.raises(RunFolderError, match=rf"never finished: process {pid} .*stopped .*rm -r {run_dir}"):
            attempt()
    assert sorted(path.name for path in run_dir.iterdir()) == [runs.CLAIM_FILE, runs.CONFIG_FILE]  # nothing removed


def test_the_bare_claim_of_a_killed_train_is_taken_over(tmp_path):
    run_dir = tmp_path / "run"
    claim_and_die(run_dir, write_config=False)
    runs.check_run_dir_free(run_dir)
    with runs.claim_run_dir(run_dir, "x") as claim:
        assert json.loads((run_dir / runs.CLAIM_FILE).read_text())["pid"] == os.getpid() and claim.held


def test_an_empty_claim_left_by_a_process_killed_as_it_claimed_is_taken_over(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / runs.CLAIM_FILE).write_text("")  # created, never written, nobody holds its lock
    runs.check_run_dir_free(run_dir)
    with runs.claim_run_dir(run_dir, "x") as claim:
        assert claim.held and json.loads((run_dir / runs.CLAIM_FILE).read_text())["pid"] == os.getpid()
