"""Reports: the HTML page and its PNGs for a real (tiny) run, the per-class scores, the plots' inputs."""

import base64
import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from digitlab import runs
from digitlab.analysis import report
from digitlab.analysis.metrics import macro_average, mean_and_std, per_class_scores
from digitlab.config import TrainingConfig
from digitlab.training.train import train
from test_cli import run_cli

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FIGURES = (report.LEARNING_CURVES_FILE, report.CONFUSION_MATRIX_FILE, report.MISTAKES_FILE, report.PREDICTIONS_FILE)
TINY = TrainingConfig(epochs=2, batch_size=32, hidden_units=(16,), validation_split=0.25)


def assert_valid_png(path):
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE), f"{path.name} is not a PNG"
    from PIL import Image

    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        width, height = image.size
    assert width > 300 and height > 200, f"{path.name} is only {width}x{height}"


def embedded_images(page):
    return re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)


def test_a_report_holds_embedded_figures_that_match_the_pngs_beside_it(tiny_mnist, tmp_path):
    run_dir = train(TINY, run_dir=tmp_path / "run", verbose=0).run_dir
    path = report.write_report(run_dir, mistakes=12, samples=12)

    assert path == run_dir / "report.html"
    for name in FIGURES:
        assert_valid_png(run_dir / name)
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    # Every figure is embedded (the page opens offline on its own) and links the PNG file beside it.
    embedded = [base64.b64decode(data) for data in embedded_images(page)]
    assert embedded == [(run_dir / name).read_bytes() for name in FIGURES]
    for name in FIGURES:
        assert f'href="{name}"' in page
    # No other file is needed: nothing is loaded from elsewhere.
    assert not re.search(r'(src|href)="(https?:|//)', page)


def test_a_report_shows_the_metrics_config_per_class_scores_and_model(tiny_mnist, tmp_path):
    run_dir = train(TINY, run_dir=tmp_path / "run", verbose=0).run_dir
    page = report.write_report(run_dir, mistakes=12, samples=12).read_text(encoding="utf-8")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    saved = json.loads((run_dir / "config.json").read_text())

    assert f"{metrics['test_accuracy']:.2%}" in page and f"{metrics['train_accuracy']:.2%}" in page
    assert f"{metrics['val_accuracy']:.2%}" in page  # the validation split is shown when there is one
    assert "<td>hidden_units</td>" in page and "<td>batch_size</td><td class=num>32</td>" in page
    assert "<td>validation_split</td><td class=num>0.25</td>" in page
    assert saved["versions"]["keras"] in page and "fit_seconds" in page
    assert "Per-class precision, recall and F1" in page and "macro average" in page
    assert "hidden_1" in page and "Total params" in page  # the Keras model summary
    # Ten classes in the per-class table, each with its recall (the per-class accuracy) as a percentage.
    from digitlab.analysis.evaluate import evaluate_run

    evaluation = evaluate_run(run_dir)
    for label, accuracy in enumerate(evaluation["per_class_accuracy"]):
        assert re.search(rf"<tr><td>{label}</td><td class=num>[0-9.]+%</td><td class=num>{accuracy:.2%}</td>", page)


def test_a_report_works_for_a_model_taking_28x28x1_images(tiny_mnist, tmp_path):
    """The input shape comes from config.json, as for the CNN recipe: no 784-vector assumption."""
    from digitlab.backend import import_keras

    keras = import_keras()
    run_dir = train(TrainingConfig(epochs=1, batch_size=32, hidden_units=(16,)), run_dir=tmp_path / "run",
                    verbose=0).run_dir
    model = keras.Sequential([keras.Input(shape=(28, 28, 1)), keras.layers.Conv2D(4, 3, activation="relu"),
                              keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
    (run_dir / "model.keras").unlink()
    model.save(run_dir / "model.keras")
    saved = json.loads((run_dir / "config.json").read_text())
    saved["input_shape"] = [28, 28, 1]
    runs.write_json(run_dir / "config.json", saved)

    page = report.write_report(run_dir).read_text(encoding="utf-8")
    assert len(embedded_images(page)) == 4 and "conv2d" in page.lower()


def test_the_cli_writes_a_report_and_fails_cleanly_on_a_missing_run(monkeypatch, capsys, tiny_mnist, tmp_path):
    run_dir = train(TrainingConfig(epochs=1, batch_size=32, hidden_units=(16,)), run_dir=tmp_path / "run",
                    verbose=0).run_dir
    code, out, _ = run_cli(monkeypatch, capsys, "report", str(run_dir), "--mistakes", "6", "--samples", "6")
    assert code == 0 and "report.html" in out and (run_dir / "report.html").is_file()

    code, _, err = run_cli(monkeypatch, capsys, "report", str(tmp_path / "nothing"))
    assert code == 2 and err.startswith("error:") and "does not exist" in err

    unfinished = tmp_path / "unfinished"
    shutil.copytree(run_dir, unfinished)
    (unfinished / "metrics.json").unlink()
    code, _, err = run_cli(monkeypatch, capsys, "report", str(unfinished))
    assert code == 2 and "metrics.json is missing" in err


def test_per_class_scores_from_a_confusion_matrix():
    # counts[true][predicted]: class 0 has 8 images, 6 right; class 1 has 4, 3 right; class 2 is never predicted.
    confusion = [[6, 2, 0],
                 [1, 3, 0],
                 [1, 1, 0]]
    scores = per_class_scores(confusion)
    assert [score.support for score in scores] == [8, 4, 2]
    assert scores[0].precision == pytest.approx(6 / 8) and scores[0].recall == pytest.approx(6 / 8)
    assert scores[1].precision == pytest.approx(3 / 6) and scores[1].recall == pytest.approx(3 / 4)
    assert scores[1].f1 == pytest.approx(2 * 0.5 * 0.75 / 1.25)
    assert (scores[2].precision, scores[2].recall, scores[2].f1) == (0.0, 0.0, 0.0)
    assert macro_average(scores)["recall"] == pytest.approx((0.75 + 0.75 + 0) / 3)
    with pytest.raises(ValueError):
        per_class_scores([[1, 2, 3]])


def test_mean_and_sample_standard_deviation():
    assert mean_and_std([1.0, 2.0, 3.0, 4.0]) == pytest.approx((2.5, np.std([1, 2, 3, 4], ddof=1)))
    assert mean_and_std([0.97]) == (0.97, 0.0)


def test_confident_mistakes_are_wrong_and_ordered_by_probability():
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.05, 0.95], [0.7, 0.3]])
    labels = np.array([0, 0, 0, 0, 1])
    assert report.confident_mistakes(probabilities, labels, 10).tolist() == [3, 1, 4, 2]
    assert report.confident_mistakes(probabilities, labels, 2).tolist() == [3, 1]


def test_history_is_read_back_as_written(tmp_path):
    history = {"loss": [0.5, 0.25], "accuracy": [0.8, 0.9], "val_loss": [0.6, 0.4], "val_accuracy": [0.7, 0.85]}
    runs.write_history(tmp_path / "history.csv", history)
    assert report.read_history(tmp_path / "history.csv") == history
    assert report.read_history(tmp_path / "missing.csv") == {}


def test_plots_without_validation_or_images_still_render(tmp_path):
    report.plot_learning_curves({"loss": [0.3], "accuracy": [0.9]}, {"test_accuracy": 0.88, "test_loss": 0.4},
                                tmp_path / "curves.png")
    report.plot_image_grid(np.zeros((0, 28, 28), np.uint8), [], tmp_path / "none.png", title="no mistakes")
    report.plot_confusion_matrix(np.eye(10, dtype=int) * 5, [f"class {i}" for i in range(10)], tmp_path / "cm.png")
    for name in ("curves.png", "none.png", "cm.png"):
        assert (tmp_path / name).read_bytes().startswith(PNG_SIGNATURE)


def test_importing_the_report_module_or_the_cli_does_not_import_matplotlib():
    script = ("import sys\nimport digitlab.cli, digitlab.analysis.report, digitlab.sweeps.runner, digitlab.analysis.compare\n"
              "print('matplotlib' in sys.modules, 'keras' in sys.modules)")
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert completed.stdout.strip() == "False False", completed.stderr
