"""Run a sweep: train its unfinished trials, one process each (or in this one), then write the summaries.

A trial is done when its metrics.json says "finished" (or "diverged": the same settings and seed would
diverge again); a folder left by an interrupted or crashed trial is cleared and trained again, so running
the same sweep again goes on where it stopped.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import multiprocessing
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from digitlab import runs
from digitlab.config import TrainingConfig
from digitlab.errors import ConfigError
from digitlab.record import RunMetrics
from digitlab.sweeps import studies
from digitlab.sweeps.plan import TRIALS_DIR, SweepPlan, Trial
from digitlab.sweeps.summary import FINAL_STATUSES, SweepSummary, read_trial, trial_status, write_summaries

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
    train(TrainingConfig.from_dict(config), run_dir=run_dir, backend=backend, data_root=data_root, verbose=0)
    return runs.read_run(run_dir).metrics.status  # train writes metrics.json last, before it returns


def _limit_threads(threads: int) -> None:
    """Runs in each worker before Keras is imported: share the cores between parallel trials."""
    if threads >= (os.cpu_count() or 1):
        return  # one trial at a time: let it use every core, as `digitlab train` does
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS"):
        os.environ.setdefault(variable, str(threads))
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
    if threads == 1 and "xla_cpu_multi_thread_eigen" not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false").strip()


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

    def record(self, trial: Trial, status: str) -> None:
        """`status`: "skipped" (finished earlier), or what the trainer returned."""
        self.done += 1
        self.skipped += status == "skipped"
        self.trained += status in FINAL_STATUSES
        self.interrupted = self.interrupted or status == "interrupted"
        if self.on_trial is not None:
            _, metrics = read_trial(self.trials_dir / trial.name)
            self.on_trial(TrialEvent(self.done, self.total, trial, status, metrics))


def run_sweep(plan: SweepPlan, sweep_dir: str | Path | None = None, jobs: int = 1, backend: str | None = None,
              data_root: str | Path | None = None, on_trial: Callable[[TrialEvent], None] | None = None,
              trainer: Trainer | None = None, isolate: bool = True) -> SweepResult:
    """Train the plan's unfinished trials, then write sweep.csv, sweep.md and the plots.

    Args:
        plan: what to train (`plan.grid_plan` or `studies.study_plan`).
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
    tally = _Tally(len(trials), trials_dir, on_trial)
    pending = _skip_finished(trials, tally)
    trainer = trainer or train_trial
    data_root_text = str(data_root) if data_root is not None else None
    try:
        if not isolate:
            _train_here(pending, tally, trainer, backend, data_root_text)
        elif pending:
            _train_in_processes(pending, tally, jobs, trainer, backend, data_root_text)
    except KeyboardInterrupt:
        tally.interrupted = True
    finally:
        summary = write_summaries(plan, sweep_dir, trials, judge=studies.judge(plan.study))
    return SweepResult(sweep_dir, tally.trained, tally.skipped, tally.interrupted, summary)


def _skip_finished(trials: Sequence[Trial], tally: _Tally) -> list[Trial]:
    """The trials still to train; each finished (or diverged) one is counted as skipped."""
    pending = []
    for trial in trials:
        if trial_status(tally.trials_dir / trial.name, trial.config) in FINAL_STATUSES:
            tally.record(trial, "skipped")
        else:
            pending.append(trial)
    return pending


def _train_here(pending: Sequence[Trial], tally: _Tally, trainer: Trainer, backend: str | None,
                data_root: str | None) -> None:
    """One trial after the other in this process, up to the first interrupted one."""
    for trial in pending:
        run_dir = _clear(tally.trials_dir / trial.name, trial.config)
        tally.record(trial, trainer(trial.config.to_dict(), str(run_dir), backend, data_root))
        if tally.interrupted:
            break


def _train_in_processes(pending: Sequence[Trial], tally: _Tally, jobs: int, trainer: Trainer, backend: str | None,
                        data_root: str | None) -> None:
    """`jobs` trials at a time, each in a fresh process of its own, the cores shared between them."""
    threads = max(1, (os.cpu_count() or 1) // jobs)
    # spawn, not fork: a forked copy of a process that has started JAX's threads can hang.
    # One trial per process: each starts fresh (see `isolate`).
    with concurrent.futures.ProcessPoolExecutor(
            max_workers=min(jobs, len(pending)), mp_context=multiprocessing.get_context("spawn"),
            initializer=_limit_threads, initargs=(threads,), max_tasks_per_child=1) as pool:
        futures = {}
        for trial in pending:
            run_dir = _clear(tally.trials_dir / trial.name, trial.config)
            futures[pool.submit(trainer, trial.config.to_dict(), str(run_dir), backend, data_root)] = trial
        try:
            for future in concurrent.futures.as_completed(futures):
                tally.record(futures[future], future.result())
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def _clear(run_dir: Path, config: TrainingConfig) -> Path:
    """Remove what an unfinished attempt left in a trial folder (never a finished or diverged trial of this config)."""
    if run_dir.exists() and trial_status(run_dir, config) not in FINAL_STATUSES:
        shutil.rmtree(run_dir)
    return run_dir
