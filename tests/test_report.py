"""Reports: the HTML page and its PNGs for a real (tiny) run, from its record and a fresh evaluation."""

import base64
import json
import re
import shutil
import subprocess
import sys

from digitlab import runs
from digitlab.analysis import report
from digitlab.config import TrainingConfig
from digitlab.training.train import train

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


def test_the_cli_writes_a_report_and_fails_cleanly_on_a_missing_run(run_cli, tiny_mnist, tmp_path):
    run_dir = train(TrainingConfig(epochs=1, batch_size=32, hidden_units=(16,)), run_dir=tmp_path / "run",
                    verbose=0).run_dir
    code, out, _ = run_cli("report", str(run_dir), "--mistakes", "6", "--samples", "6")
    assert code == 0 and "report.html" in out and (run_dir / "report.html").is_file()

    code, _, err = run_cli("report", str(tmp_path / "nothing"))
    assert code == 2 and err.startswith("error:") and "does not exist" in err

    unfinished = tmp_path / "unfinished"
    shutil.copytree(run_dir, unfinished)
    (unfinished / "metrics.json").unlink()
    code, _, err = run_cli("report", str(unfinished))
    assert code == 2 and "metrics.json is missing" in err


def test_importing_the_analysis_and_sweep_modules_or_the_cli_imports_neither_matplotlib_nor_keras():
    modules = ("cli", "analysis.compare", "analysis.evaluate", "analysis.formatting", "analysis.metrics",
               "analysis.plots", "analysis.report", "sweeps.plan", "sweeps.runner", "sweeps.studies", "sweeps.summary")
    script = (f"import sys\nimport {', '.join(f'digitlab.{name}' for name in modules)}\n"
              "print('matplotlib' in sys.modules, 'keras' in sys.modules)")
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert completed.stdout.strip() == "False False", completed.stderr
