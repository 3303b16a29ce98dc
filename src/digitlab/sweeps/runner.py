"""Sweeps: grids of ordinary training runs, resumable and parallel, summarised over seeds.

A sweep folder holds:

    sweep.json                       what was swept (grids, fixed settings, seeds, trial names)
    trials/<name>/                   one ordinary run folder per trial (config.json, metrics.json, ...)
    sweep.csv                        one row per trial: every setting, its status and metrics
    sweep.md                         mean and standard deviation over seeds per configuration
                                     (and, for a study, a plain-language verdict on each claim)
    sweep_accuracy_vs_time.png       test accuracy against training time
    sweep_factors.png                one panel per factor

Trial folders are named from their settings (a short name plus a digest of the whole config), so
re-running a sweep finds the trials it already finished and trains only the others. A trial is
finished when its metrics.json says "finished"; a folder left by an interrupted or crashed trial
is cleared and trained again.
"""

from __future__ import annotations

import concurrent.futures
import csv
import dataclasses
import hashlib
import io
import itertools
import json
import math
import multiprocessing
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from digitlab import runs
from digitlab.config import TrainingConfig
from digitlab.errors import ConfigError, DigitlabError
from digitlab.analysis.metrics import mean_and_std

SWEEP_FILE = "sweep.json"
CSV_FILE = "sweep.csv"
MARKDOWN_FILE = "sweep.md"
ACCURACY_PLOT_FILE = "sweep_accuracy_vs_time.png"
FACTORS_PLOT_FILE = "sweep_factors.png"
TRIALS_DIR = "trials"
DEFAULT_SWEEPS_ROOT = "sweeps"
# Metrics copied from each trial's metrics.json into sweep.csv.
CSV_METRICS = ("test_accuracy", "test_loss", "train_accuracy", "train_loss", "val_accuracy", "val_loss",
               "epochs_completed", "fit_seconds", "samples_per_second")


# --- what to run ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Grid:
    """One cross product of factor values: every combination is trained with every seed."""

    # A name for the grid's section of sweep.md, e.g. "depth" or "batch size".
    name: str
    # Training setting (a TrainingConfig field) -> the values to try, in order.
    factors: dict[str, list[Any]]


@dataclasses.dataclass(frozen=True)
class Trial:
    """One training run of a sweep."""

    config: TrainingConfig
    # Folder name under trials/: deterministic, so a re-run finds it.
    name: str


@dataclasses.dataclass(frozen=True)
class SweepPlan:
    """Everything a sweep trains: fixed settings, grids over factors, seeds."""

    # Used for the default folder name and the title of sweep.md.
    name: str
    # The grids; a trial shared by two grids (the same config) is trained once.
    grids: list[Grid]
    # Settings that are the same in every trial (on top of TrainingConfig's defaults).
    fixed: dict[str, Any]
    # One trial per seed for each configuration.
    seeds: list[int]
    # The study whose verdicts end sweep.md, if any.
    study: str | None = None

    def configs(self, grid: Grid) -> list[TrainingConfig]:
        return expand_grid(self.fixed, grid.factors, self.seeds)

    def trials(self) -> list[Trial]:
        """Every trial of every grid, each configuration once, in grid order."""
        seen: dict[str, Trial] = {}
        for grid in self.grids:
            for config in self.configs(grid):
                trial = Trial(config, trial_name(config))
                seen.setdefault(trial.name, trial)
        return list(seen.values())

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "study": self.study, "fixed": _jsonable(self.fixed), "seeds": list(self.seeds),
                "grids": [{"name": grid.name, "factors": _jsonable(grid.factors)} for grid in self.grids]}

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:8]

    def default_dir(self, root: str | Path = DEFAULT_SWEEPS_ROOT) -> Path:
        """sweeps/<name>-<digest of the plan>: running the same command again resumes the same folder."""
        return Path(root) / f"{self.name}-{self.digest()}"


def training_fields() -> dict[str, dataclasses.Field]:
    """TrainingConfig's fields by name (whatever fields it has: new ones work without changes here)."""
    return {field.name: field for field in dataclasses.fields(TrainingConfig)}


def parse_values(name: str, texts: Sequence[str]) -> list[Any]:
    """Command-line texts -> values of the TrainingConfig field `name`.

    Each text may hold several values separated by commas ("64,256,1024"), except for tuple fields
    such as hidden_units, where a comma separates layers: "512,512" is one value (two layers) and
    each repetition of the flag is another value.
    """
    fields = training_fields()
    if name not in fields:
        raise ConfigError(f"unknown training setting {name!r}; known: {', '.join(fields)}")
    kind = _field_kind(fields[name])
    values: list[Any] = []
    for text in texts:
        parts = [text] if kind == "tuple" else [part for part in text.split(",") if part.strip()]
        for part in parts:
            values.append(_parse_one(name, kind, part.strip()))
    return values


def _field_kind(field: dataclasses.Field) -> str:
    default = field.default if field.default is not dataclasses.MISSING else None
    if isinstance(default, bool):
        return "bool"
    for kind, python_type in (("int", int), ("float", float), ("tuple", tuple), ("str", str)):
        if isinstance(default, python_type):
            return kind
    annotation = str(field.type)
    for kind in ("tuple", "float", "int", "bool"):
        if annotation.startswith(kind) or f"[{kind}" in annotation or f" {kind}" in annotation:
            return kind
    return "str"


def _parse_one(name: str, kind: str, text: str) -> Any:
    flag = "--" + name.replace("_", "-")
    try:
        if kind == "tuple":
            return tuple(int(part) for part in text.split(","))
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
        if kind == "bool":
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(text)
            return text.lower() in ("true", "1", "yes")
    except ValueError as err:
        raise ConfigError(f"{flag} got {text!r}, which is not a valid {name} value") from err
    if text.lower() in ("none", "null"):
        return None
    return text


def expand_grid(fixed: dict[str, Any], factors: dict[str, Sequence[Any]], seeds: Sequence[int]) -> list[TrainingConfig]:
    """Every combination of the factors' values, with every seed (innermost), on top of `fixed`.

    Raises:
        ConfigError: an unknown setting, a factor without values, "seed" as a factor (use seeds),
            or a combination TrainingConfig rejects.
    """
    fields = training_fields()
    for name in [*fixed, *factors]:
        if name not in fields:
            raise ConfigError(f"unknown training setting {name!r}; known: {', '.join(fields)}")
    if "seed" in factors or "seed" in fixed:
        raise ConfigError("seeds are set with --seeds N (seeds 0..N-1), not as a factor")
    if not seeds:
        raise ConfigError("a sweep needs at least one seed; pass --seeds 1 or more")
    for name, values in factors.items():
        if not values:
            raise ConfigError(f"factor {name!r} has no values")
    names = list(factors)
    configs = []
    for combination in itertools.product(*(factors[name] for name in names)):
        for seed in seeds:
            configs.append(make_config({**fixed, **dict(zip(names, combination)), "seed": int(seed)}))
    return configs


def make_config(settings: dict[str, Any]) -> TrainingConfig:
    """A config as `digitlab train` builds it from flags: the recipe's settings (if a recipe is named), then `settings`."""
    from digitlab.training.recipes import recipe_config

    settings = dict(settings)
    return recipe_config(settings.pop("recipe", "tutorial"), **settings)


def trial_name(config: TrainingConfig) -> str:
    """e.g. 'mnist-512x512-e5-b64-s0-1a2b3c4d': readable, and unique to the whole config.

    The digest covers the settings that differ from TrainingConfig's defaults, so a setting added
    to digitlab later (with a default) does not rename, and retrain, the trials of an earlier sweep.
    """
    defaults = TrainingConfig().to_dict()
    changed = {name: value for name, value in config.to_dict().items() if defaults.get(name, object()) != value}
    digest = hashlib.sha256(json.dumps(changed, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"{config.short_name()}-{digest}"


def trial_status(run_dir: str | Path, config: TrainingConfig | None = None) -> str:
    """'finished' or 'interrupted' (from metrics.json), 'incomplete' (a folder without it) or 'pending'.

    With `config`, a finished run trained with other settings counts as 'incomplete' (to be trained again).
    """
    run_dir = Path(run_dir)
    if not run_dir.exists():
        return "pending"
    try:
        status = json.loads((run_dir / runs.METRICS_FILE).read_text(encoding="utf-8")).get("status")
    except (OSError, ValueError, AttributeError):
        return "incomplete"
    if status not in ("finished", "interrupted"):
        return "incomplete"
    if config is not None:
        try:
            saved = json.loads((run_dir / runs.CONFIG_FILE).read_text(encoding="utf-8"))["training"]
            if TrainingConfig.from_dict(saved) != config:
                return "incomplete"
        except (OSError, ValueError, KeyError, TypeError, DigitlabError):
            return "incomplete"
    return status


# --- studies -------------------------------------------------------------------------------------

TUTORIAL_LAYERS = [(512,), (512, 512), (512, 512, 512)]
TUTORIAL_BATCH_SIZES = [64, 128, 256, 512, 1024]
STUDIES = ("tutorial-claims",)


def study_plan(name: str, seeds: int = 3, fixed: dict[str, Any] | None = None) -> SweepPlan:
    """A named study. 'tutorial-claims': 1, 2 and 3 hidden layers of 512; batch sizes 64 to 1024; 3 seeds."""
    if name != "tutorial-claims":
        raise ConfigError(f"unknown study {name!r}; choose one of: {', '.join(STUDIES)}")
    fixed = dict(fixed or {})
    # The tutorial's settings are TrainingConfig's defaults; each grid varies one of them.
    grids = [Grid("depth", {"hidden_units": list(TUTORIAL_LAYERS)}),
             Grid("batch size", {"batch_size": list(TUTORIAL_BATCH_SIZES)})]
    for grid in grids:
        clash = set(grid.factors) & set(fixed)
        if clash:
            raise ConfigError(f"the {name} study varies {', '.join(sorted(clash))} itself; leave that flag out")
    return SweepPlan(name=name, grids=grids, fixed=fixed, seeds=list(range(seeds)), study=name)


def grid_plan(settings: dict[str, list[Any]], seeds: int = 1, name: str = "sweep") -> SweepPlan:
    """One grid from flag values: settings with one value are fixed, the others are factors."""
    fixed = {key: values[0] for key, values in settings.items() if len(values) == 1}
    factors = {key: list(values) for key, values in settings.items() if len(values) > 1}
    return SweepPlan(name=name, grids=[Grid("grid", factors)], fixed=fixed, seeds=list(range(seeds)))


# --- running -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TrialEvent:
    """Progress of a sweep, one per trial: skipped (already finished), finished, interrupted."""

    index: int
    total: int
    trial: Trial
    status: str
    metrics: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class SweepResult:
    """What `run_sweep` returns."""

    sweep_dir: Path
    # Trials trained by this call, and trials skipped because an earlier call finished them.
    trained: int
    skipped: int
    # Ctrl-C stopped the sweep; finished trials are kept, re-run the command to go on.
    interrupted: bool
    summary: SweepSummary


# (config dict, run folder, backend, data root) -> the run's status.
Trainer = Callable[[dict[str, Any], str, str | None, str | None], str]


def train_trial(config: dict[str, Any], run_dir: str, backend: str | None, data_root: str | None) -> str:
    """Train one trial with the library's `train` into `run_dir`; return its status."""
    import sys

    from digitlab.training.train import train

    if "jax" in sys.modules:
        # Trials in one process would otherwise reuse compiled code, and only a configuration's first
        # seed would pay for compiling it: clearing the caches keeps fit times comparable across seeds.
        sys.modules["jax"].clear_caches()
    result = train(TrainingConfig.from_dict(config), run_dir=run_dir, backend=backend, data_root=data_root, verbose=0)
    return result.metrics["status"]


def _limit_threads(threads: int) -> None:
    """Runs in each worker before Keras is imported: share the cores between parallel trials."""
    if threads >= (os.cpu_count() or 1):
        return  # one trial at a time: let it use every core, as `digitlab train` does
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS"):
        os.environ.setdefault(variable, str(threads))
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
    if threads == 1 and "xla_cpu_multi_thread_eigen" not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false").strip()


def run_sweep(plan: SweepPlan, sweep_dir: str | Path | None = None, jobs: int = 1, backend: str | None = None,
              data_root: str | Path | None = None, on_trial: Callable[[TrialEvent], None] | None = None,
              trainer: Trainer | None = None, isolate: bool = True) -> SweepResult:
    """Train the plan's unfinished trials, then write sweep.csv, sweep.md and the plots.

    Args:
        plan: what to train (`grid_plan` or `study_plan`).
        sweep_dir: the sweep folder; default sweeps/<name>-<digest>, the same for the same plan.
        jobs: trials trained at once.
        backend, data_root: passed to `train`.
        on_trial: called after each trial (and for each skipped one).
        trainer: what trains one trial (default `train_trial`); must be picklable when isolated.
        isolate: train each trial in a fresh process of its own, so that every trial starts alike
            (one-time costs such as JAX's first compilations would otherwise fall on the first
            trial's fit time) and a crashing trial cannot corrupt the others. False (jobs must be 1) trains in
            this process: what the tests use, whose tiny data set exists only in their process.

    Ctrl-C stops the sweep: trials already finished are kept, the one being trained is marked
    interrupted (and trained again next time), and the summaries cover the finished ones.
    """
    if jobs < 1:
        raise ConfigError(f"--jobs must be 1 or more, got {jobs}")
    if jobs > 1 and not isolate:
        raise ConfigError("parallel trials (jobs > 1) run in processes of their own; isolate must be True")
    trials = plan.trials()  # validates every config before anything is written
    sweep_dir = Path(sweep_dir) if sweep_dir is not None else plan.default_dir()
    trials_dir = sweep_dir / TRIALS_DIR
    trials_dir.mkdir(parents=True, exist_ok=True)
    runs.write_json(sweep_dir / SWEEP_FILE, {**plan.to_dict(), "trials": [trial.name for trial in trials]})
    trainer = trainer or train_trial
    data_root_text = str(data_root) if data_root is not None else None

    pending, skipped, done = [], 0, 0
    for trial in trials:
        if trial_status(trials_dir / trial.name, trial.config) == "finished":
            skipped += 1
            done += 1
            _notify(on_trial, done, len(trials), trial, "skipped", trials_dir)
        else:
            pending.append(trial)

    trained, interrupted = 0, False
    try:
        if not isolate:
            for trial in pending:
                run_dir = _clear(trials_dir / trial.name, trial.config)
                status = trainer(trial.config.to_dict(), str(run_dir), backend, data_root_text)
                done += 1
                trained += status == "finished"
                _notify(on_trial, done, len(trials), trial, status, trials_dir)
                if status == "interrupted":
                    interrupted = True
                    break
        elif pending:
            threads = max(1, (os.cpu_count() or 1) // jobs)
            # spawn, not fork: a forked copy of a process that has started JAX's threads can hang.
            # One trial per process: each starts fresh (see `isolate`).
            with concurrent.futures.ProcessPoolExecutor(
                    max_workers=min(jobs, len(pending)), mp_context=multiprocessing.get_context("spawn"),
                    initializer=_limit_threads, initargs=(threads,), max_tasks_per_child=1) as pool:
                futures = {}
                for trial in pending:
                    run_dir = _clear(trials_dir / trial.name, trial.config)
                    futures[pool.submit(trainer, trial.config.to_dict(), str(run_dir), backend, data_root_text)] = trial
                try:
                    for future in concurrent.futures.as_completed(futures):
                        status = future.result()
                        done += 1
                        trained += status == "finished"
                        _notify(on_trial, done, len(trials), futures[future], status, trials_dir)
                        interrupted = interrupted or status == "interrupted"
                except BaseException:
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise
    except KeyboardInterrupt:
        interrupted = True
    finally:
        summary = write_summaries(plan, sweep_dir, trials)
    return SweepResult(sweep_dir, trained, skipped, interrupted, summary)


def _clear(run_dir: Path, config: TrainingConfig) -> Path:
    """Remove what an unfinished attempt left in a trial folder (never a finished trial of this config)."""
    if run_dir.exists() and trial_status(run_dir, config) != "finished":
        shutil.rmtree(run_dir)
    return run_dir


def _notify(on_trial, index: int, total: int, trial: Trial, status: str, trials_dir: Path) -> None:
    if on_trial is None:
        return
    metrics_path = trials_dir / trial.name / runs.METRICS_FILE
    metrics = json.loads(metrics_path.read_text(encoding="utf-8")) if metrics_path.is_file() else {}
    on_trial(TrialEvent(index, total, trial, status, metrics))


# --- summaries -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class GroupSummary:
    """One configuration (all settings but the seed) over its finished seeds."""

    # The grid it belongs to.
    grid: str
    # The whole configuration but the seed, as sorted JSON: equal for the same configuration in two grids.
    configuration: str
    # The grid's factors and their values for this configuration.
    settings: dict[str, Any]
    # Per finished seed, in seed order.
    seeds: list[int]
    test_accuracy: list[float]
    train_accuracy: list[float]
    fit_seconds: list[float]

    @property
    def label(self) -> str:
        return ", ".join(f"{_pretty(name)} {_format_setting(value)}" for name, value in self.settings.items()) or "fixed settings"

    def stats(self, name: str) -> tuple[float, float]:
        """(mean, sample std) of test_accuracy, train_accuracy or fit_seconds."""
        return mean_and_std(getattr(self, name))


@dataclasses.dataclass(frozen=True)
class SweepSummary:
    """A sweep's trials as rows (sweep.csv) and per configuration over seeds (sweep.md)."""

    rows: list[dict[str, Any]]
    groups: list[GroupSummary]
    verdicts: list[Verdict]
    files: dict[str, Path]


def collect_rows(trials: Sequence[Trial], trials_dir: Path) -> list[dict[str, Any]]:
    """One row per trial: its name, every setting, its status and metrics (empty when not finished)."""
    rows = []
    for trial in trials:
        run_dir = trials_dir / trial.name
        status = trial_status(run_dir, trial.config)
        metrics = runs.read_json(run_dir / runs.METRICS_FILE) if status in ("finished", "interrupted") else {}
        row: dict[str, Any] = {"trial": trial.name, **trial.config.to_dict(), "status": status}
        row.update({name: metrics.get(name) for name in CSV_METRICS})
        rows.append(row)
    return rows


def summarize_groups(plan: SweepPlan, rows: Sequence[dict[str, Any]]) -> list[GroupSummary]:
    """Per grid and configuration, the finished trials' metrics in seed order."""
    by_name = {row["trial"]: row for row in rows}
    groups = []
    for grid in plan.grids:
        configs = plan.configs(grid)
        per_seed = len(plan.seeds)
        for start in range(0, len(configs), per_seed):
            settings = {name: getattr(configs[start], name) for name in grid.factors}
            finished = [by_name[trial_name(config)] for config in configs[start:start + per_seed]
                        if by_name.get(trial_name(config), {}).get("status") == "finished"]
            without_seed = {key: value for key, value in configs[start].to_dict().items() if key != "seed"}
            groups.append(GroupSummary(
                grid=grid.name, configuration=json.dumps(without_seed, sort_keys=True), settings=settings, seeds=[row["seed"] for row in finished],
                test_accuracy=[row["test_accuracy"] for row in finished],
                train_accuracy=[row["train_accuracy"] for row in finished if row["train_accuracy"] is not None],
                fit_seconds=[row["fit_seconds"] for row in finished]))
    return groups


def write_summaries(plan: SweepPlan, sweep_dir: Path, trials: Sequence[Trial] | None = None) -> SweepSummary:
    """Write sweep.csv, the plots and sweep.md from the trial folders as they are now."""
    from digitlab.analysis import report

    trials = list(trials) if trials is not None else plan.trials()
    rows = collect_rows(trials, sweep_dir / TRIALS_DIR)
    groups = summarize_groups(plan, rows)
    verdicts = tutorial_claims_verdicts(groups) if plan.study == "tutorial-claims" else []
    runs.write_text_atomic(sweep_dir / CSV_FILE, _csv_text(rows))
    files = {"csv": sweep_dir / CSV_FILE}
    plotted = [group for group in _unique_configurations(groups) if group.test_accuracy]
    if plotted:
        files["accuracy_vs_time"] = report.plot_sweep_accuracy_vs_time(
            [{"label": label, "fit_seconds": group.fit_seconds, "test_accuracy": group.test_accuracy}
             for label, group in _labelled(plan, plotted)], sweep_dir / ACCURACY_PLOT_FILE,
            title=f"Test accuracy against training time ({plan.name})")
        panels = _factor_panels(plan, groups)
        if panels:
            files["factors"] = report.plot_sweep_factors(panels, sweep_dir / FACTORS_PLOT_FILE)
    runs.write_text_atomic(sweep_dir / MARKDOWN_FILE, render_markdown(plan, rows, groups, verdicts, files))
    files["markdown"] = sweep_dir / MARKDOWN_FILE
    return SweepSummary(rows, groups, verdicts, files)


def _csv_text(rows: Sequence[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    names = list(rows[0]) if rows else ["trial", *training_fields(), "status", *CSV_METRICS]
    writer = csv.DictWriter(buffer, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({name: _csv_value(value) for name, value in row.items()})
    return buffer.getvalue()


def _csv_value(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return ",".join(str(item) for item in value)
    return "" if value is None else value


def _unique_configurations(groups: Sequence[GroupSummary]) -> list[GroupSummary]:
    """Each configuration once, even when two grids share it (the study's baseline)."""
    unique: dict[str, GroupSummary] = {}
    for group in groups:
        unique.setdefault(group.configuration, group)
    return list(unique.values())


def _labelled(plan: SweepPlan, groups: Sequence[GroupSummary]) -> list[tuple[str, GroupSummary]]:
    """Label each configuration by every factor of the whole sweep, so the study's shared baseline reads the same."""
    factor_names = list(dict.fromkeys(name for grid in plan.grids for name in grid.factors))
    defaults = make_config(plan.fixed)
    labelled = []
    for group in groups:
        values = {name: group.settings.get(name, getattr(defaults, name)) for name in factor_names}
        label = ", ".join(f"{_pretty(name)} {_format_setting(value)}" for name, value in values.items())
        labelled.append((label or "fixed settings", group))
    return labelled


def _factor_panels(plan: SweepPlan, groups: Sequence[GroupSummary]) -> list[dict[str, Any]]:
    """Per grid and factor: the trials at each of the factor's levels (pooled over the grid's other factors)."""
    panels = []
    for grid in plan.grids:
        for name, levels in grid.factors.items():
            members = [group for group in groups if group.grid == grid.name]
            panels.append({
                "factor": _pretty(name) if len(plan.grids) == 1 or grid.name == _pretty(name)
                else f"{_pretty(name)} ({grid.name})",
                "levels": [_format_setting(level) for level in levels],
                "test_accuracy": [[value for group in members if group.settings[name] == level
                                   for value in group.test_accuracy] for level in levels],
                "fit_seconds": [[value for group in members if group.settings[name] == level
                                 for value in group.fit_seconds] for level in levels],
            })
    return panels


def _pretty(name: str) -> str:
    return name.replace("_", " ")


def _format_setting(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(str(item) for item in value)
    return str(value)


def _mean_std_text(values: Sequence[float], scale: float = 100.0, digits: int = 2, unit: str = "%") -> str:
    if not values:
        return "-"
    mean, std = mean_and_std(values)
    return f"{mean * scale:.{digits}f}{unit} ± {std * scale:.{digits}f}"


def render_markdown(plan: SweepPlan, rows: Sequence[dict[str, Any]], groups: Sequence[GroupSummary],
                    verdicts: Sequence[Verdict], files: dict[str, Path]) -> str:
    """sweep.md: what was run, a table per grid (mean ± std over seeds), the plots, then the verdicts."""
    finished = sum(row["status"] == "finished" for row in rows)
    defaults = make_config(plan.fixed)
    varied = {name for grid in plan.grids for name in grid.factors} | {"seed"}
    fixed_text = ", ".join(f"{name}={_format_setting(getattr(defaults, name))}"
                           for name in training_fields() if name not in varied)
    lines = [f"# Sweep: {plan.name}", "",
             f"{finished} of {len(rows)} trials finished ({len(plan.seeds)} seed{'s' * (len(plan.seeds) != 1)} "
             f"per configuration: {', '.join(map(str, plan.seeds))}); each trial is a run folder in `{TRIALS_DIR}/`, "
             f"one row each in `{CSV_FILE}`.", "",
             f"Fixed settings: {fixed_text}.", "",
             "Figures are the mean ± standard deviation over seeds. Test accuracy is on the 10,000 unseen test "
             "images; training accuracy is the last epoch's; the gap is training minus test accuracy in "
             "percentage points; fit seconds is the time `fit` took.", ""]
    for grid in plan.grids:
        members = [group for group in groups if group.grid == grid.name]
        names = list(grid.factors)
        if len(plan.grids) > 1:
            lines += [f"## {grid.name.capitalize()}", ""]
        header = [_pretty(name) for name in names] or ["configuration"]
        lines.append("| " + " | ".join(header) + " | seeds | test accuracy | training accuracy | gap (points) | fit seconds |")
        lines.append("|" + "---|" * (len(header) + 5))
        for group in members:
            cells = [_format_setting(group.settings[name]) for name in names] or ["fixed settings"]
            gap = "-"
            if group.test_accuracy and len(group.train_accuracy) == len(group.test_accuracy):
                gap = f"{(mean_and_std(group.train_accuracy)[0] - mean_and_std(group.test_accuracy)[0]) * 100:+.2f}"
            lines.append("| " + " | ".join(cells) + f" | {len(group.seeds)} | {_mean_std_text(group.test_accuracy)} | "
                         f"{_mean_std_text(group.train_accuracy)} | {gap} | "
                         f"{_mean_std_text(group.fit_seconds, scale=1.0, digits=1, unit='')} |")
        lines.append("")
    if "accuracy_vs_time" in files:
        lines += [f"![Test accuracy against training time]({ACCURACY_PLOT_FILE})", ""]
    if "factors" in files:
        lines += [f"![Each factor's effect on test accuracy and training time]({FACTORS_PLOT_FILE})", ""]
    if verdicts:
        lines += ["## Verdicts", "",
                  "A difference counts only when it is larger than the seed-to-seed spread (the larger of the two "
                  "configurations' standard deviations over seeds).", ""]
        for verdict in verdicts:
            lines += [f"**{verdict.claim}** {verdict.answer}. {verdict.text}", ""]
    return "\n".join(lines).rstrip() + "\n"


# --- verdicts ------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Verdict:
    """A claim, whether the numbers support it ("Supported", "Not supported", "Partly supported", "Not measured"), and why."""

    claim: str
    answer: str
    text: str


def compare_means(first: Sequence[float], second: Sequence[float]) -> int:
    """+1 if `second`'s mean is above `first`'s by more than the seed spread, -1 if below by more, else 0.

    The seed spread is the larger of the two sample standard deviations.
    """
    first_mean, first_std = mean_and_std(first)
    second_mean, second_std = mean_and_std(second)
    spread = max(first_std, second_std)
    difference = second_mean - first_mean
    if abs(difference) <= spread:
        return 0
    return 1 if difference > 0 else -1


DEPTH_CLAIM = "Claim 1: more hidden layers did not help, and slowed learning."
BATCH_CLAIM = "Claim 2: bigger batches train faster, at little cost in accuracy."
# "Little cost": the biggest batch ends at most this many points of test accuracy below the smallest.
LITTLE_COST_POINTS = 0.5
_ANSWERS = {2: "Supported", 1: "Partly supported", 0: "Not supported"}


def depth_verdict(groups: Sequence[GroupSummary]) -> Verdict:
    """The tutorial's depth claim, from deeper networks against the shallowest one.

    Two parts, each judged beyond the seed-to-seed spread: no deeper network is more accurate
    ("did not help"), and the deepest takes longer to train ("slowed learning"). Supported when
    both hold, partly when one does, not supported when neither does.
    """
    measured = sorted((group for group in groups if group.test_accuracy), key=lambda group: len(group.settings["hidden_units"]))
    if len(measured) < 2:
        return Verdict(DEPTH_CLAIM, "Not measured", "Fewer than two depths have finished trials.")
    base, deeper = measured[0], measured[1:]
    outcomes = [compare_means(base.test_accuracy, group.test_accuracy) for group in deeper]
    base_mean, _ = mean_and_std(base.test_accuracy)
    spread = max(mean_and_std(group.test_accuracy)[1] for group in measured) * 100
    details = "; ".join(f"{_layers(group)}: {mean_and_std(group.test_accuracy)[0]:.2%} "
                        f"({(mean_and_std(group.test_accuracy)[0] - base_mean) * 100:+.2f} points)" for group in deeper)
    facts = f"{_layers(base)}: {base_mean:.2%}; {details}; the seed-to-seed spread is up to {spread:.2f} points."
    did_not_help = all(outcome <= 0 for outcome in outcomes)
    if all(outcome == 0 for outcome in outcomes):
        accuracy_text = "More layers did not help: the differences are within the seed-to-seed spread."
    elif did_not_help:
        accuracy_text = "More layers did not help: deeper networks were less accurate, by more than the seed spread."
    elif all(outcome >= 0 for outcome in outcomes):
        accuracy_text = "More layers helped, by more than the seed spread."
    else:
        accuracy_text = "Some added depth helped and some hurt."
    slower = compare_means(base.fit_seconds, deeper[-1].fit_seconds) > 0
    base_seconds, deepest_seconds = mean_and_std(base.fit_seconds)[0], mean_and_std(deeper[-1].fit_seconds)[0]
    ratio = f"{deepest_seconds / base_seconds:.1f}x" if base_seconds > 0 else "an unknown multiple of"
    time_text = (f"{_layers(deeper[-1])} took {ratio} the training time of {_layers(base)}"
                 + ("." if slower else ", not longer beyond the seed spread."))
    return Verdict(DEPTH_CLAIM, _ANSWERS[did_not_help + slower], f"{accuracy_text} {time_text} {facts}")


def batch_size_verdict(groups: Sequence[GroupSummary]) -> Verdict:
    """The tutorial's batch-size claim, from the smallest batch size against the biggest.

    Two parts: the biggest batch trains in less time (beyond the seed spread), and it costs little
    accuracy (at most LITTLE_COST_POINTS points below the smallest batch, or within the spread).
    Supported when both hold, partly when one does, not supported when neither does.
    """
    measured = sorted((group for group in groups if group.test_accuracy), key=lambda group: group.settings["batch_size"])
    if len(measured) < 2:
        return Verdict(BATCH_CLAIM, "Not measured", "Fewer than two batch sizes have finished trials.")
    small, big = measured[0], measured[-1]
    small_name, big_name = f"batch {small.settings['batch_size']}", f"batch {big.settings['batch_size']}"
    faster = compare_means(small.fit_seconds, big.fit_seconds) < 0
    accuracy = compare_means(small.test_accuracy, big.test_accuracy)  # -1: the big batch is less accurate
    small_seconds, big_seconds = mean_and_std(small.fit_seconds)[0], mean_and_std(big.fit_seconds)[0]
    difference = (mean_and_std(big.test_accuracy)[0] - mean_and_std(small.test_accuracy)[0]) * 100
    spread = max(mean_and_std(small.test_accuracy)[1], mean_and_std(big.test_accuracy)[1]) * 100
    little_cost = accuracy >= 0 or -difference <= LITTLE_COST_POINTS
    if faster:
        speed_text = f"{big_name} trained {small_seconds / big_seconds:.1f}x as fast as {small_name}"
    else:
        speed_text = (f"{big_name} was not faster than {small_name} beyond the seed spread "
                      f"({big_seconds:.1f} s against {small_seconds:.1f} s of fit)")
    accuracy_text = {-1: "ended less accurate", 0: "ended as accurate, within the seed spread",
                     1: "ended more accurate"}[accuracy]
    accuracy_text += (f" ({difference:+.2f} points of test accuracy; seed spread up to {spread:.2f}; "
                      f"{'a little' if little_cost else 'more than a little'} cost, the line being "
                      f"{LITTLE_COST_POINTS} points)")
    per_size = ", ".join(f"{group.settings['batch_size']}: {mean_and_std(group.test_accuracy)[0]:.2%} in "
                         f"{mean_and_std(group.fit_seconds)[0]:.1f} s" for group in measured)
    text = f"{speed_text}, and {accuracy_text}. Test accuracy and fit time per batch size: {per_size}."
    return Verdict(BATCH_CLAIM, _ANSWERS[faster + little_cost], text[0].upper() + text[1:])


def tutorial_claims_verdicts(groups: Sequence[GroupSummary]) -> list[Verdict]:
    return [depth_verdict([group for group in groups if group.grid == "depth"]),
            batch_size_verdict([group for group in groups if group.grid == "batch size"])]


def _layers(group: GroupSummary) -> str:
    units = group.settings["hidden_units"]
    return f"{len(units)} layer{'s' * (len(units) != 1)} of {'/'.join(map(str, sorted(set(units))))}"


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    def convert(value: Any) -> Any:
        if isinstance(value, tuple):
            return list(value)
        if isinstance(value, list):
            return [convert(item) for item in value]
        if isinstance(value, float) and not math.isfinite(value):
            return str(value)
        return value

    return {key: convert(value) for key, value in values.items()}
