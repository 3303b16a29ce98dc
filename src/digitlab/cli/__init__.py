"""The `digitlab` command line: parse arguments, call one library function, print, map errors to exit codes.

Each command lives with its neighbours along the data flow (`data`, `training`, `analysis`,
`inference`); `output` is what they print and how they end. Heavy modules (NumPy data code, Keras,
JAX) are imported inside the commands that need them, so `digitlab --help` starts fast.
"""

from __future__ import annotations

import sys

import typer

from digitlab import __version__
from digitlab.cli import analysis, data, inference, models, training
from digitlab.cli.output import print_error
from digitlab.errors import DigitlabError

app = typer.Typer(help="The classic first Keras network on MNIST, as software: get the data, train (recipes, "
                       "sweeps), evaluate, report and compare runs, predict digits, read numbers, serve the drawing "
                       "page and HTTP API, export to ONNX, and list the bundled models.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
data_app = typer.Typer(help="Get, verify and inspect the data sets (MNIST, Fashion-MNIST).", no_args_is_help=True)
app.add_typer(data_app, name="data")


def print_version(asked: bool) -> None:
    """`digitlab --version`: print the version and stop before any command runs."""
    if asked:
        print(f"digitlab {__version__}")
        raise typer.Exit()


@app.callback()
def options(
    version: bool = typer.Option(False, "--version", callback=print_version, is_eager=True,
                                 help="Print digitlab's version and exit."),
) -> None:
    """Options that come before the command."""


data_app.command("fetch")(data.data_fetch)
data_app.command("info")(data.data_info)
data_app.command("verify")(data.data_verify)
data_app.command("path")(data.data_path)
app.command("train")(training.train)
app.command("evaluate")(analysis.evaluate)
app.command("report")(analysis.report_command)
app.command("compare")(analysis.compare_command)
app.command("export")(inference.export_command)
app.command("sweep")(training.sweep_command)
app.command("predict")(inference.predict)
app.command("read")(inference.read)
app.command("serve")(inference.serve_command)
app.command("models")(models.models_command)


def main() -> None:
    """Entry point of the `digitlab` console script."""
    try:
        app()
    except DigitlabError as err:
        print_error(err)
        sys.exit(err.exit_status)
