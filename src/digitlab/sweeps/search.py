"""Searches beyond the grid (`digitlab sweep --search tpe|random`): Optuna proposes the settings.

A search has a space (ranges such as learning_rate 1e-4..1e-2 on a log scale, and lists of choices),
fixed settings, a number of trials and an objective (the final validation accuracy, or the test
accuracy when asked for explicitly). Optuna's TPE sampler (or a random one) proposes each trial's
settings; each trial is an ordinary trial folder of the sweep, trained by any executor (this
process, local processes, Ray). The study lives in the sweep folder (`study.journal`, Optuna's
journal storage), so running the same command again continues it: finished trials are kept, trials
an interruption stopped are trained again with the same settings.

Pruning: a trial whose per-epoch figure (validation accuracy, else training accuracy: what digitlab
records in history.csv) is below the median of the finished trials' at the same epoch stops early
(Optuna's MedianPruner). The decision is made where the trial trains, against the trials finished
when it started, so that no node needs to reach the study.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from digitlab import runs
from digitlab.analysis.formatting import format_value
from digitlab.config import TrainingConfig
from digitlab.errors import ConfigError
from digitlab.sweeps.executors import TrialExecutor, interrupts_deferred, local_executor
from digitlab.sweeps.lock import SweepLock
from digitlab.sweeps.plan import DEFAULT_SWEEPS_ROOT, TRIALS_DIR, Trial, make_config, trial_name, value_types
from digitlab.sweeps.ranges import Range, describe
from digitlab.sweeps.runner import TrialEvent, train_jobs
from digitlab.sweeps.summary import CSV_FILE, MARKDOWN_FILE, collect_rows, csv_text, read_trial
from digitlab.sweeps.worker import Trainer, train_trial

SAMPLERS = ("tpe", "random")
OBJECTIVES = ("val_accuracy", "test_accuracy")
INSTALL_HINT = "pip install 'digitlab[search]'"
# The search's own record in the sweep folder, beside sweep.csv and sweep.md.
SEARCH_FILE = "search.json"
STUDY_FILE = "study.journal"
STUDY_NAME = "digitlab"
# TPE's first trials are random (Optuna's default is 10): fewer leave a 20-trial search more trials to model.
TPE_RANDOM_TRIALS = 5
# MedianPruner: prune only once this many trials have finished, and never before this epoch.
PRUNE_AFTER_TRIALS = 4
PRUNE_FROM_EPOCH = 2


def import_optuna():
    """Optuna with its per-trial log lines off, or a ConfigError saying how to install it."""
    try:
        import optuna
    except ImportError as err:
        raise ConfigError(f"--search needs Optuna, which is not installed here: {INSTALL_HINT}") from err
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


@dataclasses.dataclass(frozen=True)
class SearchPlan:
    """What a search tries: its space, fixed settings, trials, objective and sampler."""

    # Setting -> a Range, or a list of choices (two or more values).
    space: dict[str, Range | list[Any]]
    # Settings that are the same in every trial (on top of the recipe's and TrainingConfig's defaults).
    fixed: dict[str, Any]
    # "tpe" (Optuna's TPESampler) or "random" (RandomSampler).
    sampler: str = "tpe"
    # Trials to finish in all (pruned and diverged ones count); a later run may raise it to go on.
    trials: int = 20
    # What the search maximises: the last epoch's validation accuracy, or the test accuracy.
    objective: str = "val_accuracy"
    # Choosing settings on the test set makes its accuracy an optimistic estimate: allowed only when asked.
    allow_test_objective: bool = False
    # The sampler's seed: the same seed proposes the same first trials.
    search_seed: int = 0
    # Stop trials whose epoch curve is below the median of the finished ones (see the module's docstring).
    prune: bool = True
    name: str = "search"

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"unknown search {self.sampler!r}; choose one of: {', '.join(SAMPLERS)}")
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"unknown objective {self.objective!r}; choose one of: {', '.join(OBJECTIVES)}")
        if self.trials < 1:
            raise ConfigError(f"--trials must be 1 or more, got {self.trials}")
        if not self.space:
            raise ConfigError("a search needs something to search: a range (--set learning_rate=1e-4..1e-2:log) "
                              "or several choices (--hidden-units 128 --hidden-units 512)")
        if "seed" in self.space or "seed" in self.fixed:
            raise ConfigError("a search trains every trial with seed 0; the seed is not a setting to search")
        for name, values in self.space.items():
            if not isinstance(values, Range) and len(values) < 2:
                raise ConfigError(f"{name} needs two or more choices to be searched")
        if self.objective == "test_accuracy" and not self.allow_test_objective:
            raise ConfigError("choosing settings by their test accuracy makes that accuracy an optimistic estimate; "
                              "search on --objective val_accuracy with --validation-split, or pass "
                              "--allow-test-objective if that is what you want")
        if "validation_split" in self.space:
            raise ConfigError("validation_split cannot be searched: it changes what the objective measures")
        example = self.config(self.example_params())  # validates the fixed settings and the space's corners
        if self.objective == "val_accuracy" and not example.validation_split > 0:
            raise ConfigError("--objective val_accuracy needs images held out for validation: add "
                              "--validation-split, e.g. --validation-split 0.1")

    def example_params(self) -> dict[str, Any]:
        return {name: (_value(values, values.low) if isinstance(values, Range) else values[0])
                for name, values in self.space.items()}

    def config(self, params: dict[str, Any]) -> TrainingConfig:
        """The training config of a trial with these sampled settings."""
        kinds = value_types()
        settings = {name: tuple(value) if kinds[name] is tuple else value for name, value in params.items()}
        return make_config({**self.fixed, **settings, "seed": 0})

    def to_dict(self) -> dict[str, Any]:
        space = {name: values.to_dict() if isinstance(values, Range) else {"choices": _jsonable(values)}
                 for name, values in self.space.items()}
        return {"name": self.name, "sampler": self.sampler, "objective": self.objective, "trials": self.trials,
                "search_seed": self.search_seed, "prune": self.prune, "space": space, "fixed": _jsonable(self.fixed)}

    def identity(self) -> dict[str, Any]:
        """What makes two runs the same search: all but the number of trials (raise it to go on)."""
        return {key: value for key, value in self.to_dict().items() if key != "trials"}

    def default_dir(self, root: str | Path = DEFAULT_SWEEPS_ROOT) -> Path:
        digest = hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()[:8]
        return Path(root) / f"{self.name}-{self.sampler}-{digest}"

    def distributions(self, optuna) -> dict[str, Any]:
        """Optuna's distribution per searched setting (choices as their JSON text: Optuna stores plain values)."""
        made = {}
        for name, values in self.space.items():
            if isinstance(values, Range) and values.integer:
                made[name] = optuna.distributions.IntDistribution(int(values.low), int(values.high), log=values.log)
            elif isinstance(values, Range):
                made[name] = optuna.distributions.FloatDistribution(values.low, values.high, log=values.log)
            else:
                made[name] = optuna.distributions.CategoricalDistribution([json.dumps(_jsonable_value(value))
                                                                           for value in values])
        return made

    def params(self, sampled: dict[str, Any]) -> dict[str, Any]:
        """Optuna's sampled values -> settings (choices back from their JSON text)."""
        return {name: json.loads(value) if not isinstance(self.space[name], Range) else value
                for name, value in sampled.items()}


@dataclasses.dataclass(frozen=True)
class SearchTrial:
    """One trial of the study, as sweep.md lists it."""

    number: int
    name: str
    state: str
    objective: float | None
    params: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class SearchResult:
    """What `run_search` returns."""

    sweep_dir: Path
    trained: int
    skipped: int
    interrupted: bool
    # The study's trials in order, and the best finished one (None before any finished).
    trials: list[SearchTrial]
    best: SearchTrial | None
    files: dict[str, Path]


# --- pruning, where the trial trains -----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Pruning:
    """What a trial needs to prune itself: the pruner, the figure it watches, the trials finished so far."""

    pruner: Any
    # history.csv's column: "val_accuracy", else "accuracy" (runs without a validation split).
    metric: str
    # The study's finished trials (FrozenTrial) when the trial started, with their per-epoch figures.
    finished: tuple[Any, ...]

    def keras_callback(self, keras):
        """A Keras callback reporting each epoch's figure and stopping the fit once the pruner says so."""
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(direction="maximize", pruner=self.pruner)
        study.add_trials(list(self.finished))
        trial = study.ask()
        metric = self.metric

        class PruneBehind(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                value = (logs or {}).get(metric)
                if value is None or not math.isfinite(float(value)):
                    return
                trial.report(float(value), epoch + 1)
                if trial.should_prune():
                    self.model.stop_training = True  # metrics.json: finished before its last epoch = pruned

        return PruneBehind()


def train_pruned_trial(config: dict[str, Any], run_dir: str, backend: str | None, data_root: str | None,
                       pruning: Pruning | None = None) -> str:
    """`worker.train_trial`, stopping early when `pruning` says the trial is clearly behind."""
    if pruning is None:
        return train_trial(config, run_dir, backend, data_root)
    from digitlab.backend import import_keras

    return train_trial(config, run_dir, backend, data_root, callbacks=(pruning.keras_callback(import_keras(backend)),))


# --- running a search ----------------------------------------------------------------------------


def run_search(plan: SearchPlan, sweep_dir: str | Path | None = None, jobs: int = 1, backend: str | None = None,
               data_root: str | Path | None = None, on_trial: Callable[[TrialEvent], None] | None = None,
               isolate: bool = True, executor: TrialExecutor | None = None,
               trainer: Trainer | None = None) -> SearchResult:
    """Run (or go on with) the search until `plan.trials` trials are done; write sweep.csv and sweep.md.

    Args: as `runner.run_sweep`; `trainer` replaces `train_pruned_trial` (it gets a `pruning` keyword).

    Trials are asked from the study as many at a time as the executor trains at once. Ctrl-C keeps
    the finished trials; those it stopped are trained again, with the same settings, next time.
    """
    optuna = import_optuna()
    try:
        executor = executor or local_executor(jobs, isolate, backend, data_root)
        sweep_dir = Path(sweep_dir) if sweep_dir is not None else plan.default_dir()
        with SweepLock(sweep_dir):
            _claim_for(plan, sweep_dir)
            (sweep_dir / TRIALS_DIR).mkdir(parents=True, exist_ok=True)
            study = _load_study(optuna, plan, sweep_dir)
            progress = _Progress(plan, study, sweep_dir, on_trial)
            try:
                while (left := plan.trials - _counted(study)) > 0:
                    _run_batch(optuna, plan, study, executor, min(left, executor.parallel), progress,
                               trainer or train_pruned_trial)
            except KeyboardInterrupt:
                progress.interrupted = True
            finally:
                trials, files = write_search_summaries(plan, study, sweep_dir)
    finally:
        if executor is not None:
            executor.close()
    finished = [trial for trial in trials if trial.state == "finished" and trial.objective is not None]
    best = max(finished, key=lambda trial: trial.objective) if finished else None
    return SearchResult(sweep_dir, progress.trained, progress.skipped, progress.interrupted, trials, best, files)


@dataclasses.dataclass
class _Progress:
    """Tells the study and `on_trial` about each trial as it ends."""

    plan: SearchPlan
    study: Any
    sweep_dir: Path
    on_trial: Callable[[TrialEvent], None] | None
    trained: int = 0
    skipped: int = 0
    interrupted: bool = False

    def record(self, asked: Any, trial: Trial, status: str, skipped: bool = False) -> None:
        """Report the trial's per-epoch figures to the study, then tell it how the trial ended."""
        import optuna

        folder_status, metrics = read_trial(self.sweep_dir / TRIALS_DIR / trial.name, trial.config)
        if status == "interrupted" or metrics is None:
            return  # left running in the study: trained again, with the same settings, next time
        history = runs.read_history(self.sweep_dir / TRIALS_DIR / trial.name / runs.HISTORY_FILE)
        metric = _pruning_metric(trial.config)
        for epoch, value in enumerate(history.get(metric, []), start=1):
            if math.isfinite(value):
                asked.report(value, epoch)
        asked.set_user_attr("status", folder_status)
        if folder_status == "finished":
            value = getattr(metrics, self.plan.objective)
            self.study.tell(asked, value)
        elif folder_status == "pruned":
            self.study.tell(asked, state=optuna.trial.TrialState.PRUNED)
        else:  # diverged: not a number to learn from, and not to be trained again
            self.study.tell(asked, state=optuna.trial.TrialState.FAIL)
        self.skipped += skipped
        self.trained += not skipped
        if self.on_trial is not None:
            done = _counted(self.study)
            self.on_trial(TrialEvent(done, max(self.plan.trials, done), trial,
                                     "skipped" if skipped else folder_status, metrics))


def _run_batch(optuna, plan: SearchPlan, study, executor: TrialExecutor, size: int, progress: _Progress,
               trainer: Trainer) -> None:
    """Ask `size` trials, train those not trained yet (one folder per distinct config), tell the study."""
    distributions = plan.distributions(optuna)
    asked_by_name: dict[str, list[Any]] = {}
    trials: dict[str, Trial] = {}
    with interrupts_deferred():  # each asked trial written whole to the journal
        for _ in range(size):
            asked = study.ask(distributions)
            config = plan.config(plan.params(asked.params))
            trial = Trial(config, trial_name(config))
            asked.set_user_attr("trial", trial.name)
            asked_by_name.setdefault(trial.name, []).append(asked)
            trials[trial.name] = trial
    pending = []
    for name, trial in trials.items():
        if read_trial(progress.sweep_dir / TRIALS_DIR / name, trial.config)[0] in ("finished", "pruned", "diverged"):
            with interrupts_deferred():
                for asked in asked_by_name[name]:  # proposed again: the trial folder already holds its result
                    progress.record(asked, trial, "skipped", skipped=True)
        else:
            pending.append(trial)
    pruning = None
    if plan.prune and pending:
        pruner = optuna.pruners.MedianPruner(n_startup_trials=PRUNE_AFTER_TRIALS, n_warmup_steps=PRUNE_FROM_EPOCH)
        finished = tuple(study.get_trials(deepcopy=True, states=(optuna.trial.TrialState.COMPLETE,)))
        pruning = Pruning(pruner, _pruning_metric(pending[0].config), finished)

    def record(trial: Trial, status: str, node: str) -> None:
        from digitlab.sweeps.summary import record_node

        record_node(progress.sweep_dir, trial.name, node)
        for asked in asked_by_name[trial.name]:
            progress.record(asked, trial, status)

    train_jobs(executor, pending, progress.sweep_dir / TRIALS_DIR, functools.partial(trainer, pruning=pruning), record)


def _load_study(optuna, plan: SearchPlan, sweep_dir: Path):
    """The study in the sweep folder (new, or as an earlier run left it, its stopped trials queued again)."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(sweep_dir / STUDY_FILE)))
    existing = optuna.load_study(study_name=STUDY_NAME, storage=storage) if _study_exists(optuna, storage) else None
    # Seeded past the trials already asked: a resumed random search does not propose its first trials again.
    seed = plan.search_seed + (len(existing.trials) if existing is not None else 0)
    sampler = (optuna.samplers.TPESampler(n_startup_trials=TPE_RANDOM_TRIALS, seed=seed) if plan.sampler == "tpe"
               else optuna.samplers.RandomSampler(seed=seed))
    study = optuna.create_study(study_name=STUDY_NAME, storage=storage, sampler=sampler, direction="maximize",
                                load_if_exists=True)
    for stopped in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        # Left running by a sweep that was stopped (this one holds the folder's lock, so no other runs it).
        with interrupts_deferred():
            study.enqueue_trial(stopped.params)
            study.tell(stopped.number, state=optuna.trial.TrialState.FAIL)
    return study


def _study_exists(optuna, storage) -> bool:
    return any(summary.study_name == STUDY_NAME for summary in optuna.get_all_study_summaries(storage))


def _claim_for(plan: SearchPlan, sweep_dir: Path) -> None:
    """Write search.json, or check that the folder's search is this one (only the number of trials may change)."""
    path = sweep_dir / SEARCH_FILE
    if path.exists():
        earlier = runs.read_json(path)
        earlier_identity = {key: value for key, value in earlier.items() if key != "trials"}
        if earlier_identity != json.loads(json.dumps(plan.identity())):
            raise ConfigError(f"sweep folder {sweep_dir} holds another search ({path} differs from these flags); "
                              "run it with its own flags, or give this search another --sweep-dir")
    elif (sweep_dir / "sweep.json").exists():
        raise ConfigError(f"sweep folder {sweep_dir} holds a grid sweep; give the search another --sweep-dir")
    runs.write_json(path, plan.to_dict())


def _counted(study) -> int:
    """Trials that count towards --trials: finished, pruned, or diverged (not those an interruption stopped)."""
    return sum(1 for trial in study.get_trials(deepcopy=False)
               if trial.user_attrs.get("status") in ("finished", "pruned", "diverged"))


def _pruning_metric(config: TrainingConfig) -> str:
    return "val_accuracy" if config.validation_split > 0 else "accuracy"


# --- summaries -----------------------------------------------------------------------------------


def write_search_summaries(plan: SearchPlan, study, sweep_dir: Path) -> tuple[list[SearchTrial], dict[str, Path]]:
    """sweep.csv (one row per trial folder, with its study number and objective) and sweep.md (best first)."""
    trials, rows, seen = [], [], set()
    for frozen in study.get_trials(deepcopy=False):
        name = frozen.user_attrs.get("trial")
        status = frozen.user_attrs.get("status") or ("interrupted" if frozen.state.name == "FAIL" else "running")
        if name is None:
            continue
        params = plan.params(frozen.params)
        trials.append(SearchTrial(frozen.number, name, status, frozen.value if status == "finished" else None, params))
        if name in seen or status not in ("finished", "pruned", "diverged"):
            continue
        seen.add(name)
        (row,) = collect_rows([Trial(plan.config(params), name)], sweep_dir / TRIALS_DIR)
        rows.append({"search_trial": frozen.number, **row, "objective": frozen.value if status == "finished" else None})
    runs.write_text_atomic(sweep_dir / CSV_FILE, csv_text(rows))
    runs.write_text_atomic(sweep_dir / MARKDOWN_FILE, render_search_markdown(plan, trials))
    return trials, {"csv": sweep_dir / CSV_FILE, "markdown": sweep_dir / MARKDOWN_FILE}


def render_search_markdown(plan: SearchPlan, trials: Sequence[SearchTrial]) -> str:
    """sweep.md for a search: what was searched, then the trials, best first."""
    objective = plan.objective.replace("_", " ")
    space = "; ".join(f"{name} {describe(values)}" for name, values in plan.space.items())
    done = [trial for trial in trials if trial.state in ("finished", "pruned", "diverged")]
    ranked = sorted(done, key=lambda trial: (trial.objective is None, -(trial.objective or 0.0)))
    lines = [f"# Search: {plan.name} ({plan.sampler})", "",
             f"{len(done)} of {plan.trials} trials done ({sum(t.state == 'pruned' for t in done)} stopped early by "
             f"the pruner, {sum(t.state == 'diverged' for t in done)} diverged); the objective is the {objective}. "
             f"Each trial is a run folder in `{TRIALS_DIR}/`, one row each in `{CSV_FILE}`; the study is in "
             f"`{STUDY_FILE}` (Optuna's journal storage).", "",
             f"Searched: {space}.", ""]
    if plan.fixed:
        lines += ["Fixed settings: " + ", ".join(f"{name}={format_value(value)}" for name, value in plan.fixed.items())
                  + ".", ""]
    names = list(plan.space)
    lines += ["| trial | " + " | ".join(names) + f" | state | {objective} |", "|" + "---|" * (len(names) + 3)]
    for trial in ranked:
        cells = [format_value(tuple(value) if isinstance(value, list) else value) for value in
                 (trial.params.get(name) for name in names)]
        value = "-" if trial.objective is None else f"{trial.objective:.2%}"
        lines.append(f"| {trial.number} | " + " | ".join(cells) + f" | {trial.state} | {value} |")
    return "\n".join(lines).rstrip() + "\n"


def _value(values: Range, value: float) -> float | int:
    return int(value) if values.integer else value


def _jsonable_value(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _jsonable(values: dict[str, Any] | list[Any]) -> Any:
    if isinstance(values, dict):
        return {key: _jsonable_value(value) for key, value in values.items()}
    return [_jsonable_value(value) for value in values]
