"""The run record: what `config.json` and `metrics.json` hold, as typed, versioned, frozen dataclasses.

Both files stay plain JSON that people and scripts read (`jq .test_accuracy runs/*/metrics.json`).
Fields keep their names and places from one release to the next; new ones are added, none renamed.
Files written before the record had a version (digitlab 0.1.0, no `format_version`) are format 1
and load with the defaults below for what they lack.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from digitlab.config import TrainingConfig
from digitlab.errors import RunFolderError

# 1: digitlab 0.1.0 (no format_version field in the files). 2: every later release.
FORMAT_VERSION = 2
# What a run's metrics.json says about how it ended.
STATUSES = ("finished", "interrupted", "diverged")


@dataclasses.dataclass(frozen=True)
class Run:
    """One run folder, read back (see `runs.read_run`)."""

    # The folder.
    path: Path
    # Its config.json.
    config: RunConfig
    # Its metrics.json; None while the run has not finished (or if it crashed).
    metrics: RunMetrics | None


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """`config.json`: what was trained, on what, with which software. Written before training starts."""

    # The training settings (config.TrainingConfig), under "training".
    training: TrainingConfig
    # Keras backend the run trained on: "jax", "tensorflow" or "torch".
    backend: str = "jax"
    # One input image as the model takes it: [784] for the MLPs, [28, 28, 1] for convnets.
    input_shape: tuple[int, ...] = (784,)
    # Name of each class, in output order ("0".."9" for MNIST, "T-shirt/top"... for Fashion-MNIST).
    class_names: tuple[str, ...] = tuple(str(digit) for digit in range(10))
    # The data set and the SHA-256 of each of its files: {"dataset": ..., "checksums": {...}}.
    data: dict[str, Any] = dataclasses.field(default_factory=dict)
    # Versions of Python and of the packages that decide the numbers.
    versions: dict[str, str] = dataclasses.field(default_factory=dict)
    # Devices Keras trained on, e.g. ["cpu:0"].
    devices: tuple[str, ...] = ()
    # {"strategy": None or "data-parallel", "num_processes": N, "global_batch_size": B}.
    distribution: dict[str, Any] = dataclasses.field(default_factory=dict)
    # When the run started, UTC, ISO 8601.
    created_at: str = ""
    # Version of this record's layout (see FORMAT_VERSION).
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values, in the order the file has always had."""
        return {"training": self.training.to_dict(), "backend": self.backend,
                "input_shape": list(self.input_shape), "class_names": list(self.class_names),
                "data": self.data, "versions": self.versions, "devices": list(self.devices),
                "distribution": self.distribution, "created_at": self.created_at,
                "format_version": self.format_version}

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str | Path = "config.json") -> RunConfig:
        """Read a `config.json` of any known format version; settings it lacks take their defaults.

        Raises:
            RunFolderError: a newer format, or values of the wrong kind.
        """
        _check_version(values, source)
        try:
            training = TrainingConfig.from_dict(dict(values.get("training", {})))
            return cls(training=training, backend=str(values.get("backend", "jax")),
                       input_shape=tuple(int(size) for size in values.get("input_shape") or training.input_shape),
                       class_names=tuple(str(name) for name in values.get("class_names") or cls.class_names),
                       data=dict(values.get("data") or {"dataset": training.dataset}),
                       versions=dict(values.get("versions") or {}),
                       devices=tuple(str(device) for device in values.get("devices") or ()),
                       distribution=dict(values.get("distribution") or {}),
                       created_at=str(values.get("created_at", "")),
                       format_version=int(values.get("format_version", 1)))
        except (TypeError, ValueError) as err:  # ConfigError is a ValueError
            raise RunFolderError(f"{source} is not a valid digitlab run config: {err}") from err


@dataclasses.dataclass(frozen=True)
class RunMetrics:
    """`metrics.json`: how the run ended and what it measured. Written last: its presence marks a complete run."""

    # "finished", "interrupted" (Ctrl-C: the model trained so far was saved) or "diverged".
    status: str
    # Epochs that ran to the end.
    epochs_completed: int = 0
    # Loss and accuracy on the test images, evaluated once after training (None if never evaluated).
    test_loss: float | None = None
    test_accuracy: float | None = None
    # Last epoch's training loss and accuracy (None if no epoch completed).
    train_loss: float | None = None
    train_accuracy: float | None = None
    # Last epoch's validation loss and accuracy (only with a validation split).
    val_loss: float | None = None
    val_accuracy: float | None = None
    # Seconds in the training loop, all epochs (compilation included with model.fit).
    fit_seconds: float = 0.0
    # Wall time of each epoch.
    epoch_seconds: tuple[float, ...] = ()
    # Training images per second over the whole fit.
    samples_per_second: float = 0.0
    # Seconds compiling the fast loop before the first epoch (None with model.fit: inside epoch 1).
    compile_seconds: float | None = None
    # Seconds reading and preparing the data; importing Keras/JAX beyond that; evaluating the test set.
    data_seconds: float | None = None
    import_seconds: float | None = None
    evaluate_seconds: float | None = None
    # Seconds making the line model's synthetic lines and training it (runs with line_model_lines).
    line_model_seconds: float | None = None
    # Keras backend, and the loop that trained: "fast" (fastfit) or "keras" (model.fit).
    backend: str = ""
    fit_loop: str = ""
    # Why the fast loop was not used, when it was asked for and could not be.
    fit_loop_fallback: str | None = None
    # SHA-256 of all weights: equal on every process of a data-parallel run.
    weights_sha256: str = ""
    # The epoch in which the loss stopped being a finite number (status "diverged"), else None.
    diverged_at_epoch: int | None = None
    # What the user should know about a run that finished, e.g. accuracy stayed at chance.
    warnings: tuple[str, ...] = ()
    # When the run ended, UTC, ISO 8601.
    finished_at: str = ""
    # Version of this record's layout (see FORMAT_VERSION).
    format_version: int = FORMAT_VERSION

    # Written only when they hold a value, as in every earlier release.
    _OPTIONAL = ("val_loss", "val_accuracy", "fit_loop_fallback", "diverged_at_epoch")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values, in field order; the validation figures and the fallback only when set."""
        values = dataclasses.asdict(self)
        values["epoch_seconds"] = list(self.epoch_seconds)
        values["warnings"] = list(self.warnings)
        return {name: value for name, value in values.items() if not (name in self._OPTIONAL and value is None)}

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str | Path = "metrics.json") -> RunMetrics:
        """Read a `metrics.json` of any known format version; figures it lacks are None or empty.

        Raises:
            RunFolderError: a newer format, an unknown status, or values of the wrong kind.
        """
        _check_version(values, source)
        known = {field.name for field in dataclasses.fields(cls)}
        kept = {name: value for name, value in values.items() if name in known}
        kept.setdefault("format_version", 1)
        for name in ("epoch_seconds", "warnings"):
            if name in kept:
                kept[name] = tuple(kept[name] or ())
        try:
            metrics = cls(**kept)
        except TypeError as err:
            raise RunFolderError(f"{source} is not a valid digitlab metrics file: {err}") from err
        if metrics.status not in STATUSES:
            raise RunFolderError(f"{source}: unknown status {metrics.status!r}; expected one of: {', '.join(STATUSES)}")
        return metrics


def _check_version(values: dict[str, Any], source: str | Path) -> None:
    version = values.get("format_version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise RunFolderError(f"{source}: format_version must be a whole number >= 1, got {version!r}")
    if version > FORMAT_VERSION:
        raise RunFolderError(f"{source} was written by a newer digitlab (run format {version}; this one reads up to "
                             f"{FORMAT_VERSION}); upgrade digitlab with `pip install -U digitlab`")
