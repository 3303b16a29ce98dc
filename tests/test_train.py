import csv
import json
import os
import subprocess
import sys

import pytest

from digitlab import runs
from digitlab.backend import import_keras
from digitlab.config import TrainingConfig
from digitlab.errors import ConfigError, RunFolderError
from digitlab.training.train import train

TINY = TrainingConfig(epochs=2, batch_size=32, hidden_units=(32,))


def test_a_run_folder_holds_config_history_metrics_and_model(tiny_mnist, tmp_path):
    result = train(TINY, run_dir=tmp_path / "run", verbose=0)
    run_dir = tmp_path / "run"
    assert sorted(os.listdir(run_dir)) == ["config.json", "history.csv", "metrics.json", "model.keras"]

    saved = json.loads((run_dir / "config.json").read_text())
    assert TrainingConfig.from_dict(saved["training"]) == TINY
    assert saved["backend"] == "jax" and saved["input_shape"] == [784]
    assert saved["data"]["checksums"]["train-images-idx3-ubyte"] == runs_checksum(tiny_mnist)
    assert "keras" in saved["versions"] and "numpy" in saved["versions"]

    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics == result.metrics.to_dict() and runs.read_run(run_dir).metrics == result.metrics
    assert metrics["status"] == "finished" and metrics["epochs_completed"] == 2
    assert len(metrics["epoch_seconds"]) == 2 and metrics["fit_seconds"] > 0 and metrics["samples_per_second"] > 0
    # The fake digits are easy; a network that learned nothing would sit near 10%.
    assert metrics["test_accuracy"] > 0.9

    with open(run_dir / "history.csv") as stream:
        rows = list(csv.DictReader(stream))
    assert [row["epoch"] for row in rows] == ["1", "2"]
    assert float(rows[-1]["accuracy"]) == pytest.approx(metrics["train_accuracy"], rel=1e-5)
    assert float(rows[0]["loss"]) > float(rows[1]["loss"])


def runs_checksum(cache_dir):
    import hashlib

    return hashlib.sha256((cache_dir / "train-images-idx3-ubyte").read_bytes()).hexdigest()


def test_the_model_loads_in_plain_keras_without_digitlab(tiny_mnist, tmp_path):
    result = train(TINY, run_dir=tmp_path / "run", verbose=0)
    script = (
        "import sys, numpy as np, keras\n"
        f"model = keras.saving.load_model({str(result.run_dir / 'model.keras')!r})\n"
        "probabilities = model.predict(np.zeros((2, 784), 'float32'), verbose=0)\n"
        "assert probabilities.shape == (2, 10), probabilities.shape\n"
        "assert 'digitlab' not in sys.modules\n"
        "print('ok', keras.backend.backend())\n"
    )
    environment = {**os.environ, "KERAS_BACKEND": "jax"}
    completed = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True, env=environment,
                               timeout=120)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "ok jax"


def test_same_seed_gives_the_same_metrics_and_another_seed_does_not(tiny_mnist, tmp_path):
    first = train(TINY, run_dir=tmp_path / "a", verbose=0)
    second = train(TINY, run_dir=tmp_path / "b", verbose=0)
    other = train(TrainingConfig(**{**TINY.to_dict(), "seed": 1}), run_dir=tmp_path / "c", verbose=0)
    assert first.history == second.history
    assert first.metrics.test_loss == second.metrics.test_loss
    assert other.history["loss"] != first.history["loss"]


def test_validation_split_adds_validation_figures(tiny_mnist, tmp_path):
    config = TrainingConfig(**{**TINY.to_dict(), "validation_split": 0.25, "epochs": 1})
    result = train(config, run_dir=tmp_path / "run", verbose=0)
    assert "val_accuracy" in result.history and 0 <= result.metrics.val_accuracy <= 1


def test_ctrl_c_keeps_the_model_trained_so_far_and_marks_the_run_interrupted(tiny_mnist, tmp_path):
    keras = import_keras()

    class PressCtrlC(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                raise KeyboardInterrupt

    config = TrainingConfig(**{**TINY.to_dict(), "epochs": 4})
    result = train(config, run_dir=tmp_path / "run", verbose=0, callbacks=[PressCtrlC()])
    assert result.interrupted and result.metrics.epochs_completed == 1
    assert (tmp_path / "run" / "model.keras").is_file()
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["status"] == "interrupted"
    with pytest.raises(RunFolderError, match="no finished run"):
        runs.latest_finished_run(tmp_path)


def test_a_taken_run_folder_is_refused_and_left_untouched(tiny_mnist, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "metrics.json").write_text("precious")
    with pytest.raises(RunFolderError, match="already exists and is not empty"):
        train(TINY, run_dir=run_dir, verbose=0)
    assert os.listdir(run_dir) == ["metrics.json"] and (run_dir / "metrics.json").read_text() == "precious"


def test_default_run_folders_are_new_timestamped_folders(tiny_mnist, tmp_path):
    config = TrainingConfig(**{**TINY.to_dict(), "epochs": 1})
    first = train(config, runs_root=tmp_path / "runs", verbose=0)
    second = train(config, runs_root=tmp_path / "runs", verbose=0)
    assert first.run_dir != second.run_dir
    assert first.run_dir.name.endswith("mnist-32-e1-b32-s0")
    assert runs.latest_finished_run(tmp_path / "runs") in (first.run_dir, second.run_dir)


def test_bad_settings_fail_before_anything_is_written(tiny_mnist, tmp_path):
    with pytest.raises(ConfigError):
        train(TrainingConfig(epochs=-1), runs_root=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
@pytest.mark.network
def test_a_real_ctrl_c_stops_cleanly_and_keeps_the_model(tmp_path):
    import signal

    run_dir = tmp_path / "run"
    # Python ignores Ctrl-C in a child whose parent ignored it (as a CI runner may): restore the
    # handler a terminal would give, then run the CLI as `digitlab train ...`.
    launcher = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
                "sys.argv = ['digitlab', *sys.argv[1:]]; from digitlab.cli import main; main()")
    process = subprocess.Popen(
        [sys.executable, "-c", launcher, "train", "--epochs", "500", "--max-train-images", "6000",
         "--run-dir", str(run_dir)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in process.stdout:
            if "Epoch 3/500" in line:  # two epochs are done
                process.send_signal(signal.SIGINT)
                break
        output = process.communicate(timeout=120)[0]
    finally:
        process.kill()
    assert process.returncode == 130, output
    assert "interrupted after" in output
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "interrupted" and 2 <= metrics["epochs_completed"] < 500
    assert (run_dir / "model.keras").is_file() and metrics["test_accuracy"] > 0.8
