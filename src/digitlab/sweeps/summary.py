"""A sweep's trials read back and summarised: sweep.csv (one row per trial), the plots, and sweep.md
(mean and standard deviation over seeds per configuration, then a study's verdicts).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from digitlab import runs
from digitlab.analysis import plots
from digitlab.analysis.formatting import format_value
from digitlab.analysis.metrics import mean_and_std
from digitlab.config import TrainingConfig
from digitlab.errors import DigitlabError
from digitlab.record import RunMetrics
from digitlab.sweeps.plan import TRIALS_DIR, SweepPlan, Trial, make_config, training_fields, trial_name

CSV_FILE = "sweep.csv"
# Which machine trained each trial: {trial name: node}, sweep.csv's `node` column.
NODES_FILE = "nodes.json"
MARKDOWN_FILE = "sweep.md"
ACCURACY_PLOT_FILE = "sweep_accuracy_vs_time.png"
FACTORS_PLOT_FILE = "sweep_factors.png"
# Metrics copied from each trial's metrics.json into sweep.csv.
CSV_METRICS = ("test_accuracy", "test_loss", "train_accuracy", "train_loss", "val_accuracy", "val_loss",
               "epochs_completed", "fit_seconds", "samples_per_second")


# --- trial folders -------------------------------------------------------------------------------


def read_trial(run_dir: str | Path, config: TrainingConfig | None = None) -> tuple[str, RunMetrics | None]:
    """A trial folder's status (see `trial_status`) and, when it ended, its metrics."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        return "pending", None
    try:
        run = runs.read_run(run_dir)
    except DigitlabError:
        return "incomplete", None
    if run.metrics is None or run.metrics.status not in ("finished", "interrupted", "diverged"):
        return "incomplete", None
    if config is not None and run.config.training != config:
        return "incomplete", None
    if run.metrics.status == "finished" and run.metrics.epochs_completed < run.config.training.epochs:
        # Stopped early by a search's pruner (see `search`): over, and not to be trained again.
        return "pruned", run.metrics
    return run.metrics.status, run.metrics


def trial_status(run_dir: str | Path, config: TrainingConfig | None = None) -> str:
    """'finished', 'interrupted' or 'diverged' (from metrics.json), 'pruned' (finished before its last epoch),
    'incomplete' (a folder without metrics.json) or 'pending'.

    With `config`, a run trained with other settings counts as 'incomplete' (to be trained again).
    """
    return read_trial(run_dir, config)[0]


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
        return ", ".join(f"{_pretty(name)} {format_value(value)}" for name, value in self.settings.items()) \
            or "fixed settings"

    def stats(self, name: str) -> tuple[float, float]:
        """(mean, sample std) of test_accuracy, train_accuracy or fit_seconds."""
        return mean_and_std(getattr(self, name))


@dataclasses.dataclass(frozen=True)
class Verdict:
    """A claim a study checks, its answer ("Supported", "Not supported", ...), and why (see `studies`)."""

    claim: str
    answer: str
    text: str


# What judges a study's claims from its configurations' summaries.
Judge = Callable[[Sequence[GroupSummary]], list[Verdict]]


@dataclasses.dataclass(frozen=True)
class SweepSummary:
    """A sweep's trials as rows (sweep.csv) and per configuration over seeds (sweep.md)."""

    rows: list[dict[str, Any]]
    groups: list[GroupSummary]
    verdicts: list[Verdict]
    files: dict[str, Path]


def record_node(sweep_dir: Path, trial: str, node: str) -> None:
    """Note in nodes.json which machine trained `trial` (the sweep's one process writes it)."""
    nodes = read_nodes(sweep_dir)
    nodes[trial] = node
    runs.write_json(sweep_dir / NODES_FILE, nodes)


def read_nodes(sweep_dir: Path) -> dict[str, str]:
    """nodes.json: trial name -> the host (and Ray node) that trained it; empty when there is none yet."""
    try:
        nodes = json.loads((sweep_dir / NODES_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return {str(name): str(node) for name, node in nodes.items()} if isinstance(nodes, dict) else {}


def collect_rows(trials: Sequence[Trial], trials_dir: Path) -> list[dict[str, Any]]:
    """One row per trial: its name, every setting, its status, the node that trained it, and its metrics
    (empty when not finished)."""
    nodes = read_nodes(trials_dir.parent)
    rows = []
    for trial in trials:
        status, metrics = read_trial(trials_dir / trial.name, trial.config)
        row: dict[str, Any] = {"trial": trial.name, **trial.config.to_dict(), "status": status,
                               "node": nodes.get(trial.name) if status in FINAL_STATUSES else None}
        row.update({name: None if metrics is None else getattr(metrics, name) for name in CSV_METRICS})
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
                grid=grid.name, configuration=json.dumps(without_seed, sort_keys=True), settings=settings,
                seeds=[row["seed"] for row in finished],
                test_accuracy=[row["test_accuracy"] for row in finished],
                train_accuracy=[row["train_accuracy"] for row in finished if row["train_accuracy"] is not None],
                fit_seconds=[row["fit_seconds"] for row in finished]))
    return groups


def write_summaries(plan: SweepPlan, sweep_dir: Path, trials: Sequence[Trial] | None = None,
                    judge: Judge | None = None) -> SweepSummary:
    """Write sweep.csv, the plots and sweep.md from the trial folders as they are now.

    Args:
        trials: the plan's trials (default: `plan.trials()`).
        judge: a study's verdicts on its claims, which end sweep.md (see `studies.judge`).
    """
    trials = list(trials) if trials is not None else plan.trials()
    rows = collect_rows(trials, sweep_dir / TRIALS_DIR)
    groups = summarize_groups(plan, rows)
    verdicts = judge(groups) if judge is not None else []
    runs.write_text_atomic(sweep_dir / CSV_FILE, csv_text(rows))
    files = {"csv": sweep_dir / CSV_FILE}
    plotted = [group for group in _unique_configurations(groups) if group.test_accuracy]
    if plotted:
        files["accuracy_vs_time"] = plots.plot_sweep_accuracy_vs_time(
            [{"label": label, "fit_seconds": group.fit_seconds, "test_accuracy": group.test_accuracy}
             for label, group in _labelled(plan, plotted)], sweep_dir / ACCURACY_PLOT_FILE,
            title=f"Test accuracy against training time ({plan.name})")
        panels = _factor_panels(plan, groups)
        if panels:
            files["factors"] = plots.plot_sweep_factors(panels, sweep_dir / FACTORS_PLOT_FILE)
    runs.write_text_atomic(sweep_dir / MARKDOWN_FILE, render_markdown(plan, rows, groups, verdicts, files))
    files["markdown"] = sweep_dir / MARKDOWN_FILE
    return SweepSummary(rows, groups, verdicts, files)


def csv_text(rows: Sequence[dict[str, Any]]) -> str:
    """sweep.csv's text: a header from the first row's keys, then one line per row."""
    buffer = io.StringIO()
    names = list(rows[0]) if rows else ["trial", *training_fields(), "status", "node", *CSV_METRICS]
    writer = csv.DictWriter(buffer, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({name: format_value(value, missing="") for name, value in row.items()})
    return buffer.getvalue()


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
        label = ", ".join(f"{_pretty(name)} {format_value(value)}" for name, value in values.items())
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
                "levels": [format_value(level) for level in levels],
                "test_accuracy": [[value for group in members if group.settings[name] == level
                                   for value in group.test_accuracy] for level in levels],
                "fit_seconds": [[value for group in members if group.settings[name] == level
                                 for value in group.fit_seconds] for level in levels],
            })
    return panels


def _pretty(name: str) -> str:
    return name.replace("_", " ")


def _mean_std_text(values: Sequence[float], scale: float = 100.0, digits: int = 2, unit: str = "%") -> str:
    if not values:
        return "-"
    mean, std = mean_and_std(values)
    return f"{mean * scale:.{digits}f}{unit} ± {std * scale:.{digits}f}"


# --- sweep.md ------------------------------------------------------------------------------------


def render_markdown(plan: SweepPlan, rows: Sequence[dict[str, Any]], groups: Sequence[GroupSummary],
                    verdicts: Sequence[Verdict], files: dict[str, Path]) -> str:
    """sweep.md: what was run, a table per grid (mean ± std over seeds), the plots, then the verdicts."""
    lines = _introduction(plan, rows)
    for grid in plan.grids:
        if len(plan.grids) > 1:
            lines += [f"## {grid.name.capitalize()}", ""]
        lines += _grid_table(list(grid.factors), [group for group in groups if group.grid == grid.name])
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


def _introduction(plan: SweepPlan, rows: Sequence[dict[str, Any]]) -> list[str]:
    finished = sum(row["status"] == "finished" for row in rows)
    defaults = make_config(plan.fixed)
    varied = {name for grid in plan.grids for name in grid.factors} | {"seed"}
    fixed_text = ", ".join(f"{name}={format_value(getattr(defaults, name))}"
                           for name in training_fields() if name not in varied)
    seeds = len(plan.seeds)
    return [f"# Sweep: {plan.name}", "",
            f"{finished} of {len(rows)} trials finished ({seeds} seed{'s' * (seeds != 1)} "
            f"per configuration: {', '.join(map(str, plan.seeds))}); each trial is a run folder in `{TRIALS_DIR}/`, "
            f"one row each in `{CSV_FILE}`.", "",
            f"Fixed settings: {fixed_text}.", "",
            "Figures are the mean ± standard deviation over seeds. Test accuracy is on the 10,000 unseen test "
            "images; training accuracy is the last epoch's; the gap is training minus test accuracy in "
            "percentage points; fit seconds is the time `fit` took.", ""]


def _grid_table(names: Sequence[str], members: Sequence[GroupSummary]) -> list[str]:
    """A grid's Markdown table: one row per configuration, mean ± std over its seeds."""
    header = [_pretty(name) for name in names] or ["configuration"]
    lines = ["| " + " | ".join(header) + " | seeds | test accuracy | training accuracy | gap (points) | fit seconds |",
             "|" + "---|" * (len(header) + 5)]
    for group in members:
        cells = [format_value(group.settings[name]) for name in names] or ["fixed settings"]
        gap = "-"
        if group.test_accuracy and len(group.train_accuracy) == len(group.test_accuracy):
            gap = f"{(mean_and_std(group.train_accuracy)[0] - mean_and_std(group.test_accuracy)[0]) * 100:+.2f}"
        lines.append("| " + " | ".join(cells) + f" | {len(group.seeds)} | {_mean_std_text(group.test_accuracy)} | "
                     f"{_mean_std_text(group.train_accuracy)} | {gap} | "
                     f"{_mean_std_text(group.fit_seconds, scale=1.0, digits=1, unit='')} |")
    lines.append("")
    return lines


# A trial that ended one of these ways is not trained again: a finished one is done, and a diverged one
# would diverge again (the same settings and seed give the same numbers).
# A pruned one was stopped by a search's pruner, which would stop it again.
FINAL_STATUSES = ("finished", "diverged", "pruned")
