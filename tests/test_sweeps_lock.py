"""Sweeps racing for one folder and killed mid-trial: the folder is claimed for one sweep at a time, a lock
left by a dead sweep is taken over, and a sweep's worker processes end with it (even after `kill -9`).

The sweeps run as real processes (`python -c ...`) whose trainer (written below) waits for the test's go
before it finishes its trial, so that the test acts while a trial is in progress.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from digitlab.sweeps import lock, runner, summary
from digitlab.sweeps import plan as plans

TRAINERS = textwrap.dedent('''
    """Trainers for tests/test_sweeps_lock.py: real run folders, finished only when the test says so."""
    import os
    import sys
    import time
    from pathlib import Path

    from digitlab import runs
    from digitlab.config import TrainingConfig

    CONTROL = Path(os.environ["SWEEP_TEST_CONTROL"])


    def waiting_trainer(config, run_dir, backend, data_root):
        """Starts the run folder, notes its process id, waits for CONTROL/release, then finishes the run."""
        folder = runs.create_run_dir(run_dir, "unused")
        runs.write_json(folder / "config.json", {"training": config, "input_shape": [784]})
        (CONTROL / f"worker-{os.getpid()}").write_text(str(folder))
        while not (CONTROL / "release").exists():
            time.sleep(0.05)
        (CONTROL / "writes").open("a").write(f"{os.getpid()} {folder.name}\\n")
        runs.write_json(folder / "metrics.json", {
            "status": "finished", "epochs_completed": TrainingConfig.from_dict(config).epochs, "test_accuracy": 0.9,
            "test_loss": 0.1, "train_accuracy": 0.9, "train_loss": 0.1, "fit_seconds": 1.0, "samples_per_second": 1.0})
        return "finished"


    def main():
        from digitlab.sweeps import plan as plans
        from digitlab.sweeps import runner

        sweep_plan = plans.grid_plan({"epochs": [1], "batch_size": [16, 32]}, seeds=1)
        result = runner.run_sweep(sweep_plan, sys.argv[1], jobs=1, trainer=waiting_trainer)
        print(f"trained {result.trained} skipped {result.skipped}", flush=True)
''')


@pytest.fixture
def sweep_process(tmp_path):
    """Start `run_sweep` (two trials, one process each) on a folder in a process of its own; returns a starter."""
    (tmp_path / "trainers").mkdir()
    (tmp_path / "trainers" / "sweep_test_trainers.py").write_text(TRAINERS)
    control = tmp_path / "control"
    control.mkdir()
    environment = {**os.environ, "SWEEP_TEST_CONTROL": str(control),
                   "PYTHONPATH": os.pathsep.join([str(tmp_path / "trainers"), os.environ.get("PYTHONPATH", "")])}
    started = []

    def start(sweep_dir):
        process = subprocess.Popen([sys.executable, "-c", "import sweep_test_trainers as t; t.main()", str(sweep_dir)],
                                   env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started.append(process)
        return process

    start.control = control
    yield start
    (control / "release").write_text("")
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=60)


def wait_for(condition, seconds=120.0, what="the condition"):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def workers(control):
    return sorted(control.glob("worker-*"))


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (dead, not yet reaped) counts as gone
        with open(f"/proc/{pid}/stat") as stream:
            return stream.read().split(") ")[1][0] != "Z"
    except OSError:
        return True


def test_a_second_sweep_on_a_folder_in_use_is_refused_and_the_first_ones_trial_is_untouched(
        sweep_process, tmp_path, run_cli):
    sweep_dir = tmp_path / "sweep"
    first = sweep_process(sweep_dir)
    (marker,) = wait_for(lambda: workers(sweep_process.control), what="the first sweep's trial to start")
    in_progress = sweep_dir / "trials" / os.path.basename(marker.read_text())
    assert in_progress.is_dir() and not (in_progress / "metrics.json").exists()

    # The same grid from the command line, on the same folder: it would clear the trial in progress.
    code, _, err = run_cli("sweep", "--epochs", "1", "--batch-size", "16,32", "--sweep-dir", str(sweep_dir))
    assert code == 2 and "is in use by another `digitlab sweep` (process" in err and str(sweep_dir) in err
    with pytest.raises(lock.SweepFolderBusyError, match=f"process {first.pid} on "):
        runner.run_sweep(plans.grid_plan({"epochs": [1], "batch_size": [16]}), sweep_dir, isolate=False)
    assert (in_progress / "config.json").exists()

    (sweep_process.control / "release").write_text("")
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert "trained 2 skipped 0" in out
    assert {summary.trial_status(path) for path in (sweep_dir / "trials").iterdir()} == {"finished"}


def test_a_lock_left_by_a_dead_sweep_is_taken_over(tmp_path):
    sweep_dir = tmp_path / "sweep"
    sweep_dir.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (sweep_dir / lock.LOCK_FILE).write_text(json.dumps({"pid": dead.pid, "host": "here", "started_at": "then"}))
    # Nobody holds it (the file alone does not lock): taken, and then refused to a second claimant.
    with lock.SweepLock(sweep_dir), pytest.raises(lock.SweepFolderBusyError, match=f"process {os.getpid()}"):
        lock.SweepLock(sweep_dir).acquire()
    lock.SweepLock(sweep_dir).acquire()  # released on leaving: free again


def test_kill_9_of_a_sweep_ends_its_trial_worker_and_a_rerun_resumes_alone(sweep_process, tmp_path):
    sweep_dir = tmp_path / "sweep"
    first = sweep_process(sweep_dir)
    (marker,) = wait_for(lambda: workers(sweep_process.control), what="the trial worker to start")
    worker_pid = int(marker.name.split("-")[1])
    assert alive(worker_pid)

    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    wait_for(lambda: not alive(worker_pid), seconds=10, what=f"the orphaned worker {worker_pid} to end")
    marker.unlink()

    # An immediate re-run trains both trials; no worker of the killed sweep writes into them.
    (sweep_process.control / "release").write_text("")
    second = sweep_process(sweep_dir)
    out, err = second.communicate(timeout=180)
    assert second.returncode == 0, err
    assert "trained 2 skipped 0" in out
    writers = [line.split()[0] for line in (sweep_process.control / "writes").read_text().splitlines()]
    assert len(writers) == 2 and str(worker_pid) not in writers
    assert {summary.trial_status(path) for path in (sweep_dir / "trials").iterdir()} == {"finished"}
