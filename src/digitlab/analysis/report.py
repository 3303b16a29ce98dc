"""The self-contained HTML report of a run: what it measured, how it learned, where it goes wrong.

A report is `RUN_DIR/report.html` (every image embedded as base64, so it opens offline on its own)
and, beside it, the PNGs it shows (drawn by `plots`): learning_curves.png, confusion_matrix.png,
mistakes.png and predictions.png.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from digitlab import runs, storage
from digitlab.analysis import plots
from digitlab.analysis.evaluate import Evaluation, confident_mistakes, predict_probabilities, summarize
from digitlab.analysis.formatting import format_value
from digitlab.analysis.metrics import ClassScores, macro_average, per_class_scores
from digitlab.data import datasets
from digitlab.errors import ConfigError, RunFolderError
from digitlab.record import Run, RunConfig, RunMetrics

REPORT_FILE = "report.html"
LEARNING_CURVES_FILE = "learning_curves.png"
CONFUSION_MATRIX_FILE = "confusion_matrix.png"
MISTAKES_FILE = "mistakes.png"
PREDICTIONS_FILE = "predictions.png"
# metrics.json figures shown under "Timings", in order (those the run has).
TIMINGS = ("status", "epochs_completed", "fit_seconds", "epoch_seconds", "samples_per_second", "data_seconds",
           "import_seconds", "evaluate_seconds", "finished_at")
STYLESHEET = """\
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 1100px; margin: 2em auto;
        padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; }
.meta { color: #666; } code, pre { font-family: "SFMono-Regular", Menlo, Consolas, monospace; font-size: 0.85em; }
pre { background: #f6f8fa; padding: 1em; overflow-x: auto; }
.cards { display: flex; flex-wrap: wrap; gap: 0.8em; margin: 1em 0; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 0.6em 1em; min-width: 10em; }
.card .value { font-size: 1.4em; font-weight: bold; } .card .label { color: #666; font-size: 0.85em; }
figure { margin: 1em 0; } figure img { max-width: 100%; height: auto; }
figcaption { color: #666; font-size: 0.9em; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { padding: 0.25em 0.9em; border-bottom: 1px solid #eee; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
"""


def write_report(run_dir: str | Path, data_root: str | Path | None = None, backend: str | None = None,
                 mistakes: int = 36, samples: int = 36, seed: int = 0) -> Path:
    """Write RUN_DIR/report.html and its PNGs for a saved run; return the HTML file's path.

    Args:
        run_dir: a run folder written by `digitlab train` (any model: the input shape comes from config.json).
        data_root: data cache root (default: see `datasets.data_root`).
        backend: Keras backend to load the model with (default $KERAS_BACKEND, else jax).
        mistakes: how many of the most confident mistakes to show.
        samples: how many random test predictions to show.
        seed: picks the random test predictions (the same seed, the same images).
    """
    run_dir = Path(run_dir)
    run = runs.read_run(run_dir)
    if run.metrics is None:
        raise RunFolderError(f"{run_dir / runs.METRICS_FILE} is missing: {run_dir} is not a complete digitlab run")
    storage.check_writable_folder(run_dir, "the run folder")  # before the model runs on the test set
    model = runs.load_model(run_dir, backend=backend)
    _, (test_images, test_labels) = datasets.load(run.config.training.dataset, root=data_root)
    try:
        probabilities = predict_probabilities(model, test_images, run.config.input_shape)  # (N, classes)
    except ConfigError as err:
        raise RunFolderError(f"{run_dir}: cannot shape the test images as the recorded input_shape "
                             f"{list(run.config.input_shape)}: {err}") from err
    labels = np.asarray(test_labels).astype(np.int64)
    evaluation = summarize(probabilities, labels)
    mistake_count = _draw_figures(run, test_images, labels, probabilities, evaluation, mistakes, samples, seed)
    error_count = int((probabilities.argmax(axis=1) != labels).sum())
    page = _render_html(run, evaluation, _model_summary(model), mistake_count, error_count)
    path = run_dir / REPORT_FILE
    storage.write_text_atomic(path, page)
    return path


def _draw_figures(run: Run, images: np.ndarray, labels: np.ndarray, probabilities: np.ndarray,
                  evaluation: Evaluation, mistakes: int, samples: int, seed: int) -> int:
    """Write the report's four PNGs into the run folder; return how many mistakes they show."""
    run_dir = run.path
    class_names = list(run.config.class_names)
    predicted = probabilities.argmax(axis=1)  # (N,)
    history = runs.read_history(run_dir / runs.HISTORY_FILE)
    plots.plot_learning_curves(history, run.metrics, run_dir / LEARNING_CURVES_FILE,
                               title=f"Learning curves: {run_dir.resolve().name}")
    plots.plot_confusion_matrix(evaluation.confusion_matrix, class_names, run_dir / CONFUSION_MATRIX_FILE)

    def caption(index: int) -> str:
        return (f"true {class_names[labels[index]]}\npred {class_names[predicted[index]]} "
                f"({probabilities[index, predicted[index]]:.1%})")

    mistake_indices = confident_mistakes(probabilities, labels, mistakes)
    plots.plot_image_grid(images[mistake_indices], [caption(i) for i in mistake_indices], run_dir / MISTAKES_FILE,
                          title=f"The {len(mistake_indices)} most confident mistakes on the test set",
                          wrong=[True] * len(mistake_indices))
    sample_indices = np.sort(np.random.default_rng(seed).choice(len(labels), size=min(samples, len(labels)),
                                                                  replace=False))
    plots.plot_image_grid(images[sample_indices], [caption(i) for i in sample_indices], run_dir / PREDICTIONS_FILE,
                          title=f"{len(sample_indices)} random test images and their predictions (wrong in red)",
                          wrong=[bool(predicted[i] != labels[i]) for i in sample_indices])
    return len(mistake_indices)


def _model_summary(model) -> str:
    lines: list[str] = []
    model.summary(print_fn=lambda text, *args, **kwargs: lines.append(str(text)))
    return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", "\n".join(lines)).rstrip()


# --- the page ------------------------------------------------------------------------------------


def _render_html(run: Run, evaluation: Evaluation, summary: str, mistake_count: int, error_count: int) -> str:
    name = run.path.resolve().name
    generated = runs.utc_now()
    sections = [
        f"<h1>Run report: {html.escape(name)}</h1>",
        f'<p class="meta">{html.escape(run.config.training.dataset)} test set, {evaluation.count:,} images; '
        f"run folder <code>{html.escape(str(run.path))}</code>; report generated {generated}.</p>",
        _cards(_headline(run.metrics, evaluation, error_count)),
        "<h2>Learning curves</h2>",
        "<p>Loss and accuracy after each epoch on the training data (and the validation split when there is one); "
        "the star is the test-set figure after training. Training accuracy above test accuracy is the gap "
        "between data the network has seen and unseen data (overfitting).</p>",
        _embedded_figure(run.path, LEARNING_CURVES_FILE, "Learning curves"),
        "<h2>Confusion matrix</h2>",
        _embedded_figure(run.path, CONFUSION_MATRIX_FILE,
                         "Confusion matrix on the test set, counts and row-normalised"),
        "<h2>Per-class precision, recall and F1</h2>",
        _table(("class", "precision", "recall", "F1", "test images"),
               _class_rows(per_class_scores(evaluation.confusion_matrix), run.config.class_names)),
        "<h2>Mistakes</h2>",
        _embedded_figure(run.path, MISTAKES_FILE, f"The {mistake_count} most confident mistakes: true label, "
                                                  "prediction and its probability"),
        _embedded_figure(run.path, PREDICTIONS_FILE, "Random test images and their predictions"),
        "<h2>Model</h2>",
        f"<pre>{html.escape(summary)}</pre>",
        "<h2>Configuration</h2>",
        _table(("setting", "value"), _config_rows(run.config)),
        "<h2>Timings</h2>",
        _table(("measure", "value"), _timing_rows(run.metrics)),
        "<h2>Versions</h2>",
        _table(("package", "version"), list(run.config.versions.items())),
    ]
    return _page(f"digitlab report: {name}", "\n".join(sections))


def _page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{html.escape(title)}</title>\n<style>\n{STYLESHEET}</style>\n</head>\n"
            f"<body>\n{body}\n</body>\n</html>\n")


def _headline(metrics: RunMetrics, evaluation: Evaluation, error_count: int) -> list[tuple[str, str]]:
    """(label, value) of the cards at the top: test figures, the training - test gap, the errors."""
    # The figures training recorded; this evaluation's where a run lacks them.
    test_accuracy = evaluation.accuracy if metrics.test_accuracy is None else metrics.test_accuracy
    test_loss = evaluation.loss if metrics.test_loss is None else metrics.test_loss
    headline = [("Test accuracy", format_value(test_accuracy, "percent")),
                ("Test loss", format_value(test_loss, "loss"))]
    if metrics.train_accuracy is not None:
        headline += [("Training accuracy (last epoch)", format_value(metrics.train_accuracy, "percent")),
                     ("Gap (training - test)", f"{(metrics.train_accuracy - test_accuracy) * 100:+.2f} points")]
    if metrics.val_accuracy is not None:
        headline.append(("Validation accuracy (last epoch)", format_value(metrics.val_accuracy, "percent")))
    headline.append(("Test images misclassified", f"{error_count:,} of {evaluation.count:,}"))
    return headline


def _cards(headline: Sequence[tuple[str, str]]) -> str:
    cards = "".join(f'<div class="card"><div class="value">{html.escape(value)}</div>'
                    f'<div class="label">{html.escape(label)}</div></div>' for label, value in headline)
    return f'<div class="cards">{cards}</div>'


def _class_rows(scores: Sequence[ClassScores], class_names: Sequence[str]) -> list[tuple[str, ...]]:
    """One row per class, then the macro average: precision, recall, F1 as percentages, and the support."""
    rows = [(class_names[score.label], *_percents(score.precision, score.recall, score.f1), f"{score.support:,}")
            for score in scores]
    macro = macro_average(scores)
    rows.append(("macro average", *_percents(macro["precision"], macro["recall"], macro["f1"]),
                 f"{sum(score.support for score in scores):,}"))
    return rows


def _percents(*fractions: float) -> list[str]:
    return [format_value(fraction, "percent") for fraction in fractions]


def _config_rows(config: RunConfig) -> list[tuple[str, str]]:
    rows = [(name, _cell(value)) for name, value in config.training.to_dict().items()]
    return rows + [("backend", config.backend), ("input_shape", _cell(config.input_shape)),
                   ("created_at", config.created_at)]


def _timing_rows(metrics: RunMetrics) -> list[tuple[str, str]]:
    return [(name, _cell(getattr(metrics, name))) for name in TIMINGS if getattr(metrics, name) is not None]


def _cell(value: Any) -> str:
    """A setting or measure in the report's tables: 4 significant digits, list items after ", "."""
    return format_value(value, "number", missing="", separator=", ")


def _embedded_figure(run_dir: Path, file_name: str, caption: str) -> str:
    encoded = base64.b64encode((run_dir / file_name).read_bytes()).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{encoded}" alt="{html.escape(caption)}">'
            f'<figcaption>{html.escape(caption)} (<a href="{file_name}">{file_name}</a>)</figcaption></figure>')


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], numeric_from: int = 1) -> str:
    head = "".join(f"<th>{html.escape(str(cell))}</th>" for cell in header)
    body = []
    for row in rows:
        cells = "".join(f'<td{" class=num" if index >= numeric_from else ""}>{html.escape(str(cell))}</td>'
                        for index, cell in enumerate(row))
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
