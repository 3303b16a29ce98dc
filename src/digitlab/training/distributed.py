"""Data-parallel training on Keras's distribution API (JAX backend only).

One process with several devices (GPUs, TPUs, or CPU devices made with
XLA_FLAGS=--xla_force_host_platform_device_count=N), or several processes or hosts joined by
`keras.distribution.initialize`. Keras replicates the model and splits each global batch over all
devices; nothing here talks to another process except through Keras and JAX.
"""

from __future__ import annotations

import dataclasses
import os

from digitlab.backend import import_keras
from digitlab.errors import BackendError, ConfigError

STRATEGIES = ("data-parallel",)


@dataclasses.dataclass(frozen=True)
class DistributionSettings:
    """How this process takes part in training."""

    # "data-parallel", or None to train on one device as usual.
    strategy: str | None = None
    # HOST:PORT of process 0, which coordinates the others (several processes only).
    coordinator: str | None = None
    # Number of processes training together; 1 for a single process.
    num_processes: int = 1
    # This process's number, 0 .. num_processes - 1; process 0 writes the run folder.
    process_id: int = 0

    def __post_init__(self) -> None:
        if self.strategy is not None and self.strategy not in STRATEGIES:
            raise ConfigError(f"unknown distribution {self.strategy!r}; choose one of: {', '.join(STRATEGIES)}")
        if self.num_processes < 1:
            raise ConfigError(f"--num-processes must be at least 1, got {self.num_processes}")
        if not 0 <= self.process_id < self.num_processes:
            raise ConfigError(f"--process-id must be in 0..{self.num_processes - 1}, got {self.process_id}")
        if self.num_processes > 1 and not self.coordinator:
            raise ConfigError("several processes need --coordinator HOST:PORT (the address of process 0), "
                              "or KERAS_DISTRIBUTION_JOB_ADDRESSES")
        if self.num_processes > 1 and self.strategy is None:
            raise ConfigError("several processes need --distribute data-parallel")

    @property
    def writes_run(self) -> bool:
        """Only process 0 writes the run folder."""
        return self.process_id == 0

    @classmethod
    def from_arguments(cls, strategy: str | None = None, coordinator: str | None = None,
                       num_processes: int | None = None, process_id: int | None = None) -> DistributionSettings:
        """Flags first, then Keras's KERAS_DISTRIBUTION_* environment variables, then one process."""
        environment = os.environ
        coordinator = coordinator or environment.get("KERAS_DISTRIBUTION_JOB_ADDRESSES") or None
        if coordinator and "," in coordinator:
            coordinator = coordinator.split(",")[0]  # as Keras: the first address is the coordinator
        try:
            if num_processes is None:
                num_processes = int(environment.get("KERAS_DISTRIBUTION_NUM_PROCESSES", "1"))
            if process_id is None:
                process_id = int(environment.get("KERAS_DISTRIBUTION_PROCESS_ID", "0"))
        except ValueError as err:
            raise ConfigError(f"KERAS_DISTRIBUTION_NUM_PROCESSES and _PROCESS_ID must be whole numbers: {err}") from err
        if strategy is None and num_processes > 1:
            strategy = "data-parallel"
        return cls(strategy, coordinator, num_processes, process_id)


def local_copy(model, build):
    """A copy of a replicated model that lives on this process alone, for saving without collectives.

    Args:
        model: the trained, distributed model.
        build: a function returning a fresh model of the same architecture.
    """
    keras = import_keras()
    # Every process holds a full copy of each replicated weight; read the local one.
    weights = [_local_value(variable) for variable in model.weights]
    keras.distribution.set_distribution(None)
    copy = build()
    copy.set_weights(weights)
    return copy


def _local_value(variable):
    import numpy as np

    value = variable.value
    return np.asarray(value.addressable_data(0) if hasattr(value, "addressable_data") else value)


def setup(settings: DistributionSettings) -> list[str]:
    """Join the other processes (if any) and make Keras replicate models over all devices.

    Call after selecting the backend and before building the model. Returns the device list.
    """
    keras = import_keras()
    if keras.backend.backend() != "jax":
        raise BackendError(f"--distribute data-parallel needs the JAX backend (Keras's distribution API), "
                           f"not {keras.backend.backend()}; use --backend jax")
    if settings.num_processes > 1:
        import jax

        if _platform() == "cpu":
            # CPU devices of several processes talk through Gloo collectives.
            jax.config.update("jax_cpu_collectives_implementation", "gloo")
        keras.distribution.initialize(settings.coordinator, settings.num_processes, settings.process_id)
    devices = list(keras.distribution.list_devices())
    # Each process already holds only its own share of the data (see `shard`), so Keras must not
    # shard it again (it can only auto-shard tf.data pipelines anyway).
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices, auto_shard_dataset=False))
    return devices


def callbacks() -> list:
    """Keras callbacks a data-parallel `fit` needs here: on CPU devices sharing one process, one
    compiled call in flight at a time.

    With several CPU devices in one process, XLA's CPU runtime can deadlock when calls are queued
    ahead (JAX's asynchronous dispatch): an all-reduce of the next call takes a worker thread and
    waits for the other device, which needs that thread to finish the current call. Seen here on 2
    cores after a few hundred steps, with Keras and with plain JAX alike; waiting for each call's
    results before sending the next never stalled. Each call runs STEPS_PER_EXECUTION batches, so
    the wait costs little. GPUs, TPUs and one CPU device per process keep full asynchrony.
    """
    import jax

    local_cpu_devices = [device for device in jax.local_devices() if device.platform == "cpu"]
    if len(local_cpu_devices) < 2:
        return []
    keras = import_keras()

    class OneCallInFlight(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            jax.block_until_ready(logs)

        def on_test_batch_end(self, batch, logs=None):
            jax.block_until_ready(logs)

        def on_predict_batch_end(self, batch, logs=None):
            jax.block_until_ready(logs)

    return [OneCallInFlight()]


def shard(array, settings: DistributionSettings):
    """This process's share of the data: every num_processes-th example, starting at process_id."""
    return array if settings.num_processes == 1 else array[settings.process_id::settings.num_processes]


def _platform() -> str:
    platforms = os.environ.get("JAX_PLATFORMS") or os.environ.get("JAX_PLATFORM_NAME") or ""
    if platforms:
        return platforms.split(",")[0]
    import importlib.util

    # Without a GPU plugin installed, JAX runs on the CPU.
    return "gpu" if importlib.util.find_spec("jax_cuda12_plugin") or importlib.util.find_spec("jax_cuda13_plugin") else "cpu"
