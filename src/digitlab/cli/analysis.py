"""What runs learned: `digitlab evaluate`, `report`, `compare`."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from digitlab.cli.output import console, printable


def evaluate(
    run_dir: Path = typer.Argument(..., help="A run folder written by `digitlab train`."),
    backend: str | None = typer.Option(None, help="jax (default), tensorflow or torch; else $KERAS_BACKEND."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Test loss, accuracy and per-class accuracy of a trained run."""
    from digitlab.analysis.evaluate import evaluate_run

    result = evaluate_run(run_dir, backend=backend)
    if as_json:
        print(json.dumps(result))
        return
    console.print(f"{printable(str(result['run_dir']))} on {result['dataset']} test set ({result['count']} images, "
                  f"{result['backend']}):", markup=False, highlight=False)
    console.print(f"Test loss: {result['loss']:.4f}  Test accuracy: {result['accuracy']:.2%}", highlight=False)
    table = Table("class", "accuracy", "images", title="per-class accuracy")
    for label, (name, accuracy) in enumerate(zip(result["class_names"], result["per_class_accuracy"], strict=True)):
        table.add_row(name, f"{accuracy:.2%}", str(sum(result["confusion_matrix"][label])))
    console.print(table)


def report_command(
    run_dir: Path = typer.Argument(..., help="A run folder written by `digitlab train`."),
    mistakes: int = typer.Option(36, help="How many of the most confident mistakes to show."),
    samples: int = typer.Option(36, help="How many random test predictions to show."),
    backend: str | None = typer.Option(None, help="jax (default), tensorflow or torch; else $KERAS_BACKEND."),
) -> None:
    """Write RUN_DIR/report.html (self-contained) and its PNGs: curves, confusion matrix, mistakes."""
    from digitlab.analysis.report import write_report

    path = write_report(run_dir, backend=backend, mistakes=mistakes, samples=samples)
    console.print(f"report written to {printable(str(path))} (PNGs beside it)", markup=False, highlight=False)


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

