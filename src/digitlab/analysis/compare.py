"""Runs side by side: which settings differ and how the metrics compare, as plain data, Markdown or JSON.

Settings are read from each run's config.json as saved, whatever fields it has (a run from an older
or newer digitlab compares as well), so nothing here needs to know the list of training settings.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from digitlab import runs
from digitlab.errors import RunFolderError

# Settings recorded in config.json beside the training settings that change what a run computes.
RUN_SETTINGS = ("backend", "input_shape")
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
    configs, metrics_per_run = [], []
    for run_dir in map(Path, run_dirs):
        if not run_dir.is_dir():
            raise RunFolderError(f"run folder {run_dir} does not exist; list your runs with `ls runs/`")
        saved = runs.read_json(run_dir / runs.CONFIG_FILE)
        settings = dict(saved.get("training", {}))
        settings.update({name: saved.get(name) for name in RUN_SETTINGS})
        configs.append(settings)
        metrics_path = run_dir / runs.METRICS_FILE
        metrics_per_run.append(runs.read_json(metrics_path) if metrics_path.is_file() else {"status": "unfinished"})

    setting_names: list[str] = []
    for settings in configs:
        setting_names += [name for name in settings if name not in setting_names]
    settings_table = {name: [settings.get(name) for settings in configs] for name in setting_names}
    differing = [name for name, values in settings_table.items() if any(value != values[0] for value in values)]
    metrics_table = {name: [metrics.get(name) for metrics in metrics_per_run] for name, _, _ in METRICS
                     if any(name in metrics for metrics in metrics_per_run)}
    folder_names = [Path(run_dir).resolve().name for run_dir in run_dirs]
    names = folder_names if len(set(folder_names)) == len(folder_names) else [str(run_dir) for run_dir in run_dirs]
    return Comparison(names, [str(run_dir) for run_dir in run_dirs], settings_table, differing, metrics_table)


def format_value(value: Any, kind: str = "text") -> str:
    """A setting or metric as a person reads it: 97.88%, 0.0641, 6.1, 49,000, 512,512."""
    if value is None:
        return "-"
    if isinstance(value, (list, tuple)):
        return ",".join(format_value(item) for item in value)
    if kind == "percent" and isinstance(value, (int, float)):
        return f"{value:.2%}"
    if kind == "loss" and isinstance(value, (int, float)):
        return f"{value:.4f}"
    if kind == "seconds" and isinstance(value, (int, float)):
        return f"{value:.1f}"
    if kind == "rate" and isinstance(value, (int, float)):
        return f"{value:,.0f}"
    return str(value)


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
