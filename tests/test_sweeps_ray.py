"""Sweeps on a real Ray cluster started by the tests on this machine: a head and a second node (one CPU each).

Real MNIST (the first 2,000 training images, one epoch), so that every node reads the data from its own
digitlab cache. The cluster is stopped at the end of the module, whatever happens.
"""

import csv
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from digitlab.sweeps import plan as plans
from digitlab.sweeps import runner
from digitlab.sweeps.ray_executor import ClusterError, RayExecutor, RayOptions, check_versions, local_versions

ray = pytest.importorskip("ray")
psutil = pytest.importorskip("psutil")  # a dependency of Ray's: finds a node's trial worker process

pytestmark = [pytest.mark.slow, pytest.mark.network]

# Four trials of the tutorial's kind on a few thousand images: 2 batch sizes x 2 seeds.
SETTINGS = {"epochs": [1], "max_train_images": [2000], "hidden_units": [(32,)], "batch_size": [64, 128]}
NODE = {"num_cpus": 1, "object_store_memory": 100 * 1024 * 1024}


def start_node(cluster, attempts=3):
    """Add a node; Ray gives a node 30 s to start, which a busy machine can exceed, so try again then."""
    for attempt in range(attempts):
        try:
            return cluster.add_node(**NODE)
        except Exception:
            if attempt == attempts - 1:
                raise


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    cluster = Cluster()
    try:
        cluster.head = start_node(cluster)
        cluster.second = start_node(cluster)
        cluster.wait_for_nodes()
        yield cluster
    finally:
        cluster.shutdown()


def read_rows(sweep_dir):
    with open(sweep_dir / "sweep.csv", newline="") as stream:
        return {row["trial"]: row for row in csv.DictReader(stream)}


def read_metrics(sweep_dir, name):
    return json.loads((sweep_dir / "trials" / name / "metrics.json").read_text())


def test_a_sweep_on_two_nodes_matches_the_same_sweep_run_locally(cluster, tmp_path):
    plan = plans.grid_plan(SETTINGS, seeds=2)
    on_ray = runner.run_sweep(plan, tmp_path / "ray", executor=RayExecutor(RayOptions(address=cluster.address)))
    assert (on_ray.trained, on_ray.interrupted) == (4, False)
    local = runner.run_sweep(plan, tmp_path / "local", jobs=2)
    assert local.trained == 4

    ray_rows, local_rows = read_rows(tmp_path / "ray"), read_rows(tmp_path / "local")
    assert list(ray_rows) == list(local_rows) == [trial.name for trial in plan.trials()]
    nodes = {row["node"] for row in ray_rows.values()}
    assert len(nodes) == 2, nodes  # both nodes trained trials
    assert {node.split(" (node ")[1].rstrip(")") for node in nodes} == {
        cluster.head.node_id[:12], cluster.second.node_id[:12]}
    for name, row in ray_rows.items():  # same seeds, same numbers: the very same weights
        assert row["status"] == local_rows[name]["status"] == "finished"
        assert row["test_accuracy"] == local_rows[name]["test_accuracy"]
        assert read_metrics(tmp_path / "ray", name)["weights_sha256"] == \
            read_metrics(tmp_path / "local", name)["weights_sha256"]
        ray_files = {path.name for path in (tmp_path / "ray" / "trials" / name).iterdir()}
        assert ray_files == {path.name for path in (tmp_path / "local" / "trials" / name).iterdir()}
    for name in ("sweep.md", "sweep_accuracy_vs_time.png", "sweep_factors.png", "sweep.json"):
        assert (tmp_path / "ray" / name).exists()

    def accuracy_cells(path):  # sweep.md's table: batch size, seeds, test and training accuracy (not the times)
        return [line.split("|")[1:5] for line in path.read_text().splitlines() if line.startswith(("| 64 ", "| 128 "))]

    assert accuracy_cells(tmp_path / "ray" / "sweep.md") == accuracy_cells(tmp_path / "local" / "sweep.md") != []

    again = runner.run_sweep(plan, tmp_path / "ray", executor=RayExecutor(RayOptions(address=cluster.address)))
    assert (again.trained, again.skipped) == (0, 4)


def trial_worker_running(node) -> bool:
    """Whether a trial (a Ray task `train_on_node`) runs on `node` now: a process under its raylet."""
    from ray._private import ray_constants

    raylet = psutil.Process(node.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid)
    for process in raylet.children(recursive=True):
        try:
            if "train_on_node" in " ".join(process.cmdline()):
                return True
        except psutil.Error:
            continue
    return False


def test_a_node_lost_mid_sweep_has_its_trial_trained_again_elsewhere_and_counted_once(cluster, tmp_path):
    plan = plans.grid_plan(SETTINGS, seeds=2)
    removed = threading.Event()
    doomed = cluster.second

    def remove_the_second_node_mid_trial():
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            if trial_worker_running(doomed):
                cluster.remove_node(doomed, allow_graceful=False)
                removed.set()
                return
            time.sleep(0.1)

    killer = threading.Thread(target=remove_the_second_node_mid_trial, daemon=True)
    killer.start()
    events = []
    try:
        result = runner.run_sweep(plan, tmp_path / "sweep", on_trial=events.append,
                                  executor=RayExecutor(RayOptions(address=cluster.address)))
    finally:
        killer.join(timeout=5)
        cluster.second = start_node(cluster)  # the next test has two nodes again
        cluster.wait_for_nodes()
    assert removed.is_set(), "no trial ran on the second node"

    assert (result.trained, result.interrupted) == (4, False)
    assert sorted(event.trial.name for event in events) == sorted(trial.name for trial in plan.trials())
    rows = read_rows(tmp_path / "sweep")
    assert len(rows) == 4 and {row["status"] for row in rows.values()} == {"finished"}
    assert sorted(path.name for path in (tmp_path / "sweep" / "trials").iterdir()) == sorted(rows)
    # The head trained at least the lost trial again; the lost node finished at most what it did before.
    assert sum(cluster.head.node_id[:12] in row["node"] for row in rows.values()) >= 1
    nodes = json.loads((tmp_path / "sweep" / "nodes.json").read_text())
    assert sorted(nodes) == sorted(rows)


def test_a_tpe_search_on_the_cluster_resumes_after_ctrl_c(cluster, tmp_path):
    pytest.importorskip("optuna")
    sweep_dir = tmp_path / "search"
    command = [sys.executable, "-m", "digitlab", "sweep", "--search", "tpe", "--trials", "3", "--executor", "ray",
               "--address", cluster.address, "--set", "learning_rate=1e-4..1e-2:log", "--hidden-units", "16",
               "--hidden-units", "32", "--epochs", "1", "--set", "max_train_images=1500", "--validation-split", "0.2",
               "--sweep-dir", str(sweep_dir)]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)  # its own process group, as a terminal's Ctrl-C reaches
    try:
        deadline = time.monotonic() + 300
        while not list((sweep_dir / "trials").glob("*/metrics.json")) and first.poll() is None:
            assert time.monotonic() < deadline, "no trial finished"
            time.sleep(0.1)
        os.killpg(first.pid, signal.SIGINT)
        out, err = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    assert first.returncode == 130, err
    assert "interrupted: finished trials are kept" in err
    finished_before = {path.parent.name: path.stat().st_mtime_ns for path in (sweep_dir / "trials").glob("*/metrics.json")}
    assert 1 <= len(finished_before) < 3

    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    # Only the trials without a finished folder are trained; one that finished as Ctrl-C came is kept (skipped).
    trained, skipped = map(int, re.search(r"trained (\d+), skipped (\d+)", again.stdout).groups())
    assert trained == 3 - len(finished_before) and skipped <= len(finished_before) and "best: trial " in again.stdout
    rows = read_rows(sweep_dir)
    assert len(rows) == 3 and {row["status"] for row in rows.values()} == {"finished"}
    for name, stamp in finished_before.items():  # kept, not trained again
        assert (sweep_dir / "trials" / name / "metrics.json").stat().st_mtime_ns == stamp
    assert all(row["node"] for row in rows.values())


def test_a_node_with_other_versions_is_named_with_its_versions():
    here = local_versions()
    assert here["digitlab"] and here["keras"]
    reports = [{"host": "head", "node_id": "a" * 56, "address": "10.0.0.1", "versions": dict(here)},
               {"host": "worker-2", "node_id": "b" * 56, "address": "10.0.0.2",
                "versions": {"digitlab": "0.1.0", "keras": here["keras"]}},
               {"host": "worker-3", "node_id": "c" * 56, "address": "10.0.0.3",
                "versions": {"digitlab": None, "keras": None}}]
    with pytest.raises(ClusterError) as raised:
        check_versions(reports, here)
    message = str(raised.value)
    assert "worker-2 (node bbbbbbbbbbbb) at 10.0.0.2 has digitlab 0.1.0" in message
    assert "worker-3 (node cccccccccccc) at 10.0.0.3 has digitlab not installed, keras not installed" in message
    assert f"this machine has digitlab {here['digitlab']}, keras {here['keras']}" in message
    assert "head" not in message.split(";")[0]
    check_versions(reports[:1], here)  # the same versions: nothing to say


def test_the_version_report_runs_where_digitlab_cannot_be_imported(tmp_path):
    """Ray sends it by value: a node without digitlab runs it and reports, instead of failing to unpickle."""
    from ray import cloudpickle

    from digitlab.sweeps import ray_executor

    (tmp_path / "report.pickle").write_bytes(cloudpickle.dumps(ray_executor._installed_versions_function()))
    without_digitlab = ("import sys, pickle; sys.modules['digitlab'] = None; "  # `import digitlab` now fails
                        f"report = pickle.loads(open({str(tmp_path / 'report.pickle')!r}, 'rb').read()); "
                        "print(report(('digitlab', 'no-such-package-here')))")
    finished = subprocess.run([sys.executable, "-c", without_digitlab], capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr
    assert "'no-such-package-here': None" in finished.stdout and "'host': " in finished.stdout
