"""Every figure digitlab draws: learning curves, confusion matrix, image grids, the sweep plots.

The only module that imports matplotlib. It is imported inside the functions (never on import, so
`digitlab --help` stays fast) and draws through its Agg canvas on `Figure` objects, without pyplot:
no GUI backend, no global figure state, the same PNGs on every machine.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from digitlab import storage
from digitlab.analysis.formatting import format_value
from digitlab.record import RunMetrics

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
    """Write the figure as a PNG through the atomic writer: a full disk never leaves half a picture."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise storage.write_error(err, path, "create the folder of") from err
    with storage.atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", facecolor="white")
    return path


def _percent_axis(axis) -> None:
    """Fractions on the y axis as percentages, with just the decimals the tick spacing needs (97.75%, not 97.750%)."""
    from matplotlib.ticker import Formatter

    class PercentTicks(Formatter):
        decimals = 0

        def set_locs(self, locs):
            super().set_locs(locs)
            step = float(np.min(np.diff(locs))) * 100 if len(locs) > 1 else 1.0
            self.decimals = next((digits for digits in range(5)
                                  if abs(round(step, digits) - step) < 1e-9 * max(1, step)), 4)

        def __call__(self, value, position=None):
            return f"{value * 100:.{self.decimals}f}%"

    axis.yaxis.set_major_formatter(PercentTicks())


def plot_learning_curves(history: dict[str, list[float]], metrics: RunMetrics | None, path: str | Path,
                         title: str = "Learning curves") -> Path:
    """Loss and accuracy per epoch: training, validation when present, and the final test figure.

    Args:
        history: per-epoch figures as in history.csv ("loss", "accuracy", "val_loss", ...).
        metrics: the run's metrics.json, for the test figures and the training - test gap (None: none shown).
    """
    from matplotlib.ticker import MaxNLocator

    test_loss, test_accuracy = (metrics.test_loss, metrics.test_accuracy) if metrics else (None, None)
    with _styled():
        figure = _new_figure(9.0, 3.6)
        loss_axis, accuracy_axis = figure.subplots(1, 2)
        epochs = np.arange(1, len(history.get("loss", [])) + 1)
        for axis, name, label, test_value in ((loss_axis, "loss", "Loss (cross-entropy)", test_loss),
                                              (accuracy_axis, "accuracy", "Accuracy", test_accuracy)):
            if name in history:
                axis.plot(epochs, history[name], marker="o", markersize=4, color=COLORS["train"], label="training")
            if f"val_{name}" in history:
                axis.plot(epochs, history[f"val_{name}"], marker="s", markersize=4, linestyle="--",
                          color=COLORS["validation"], label="validation")
            if test_value is not None:
                last_epoch = epochs[-1] if len(epochs) else 1
                axis.axhline(test_value, color=COLORS["test"], linestyle=":", linewidth=1.2)
                axis.plot([last_epoch], [test_value], marker="*", markersize=12, color=COLORS["test"],
                          linestyle="none", label="test (after training)")
                shown = format_value(test_value, "percent" if name == "accuracy" else "loss")
                axis.annotate(f"test {shown}", (last_epoch, test_value), textcoords="offset points",
                              xytext=(-6, -14 if name == "accuracy" else 8), ha="right", color=COLORS["test"],
                              fontsize=9)
            axis.set_xlabel("Epoch")
            axis.set_ylabel(label)
            axis.set_title(label.split(" (")[0])
            axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        _percent_axis(accuracy_axis)
        train_accuracy = metrics.train_accuracy if metrics else None
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
                                          ("counts", "row-normalised (% of each true class)"), strict=True):
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
                for position, level in zip(positions, values, strict=True):
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
