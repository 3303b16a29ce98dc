"""Train a network on a data set and save everything about the run into a new run folder.

Pipeline order: prepare data, build, compile, fit, evaluate on the test set, save.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from digitlab import runs, storage
from digitlab.backend import (
    enable_compilation_cache,
    import_keras,
    import_keras_in_background,
    select_backend,
    versions,
)
from digitlab.config import EVALUATION_BATCH_SIZE, TrainingConfig
from digitlab.data import arrays, cuts, datasets, nondigits
from digitlab.data.catalog import NOT_A_DIGIT
from digitlab.data.sources import ProgressCallback
from digitlab.errors import ConfigError
from digitlab.record import RunConfig, RunMetrics
from digitlab.training import distributed, fastfit, line_model
from digitlab.training.distributed import DistributionSettings
from digitlab.training.models import build_model, parameter_count, training_bytes

# Batches run per compiled call on backends that support it. It changes no arithmetic (the same
# updates in the same order) but saves Python overhead per batch: measured 7.8 s -> 5.6 s of `fit`
# for the tutorial's 5 epochs on JAX on 2 cores. PyTorch's Keras trainer only allows 1.
STEPS_PER_EXECUTION = {"jax": 16, "tensorflow": 16, "torch": 1}
# "fast": the JAX-native loop of fastfit.py where it applies (else model.fit); "keras": model.fit.
FIT_LOOPS = ("fast", "keras")


@dataclasses.dataclass(frozen=True)
class TrainingResult:
    """What `train` returns."""

    # The run folder everything was saved into (None on processes other than 0 of a distributed run).
    run_dir: Path | None
    # What metrics.json holds.
    metrics: RunMetrics
    # Per-epoch Keras history (loss, accuracy, val_loss, ...), as saved in history.csv.
    history: dict[str, list[float]]

    @property
    def interrupted(self) -> bool:
        return self.metrics.status == "interrupted"

    @property
    def diverged(self) -> bool:
        return self.metrics.status == "diverged"


@dataclasses.dataclass(frozen=True)
class _PreparedData:
    """The tutorial's arrays, ready for the network, and how long they took."""

    training_inputs: np.ndarray  # (N, 784) float32 in [0, 1], or (N, 28, 28, 1) for convnets
    training_targets: np.ndarray  # (N, classes) one-hot float32
    test_inputs: np.ndarray
    test_targets: np.ndarray
    training_count: int  # this process's images trained on: what the validation split leaves
    seconds: float
    class_names: tuple[str, ...]  # the data set's classes, and "not a digit" with non_digit_images
    line_digits: tuple[np.ndarray, np.ndarray] | None = None  # raw training digits, for a line model


@dataclasses.dataclass(frozen=True)
class _FitOutcome:
    """What the training loop did."""

    recorder: Any  # the _EpochRecorder callback: history and epoch times
    loop: str  # "fast" or "keras"
    fallback_reason: str
    interrupted: bool
    compile_seconds: float | None
    seconds: float


def train(config: TrainingConfig | None = None, run_dir: str | Path | None = None,
          runs_root: str | Path = runs.DEFAULT_RUNS_ROOT, backend: str | None = None,
          data_root: str | Path | None = None, from_dir: str | Path | None = None,
          verbose: int = 1, callbacks: Sequence[Any] = (),
          progress: ProgressCallback | None = None, fit_loop: str = "fast",
          distribution: DistributionSettings | None = None,
          notice: Callable[[str], None] | None = None) -> TrainingResult:
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
        notice: called with a sentence for what the user should know, such as a corrupt cached
            data file that was fetched again (see `datasets.load`).

    Ctrl-C during `fit` stops training, keeps the model trained so far, evaluates it and marks
    the run "interrupted". A loss that stops being finite stops training at once and marks the run
    "diverged" (no model is saved: its weights are not numbers).
    """
    config = config or TrainingConfig()
    distribution = distribution or DistributionSettings()
    _check_request(config, fit_loop, distribution, run_dir)
    backend_name = select_backend(backend)
    # Importing Keras and JAX takes about a second; do it while the data is read and prepared.
    importer = import_keras_in_background(backend_name)
    data = _prepare_data(config, distribution, data_root, from_dir, progress, notice)

    started = time.perf_counter()
    importer.join()
    keras = import_keras(backend_name)
    if backend_name == "jax":
        enable_compilation_cache(Path(data_root or datasets.data_root()) / "compiled")
    # The part of importing Keras/JAX (and setting up the cache) not hidden behind data preparation.
    import_seconds = time.perf_counter() - started
    if distribution.strategy:
        distributed.setup(distribution)

    # This process alone writes the folder until the run is saved: a second train on it is refused.
    claim = runs.claim_run_dir(run_dir, config.short_name(), runs_root) if distribution.writes_run else None
    run_path = claim.path if claim else None
    try:
        if run_path:
            run_config = _run_config(config, backend_name, data, keras, distribution)
            runs.write_json(run_path / runs.CONFIG_FILE, run_config.to_dict())
        return _train_and_save(keras, config, backend_name, data, distribution, run_path, fit_loop,
                               callbacks, verbose, import_seconds)
    except BaseException as err:
        if claim:
            claim.abandon()  # a run that crashed leaves nothing half-written
        if "RESOURCE_EXHAUSTED" in str(err):  # XLA could not allocate: activations, not weights (see _check_memory)
            raise ConfigError(f"training ran out of memory ({str(err).splitlines()[0][:200]}); use a smaller "
                              "--batch-size or a smaller network") from err
        raise
    finally:
        if claim:
            claim.release()


def _check_request(config: TrainingConfig, fit_loop: str, distribution: DistributionSettings,
                   run_dir: str | Path | None) -> None:
    """Refuse what cannot work before any slow work, and write nothing."""
    if fit_loop not in FIT_LOOPS:
        raise ConfigError(f"unknown fit loop {fit_loop!r}; choose one of: {', '.join(FIT_LOOPS)}")
    if config.batch_size % distribution.num_processes:
        raise ConfigError(f"the global batch size {config.batch_size} must divide evenly over "
                          f"{distribution.num_processes} processes")
    _check_memory(config)
    if run_dir is not None and distribution.writes_run:
        runs.check_run_dir_free(run_dir)


def _check_memory(config: TrainingConfig) -> None:
    """Refuse a network whose weights alone would not fit in this machine's memory."""
    needed = training_bytes(config)
    try:
        available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not every system can say
        return
    if needed > available:
        raise ConfigError(f"the network has {parameter_count(config):,} weights: training it needs about "
                          f"{needed / 2**30:,.1f} GiB for weights, gradients and optimizer state, more than this "
                          f"machine's {available / 2**30:,.1f} GiB; use fewer or smaller --hidden-units")


def _prepare_data(config: TrainingConfig, distribution: DistributionSettings, data_root, from_dir,
                  progress, notice) -> _PreparedData:
    """Load the data set, keep this process's share, and apply the tutorial's array steps."""
    started = time.perf_counter()
    (train_images, train_labels), (test_images, test_labels) = datasets.load(
        config.dataset, root=data_root, from_dir=from_dir, progress=progress, notice=notice)
    if config.max_train_images:
        train_images, train_labels = train_images[:config.max_train_images], train_labels[:config.max_train_images]
    class_names = tuple(datasets.get_spec(config.dataset).class_names)
    line_digits = (train_images, train_labels) if config.line_model_lines else None
    if config.non_digit_images:
        train_images, train_labels = _with_non_digits(train_images, train_labels, config)
        class_names += (NOT_A_DIGIT,)
    # Several processes: each trains on its own share; Keras assembles the global batches.
    train_images, train_labels = distributed.shard(train_images, distribution), distributed.shard(train_labels, distribution)
    training_count = _training_count(config, len(train_images))
    test_images, test_labels = distributed.shard(test_images, distribution), distributed.shard(test_labels, distribution)
    return _PreparedData(
        training_inputs=arrays.prepare_images(train_images, config.input_shape),  # (60000, 784) float32 in [0, 1]
        training_targets=arrays.one_hot(train_labels, len(class_names)),  # (60000, classes) float32
        test_inputs=arrays.prepare_images(test_images, config.input_shape),  # (10000, 784) or (10000, 28, 28, 1)
        test_targets=arrays.one_hot(test_labels, len(class_names)),  # (10000, classes)
        training_count=training_count,
        seconds=time.perf_counter() - started,
        class_names=class_names, line_digits=line_digits)


def _with_non_digits(images: np.ndarray, labels: np.ndarray, config: TrainingConfig) -> tuple[np.ndarray, np.ndarray]:
    """The training images and labels with config.non_digit_images synthetic non-digits (label 10) mixed in.

    Half are drawn things (letters, symbols, scribbles, shapes, faces), a quarter pairs and pieces of
    the training digits, a quarter wrong cuts through lines of touching training digits; as many
    right cuts (a digit with slivers of its neighbours, labelled with the digit) come with those
    (`data/cuts.py`). The mix is shuffled with the run's seed, so that a validation split (the last
    fraction) holds its share of each.
    """
    drawn, pieces = config.non_digit_images // 2, config.non_digit_images // 4
    wrong_cuts = config.non_digit_images - drawn - pieces
    shapes, _ = nondigits.render_non_digits(drawn, seed=config.seed)
    fragments = nondigits.digit_fragments(images, pieces, seed=config.seed + 1)
    cut_images, cut_labels = cuts.line_cuts(images, labels, 2 * wrong_cuts, seed=config.seed + 2)
    pictures = nondigits.fashion_pictures(config.non_digit_pictures, config.seed + 3) if config.non_digit_pictures else \
        np.zeros((0, *images.shape[1:]), np.uint8)
    images = np.concatenate([images, shapes, fragments, cut_images, pictures])
    labels = np.concatenate([labels, np.full(drawn + pieces, 10, dtype=labels.dtype), cut_labels.astype(labels.dtype),
                             np.full(len(pictures), 10, dtype=labels.dtype)])
    order = np.random.default_rng(config.seed).permutation(len(images))
    return images[order], labels[order]


def _training_count(config: TrainingConfig, image_count: int) -> int:
    """Images trained on, as Keras splits (the last fraction validates); both parts must hold images."""
    training_count = int(image_count * (1.0 - config.validation_split))
    if training_count < 1:
        raise ConfigError(f"--validation-split {config.validation_split} leaves no training images out of "
                          f"{image_count}; use a smaller split or more images")
    if config.validation_split and training_count >= image_count:
        raise ConfigError(f"--validation-split {config.validation_split} leaves no validation images out of "
                          f"{image_count}; use a larger split, more images, or no split")
    return training_count


def _run_config(config: TrainingConfig, backend_name: str, data: _PreparedData, keras,
                distribution: DistributionSettings) -> RunConfig:
    spec = datasets.get_spec(config.dataset)
    return RunConfig(training=config, backend=backend_name, input_shape=tuple(data.training_inputs.shape[1:]),
                     class_names=data.class_names,
                     data={"dataset": config.dataset, "checksums": spec.checksums},
                     versions=versions(backend_name), devices=tuple(_devices(keras)),
                     distribution={"strategy": distribution.strategy, "num_processes": distribution.num_processes,
                                   "global_batch_size": config.batch_size},
                     created_at=runs.utc_now())


def _train_and_save(keras, config: TrainingConfig, backend_name: str, data: _PreparedData,
                    distribution: DistributionSettings, run_path: Path | None, fit_loop: str,
                    callbacks: Sequence[Any], verbose: int, import_seconds: float) -> TrainingResult:
    """Build, compile, fit, evaluate on the test images, save: the pipeline after the data."""
    # What a data-parallel fit and evaluate need (see distributed.callbacks); none otherwise.
    distribution_callbacks = distributed.callbacks() if distribution.strategy else []
    keras.utils.set_random_seed(config.seed)
    model = build_model(config, num_classes=len(data.class_names), backend=backend_name)
    # Each process feeds its share of every global batch.
    batch_size = config.batch_size // distribution.num_processes
    steps_per_epoch = math.ceil(data.training_count / batch_size)
    _compile(keras, model, config, backend_name, steps_per_epoch)

    outcome = _fit(keras, model, config, data, batch_size, fit_loop, [*callbacks], distribution_callbacks, verbose)
    diverged = outcome.recorder.diverged

    started = time.perf_counter()
    test = None if diverged else model.evaluate(data.test_inputs, data.test_targets, batch_size=EVALUATION_BATCH_SIZE,
                                                verbose=0, return_dict=True, callbacks=distribution_callbacks)
    evaluate_seconds = time.perf_counter() - started

    if distribution.strategy:
        # Saving a replicated model may gather its weights with collectives that only this process
        # would join; save a local copy instead (every process makes one, to stay in step).
        model = distributed.local_copy(model, lambda: _compile(keras, build_model(config, len(data.class_names)), config,
                                                                backend_name, steps_per_epoch))
    training_samples = data.training_count * distribution.num_processes
    seconds = {"data_seconds": data.seconds, "import_seconds": import_seconds, "evaluate_seconds": evaluate_seconds}
    if data.line_digits is not None and not diverged and not outcome.interrupted and run_path:
        try:
            seconds["line_model_seconds"] = line_model.train_and_save(*data.line_digits, config.line_model_lines,
                                                                      config.seed, run_path, verbose,
                                                                      size=config.line_model_size)
        except KeyboardInterrupt:  # Ctrl-C: keep the trained classifier, without a line model
            outcome = dataclasses.replace(outcome, interrupted=True)
    metrics = _run_metrics(outcome, test, training_samples, backend_name, model, seconds)
    if run_path:
        runs.write_history(run_path / runs.HISTORY_FILE, outcome.recorder.history)
        if not diverged:
            with storage.atomic_path(run_path / runs.MODEL_FILE) as partial:  # never half a model under its name
                model.save(partial)
        runs.write_json(run_path / runs.METRICS_FILE, metrics.to_dict())  # last: its presence marks a complete run
    return TrainingResult(run_path, metrics, outcome.recorder.history)


def _fit(keras, model, config: TrainingConfig, data: _PreparedData, batch_size: int, fit_loop: str,
         callbacks: list, distribution_callbacks: list, verbose: int) -> _FitOutcome:
    """Run the training loop: the fast loop where it applies, else model.fit. Ctrl-C stops it cleanly."""
    recorder = _EpochRecorder(keras)
    loop, fallback_reason = _choose_fit_loop(fit_loop, model)
    interrupted, compile_seconds = False, None
    started = time.perf_counter()
    try:
        if loop == "fast":
            compile_seconds = fastfit.fit(model, data.training_inputs, data.training_targets, epochs=config.epochs,
                                          batch_size=batch_size, validation_split=config.validation_split,
                                          callbacks=[recorder, *callbacks], verbose=verbose).compile_seconds
        else:
            model.fit(data.training_inputs, data.training_targets, epochs=config.epochs, batch_size=batch_size,
                      validation_split=config.validation_split, shuffle=True, verbose=verbose,
                      callbacks=[recorder, *distribution_callbacks, *callbacks])
    except KeyboardInterrupt:
        interrupted = True
    return _FitOutcome(recorder, loop, fallback_reason, interrupted, compile_seconds, time.perf_counter() - started)


def _run_metrics(outcome: _FitOutcome, test: dict | None, training_samples: int, backend_name: str, model,
                 seconds: dict[str, float]) -> RunMetrics:
    """metrics.json for a fit that ended (finished, interrupted or diverged)."""
    history = outcome.recorder.history
    epochs_completed = len(outcome.recorder.epoch_seconds)
    status = "diverged" if outcome.recorder.diverged else "interrupted" if outcome.interrupted else "finished"

    def last(name: str) -> float | None:
        return history[name][-1] if history.get(name) else None

    return RunMetrics(
        status=status, epochs_completed=epochs_completed,
        test_loss=None if test is None else float(test["loss"]),
        test_accuracy=None if test is None else float(test["accuracy"]),
        train_loss=last("loss"), train_accuracy=last("accuracy"),
        val_loss=last("val_loss"), val_accuracy=last("val_accuracy"),
        fit_seconds=round(outcome.seconds, 4),
        epoch_seconds=tuple(round(value, 4) for value in outcome.recorder.epoch_seconds),
        samples_per_second=round(training_samples * epochs_completed / outcome.seconds, 1) if epochs_completed else 0.0,
        # With the fast loop, compilation happens before the first epoch and is timed apart;
        # with model.fit it is inside the first epoch's time.
        compile_seconds=None if outcome.compile_seconds is None else round(outcome.compile_seconds, 4),
        **{name: round(value, 4) for name, value in seconds.items()},
        backend=backend_name, fit_loop=outcome.loop, fit_loop_fallback=outcome.fallback_reason or None,
        # Identical on every process of a data-parallel run: a quick check that replicas agree.
        weights_sha256=_weights_fingerprint(model),
        diverged_at_epoch=outcome.recorder.diverged_at_epoch,
        warnings=tuple(_warnings(history, model)),
        finished_at=runs.utc_now())


def _warnings(history: dict[str, list[float]], model) -> list[str]:
    """What a user should hear about a run that finished but did not learn."""
    accuracy = history.get("accuracy") or []
    classes = int(model.output_shape[-1])
    if accuracy and max(accuracy) < 1.5 / classes:
        return [f"training accuracy stayed at chance ({max(accuracy):.1%} at best, {1 / classes:.0%} is guessing): "
                "the network did not learn; try a smaller --learning-rate"]
    return []


def _compile(keras, model, config: TrainingConfig, backend_name: str, steps_per_epoch: int):
    """Compile with the tutorial's loss and metric and the config's optimizer; returns the model."""
    model.compile(
        loss="categorical_crossentropy",
        optimizer=keras.optimizers.get({"class_name": config.optimizer, "config": {
            "learning_rate": _learning_rate(keras, config, steps_per_epoch)}}),
        metrics=["accuracy"],
        steps_per_execution=STEPS_PER_EXECUTION[backend_name],
    )
    return model


def _learning_rate(keras, config: TrainingConfig, steps_per_epoch: int):
    """The config's learning rate, or its schedule: Keras's own, so it is saved with the model's optimizer."""
    if config.learning_rate_schedule == "constant":
        return config.learning_rate
    total_steps = steps_per_epoch * config.epochs
    warmup_steps = int(total_steps * config.warmup_fraction)
    # One cycle: up linearly from a tenth of the rate, then down along a cosine to zero.
    return keras.optimizers.schedules.CosineDecay(config.learning_rate / 10, decay_steps=total_steps - warmup_steps,
                                                  alpha=0.0, warmup_target=config.learning_rate,
                                                  warmup_steps=warmup_steps)


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
            # The epoch in which the loss stopped being a finite number (None: it never did).
            self.diverged_at_epoch: int | None = None
            self._epoch_started = 0.0

        def on_epoch_begin(self, epoch, logs=None):
            self._epoch_started = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.epoch_seconds.append(time.perf_counter() - self._epoch_started)
            for name, value in (logs or {}).items():
                self.history.setdefault(name, []).append(float(value))
            self._check_loss(epoch + 1, (logs or {}).get("loss"))

        def on_train_batch_end(self, batch, logs=None):
            # model.fit reports the running loss every few batches: stop at the first that is not finite.
            self._check_loss(len(self.epoch_seconds) + 1, (logs or {}).get("loss"))

        def _check_loss(self, epoch: int, loss) -> None:
            if loss is not None and not math.isfinite(float(loss)) and self.diverged_at_epoch is None:
                self.diverged_at_epoch = epoch
                self.model.stop_training = True

        @property
        def diverged(self) -> bool:
            return self.diverged_at_epoch is not None

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


