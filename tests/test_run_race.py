"""Two real `digitlab train` processes started together on one --run-dir: exactly one trains there.

Each pair trains different networks (8 hidden units for 1 epoch, 12 for 2), so a folder that mixes
the two runs shows it: config.json, model.keras and metrics.json must all be the winner's. The loser
exits 2 with one line saying the folder is taken. Both processes wait at a barrier (each marks itself ready
in a folder, then waits for the other) once Keras is imported, so that they reach the run folder within
milliseconds of each other.
"""

import dataclasses
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import write_fake_dataset
from digitlab.data import datasets

pytestmark = pytest.mark.slow

PAIRS = 8
# What each of a pair trains: (hidden units, epochs), told apart in every file of the run.
SETTINGS = ((8, 1), (12, 2))

# The child: the real command line, with the tiny data set's checksums in the table (as `tiny_mnist` does
# in-process), meeting the other at the barrier once Keras is imported.
CHILD = """
import dataclasses, json, os, sys, time
from digitlab.data import datasets
datasets.DATASETS["mnist"] = dataclasses.replace(datasets.DATASETS["mnist"],
                                                 checksums=json.loads(os.environ["TINY_CHECKSUMS"]))
from digitlab.backend import import_keras
import digitlab.training.train
import_keras()
barrier = os.environ["BARRIER"]
open(os.path.join(barrier, str(os.getpid())), "w").close()
while len(os.listdir(barrier)) < 2:
    time.sleep(0.002)
from digitlab.cli import main
sys.argv = ["digitlab", *sys.argv[1:]]
main()
"""


@pytest.fixture(scope="module")
def tiny_cache(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A data cache holding the tiny fake MNIST, and its checksums."""
    folder = tmp_path_factory.mktemp("race")
    checksums = write_fake_dataset(folder / "source", train_count=256, test_count=64)
    spec = dataclasses.replace(datasets.DATASETS["mnist"], checksums=checksums)
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(datasets.DATASETS, "mnist", spec)
        datasets.fetch("mnist", root=folder / "cache", sources=[datasets.FolderSource(folder / "source")])
    return folder / "cache", checksums


def start_pair(run_dir: Path, barrier: Path, cache: Path, checksums: dict[str, str]) -> list[subprocess.Popen]:
    barrier.mkdir()
    environment = {**os.environ, "DIGITLAB_DATA": str(cache), "TINY_CHECKSUMS": json.dumps(checksums),
                   "BARRIER": str(barrier), "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    return [subprocess.Popen([sys.executable, "-c", CHILD, "train", "--run-dir", str(run_dir), "--quiet",
                              "--hidden-units", str(units), "--epochs", str(epochs), "--batch-size", "64"],
                             env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for units, epochs in SETTINGS]


def model_units(model_file: Path) -> int:
    """The hidden layer's units as model.keras records them (its config.json, no Keras needed)."""
    with zipfile.ZipFile(model_file) as archive:
        config = json.loads(archive.read("config.json"))
    dense = [layer for layer in config["config"]["layers"] if layer["class_name"] == "Dense"]
    return dense[0]["config"]["units"]


def test_two_trains_on_one_folder_exactly_one_wins_and_the_folder_is_one_run(tiny_cache, tmp_path):
    cache, checksums = tiny_cache
    outcomes, messages = [], []
    for pair in range(PAIRS):
        run_dir = tmp_path / f"run-{pair}"
        processes = start_pair(run_dir, tmp_path / f"barrier-{pair}", cache, checksums)
        outputs = [process.communicate(timeout=300) for process in processes]
        results = [(process.returncode, out, err) for process, (out, err) in zip(processes, outputs, strict=True)]
        codes = [code for code, _, _ in results]
        outcomes.append(codes)
        assert sorted(codes) == [0, 2], f"pair {pair}: exit codes {codes}; stderr: {[err[-600:] for *_, err in results]}"
        winner = codes.index(0)
        loser_err = results[1 - winner][2]
        assert "Traceback" not in loser_err and "error:" in loser_err and str(run_dir) in loser_err.replace("\n", "")
        assert "another `digitlab train`" in loser_err or "not empty" in loser_err
        messages.append(loser_err.strip().splitlines()[-1])
        units, epochs = SETTINGS[winner]
        config = json.loads((run_dir / "config.json").read_text())
        metrics = json.loads((run_dir / "metrics.json").read_text())
        assert config["training"]["hidden_units"] == [units], f"pair {pair}: config.json of the other run"
        assert model_units(run_dir / "model.keras") == units, f"pair {pair}: model.keras of the other run"
        assert metrics["epochs_completed"] == epochs, f"pair {pair}: metrics.json of the other run"
        assert sorted(path.name for path in run_dir.iterdir()) == ["config.json", "history.csv", "metrics.json",
                                                                    "model.keras"]
    print(f"{PAIRS} pairs: exit codes {outcomes}; the refused ones said:", *messages, sep="\n")
