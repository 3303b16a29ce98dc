"""Train a network on a data set and save everything about the run into a new run folder.

Pipeline order: prepare data, build, compile, fit, evaluate on the test set, save.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from digitlab import runs
from digitlab.backend import (
    enable_compilation_cache,
    import_keras,
    import_keras_in_background,
    select_backend,
    versions,
)
from digitlab.config import TrainingConfig
from digitlab.data import arrays, datasets
from digitlab.data.sources import ProgressCallback
from digitlab.errors import ConfigError
from digitlab.training import distributed, fastfit
from digitlab.training.distributed import DistributionSettings
from digitlab.training.models import build_model

# Batches run per compiled call on backends that support it. It changes no arithmetic (the same
# updates in the same order) but saves Python overhead per batch: measured 7.8 s -> 5.6 s of `fit`
# for the tutorial's 5 epochs on JAX on 2 cores. PyTorch's Keras trainer only allows 1.
STEPS_PER_EXECUTION = {"jax": 16, "tensorflow": 16, "torch": 1}
# "fast": the JAX-native loop of fastfit.py where it applies (else model.fit); "keras": model.fit.
FIT_LOOPS = ("fast", "keras")
# Evaluation batch: big batches are faster and give the same loss and accuracy.
EVALUATION_BATCH_SIZE = 1000


@dataclasses.dataclass(frozen=True)
class TrainingResult:
    """What `train` returns."""

    # The run folder everything was saved into (None on processes other than 0 of a distributed run).
    run_dir: Path | None
    # The contents of metrics.json.
    metrics: dict[str, Any]
    # Per-epoch Keras history (loss, accuracy, val_loss, ...), as saved in history.csv.
    history: dict[str, list[float]]

    @property
    def interrupted(self) -> bool:
        return self.metrics["status"] == "interrupted"


def train(config: TrainingConfig | None = None, run_dir: str | Path | None = None,
          runs_root: str | Path = runs.DEFAULT_RUNS_ROOT, backend: str | None = None,
          data_root: str | Path | None = None, from_dir: str | Path | None = None,
          verbose: int = 1, callbacks: Sequence[Any] = (),
          progress: ProgressCallback | None = None, fit_loop: str = "fast",
          distribution: DistributionSettings | None = None) -> TrainingResult:
    """Train `config` (the tutorial's recipe by default) and save the run.

    Args:
        config: what to train; `TrainingConfig()` is the tutorial.
        run_dir: folder for this run; must be new or empty. Default: runs_root/<timestamp>-<name>.
        backend: Keras backend ("jax", "tensorflow", "torch"); default $KERAS_BACKEND, else jax.
        data_root: data cache root (default: see `datasets.data_root`).
        from_dir: a local folder to take the data set's files from if they are not cached.
        verbose: Keras `fit` verbosity: 0 silent, 1 progress bar, 2 one line per epoch.
        callbacks: extra Keras callbacks.
        progress: called while data is fetched (see `sources.ProgressCallback`).
        fit_loop: "fast" (default) runs `fastfit` where it applies and `model.fit` elsewhere;
            "keras" always runs `model.fit`. Both compute the same updates.
        distribution: data-parallel training over all devices and processes (see
            distributed.py); only process 0 writes the run folder, the others return run_dir None.

    Ctrl-C during `fit` stops training, keeps the model trained so far, evaluates it and marks
    the run "interrupted".
    """
    config = config or TrainingConfig()
    if fit_loop not in FIT_LOOPS:
        raise ConfigError(f"unknown fit loop {fit_loop!r}; choose one of: {', '.join(FIT_LOOPS)}")
    distribution = distribution or DistributionSettings()
    if config.batch_size % distribution.num_processes:
        raise ConfigError(f"the global batch size {config.batch_size} must divide evenly over "
                          f"{distribution.num_processes} processes")
    # Fail on a taken run folder before any slow work, and write nothing.
    if run_dir is not None and distribution.writes_run:
        runs.check_run_dir_free(run_dir)
    backend_name = select_backend(backend)
    # Importing Keras and JAX takes about a second; do it while the data is read and prepared.
    importer = import_keras_in_background(backend_name)

    # --- prepare data -----------------------------------------------------------------------
    started = time.perf_counter()
    (train_images, train_labels), (test_images, test_labels) = datasets.load(
        config.dataset, root=data_root, from_dir=from_dir, progress=progress)
    if config.max_train_images:
        train_images, train_labels = train_images[:config.max_train_images], train_labels[:config.max_train_images]
    # Several processes: each trains on its own share; Keras assembles the global batches.
    train_images, train_labels = distributed.shard(train_images, distribution), distributed.shard(train_labels, distribution)
    test_images, test_labels = distributed.shard(test_images, distribution), distributed.shard(test_labels, distribution)
    training_inputs = arrays.prepare_images(train_images, config.input_shape)  # (60000, 784) float32 in [0, 1]
    training_targets = arrays.one_hot(train_labels)  # (60000, 10) float32
    test_inputs = arrays.prepare_images(test_images, config.input_shape)  # (10000, 784) or (10000, 28, 28, 1)
    test_targets = arrays.one_hot(test_labels)  # (10000, 10)
    data_seconds = time.perf_counter() - started

    started = time.perf_counter()
    importer.join()
    keras = import_keras(backend_name)
    if backend_name == "jax":
        enable_compilation_cache(Path(data_root or datasets.data_root()) / "compiled")
    # The part of importing Keras/JAX (and setting up the cache) not hidden behind data preparation.
    import_seconds = time.perf_counter() - started
    if distribution.strategy:
        distributed.setup(distribution)
    # What a data-parallel fit and evaluate need (see distributed.callbacks); none otherwise.
    distribution_callbacks = distributed.callbacks() if distribution.strategy else []

    run_path = runs.create_run_dir(run_dir, config.short_name(), runs_root) if distribution.writes_run else None
    if run_path:
        runs.write_json(run_path / runs.CONFIG_FILE, {
            "training": config.to_dict(),
            "backend": backend_name,
            "input_shape": list(training_inputs.shape[1:]),
            "class_names": list(datasets.get_spec(config.dataset).class_names),
            "data": {"dataset": config.dataset, "checksums": datasets.get_spec(config.dataset).checksums},
            "versions": versions(backend_name),
            "devices": _devices(keras),
            "distribution": {"strategy": distribution.strategy, "num_processes": distribution.num_processes,
                             "global_batch_size": config.batch_size},
            "created_at": _now(),
        })
    # Each process feeds its share of every global batch.
    batch_size = config.batch_size // distribution.num_processes

    # --- build and compile --------------------------------------------------------------------
    keras.utils.set_random_seed(config.seed)
    model = build_model(config, backend=backend_name)
    _compile(keras, model, config, backend_name)

    # --- train ------------------------------------------------------------------------------
    recorder = _EpochRecorder(keras)
    loop, fallback_reason = _choose_fit_loop(fit_loop, model)
    interrupted = False
    compile_seconds = None
    started = time.perf_counter()
    try:
        if loop == "fast":
            compile_seconds = fastfit.fit(model, training_inputs, training_targets, epochs=config.epochs,
                                          batch_size=batch_size, validation_split=config.validation_split,
                                          callbacks=[recorder, *callbacks], verbose=verbose).compile_seconds
        else:
            model.fit(training_inputs, training_targets, epochs=config.epochs, batch_size=batch_size,
                      validation_split=config.validation_split, shuffle=True, verbose=verbose,
                      callbacks=[recorder, *distribution_callbacks, *callbacks])
    except KeyboardInterrupt:
        interrupted = True
    fit_seconds = time.perf_counter() - started

    # --- evaluate on the unseen test images ---------------------------------------------------
    started = time.perf_counter()
    test = model.evaluate(test_inputs, test_targets, batch_size=EVALUATION_BATCH_SIZE, verbose=0,
                          return_dict=True, callbacks=distribution_callbacks)
    evaluate_seconds = time.perf_counter() - started

    # --- save -------------------------------------------------------------------------------
    if distribution.strategy:
        # Saving a replicated model may gather its weights with collectives that only this process
        # would join; save a local copy instead (every process makes one, to stay in step).
        model = distributed.local_copy(model, lambda: _compile(keras, build_model(config), config, backend_name))
    history = recorder.history
    epochs_completed = len(recorder.epoch_seconds)
    training_samples = int(len(training_inputs) * (1 - config.validation_split)) * distribution.num_processes
    metrics: dict[str, Any] = {
        "status": "interrupted" if interrupted else "finished",
        "epochs_completed": epochs_completed,
        "test_loss": float(test["loss"]),
        "test_accuracy": float(test["accuracy"]),
        "train_loss": history["loss"][-1] if epochs_completed else None,
        "train_accuracy": history["accuracy"][-1] if epochs_completed else None,
    }
    if "val_accuracy" in history:
        metrics["val_loss"], metrics["val_accuracy"] = history["val_loss"][-1], history["val_accuracy"][-1]
    metrics.update({
        "fit_seconds": round(fit_seconds, 4),
        "epoch_seconds": [round(seconds, 4) for seconds in recorder.epoch_seconds],
        "samples_per_second": round(training_samples * epochs_completed / fit_seconds, 1) if epochs_completed else 0.0,
        # With the fast loop, compilation happens before the first epoch and is timed apart;
        # with model.fit it is inside the first epoch's time.
        "compile_seconds": None if compile_seconds is None else round(compile_seconds, 4),
        "data_seconds": round(data_seconds, 4),
        "import_seconds": round(import_seconds, 4),
        "evaluate_seconds": round(evaluate_seconds, 4),
        "backend": backend_name,
        "fit_loop": loop,
        **({"fit_loop_fallback": fallback_reason} if fallback_reason else {}),
        # Identical on every process of a data-parallel run: a quick check that replicas agree.
        "weights_sha256": _weights_fingerprint(model),
        "finished_at": _now(),
    })
    if run_path:
        runs.write_history(run_path / runs.HISTORY_FILE, history)
        model.save(run_path / runs.MODEL_FILE)
        runs.write_json(run_path / runs.METRICS_FILE, metrics)  # last: its presence marks a complete run
    return TrainingResult(run_path, metrics, history)


def _compile(keras, model, config: TrainingConfig, backend_name: str):
    """Compile with the tutorial's loss and metric and the config's optimizer; returns the model."""
    model.compile(
        loss="categorical_crossentropy",
        optimizer=keras.optimizers.get({"class_name": config.optimizer,
                                        "config": {"learning_rate": config.learning_rate}}),
        metrics=["accuracy"],
        steps_per_execution=STEPS_PER_EXECUTION[backend_name],
    )
    return model


def _choose_fit_loop(requested: str, model) -> tuple[str, str]:
    """("fast" or "keras", why the fast loop was not used: empty when it was or was not asked for)."""
    if requested == "keras":
        return "keras", ""
    usable, reason = fastfit.supports(model)
    return ("fast", "") if usable else ("keras", reason)


def _EpochRecorder(keras):
    """A Keras callback recording each epoch's logs and wall time (kept even when fit is interrupted)."""

    class EpochRecorder(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.history: dict[str, list[float]] = {}
            self.epoch_seconds: list[float] = []
            self._epoch_started = 0.0

        def on_epoch_begin(self, epoch, logs=None):
            self._epoch_started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.epoch_seconds.append(time.perf_counter() - self._epoch_started)
            for name, value in (logs or {}).items():
                self.history.setdefault(name, []).append(float(value))

    return EpochRecorder()


def _weights_fingerprint(model) -> str:
    """SHA-256 of all weights' bytes, in order."""
    digest = hashlib.sha256()
    for weights in model.get_weights():
        digest.update(np.ascontiguousarray(weights).tobytes())
    return digest.hexdigest()


def _devices(keras) -> list[str]:
    """The devices Keras trains on, e.g. ["cpu:0"] or ["cuda:0"], where the backend can list them."""
    try:
        return list(keras.distribution.list_devices())
    except Exception:  # not every backend implements list_devices
        return []


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
