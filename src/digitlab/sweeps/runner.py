"""Run a sweep: claim its folder, train its unfinished trials (`executors`), then write the summaries.

A trial is done when its metrics.json says "finished" (or "diverged": the same settings and seed would
diverge again); a folder left by an interrupted or crashed trial is cleared and trained again, so running
the same sweep again goes on where it stopped.
"""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from digitlab import runs
from digitlab.config import TrainingConfig
from digitlab.errors import ConfigError
from digitlab.record import RunMetrics
from digitlab.sweeps import studies
from digitlab.sweeps.executors import TrialExecutor, TrialJob, TrialOutcome, local_executor
from digitlab.sweeps.lock import SweepLock
from digitlab.sweeps.plan import TRIALS_DIR, SweepPlan, Trial
from digitlab.sweeps.summary import (
    FINAL_STATUSES,
    SweepSummary,
    read_trial,
    record_node,
    trial_status,
    write_summaries,
)
from digitlab.sweeps.worker import Trainer, train_trial

# Names other modules and older code import from here.
__all__ = ["SWEEP_FILE", "SweepResult", "Trainer", "TrialEvent", "run_sweep", "train_jobs", "train_trial"]

SWEEP_FILE = "sweep.json"


@dataclasses.dataclass(frozen=True)
class TrialEvent:
    """Progress of a sweep, one per trial: skipped (already finished), finished, interrupted."""

    index: int
    total: int
    trial: Trial
    status: str
    # The trial's metrics.json (None when it has none, or one that is not finished or interrupted).
    metrics: RunMetrics | None


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


@dataclasses.dataclass
class _Tally:
    """Counts a sweep's trials as they end, and tells `on_trial` about each."""

    total: int
    trials_dir: Path
    on_trial: Callable[[TrialEvent], None] | None
    done: int = 0
    trained: int = 0
    skipped: int = 0
    interrupted: bool = False

    def record(self, trial: Trial, status: str, node: str | None = None) -> None:
        """`status`: "skipped" (finished earlier), or what the trainer returned; `node`: who trained it."""
        if node is not None:
            record_node(self.trials_dir.parent, trial.name, node)
        self.done += 1
        self.skipped += status == "skipped"
        self.trained += status in FINAL_STATUSES
        self.interrupted = self.interrupted or status == "interrupted"
        if self.on_trial is not None:
            _, metrics = read_trial(self.trials_dir / trial.name)
            self.on_trial(TrialEvent(self.done, self.total, trial, status, metrics))


def run_sweep(plan: SweepPlan, sweep_dir: str | Path | None = None, jobs: int = 1, backend: str | None = None,
              data_root: str | Path | None = None, on_trial: Callable[[TrialEvent], None] | None = None,
              trainer: Trainer | None = None, isolate: bool = True,
              executor: TrialExecutor | None = None) -> SweepResult:
    """Train the plan's unfinished trials, then write sweep.csv, sweep.md and the plots.

    Args:
        plan: what to train (`plan.grid_plan` or `studies.study_plan`).
        sweep_dir: the sweep folder; default sweeps/<name>-<digest>, the same for the same plan.
        jobs: trials trained at once.
        backend, data_root: passed to `train`.
        on_trial: called after each trial (and for each skipped one).
        trainer: what trains one trial (default `worker.train_trial`); must be picklable when isolated.
        isolate: train each trial in a fresh process of its own, so that every trial starts alike
            (one-time costs such as JAX's first compilations would otherwise fall on the first
            trial's fit time) and a crashing trial cannot corrupt the others. False (jobs must be 1) trains in
            this process: what the tests use, whose tiny data set exists only in their process.
        executor: where trials train instead (e.g. `ray_executor.RayExecutor`); jobs, isolate, backend
            and data_root then do not apply. The sweep closes it.

    The sweep folder is claimed for the sweep (`lock.SweepLock`): a second sweep on it is refused.
    Ctrl-C stops the sweep: trials already finished are kept, the one being trained is marked
    interrupted (and trained again next time), and the summaries cover the finished ones.
    """
    try:
        executor = executor or local_executor(jobs, isolate, backend, data_root)
        trials = plan.trials()  # validates every config before anything is written
        sweep_dir = Path(sweep_dir) if sweep_dir is not None else plan.default_dir()
        with SweepLock(sweep_dir):
            if (sweep_dir / "search.json").exists():  # see search.SEARCH_FILE (search imports this module)
                raise ConfigError(f"sweep folder {sweep_dir} holds a search (--search); give this sweep another "
                                  "--sweep-dir")
            trials_dir = sweep_dir / TRIALS_DIR
            trials_dir.mkdir(parents=True, exist_ok=True)
            runs.write_json(sweep_dir / SWEEP_FILE, {**plan.to_dict(), "trials": [trial.name for trial in trials]})
            tally = _Tally(len(trials), trials_dir, on_trial)
            pending = _skip_finished(trials, tally)
            try:
                train_jobs(executor, pending, trials_dir, trainer or train_trial, tally.record)
            except KeyboardInterrupt:
                tally.interrupted = True
            finally:
                summary = write_summaries(plan, sweep_dir, trials, judge=studies.judge(plan.study))
    finally:
        if executor is not None:
            executor.close()
    return SweepResult(sweep_dir, tally.trained, tally.skipped, tally.interrupted, summary)


def train_jobs(executor: TrialExecutor, trials: Sequence[Trial], trials_dir: Path, trainer: Trainer,
               record: Callable[[Trial, str, str], None]) -> None:
    """Clear what unfinished attempts left of `trials`, train them with `executor`, `record` each as it ends."""
    jobs = [TrialJob(trial, _clear(trials_dir / trial.name, trial.config), trainer) for trial in trials]

    def on_outcome(job: TrialJob, outcome: TrialOutcome) -> None:
        record(job.trial, outcome.status, outcome.node)

    executor.run(jobs, on_outcome)


def _skip_finished(trials: Sequence[Trial], tally: _Tally) -> list[Trial]:
    """The trials still to train; each finished (or diverged) one is counted as skipped."""
    pending = []
    for trial in trials:
        if trial_status(tally.trials_dir / trial.name, trial.config) in FINAL_STATUSES:
            tally.record(trial, "skipped")
        else:
            pending.append(trial)
    return pending


def _clear(run_dir: Path, config: TrainingConfig) -> Path:
    """Remove what an unfinished attempt left in a trial folder (never a finished or diverged trial of this config)."""
    if run_dir.exists() and trial_status(run_dir, config) not in FINAL_STATUSES:
        shutil.rmtree(run_dir)
    return run_dir
