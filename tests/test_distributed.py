"""Data-parallel training on Keras's distribution API: settings, sharding, and real runs.

The real runs use subprocesses, because JAX fixes its devices and processes when it starts.
"""

import json
import os
import re
import socket
import subprocess
import sys

import numpy as np
import pytest

from digitlab.errors import ConfigError
from digitlab.training import distributed
from digitlab.training.distributed import DistributionSettings, shard

SUBSET = ["--epochs", "1", "--max-train-images", "12000", "--quiet"]


def test_settings_default_to_one_process_without_distribution(monkeypatch):
    for name in ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "KERAS_DISTRIBUTION_NUM_PROCESSES", "KERAS_DISTRIBUTION_PROCESS_ID"):
        monkeypatch.delenv(name, raising=False)
    settings = DistributionSettings.from_arguments()
    assert settings == DistributionSettings() and settings.writes_run


def test_settings_read_kerass_environment_variables(monkeypatch):
    monkeypatch.setenv("KERAS_DISTRIBUTION_JOB_ADDRESSES", "10.0.0.1:1234,10.0.0.2:2345")
    monkeypatch.setenv("KERAS_DISTRIBUTION_NUM_PROCESSES", "2")
    monkeypatch.setenv("KERAS_DISTRIBUTION_PROCESS_ID", "1")
    settings = DistributionSettings.from_arguments()
    assert settings == DistributionSettings("data-parallel", "10.0.0.1:1234", 2, 1)
    assert not settings.writes_run
    # Flags win over the variables.
    assert DistributionSettings.from_arguments(process_id=0).process_id == 0


@pytest.mark.parametrize("arguments, message", [
    ({"strategy": "model-parallel"}, "unknown distribution"),
    ({"strategy": "data-parallel", "num_processes": 2, "process_id": 0}, "--coordinator"),
    ({"strategy": "data-parallel", "coordinator": "h:1", "num_processes": 2, "process_id": 2}, "--process-id"),
    ({"strategy": "data-parallel", "num_processes": 0}, "--num-processes"),
])
def test_bad_settings_are_clear_errors(arguments, message):
    with pytest.raises(ConfigError, match=message):
        DistributionSettings(**arguments)


def test_each_process_gets_its_own_disjoint_share():
    data = np.arange(10)
    shares = [shard(data, DistributionSettings("data-parallel", "h:1", 3, index)) for index in range(3)]
    assert sorted(np.concatenate(shares).tolist()) == list(range(10))
    assert shares[1].tolist() == [1, 4, 7]
    assert shard(data, DistributionSettings()) is data


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def digitlab(*arguments, cwd, extra_environment=None):
    environment = {**os.environ, **(extra_environment or {})}
    if "XLA_FLAGS" not in (extra_environment or {}):
        environment.pop("XLA_FLAGS", None)
    return subprocess.Popen([sys.executable, "-m", "digitlab", "train", *arguments], cwd=cwd, env=environment,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def weights_of(output: str) -> str:
    match = re.search(r"weights sha256 ([0-9a-f]{64})", output)
    if not match:
        raise AssertionError(f"no weights checksum in output:\n{output}")
    return match.group(1)


@pytest.mark.slow
@pytest.mark.network
def test_one_process_with_two_cpu_devices(tmp_path):
    # 750 steps: without distributed.callbacks() XLA's CPU runtime stalled within a few hundred on
    # 2 cores. A stalled all-reduce aborts the process after 30 s instead of hanging the suite.
    flags = ("--xla_force_host_platform_device_count=2 --xla_cpu_collective_call_warn_stuck_timeout_seconds=10 "
             "--xla_cpu_collective_call_terminate_timeout_seconds=30")
    process = digitlab("--distribute", "data-parallel", "--run-dir", str(tmp_path / "run"), "--epochs", "2",
                       "--max-train-images", "24000", "--quiet", cwd=tmp_path, extra_environment={"XLA_FLAGS": flags})
    out, err = process.communicate(timeout=400)
    assert process.returncode == 0, err[-3000:]
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert config["devices"] == ["cpu:0", "cpu:1"] and config["distribution"]["strategy"] == "data-parallel"
    # Two epochs on 24,000 images: about 95% on one device; two devices compute the same updates.
    assert metrics["test_accuracy"] >= 0.93 and metrics["weights_sha256"] == weights_of(out)


def test_no_extra_callbacks_with_one_device_per_process():
    assert distributed.callbacks() == []


@pytest.mark.slow
@pytest.mark.network
def test_two_processes_train_together_and_only_process_0_writes(tmp_path):
    port = free_port()
    run_dir = tmp_path / "run"
    processes = [digitlab("--distribute", "data-parallel", "--coordinator", f"127.0.0.1:{port}",
                          "--num-processes", "2", "--process-id", str(index), "--run-dir", str(run_dir), *SUBSET,
                          cwd=tmp_path) for index in range(2)]
    outputs = []
    try:
        for process in processes:
            out, err = process.communicate(timeout=400)
            assert process.returncode == 0, err[-3000:]
            outputs.append(out)
    finally:
        for process in processes:
            process.kill()
    assert weights_of(outputs[0]) == weights_of(outputs[1])  # both replicas end with identical weights
    assert sorted(path.name for path in tmp_path.iterdir()) == ["run"]  # one run folder, no runs/ elsewhere
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "finished" and metrics["weights_sha256"] == weights_of(outputs[0])
    assert metrics["test_accuracy"] >= 0.90
    assert json.loads((run_dir / "config.json").read_text())["distribution"]["num_processes"] == 2
