"""Runs side by side: which settings differ and how the metrics compare, as plain data, Markdown or JSON.

Runs are read through the run record (`runs.read_run`), so a run from an older digitlab compares as
well: settings it lacks show their defaults. Nothing here needs to know the list of training settings.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from digitlab import runs
from digitlab.analysis.formatting import format_value
from digitlab.errors import RunFolderError
from digitlab.record import Run

# Metrics shown, in order, with how to print them.
METRICS = (
    ("status", "status", "text"),
    ("epochs_completed", "epochs completed", "int"),
    ("test_accuracy", "test accuracy", "percent"),
    ("test_loss", "test loss", "loss"),
    ("train_accuracy", "training accuracy (last epoch)", "percent"),
    ("train_loss", "training loss (last epoch)", "loss"),
    ("val_accuracy", "validation accuracy (last epoch)", "percent"),
    ("val_loss", "validation loss (last epoch)", "loss"),
    ("fit_seconds", "fit seconds", "seconds"),
    ("samples_per_second", "images per second", "rate"),
)


@dataclasses.dataclass(frozen=True)
class Comparison:
    """Several runs side by side; every list holds one value per run, in the order given."""

    # Short names of the runs (their folder names; whole paths when two folder names clash).
    names: list[str]
    # The run folders as given.
    run_dirs: list[str]
    # Every setting (training settings, then backend and input shape): name -> value per run (None if absent).
    settings: dict[str, list[Any]]
    # Names of the settings whose values are not the same in all runs.
    differing: list[str]
    # Metric name -> value per run (None if the run does not have it).
    metrics: dict[str, list[Any]]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def compare_runs(run_dirs: Sequence[str | Path]) -> Comparison:
    """Read runs' config.json and metrics.json and line them up. A run without metrics.json is "unfinished"."""
    if not run_dirs:
        raise RunFolderError("name at least one run folder to compare, e.g. `digitlab compare runs/*`")
    read = [runs.read_run(run_dir) for run_dir in run_dirs]
    configs = [_settings(run) for run in read]
    setting_names: list[str] = []
    for settings in configs:
        setting_names += [name for name in settings if name not in setting_names]
    settings_table = {name: [settings.get(name) for settings in configs] for name in setting_names}
    differing = [name for name, values in settings_table.items() if any(value != values[0] for value in values)]
    metrics_table = {name: [_metric(run, name) for run in read] for name, _, _ in METRICS}
    # A metric no run has (the validation figures, without a validation split) is no row.
    metrics_table = {name: values for name, values in metrics_table.items() if any(v is not None for v in values)}
    folder_names = [Path(run_dir).resolve().name for run_dir in run_dirs]
    names = folder_names if len(set(folder_names)) == len(folder_names) else [str(run_dir) for run_dir in run_dirs]
    return Comparison(names, [str(run_dir) for run_dir in run_dirs], settings_table, differing, metrics_table)


def _settings(run: Run) -> dict[str, Any]:
    """The training settings, then the run settings beside them that change what a run computes."""
    return {**run.config.training.to_dict(), "backend": run.config.backend, "input_shape": list(run.config.input_shape)}


def _metric(run: Run, name: str) -> Any:
    if run.metrics is None:
        return "unfinished" if name == "status" else None
    return getattr(run.metrics, name)


def rows(comparison: Comparison, all_settings: bool = False) -> list[tuple[str, list[str]]]:
    """(label, one formatted value per run) for the differing settings (or all), then the metrics."""
    shown_settings = list(comparison.settings) if all_settings or len(comparison.names) == 1 else comparison.differing
    table = [(name, [format_value(value) for value in comparison.settings[name]]) for name in shown_settings]
    kinds = {name: (label, kind) for name, label, kind in METRICS}
    for name, values in comparison.metrics.items():
        label, kind = kinds[name]
        table.append((label, [format_value(value, kind) for value in values]))
    return table


def same_settings(comparison: Comparison) -> dict[str, str]:
    """Settings equal in every run, formatted: name -> value."""
    return {name: format_value(values[0]) for name, values in comparison.settings.items()
            if name not in comparison.differing}


def to_markdown(comparison: Comparison, all_settings: bool = False) -> str:
    """A Markdown table, one column per run, then a line listing the settings all runs share."""
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| | " + " | ".join(cell(name) for name in comparison.names) + " |",
             "|---|" + "---|" * len(comparison.names)]
    differing = set(comparison.differing)
    for label, values in rows(comparison, all_settings):
        shown = f"**{label}**" if label in differing else label
        lines.append(f"| {cell(shown)} | " + " | ".join(cell(value) for value in values) + " |")
    shared = same_settings(comparison)
    if shared and len(comparison.names) > 1 and not all_settings:
        lines += ["", "Same in all runs: " + ", ".join(f"{name}={value}" for name, value in shared.items()) + "."]
    return "\n".join(lines) + "\n"


def to_json(comparison: Comparison) -> str:
    return json.dumps(comparison.to_dict(), indent=2)
