"""Shared fixtures: tiny, learnable, fake MNIST-style data sets written as real IDX files."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

from digitlab.data import datasets
from digitlab.data.idx import write_idx

# digitlab's default backend, for tests that import Keras directly (Keras's own default is TensorFlow);
# scripts/test sets KERAS_BACKEND itself for the TensorFlow and PyTorch round trips.
os.environ.setdefault("KERAS_BACKEND", "jax")


def make_images(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Ten fixed random 'prototype' digits plus noise: easy for an MLP to learn, unlike pure noise."""
    prototypes = np.random.default_rng(1234).random((10, 28, 28)) > 0.7
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, size=count).astype(np.uint8)
    brightness = rng.uniform(150, 255, size=(count, 1, 1))
    noise = rng.normal(0, 30, size=(count, 28, 28))
    images = np.clip(prototypes[labels] * brightness + noise, 0, 255).astype(np.uint8)
    return images, labels


def write_fake_dataset(directory: Path, train_count: int = 512, test_count: int = 128,
                       gzipped: bool = False) -> dict[str, str]:
    """Write the four IDX files into `directory`; return file name -> SHA-256 of the raw IDX bytes."""
    directory.mkdir(parents=True, exist_ok=True)
    train_images, train_labels = make_images(train_count, seed=1)
    test_images, test_labels = make_images(test_count, seed=2)
    arrays = {datasets.TRAIN_IMAGES: train_images, datasets.TRAIN_LABELS: train_labels,
              datasets.TEST_IMAGES: test_images, datasets.TEST_LABELS: test_labels}
    checksums = {}
    for name, array in arrays.items():
        path = directory / name
        write_idx(path, array)
        checksums[name] = hashlib.sha256(path.read_bytes()).hexdigest()
        if gzipped:
            (directory / (name + ".gz")).write_bytes(gzip.compress(path.read_bytes()))
            path.unlink()
    return checksums


@pytest.fixture
def fake_source_dir(tmp_path) -> tuple[Path, dict[str, str]]:
    """A folder of tiny IDX files (raw), and their checksums."""
    folder = tmp_path / "source"
    return folder, write_fake_dataset(folder)


@pytest.fixture
def data_root(tmp_path, monkeypatch) -> Path:
    """An empty cache root, used through $DIGITLAB_DATA."""
    root = tmp_path / "cache"
    monkeypatch.setenv("DIGITLAB_DATA", str(root))
    monkeypatch.delenv("DIGITLAB_DATA_FROM", raising=False)
    return root


@pytest.fixture
def tiny_mnist(data_root, fake_source_dir, monkeypatch) -> Path:
    """'mnist' made tiny: cached fake files whose checksums replace the real ones in the table.

    Returns the cache folder. Everything else (fetch, verify, load, train) runs unchanged.
    """
    folder, checksums = fake_source_dir
    monkeypatch.setitem(datasets.DATASETS, "mnist", dataclasses.replace(datasets.DATASETS["mnist"], checksums=checksums))
    result = datasets.fetch("mnist", sources=[datasets.FolderSource(folder)])
    return result.directory


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A run folder trained for one epoch on tiny fake MNIST (as `tiny_mnist`, but once per module)."""
    from digitlab.config import TrainingConfig
    from digitlab.training.train import train

    folder = tmp_path_factory.mktemp("tiny")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DIGITLAB_DATA", str(folder / "cache"))
        checksums = write_fake_dataset(folder / "source")
        patch.setitem(datasets.DATASETS, "mnist", dataclasses.replace(datasets.DATASETS["mnist"], checksums=checksums))
        datasets.fetch("mnist", sources=[datasets.FolderSource(folder / "source")])
        train(TrainingConfig(epochs=1, batch_size=32, hidden_units=(32,)), run_dir=folder / "run", verbose=0)
    return folder / "run"


@pytest.fixture(scope="session")
def tutorial_classifier(tmp_path_factory):
    """The tutorial's network trained on real MNIST (fetched through the default sources if missing)."""
    from digitlab.config import TrainingConfig
    from digitlab.inference import loading
    from digitlab.training.train import train

    run = train(TrainingConfig(), run_dir=tmp_path_factory.mktemp("tutorial") / "run", verbose=0)
    if run.metrics.test_accuracy <= 0.97:
        raise RuntimeError(f"the tutorial's network reached only {run.metrics.test_accuracy:.2%}")
    return loading.load_classifier(run.run_dir)


@pytest.fixture
def run_cli(monkeypatch, capsys):
    """Run `digitlab ARGS...` in-process through its real entry point; returns (exit status, stdout, stderr)."""
    import sys

    from digitlab import cli as command_line

    def run(*arguments: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["digitlab", *arguments])
        with pytest.raises(SystemExit) as exited:
            command_line.main()
        captured = capsys.readouterr()
        return exited.value.code or 0, captured.out, captured.err

    return run
