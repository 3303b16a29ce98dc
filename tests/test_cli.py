"""The CLI, run in-process through its real entry point (argument parsing, output, exit codes)."""

import dataclasses
import json
import subprocess
import sys

import pytest

from digitlab.data import datasets


def test_help_lists_the_commands(run_cli):
    code, out, _ = run_cli("--help")
    assert code == 0 and "train" in out and "evaluate" in out and "data" in out


def test_help_does_not_import_keras_or_jax():
    script = "import sys\nfrom digitlab import cli\nprint('keras' in sys.modules, 'jax' in sys.modules)"
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert completed.stdout.strip() == "False False"


def test_python_dash_m_runs_the_cli():
    completed = subprocess.run([sys.executable, "-m", "digitlab", "data", "path", "fashion-mnist"],
                               capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0 and completed.stdout.strip().endswith("fashion-mnist")


def test_data_fetch_from_a_folder_then_verify_and_info(run_cli, monkeypatch, data_root, fake_source_dir):
    folder, checksums = fake_source_dir
    monkeypatch.setitem(datasets.DATASETS, "mnist", dataclasses.replace(datasets.DATASETS["mnist"], checksums=checksums))
    code, out, _ = run_cli("data", "fetch", "mnist", "--from", str(folder))
    assert code == 0 and "4 files verified" in out and str(folder) in out

    code, out, _ = run_cli("data", "verify", "mnist")
    assert code == 0 and out.count("ok") == 4

    code, out, _ = run_cli("data", "info", "mnist", "--json")
    assert code == 0 and json.loads(out)["splits"]["test"]["images_shape"] == [128, 28, 28]

    # Corrupt one cached file: verify fails with 1 and says how to repair; fetch repairs it.
    path = datasets.dataset_dir("mnist") / "train-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes()[:-1] + b"\x07")
    code, out, err = run_cli("data", "verify", "mnist")
    assert code == 1 and "corrupt" in out and "digitlab data fetch mnist" in err
    code, out, err = run_cli("data", "fetch", "mnist", "--from", str(folder))
    assert code == 0 and "failed its checksum" in err
    assert run_cli("data", "verify", "mnist")[0] == 0


def test_fetch_with_no_working_source_exits_1_and_lists_the_sources(run_cli, monkeypatch, data_root, tmp_path):
    monkeypatch.setattr(datasets, "default_sources", lambda name, from_dir=None: [
        datasets.FolderSource(tmp_path / "nothing-here")])
    code, _, err = run_cli("data", "fetch", "mnist")
    assert code == 1 and "nothing-here does not exist" in err and "--from FOLDER" in err


def test_train_then_evaluate(run_cli, tiny_mnist, tmp_path):
    run_dir = tmp_path / "run"
    code, out, _ = run_cli("train", "--epochs", "1", "--batch-size", "32",
                           "--hidden-units", "16,16", "--run-dir", str(run_dir), "--quiet")
    assert code == 0 and "Test accuracy:" in out
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["training"]["hidden_units"] == [16, 16]

    code, out, _ = run_cli("evaluate", str(run_dir), "--json")
    result = json.loads(out)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert code == 0 and result["accuracy"] == pytest.approx(metrics["test_accuracy"], abs=1e-6)

    code, out, _ = run_cli("evaluate", str(run_dir))
    assert code == 0 and "per-class accuracy" in out


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["train", "--epochs", "0"], "epochs must be a positive"),
        (["train", "--batch-size", "-5"], "batch_size must be a positive"),
        (["train", "--hidden-units", "512,abc"], "--hidden-units takes comma-separated"),
        (["train", "--hidden-units", "512,-1"], "hidden_units must be"),
        (["train", "--dataset", "cifar"], "unknown data set 'cifar'"),
        (["train", "--backend", "theano"], "unknown Keras backend 'theano'"),
        (["data", "fetch", "svhn"], "unknown data set 'svhn'"),
        (["evaluate", "no/such/run"], "does not exist"),
        (["train", "--num-processes", "2"], "--coordinator"),
        (["train", "--recipe", "resnet"], "unknown recipe 'resnet'"),
        (["train", "--fit-loop", "turbo"], "unknown fit loop 'turbo'"),
    ],
)
def test_bad_input_exits_2_with_a_one_line_error(run_cli, data_root, arguments, message, tmp_path):
    code, out, err = run_cli(*arguments)
    assert code == 2 and message in err and err.startswith("error:")


def test_a_taken_run_folder_exits_2_and_loses_nothing(run_cli, tiny_mnist, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "model.keras").write_text("an earlier run")
    code, _, err = run_cli("train", "--run-dir", str(run_dir))
    assert code == 2 and "already exists" in err
    assert (run_dir / "model.keras").read_text() == "an earlier run"


def test_a_truncated_idx_file_exits_2_naming_the_file_and_the_problem(run_cli, monkeypatch, data_root,
                                                                      fake_source_dir):
    folder, checksums = fake_source_dir
    monkeypatch.setitem(datasets.DATASETS, "mnist", dataclasses.replace(datasets.DATASETS["mnist"], checksums=checksums))
    path = folder / "t10k-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes()[:-3])
    code, _, err = run_cli("train", "--epochs", "1", "--from", str(folder))
    assert code == 2 and "t10k-labels-idx1-ubyte: truncated" in err
    assert not (datasets.dataset_dir("mnist") / "t10k-labels-idx1-ubyte").exists()


def test_train_with_report_writes_the_report_beside_the_run(run_cli, tiny_mnist, tmp_path):
    run_dir = tmp_path / "run"
    code, out, _ = run_cli("train", "--epochs", "1", "--hidden-units", "16", "--run-dir",
                           str(run_dir), "--quiet", "--report")
    assert code == 0 and "report written to" in out
    html = (run_dir / "report.html").read_text()
    assert "data:image/png;base64," in html and (run_dir / "confusion_matrix.png").is_file()



def test_an_error_prints_its_brackets_as_they_are(run_cli, tmp_path):
    """Rich would take "[bold]" or "[train]" (as in "pip install 'digitlab[train]'") for styles and drop them."""
    status, _, err = run_cli("export", str(tmp_path), "--format", "[bold]onnx[/bold]")
    assert status == 2 and "unknown export format '[bold]onnx[/bold]'" in err
