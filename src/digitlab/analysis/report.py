"""Plots and the self-contained HTML report of a run; the only module that imports matplotlib.

matplotlib is imported inside the functions (never on import, so `digitlab --help` stays fast) and
drawn through its Agg canvas on `Figure` objects, without pyplot: no GUI backend, no global figure
state, the same PNGs on every machine.

A report is `RUN_DIR/report.html` (every image embedded as base64, so it opens offline on its own)
and, beside it, the PNGs it shows: learning_curves.png, confusion_matrix.png, mistakes.png and
predictions.png.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import datetime
import html
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from digitlab import runs
from digitlab.data import arrays, datasets
from digitlab.errors import RunFolderError

REPORT_FILE = "report.html"
LEARNING_CURVES_FILE = "learning_curves.png"
CONFUSION_MATRIX_FILE = "confusion_matrix.png"
MISTAKES_FILE = "mistakes.png"
PREDICTIONS_FILE = "predictions.png"
PREDICTION_BATCH_SIZE = 1000

# One colour per role, the same in every figure (matplotlib's default cycle, colour-blind friendly order).
COLORS = {"train": "#1f77b4", "validation": "#ff7f0e", "test": "#2ca02c", "wrong": "#d62728", "neutral": "#4d4d4d"}
# A paper-like look: light grid, no top/right frame, readable sizes at 100% zoom.
STYLE = {
    "font.size": 10, "axes.titlesize": 11, "axes.titleweight": "bold", "axes.labelsize": 10,
    "xtick.labelsize": 9, "ytick.labelsize": 9, "legend.fontsize": 9, "legend.frameon": False,
    "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3,
    "grid.linestyle": "-", "figure.dpi": 100, "savefig.dpi": 150, "savefig.bbox": "tight",
    "image.interpolation": "nearest",
}


# --- figures -----------------------------------------------------------------------------------


@contextlib.contextmanager
def _styled() -> Iterator[None]:
    import matplotlib

    with matplotlib.rc_context(STYLE):
        yield


def _new_figure(width: float, height: float):
    """A Figure drawn by the Agg canvas (no pyplot, no GUI)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", facecolor="white")
    return path


def _percent_axis(axis) -> None:
    """Fractions on the y axis as percentages, with just the decimals the tick spacing needs (97.75%, not 97.750%)."""
    from matplotlib.ticker import Formatter

    class PercentTicks(Formatter):
        decimals = 0

        def set_locs(self, locs):
            super().set_locs(locs)
            step = float(np.min(np.diff(locs))) * 100 if len(locs) > 1 else 1.0
            self.decimals = next((digits for digits in range(5) if abs(round(step, digits) - step) < 1e-9 * max(1, step)), 4)

        def __call__(self, value, position=None):
            return f"{value * 100:.{self.decimals}f}%"

    axis.yaxis.set_major_formatter(PercentTicks())


def plot_learning_curves(history: dict[str, list[float]], metrics: dict[str, Any], path: str | Path,
                         title: str = "Learning curves") -> Path:
    """Loss and accuracy per epoch: training, validation when present, and the final test figure."""
    from matplotlib.ticker import MaxNLocator

    with _styled():
        figure = _new_figure(9.0, 3.6)
        loss_axis, accuracy_axis = figure.subplots(1, 2)
        epochs = np.arange(1, len(history.get("loss", [])) + 1)
        for axis, name, label in ((loss_axis, "loss", "Loss (cross-entropy)"), (accuracy_axis, "accuracy", "Accuracy")):
            if name in history:
                axis.plot(epochs, history[name], marker="o", markersize=4, color=COLORS["train"], label="training")
            if f"val_{name}" in history:
                axis.plot(epochs, history[f"val_{name}"], marker="s", markersize=4, linestyle="--",
                          color=COLORS["validation"], label="validation")
            test_value = metrics.get(f"test_{name}")
            if test_value is not None:
                last_epoch = epochs[-1] if len(epochs) else 1
                axis.axhline(test_value, color=COLORS["test"], linestyle=":", linewidth=1.2)
                axis.plot([last_epoch], [test_value], marker="*", markersize=12, color=COLORS["test"],
                          linestyle="none", label="test (after training)")
                shown = f"{test_value:.2%}" if name == "accuracy" else f"{test_value:.4f}"
                axis.annotate(f"test {shown}", (last_epoch, test_value), textcoords="offset points",
                              xytext=(-6, -14 if name == "accuracy" else 8), ha="right", color=COLORS["test"],
                              fontsize=9)
            axis.set_xlabel("Epoch")
            axis.set_ylabel(label)
            axis.set_title(label.split(" (")[0])
            axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        _percent_axis(accuracy_axis)
        train_accuracy, test_accuracy = metrics.get("train_accuracy"), metrics.get("test_accuracy")
        if train_accuracy is not None and test_accuracy is not None:
            gap = (train_accuracy - test_accuracy) * 100
            accuracy_axis.text(0.98, 0.04, f"training - test gap: {gap:+.2f} points", transform=accuracy_axis.transAxes,
                               ha="right", va="bottom", fontsize=9, color=COLORS["neutral"])
        loss_axis.legend(loc="upper right")
        figure.suptitle(title, fontsize=12)
        return _save(figure, path)


def plot_confusion_matrix(matrix: Sequence[Sequence[int]] | np.ndarray, class_names: Sequence[str],
                          path: str | Path, title: str = "Confusion matrix on the test set") -> Path:
    """Counts and row-normalised percentages side by side, true label down, predicted across."""
    counts = np.asarray(matrix, dtype=np.int64)  # (classes, classes): counts[true, predicted]
    row_totals = counts.sum(axis=1, keepdims=True)
    normalised = np.divide(counts, row_totals, out=np.zeros(counts.shape), where=row_totals > 0)
    labels = [str(name) for name in class_names]
    long_labels = max((len(label) for label in labels), default=1) > 2
    size = max(4.2, 0.45 * len(labels) + 1.6)
    from matplotlib.colors import PowerNorm

    # A power scale keeps 1% confusions visible next to 99% diagonals; the numbers give the exact values.
    norm = PowerNorm(gamma=0.3, vmin=0.0, vmax=1.0)
    with _styled():
        figure = _new_figure(2 * size + 0.6, size)
        for axis, values, subtitle in zip(figure.subplots(1, 2), (counts, normalised),
                                          ("counts", "row-normalised (% of each true class)")):
            shown = values if values is counts else values * 100
            # Colour by the share of the row so off-diagonal errors stay visible next to big diagonals.
            image = axis.imshow(normalised, cmap="Blues", norm=norm)
            axis.grid(False)
            for true_index in range(len(labels)):
                for predicted_index in range(len(labels)):
                    value = shown[true_index, predicted_index]
                    if value == 0:
                        continue
                    text = f"{value:d}" if values is counts else (f"{value:.1f}" if value >= 0.05 else "<.1")
                    dark = norm(normalised[true_index, predicted_index]) > 0.6
                    axis.text(predicted_index, true_index, text, ha="center", va="center", fontsize=7,
                              color="white" if dark else "#222222")
            axis.set_xticks(range(len(labels)), labels, rotation=45 if long_labels else 0,
                            ha="right" if long_labels else "center")
            axis.set_yticks(range(len(labels)), labels)
            axis.set_xlabel("Predicted label")
            axis.set_ylabel("True label")
            axis.set_title(subtitle)
        colorbar = figure.colorbar(image, ax=figure.axes, shrink=0.8, fraction=0.03)
        colorbar.set_ticks([0, 0.01, 0.05, 0.2, 0.5, 1.0], labels=["0%", "1%", "5%", "20%", "50%", "100%"])
        colorbar.set_label("share of the true class (power scale)")
        figure.suptitle(title, fontsize=12)
        return _save(figure, path)


def plot_image_grid(images: np.ndarray, titles: Sequence[str], path: str | Path, title: str,
                    wrong: Sequence[bool] | None = None, columns: int = 6) -> Path:
    """Images (N, 28, 28) in a grid, each with a short caption; captions of wrong predictions in red."""
    images = np.asarray(images)
    count = len(images)
    columns = max(1, min(columns, count)) if count else 1
    rows = max(1, -(-count // columns))
    with _styled():
        figure = _new_figure(1.55 * columns, 1.75 * rows + 0.4)
        axes = np.atleast_1d(figure.subplots(rows, columns)).ravel()
        for index, axis in enumerate(axes):
            axis.axis("off")
            if index >= count:
                continue
            axis.imshow(np.squeeze(images[index]), cmap="gray_r", vmin=0, vmax=255)
            is_wrong = bool(wrong[index]) if wrong is not None else False
            axis.set_title(titles[index], fontsize=8, fontweight="normal",
                           color=COLORS["wrong"] if is_wrong else "#222222")
        if not count:
            axes[0].text(0.5, 0.5, "none", ha="center", va="center", transform=axes[0].transAxes)
        figure.suptitle(title, fontsize=12)
        return _save(figure, path)


def plot_sweep_accuracy_vs_time(groups: Sequence[dict[str, Any]], path: str | Path,
                                title: str = "Test accuracy against training time") -> Path:
    """One point per trial (faint) and per configuration mean +- std over seeds (bold, labelled).

    Args:
        groups: per configuration {"label", "fit_seconds": [...], "test_accuracy": [...]}, one value per seed.
    """
    from matplotlib import colormaps

    palette = colormaps["tab10"]
    with _styled():
        figure = _new_figure(7.0, 4.6)
        axis = figure.subplots()
        for index, group in enumerate(groups):
            color = palette(index % 10)
            seconds, accuracies = np.asarray(group["fit_seconds"], float), np.asarray(group["test_accuracy"], float)
            if not len(seconds):
                continue
            axis.scatter(seconds, accuracies, color=color, alpha=0.35, s=18, linewidths=0)
            x_std = seconds.std(ddof=1) if len(seconds) > 1 else 0.0
            y_std = accuracies.std(ddof=1) if len(accuracies) > 1 else 0.0
            axis.errorbar(seconds.mean(), accuracies.mean(), xerr=x_std, yerr=y_std, fmt="o", color=color,
                          markersize=7, capsize=3, label=group["label"])
        _percent_axis(axis)
        axis.set_xlabel("Training time, fit (seconds)")
        axis.set_ylabel("Test accuracy")
        axis.set_title(title)
        if groups:
            axis.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), title="configuration (mean ± std)")
        return _save(figure, path)


def plot_sweep_factors(panels: Sequence[dict[str, Any]], path: str | Path,
                       title: str = "Effect of each factor (mean ± std over seeds)") -> Path:
    """One column per factor: test accuracy (top) and training time (bottom) at each of its levels.

    Args:
        panels: per factor {"factor": title, "levels": [label, ...], "test_accuracy": [[per seed], ...],
            "fit_seconds": [[per seed], ...]}, one inner list per level.
    """
    count = max(1, len(panels))
    with _styled():
        figure = _new_figure(3.8 * count, 5.6)
        axes = np.asarray(figure.subplots(2, count, squeeze=False))
        for column, panel in enumerate(panels):
            positions = np.arange(len(panel["levels"]))
            for row, (key, color, label) in enumerate((("test_accuracy", COLORS["test"], "Test accuracy"),
                                                       ("fit_seconds", COLORS["train"], "Training time (s)"))):
                axis = axes[row, column]
                values = [np.asarray(level, float) for level in panel[key]]
                means = [level.mean() if len(level) else np.nan for level in values]
                stds = [level.std(ddof=1) if len(level) > 1 else 0.0 for level in values]
                for position, level in zip(positions, values):
                    jitter = np.linspace(-0.08, 0.08, len(level)) if len(level) > 1 else np.zeros(len(level))
                    axis.scatter(position + jitter, level, color=color, alpha=0.35, s=16, linewidths=0)
                axis.errorbar(positions, means, yerr=stds, color=color, marker="o", capsize=3, linewidth=1.5)
                axis.set_xticks(positions, [str(level) for level in panel["levels"]])
                axis.set_ylabel(label)
                if row == 0:
                    _percent_axis(axis)
                    axis.set_title(panel["factor"])
                else:
                    axis.set_xlabel(panel["factor"])
                    axis.set_ylim(bottom=0)
        figure.suptitle(title, fontsize=12)
        return _save(figure, path)


# --- the run report ----------------------------------------------------------------------------


def read_history(path: str | Path) -> dict[str, list[float]]:
    """history.csv back into {"loss": [...], "accuracy": [...], ...} (empty if the file is missing)."""
    path = Path(path)
    if not path.is_file():
        return {}
    with path.open(newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    names = [name for name in (rows[0].keys() if rows else []) if name != "epoch"]
    return {name: [float(row[name]) for row in rows] for name in names}


def prepare_inputs(images: np.ndarray, input_shape: Sequence[int]) -> np.ndarray:
    """uint8 images (N, 28, 28) -> float32 in [0, 1] shaped (N, *input_shape): (N, 784) or (N, 28, 28, 1)."""
    return arrays.normalize(images).reshape((len(images), *[int(size) for size in input_shape]))


def confident_mistakes(probabilities: np.ndarray, labels: np.ndarray, count: int) -> np.ndarray:
    """Indices of the `count` wrong predictions made with the highest probability, most confident first."""
    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != labels)
    confidence = probabilities[wrong, predicted[wrong]]
    return wrong[np.argsort(-confidence, kind="stable")[:count]]


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
    from digitlab.analysis.evaluate import summarize
    from digitlab.analysis.metrics import macro_average, per_class_scores

    run_dir = Path(run_dir)
    config, saved = runs.read_run_config(run_dir)
    metrics = runs.read_json(run_dir / runs.METRICS_FILE)
    history = read_history(run_dir / runs.HISTORY_FILE)
    model = runs.load_model(run_dir, backend=backend)
    _, (test_images, test_labels) = datasets.load(config.dataset, root=data_root)
    input_shape = saved.get("input_shape") or list(model.input_shape[1:])
    try:
        inputs = prepare_inputs(test_images, input_shape)
    except ValueError as err:
        raise RunFolderError(f"{run_dir}: cannot shape the test images as the recorded input_shape "
                             f"{input_shape}: {err}") from err
    probabilities = np.asarray(model.predict(inputs, batch_size=PREDICTION_BATCH_SIZE, verbose=0))  # (N, classes)
    labels = np.asarray(test_labels).astype(np.int64)
    evaluation = summarize(probabilities, labels)
    class_names = [str(name) for name in saved.get("class_names") or range(probabilities.shape[1])]
    scores = per_class_scores(evaluation.confusion_matrix)
    predicted = probabilities.argmax(axis=1)

    name = run_dir.resolve().name
    plot_learning_curves(history, metrics, run_dir / LEARNING_CURVES_FILE, title=f"Learning curves: {name}")
    plot_confusion_matrix(evaluation.confusion_matrix, class_names, run_dir / CONFUSION_MATRIX_FILE)

    def caption(index: int) -> str:
        return (f"true {class_names[labels[index]]}\npred {class_names[predicted[index]]} "
                f"({probabilities[index, predicted[index]]:.1%})")

    mistake_indices = confident_mistakes(probabilities, labels, mistakes)
    plot_image_grid(test_images[mistake_indices], [caption(i) for i in mistake_indices], run_dir / MISTAKES_FILE,
                    title=f"The {len(mistake_indices)} most confident mistakes on the test set",
                    wrong=[True] * len(mistake_indices))
    sample_indices = np.sort(np.random.default_rng(seed).choice(len(labels), size=min(samples, len(labels)),
                                                                  replace=False))
    plot_image_grid(test_images[sample_indices], [caption(i) for i in sample_indices], run_dir / PREDICTIONS_FILE,
                    title=f"{len(sample_indices)} random test images and their predictions (wrong in red)",
                    wrong=[bool(predicted[i] != labels[i]) for i in sample_indices])

    page = _render_html(
        name=name, saved=saved, metrics=metrics, evaluation=evaluation, scores=scores,
        macro=macro_average(scores), class_names=class_names, summary=_model_summary(model), run_dir=run_dir,
        mistake_count=len(mistake_indices), error_count=int((predicted != labels).sum()),
    )
    path = run_dir / REPORT_FILE
    runs.write_text_atomic(path, page)
    return path


def _model_summary(model) -> str:
    lines: list[str] = []
    model.summary(print_fn=lambda text, *args, **kwargs: lines.append(str(text)))
    return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", "\n".join(lines)).rstrip()


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


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_format(item) for item in value)
    return "" if value is None else str(value)


def _render_html(name: str, saved: dict[str, Any], metrics: dict[str, Any], evaluation, scores, macro,
                 class_names: Sequence[str], summary: str, run_dir: Path, mistake_count: int,
                 error_count: int) -> str:
    training = saved.get("training", {})
    test_accuracy = metrics.get("test_accuracy", evaluation.accuracy)
    train_accuracy = metrics.get("train_accuracy")
    headline = [("Test accuracy", f"{test_accuracy:.2%}"), ("Test loss", f"{metrics.get('test_loss', evaluation.loss):.4f}")]
    if train_accuracy is not None:
        headline += [("Training accuracy (last epoch)", f"{train_accuracy:.2%}"),
                     ("Gap (training - test)", f"{(train_accuracy - test_accuracy) * 100:+.2f} points")]
    if metrics.get("val_accuracy") is not None:
        headline.append(("Validation accuracy (last epoch)", f"{metrics['val_accuracy']:.2%}"))
    headline.append(("Test images misclassified", f"{error_count:,} of {evaluation.count:,}"))
    cards = "".join(f'<div class="card"><div class="value">{html.escape(value)}</div>'
                    f'<div class="label">{html.escape(label)}</div></div>' for label, value in headline)

    class_rows = [(class_names[score.label], f"{score.precision:.2%}", f"{score.recall:.2%}", f"{score.f1:.2%}",
                   f"{score.support:,}") for score in scores]
    class_rows.append(("macro average", f"{macro['precision']:.2%}", f"{macro['recall']:.2%}",
                       f"{macro['f1']:.2%}", f"{sum(score.support for score in scores):,}"))
    config_rows = [(key, _format(value)) for key, value in training.items()]
    config_rows += [("backend", saved.get("backend", "")), ("input_shape", _format(saved.get("input_shape"))),
                    ("created_at", saved.get("created_at", ""))]
    timing_names = ("status", "epochs_completed", "fit_seconds", "epoch_seconds", "samples_per_second",
                    "data_seconds", "import_seconds", "evaluate_seconds", "finished_at")
    timing_rows = [(key, _format(metrics[key])) for key in timing_names if key in metrics]
    version_rows = [(package, version) for package, version in saved.get("versions", {}).items()]
    generated = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    sections = [
        f"<h1>Run report: {html.escape(name)}</h1>",
        f'<p class="meta">{html.escape(str(training.get("dataset", "")))} test set, {evaluation.count:,} images; '
        f"run folder <code>{html.escape(str(run_dir))}</code>; report generated {generated}.</p>",
        f'<div class="cards">{cards}</div>',
        "<h2>Learning curves</h2>",
        "<p>Loss and accuracy after each epoch on the training data (and the validation split when there is one); "
        "the star is the test-set figure after training. Training accuracy above test accuracy is the gap "
        "between data the network has seen and unseen data (overfitting).</p>",
        _embedded_figure(run_dir, LEARNING_CURVES_FILE, "Learning curves"),
        "<h2>Confusion matrix</h2>",
        _embedded_figure(run_dir, CONFUSION_MATRIX_FILE, "Confusion matrix on the test set, counts and row-normalised"),
        "<h2>Per-class precision, recall and F1</h2>",
        _table(("class", "precision", "recall", "F1", "test images"), class_rows),
        "<h2>Mistakes</h2>",
        _embedded_figure(run_dir, MISTAKES_FILE, f"The {mistake_count} most confident mistakes: true label, "
                                                 "prediction and its probability"),
        _embedded_figure(run_dir, PREDICTIONS_FILE, "Random test images and their predictions"),
        "<h2>Model</h2>",
        f"<pre>{html.escape(summary)}</pre>",
        "<h2>Configuration</h2>",
        _table(("setting", "value"), config_rows),
        "<h2>Timings</h2>",
        _table(("measure", "value"), timing_rows),
        "<h2>Versions</h2>",
        _table(("package", "version"), version_rows),
    ]
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>digitlab report: {html.escape(name)}</title>
<style>
body {{ font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 1100px; margin: 2em auto;
        padding: 0 1em; color: #222; line-height: 1.45; }}
h1 {{ font-size: 1.6em; margin-bottom: 0.2em; }} h2 {{ margin-top: 1.8em; border-bottom: 1px solid #ddd; }}
.meta {{ color: #666; }} code, pre {{ font-family: "SFMono-Regular", Menlo, Consolas, monospace; font-size: 0.85em; }}
pre {{ background: #f6f8fa; padding: 1em; overflow-x: auto; }}
.cards {{ display: flex; flex-wrap: wrap; gap: 0.8em; margin: 1em 0; }}
.card {{ border: 1px solid #ddd; border-radius: 6px; padding: 0.6em 1em; min-width: 10em; }}
.card .value {{ font-size: 1.4em; font-weight: bold; }} .card .label {{ color: #666; font-size: 0.85em; }}
figure {{ margin: 1em 0; }} figure img {{ max-width: 100%; height: auto; }}
figcaption {{ color: #666; font-size: 0.9em; }}
table {{ border-collapse: collapse; margin: 0.5em 0; }}
th, td {{ padding: 0.25em 0.9em; border-bottom: 1px solid #eee; text-align: left; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
</style>
</head>
<body>
{chr(10).join(sections)}
</body>
</html>
"""
