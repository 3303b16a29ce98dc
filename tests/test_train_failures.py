"""`digitlab train` when it cannot or should not finish: one-line errors, the right exit status, nothing half-written."""

import json

import pytest

TINY = ["--epochs", "1", "--hidden-units", "16", "--quiet"]


@pytest.mark.parametrize("arguments, message", [
    (["--validation-split", "0.999", "--max-train-images", "500"], "leaves no training images out of 500"),
    (["--validation-split", "1e-17", "--max-train-images", "500"], "leaves no validation images out of 500"),
    (["--seed", "18446744073709551616"], "seed must be a whole number from 0 to 4294967295"),
    (["--hidden-units", "1000000000000"], "use fewer or smaller --hidden-units"),
])
def test_impossible_settings_exit_2_and_leave_no_run_folder(run_cli, tiny_mnist, tmp_path, arguments, message):
    run_dir = tmp_path / "run"
    code, _, err = run_cli("train", *TINY, "--run-dir", str(run_dir), *arguments)
    assert code == 2 and err.startswith("error:") and message in " ".join(err.split())
    assert "Traceback" not in err and not run_dir.exists()


def test_a_diverging_run_stops_exits_1_and_is_kept_as_diverged(run_cli, tiny_mnist, tmp_path):
    run_dir = tmp_path / "run"
    code, out, err = run_cli("train", "--epochs", "3", "--hidden-units", "16", "--optimizer", "sgd",
                         "--learning-rate", "1e30", "--run-dir", str(run_dir), "--quiet")
    assert code == 1 and "diverged in epoch 1" in err and "smaller --learning-rate" in " ".join(err.split())
    assert "Test accuracy" not in out and "Traceback" not in err
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "diverged" and metrics["diverged_at_epoch"] == 1
    assert metrics["epochs_completed"] == 1 and metrics["test_accuracy"] is None
    assert not (run_dir / "model.keras").exists()  # its weights are not numbers


def test_the_keras_loop_stops_at_the_first_batch_whose_loss_is_not_a_number(run_cli, tiny_mnist, tmp_path):
    run_dir = tmp_path / "run"
    code, _, err = run_cli("train", "--epochs", "3", "--hidden-units", "16", "--optimizer", "sgd", "--learning-rate",
                       "1e30", "--fit-loop", "keras", "--run-dir", str(run_dir), "--quiet")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert code == 1 and metrics["status"] == "diverged" and metrics["diverged_at_epoch"] == 1
    assert metrics["epochs_completed"] == 1  # Keras ends the epoch it stopped in, and trains no other


def test_a_run_that_learns_nothing_says_so(run_cli, tiny_mnist, tmp_path):
    run_dir = tmp_path / "run"
    # A zero-width signal: every image is the same, so nothing better than chance can be learned.
    code, out, err = run_cli("train", *TINY, "--run-dir", str(run_dir), "--optimizer", "sgd", "--learning-rate",
                         "1e-12")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert code == 0 and metrics["status"] == "finished"
    if metrics["train_accuracy"] < 0.15:
        assert "warning:" in err and "stayed at chance" in err and metrics["warnings"]
    else:
        assert not metrics["warnings"]


def test_a_crash_during_training_leaves_no_run_folder(tiny_mnist, tmp_path):
    from digitlab.backend import import_keras
    from digitlab.config import TrainingConfig
    from digitlab.training.train import train

    keras = import_keras()

    class Crash(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise RuntimeError("a bug")

    with pytest.raises(RuntimeError, match="a bug"):
        train(TrainingConfig(epochs=2, hidden_units=(8,)), run_dir=tmp_path / "run", verbose=0, callbacks=[Crash()])
    assert not (tmp_path / "run").exists()


def test_train_says_when_it_repairs_a_corrupt_cached_file(run_cli, tiny_mnist, fake_source_dir, tmp_path):
    folder, _ = fake_source_dir
    damaged = tiny_mnist / "t10k-labels-idx1-ubyte"
    damaged.write_bytes(damaged.read_bytes()[:-1] + b"\x07")
    code, out, err = run_cli("train", *TINY, "--run-dir", str(tmp_path / "run"), "--from", str(folder))
    assert code == 0 and "Test accuracy" in out
    assert "warning:" in err and "t10k-labels-idx1-ubyte" in err


@pytest.mark.parametrize("content", [b"", b"just some text\n", "truncated"])
def test_a_broken_model_file_is_named_as_broken_not_missing(run_cli, tiny_run, tmp_path, content):
    import shutil

    from digitlab.data.synthetic import digit_picture

    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir)
    model = run_dir / "model.keras"
    model.write_bytes(model.read_bytes()[:2000] if content == "truncated" else content)
    digit_picture(1).save(tmp_path / "one.png")
    for arguments in (("predict", str(tmp_path / "one.png"), "--model", str(run_dir)), ("evaluate", str(run_dir))):
        code, _, err = run_cli(*arguments)
        assert code == 2 and err.startswith("error:") and "not a Keras model file" in err
        assert "not found" not in err.lower() and "Traceback" not in err
