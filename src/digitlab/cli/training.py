"""Train a network, or a sweep of them: `digitlab train`, `digitlab sweep`."""

from __future__ import annotations

from pathlib import Path

import typer

from digitlab.cli.output import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    RichProgress,
    console,
    error_console,
    print_error,
    print_warning,
)


def parse_whole_numbers(flag: str, text: str) -> tuple[int, ...]:
    """'512,256' -> (512, 256); an empty string -> () (e.g. a cnn with no hidden Dense layer)."""
    from digitlab.errors import ConfigError

    try:
        return tuple(int(part) for part in text.split(",")) if text.strip() else ()
    except ValueError as err:
        raise ConfigError(f"{flag} takes comma-separated whole numbers like 512 or 512,256, got {text!r}") from err


def parse_settings(texts: list[str]) -> dict[str, list]:
    """`--set NAME=VALUES` flags -> {setting: [values]}, each value parsed as the TrainingConfig field's type."""
    from digitlab.errors import ConfigError
    from digitlab.sweeps.plan import parse_values

    values: dict[str, list] = {}
    for text in texts:
        name, separator, listed = text.partition("=")
        if not separator or not name.strip():
            raise ConfigError(f"--set takes NAME=VALUES like learning_rate=0.001,0.01, got {text!r}")
        name = name.strip().replace("-", "_")
        values[name] = [*values.get(name, []), *parse_values(name, [listed])]
    return values


def train(
    recipe: str = typer.Option("tutorial", help="Starting point: tutorial, mlp-dropout, cnn, speedrun, best, "
                               "reader (adds 'not a digit' and a line model for `read`) or reader-large (the "
                               "bundled reader's); flags override."),
    dataset: str | None = typer.Option(None, help="mnist or fashion-mnist.  \\[default: mnist]"),
    epochs: int | None = typer.Option(None, help="Passes over the training data.  \\[tutorial: 5]"),
    batch_size: int | None = typer.Option(None, help="Images per gradient step.  \\[tutorial: 64]"),
    hidden_units: str | None = typer.Option(None, help="Units per hidden layer, comma-separated: 512 or "
                                               "512,512.  \\[tutorial: 512]"),
    conv_filters: str | None = typer.Option(None, help="Filters per convolution block (cnn), e.g. 32,64."),
    activation: str | None = typer.Option(None, help="Activation of the hidden layers.  \\[default: relu]"),
    dropout: float | None = typer.Option(None, help="Dropout after each hidden layer (0 = none)."),
    optimizer: str | None = typer.Option(None, help="adam, adamw, sgd, rmsprop, nadam or adagrad."),
    learning_rate: float | None = typer.Option(None, help="Optimizer learning rate.  \\[default: 0.001]"),
    validation_split: float | None = typer.Option(None, help="Fraction of training images held out for "
                                                     "validation."),
    seed: int | None = typer.Option(None, help="Random seed: same seed, same result on one machine.  \\[default: 0]"),
    backend: str | None = typer.Option(None, help="jax (default), tensorflow or torch; else $KERAS_BACKEND."),
    run_dir: Path | None = typer.Option(None, help="Run folder (new or empty). Default: runs/<time>-<name>."),
    from_dir: Path | None = typer.Option(None, "--from", help="Folder with the IDX files if not cached."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output; only the final result."),
    report: bool = typer.Option(False, "--report", help="Also write RUN_DIR/report.html (see `digitlab report`)."),
    fit_loop: str = typer.Option("fast", help="fast: one compiled call per epoch on JAX (same math as "
                                 "model.fit, which other backends use); keras: always model.fit."),
    max_train_images: int | None = typer.Option(None, help="Train on only the first N images (quick runs)."),
    distribute: str | None = typer.Option(None, help="data-parallel: replicate the model and split each "
                                             "global batch over all devices and processes (JAX)."),
    coordinator: str | None = typer.Option(None, help="HOST:PORT of process 0 when several processes train "
                                              "together (else $KERAS_DISTRIBUTION_JOB_ADDRESSES)."),
    num_processes: int | None = typer.Option(None, help="Processes training together "
                                                "(else $KERAS_DISTRIBUTION_NUM_PROCESSES, else 1)."),
    process_id: int | None = typer.Option(None, help="This process's number, 0..N-1; 0 writes the run "
                                             "(else $KERAS_DISTRIBUTION_PROCESS_ID)."),
    setting: list[str] | None = typer.Option(None, "--set", help="Any other training setting, NAME=VALUE, "
                                             "repeatable (e.g. --set kernel_size=5 --set batch_norm=true)."),
) -> None:
    """Train a network (the tutorial's recipe by default) and print its test accuracy."""
    from digitlab.backend import import_keras_in_background

    import_keras_in_background(backend)  # about a second: overlap it with everything up to training
    from digitlab.errors import ConfigError
    from digitlab.training.distributed import DistributionSettings
    from digitlab.training.recipes import recipe_config
    from digitlab.training.train import train as train_run

    given = {"dataset": dataset, "epochs": epochs, "batch_size": batch_size, "activation": activation,
             "dropout": dropout, "optimizer": optimizer, "learning_rate": learning_rate,
             "validation_split": validation_split, "seed": seed, "max_train_images": max_train_images,
             "hidden_units": None if hidden_units is None else parse_whole_numbers("--hidden-units", hidden_units),
             "conv_filters": None if conv_filters is None else parse_whole_numbers("--conv-filters", conv_filters)}
    given = {name: value for name, value in given.items() if value is not None}
    for name, values in parse_settings(setting or []).items():
        if len(values) != 1:
            raise ConfigError(f"--set {name}= takes one value in `digitlab train` (a sweep takes several)")
        given[name] = values[0]
    config = recipe_config(recipe, **given)
    distribution = DistributionSettings.from_arguments(distribute, coordinator, num_processes, process_id)
    with RichProgress() as progress:
        result = train_run(config, run_dir=run_dir, backend=backend, from_dir=from_dir,
                           verbose=0 if quiet else 1, progress=progress, fit_loop=fit_loop,
                           distribution=distribution, notice=print_warning)
    _print_training_result(result, config, distribution, quiet)
    if report and result.run_dir and not result.diverged:
        from digitlab.analysis.report import write_report

        console.print(f"report written to {write_report(result.run_dir)}", highlight=False)
    if result.diverged:
        raise typer.Exit(EXIT_FAILED)
    if result.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)


def _print_training_result(result, config, distribution, quiet: bool) -> None:
    """The tutorial's last line (test loss and accuracy), and what the user should know about the run."""
    metrics = result.metrics
    if result.diverged:
        print_error(f"training diverged in epoch {metrics.diverged_at_epoch}: the loss is no longer a number "
                     f"(learning rate {config.learning_rate:g}); try a smaller --learning-rate, e.g. "
                     f"{config.learning_rate / 10:g}. The run is kept as 'diverged' in {result.run_dir}")
        return
    if result.interrupted:
        error_console.print(f"interrupted after {metrics.epochs_completed} of {config.epochs} epochs; "
                            f"the model trained so far is saved in {result.run_dir}")
    console.print(f"Test loss: {metrics.test_loss:.4f}  Test accuracy: {metrics.test_accuracy:.2%}",
                  highlight=False)
    for warning in metrics.warnings:
        print_warning(warning)
    if not quiet:
        where = f"run saved in {result.run_dir}" if result.run_dir else "process 0 saves the run"
        console.print(f"fit: {metrics.fit_seconds:.1f} s ({metrics.samples_per_second:,.0f} images/s); {where}",
                      highlight=False)
    if distribution.strategy:
        console.print(f"process {distribution.process_id} of {distribution.num_processes}: "
                      f"weights sha256 {metrics.weights_sha256}", highlight=False, soft_wrap=True)


def sweep_command(
    recipe: list[str] | None = typer.Option(None, help="Recipes, e.g. tutorial,mlp-dropout (flags override)."),
    dataset: list[str] | None = typer.Option(None, help="Data sets, e.g. mnist,fashion-mnist."),
    epochs: list[str] | None = typer.Option(None, help="Epochs, e.g. 5 or 1,5,10 (with --study: one value)."),
    batch_size: list[str] | None = typer.Option(None, help="Batch sizes, e.g. 64,256,1024."),
    hidden_units: list[str] | None = typer.Option(None, help="One network per flag; a comma separates layers: "
                                                     "--hidden-units 512 --hidden-units 512,512."),
    activation: list[str] | None = typer.Option(None, help="Activations, e.g. relu,tanh."),
    dropout: list[str] | None = typer.Option(None, help="Dropout rates, e.g. 0,0.2."),
    optimizer: list[str] | None = typer.Option(None, help="Optimizers, e.g. adam,sgd."),
    learning_rate: list[str] | None = typer.Option(None, help="Learning rates, e.g. 0.001,0.01."),
    validation_split: list[str] | None = typer.Option(None, help="Validation fractions, e.g. 0,0.1."),
    setting: list[str] | None = typer.Option(None, "--set", help="Any training setting: NAME=V1,V2 "
                                                "(e.g. --set kernel_size=3,5). For a list setting a comma separates "
                                                "layers: --set conv_filters=32,64 is one value; repeat --set for more."),
    seeds: int | None = typer.Option(None, help="Seeds per configuration (0..N-1). Default 1; the study's: 3."),
    jobs: int = typer.Option(1, help="Trials trained at once, each in its own process."),
    study: str | None = typer.Option(None, help="A named study: tutorial-claims."),
    sweep_dir: Path | None = typer.Option(None, help="Sweep folder. Default: sweeps/<name>-<digest>, "
                                             "the same for the same sweep, so running again resumes."),
    backend: str | None = typer.Option(None, help="jax (default), tensorflow or torch; else $KERAS_BACKEND."),
    executor: str = typer.Option("local", help="local: --jobs processes on this machine; ray: one Ray task per "
                                 "trial on a cluster (pip install 'digitlab\\[ray]')."),
    address: str | None = typer.Option(None, help="With --executor ray: HOST:PORT of the cluster's head "
                                          "(else $RAY_ADDRESS, else a Ray started on this machine)."),
    cpus_per_trial: float = typer.Option(1.0, help="With --executor ray: CPUs per trial."),
    gpus_per_trial: float | None = typer.Option(None, help="With --executor ray: GPUs per trial. "
                                                   "\\[default: 1 where the cluster has GPUs, else 0]"),
    search: str | None = typer.Option(None, help="tpe or random: let Optuna propose the settings within "
                                         "ranges (--set learning_rate=1e-4..1e-2:log) and choices "
                                         "(pip install 'digitlab\\[search]')."),
    trials: int = typer.Option(20, help="With --search: trials in all; running again goes on up to it."),
    objective: str = typer.Option("val_accuracy", help="With --search: val_accuracy (needs --validation-split) "
                                  "or test_accuracy (needs --allow-test-objective)."),
    allow_test_objective: bool = typer.Option(False, "--allow-test-objective", help="Let --search choose settings "
                                              "by test accuracy (which then overstates the accuracy)."),
    search_seed: int = typer.Option(0, help="With --search: the sampler's seed."),
) -> None:
    """Train a grid of runs (or a study, or an Optuna search), skip finished trials, summarise over seeds."""
    from digitlab.errors import ConfigError
    from digitlab.sweeps.plan import grid_plan, parse_values
    from digitlab.sweeps.ranges import is_range
    from digitlab.sweeps.runner import run_sweep
    from digitlab.sweeps.studies import study_plan

    flags = {"recipe": recipe, "dataset": dataset, "epochs": epochs, "batch_size": batch_size, "hidden_units": hidden_units,
             "activation": activation, "dropout": dropout, "optimizer": optimizer, "learning_rate": learning_rate,
             "validation_split": validation_split}
    values = {name: parse_values(name, texts) for name, texts in flags.items() if texts}
    ranges = [text for text in setting or [] if is_range(text.partition("=")[2])]
    for name, listed in parse_settings([text for text in setting or [] if text not in ranges]).items():
        values[name] = [*values.get(name, []), *listed]
    trial_executor = _sweep_executor(executor, jobs, address, cpus_per_trial, gpus_per_trial, backend)
    if search:
        if study or seeds is not None:
            raise ConfigError("--search trains each trial once with seed 0; leave out --study and --seeds")
        _search(search, values, ranges, trials, objective, allow_test_objective, search_seed, sweep_dir,
                trial_executor)
        return
    if ranges:
        raise ConfigError(f"--set {ranges[0]} is a range; ranges need --search tpe or --search random")
    if study:
        several = [name for name, listed in values.items() if len(listed) > 1]
        if several:
            raise ConfigError(f"with --study, give one value per setting ({', '.join(several)} has several)")
        plan = study_plan(study, seeds=3 if seeds is None else seeds,
                          fixed={name: listed[0] for name, listed in values.items()})
    else:
        plan = grid_plan(values, seeds=1 if seeds is None else seeds)
    target = sweep_dir or plan.default_dir()
    console.print(f"sweep {plan.name}: {len(plan.trials())} trials in {target}", highlight=False)

    result = run_sweep(plan, sweep_dir=target, on_trial=_on_trial, executor=trial_executor)
    for verdict in result.summary.verdicts:
        console.print(f"{verdict.claim} [bold]{verdict.answer}[/]. {verdict.text}", highlight=False)
    console.print(f"trained {result.trained}, skipped {result.skipped} already finished; "
                  f"summary in {result.summary.files['markdown']} and {result.summary.files['csv']}", highlight=False)
    if result.interrupted:
        error_console.print("interrupted: finished trials are kept; run the same command again to go on")
        raise typer.Exit(EXIT_INTERRUPTED)


def _on_trial(event) -> None:
    """One line per trial of a sweep or search, as it ends (or is skipped)."""
    from digitlab.analysis.formatting import format_value

    metrics = event.metrics  # a RunMetrics, or None
    detail = ""
    if metrics is not None and metrics.test_accuracy is not None:
        detail = (f": test accuracy {format_value(metrics.test_accuracy, 'percent')}, "
                  f"fit {format_value(metrics.fit_seconds, 'seconds')} s")
        if metrics.val_accuracy is not None:
            detail += f", validation accuracy {format_value(metrics.val_accuracy, 'percent')}"
    console.print(f"[{event.index}/{event.total}] {event.status} {event.trial.name}{detail}",
                  highlight=False, markup=False)


def _sweep_executor(name: str, jobs: int, address: str | None, cpus_per_trial: float, gpus_per_trial: float | None,
                    backend: str | None):
    """The executor the flags ask for: local processes (--jobs) or Ray (--address, --cpus-per-trial)."""
    from digitlab.errors import ConfigError
    from digitlab.sweeps.executors import EXECUTORS, local_executor

    if name not in EXECUTORS:
        raise ConfigError(f"unknown executor {name!r}; choose one of: {', '.join(EXECUTORS)}")
    if name == "local":
        if address is not None or gpus_per_trial is not None or cpus_per_trial != 1.0:
            raise ConfigError("--address, --cpus-per-trial and --gpus-per-trial are for --executor ray")
        return local_executor(jobs, backend=backend)
    if jobs != 1:
        raise ConfigError("--jobs is for the local executor; on Ray, --cpus-per-trial sets how many trials each "
                          "node trains at once")
    from digitlab.sweeps.ray_executor import RayExecutor, RayOptions

    return RayExecutor(RayOptions(address=address, cpus_per_trial=cpus_per_trial, gpus_per_trial=gpus_per_trial),
                       backend=backend)


def _search(sampler: str, values: dict[str, list], ranges: list[str], trials: int, objective: str,
            allow_test_objective: bool, search_seed: int, sweep_dir: Path | None, trial_executor) -> None:
    """`digitlab sweep --search ...`: the search's space from the flags, then Optuna's trials."""
    from digitlab.sweeps.ranges import parse_range
    from digitlab.sweeps.search import SearchPlan, run_search

    space: dict = {}
    for text in ranges:
        name, _, bounds = text.partition("=")
        space[name.strip().replace("-", "_")] = parse_range(name.strip().replace("-", "_"), bounds)
    space.update({name: listed for name, listed in values.items() if len(listed) > 1 and name not in space})
    fixed = {name: listed[0] for name, listed in values.items() if len(listed) == 1 and name not in space}
    plan = SearchPlan(space=space, fixed=fixed, sampler=sampler, trials=trials, objective=objective,
                      allow_test_objective=allow_test_objective, search_seed=search_seed)
    target = sweep_dir or plan.default_dir()
    console.print(f"search {plan.sampler}: {plan.trials} trials in {target}", highlight=False)
    result = run_search(plan, sweep_dir=target, on_trial=_on_trial, executor=trial_executor)
    if result.best is not None:
        settings = ", ".join(f"{name}={value}" for name, value in result.best.params.items())
        console.print(f"best: trial {result.best.number} ({result.best.name}), {objective.replace('_', ' ')} "
                      f"{result.best.objective:.2%} with {settings}", highlight=False, markup=False)
    console.print(f"trained {result.trained}, skipped {result.skipped} already finished; "
                  f"summary in {result.files['markdown']} and {result.files['csv']}", highlight=False)
    if result.interrupted:
        error_console.print("interrupted: finished trials are kept; run the same command again to go on")
        raise typer.Exit(EXIT_INTERRUPTED)
