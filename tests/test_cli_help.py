"""The command line's help: every command, every recipe and every option is described, and `--version` works.

Nothing is trained or loaded: the help is Typer's own output, read through the real entry point.
"""

import re

import pytest
import typer

from digitlab import __version__
from digitlab.cli import app
from digitlab.training.recipes import RECIPES


def is_group(command) -> bool:
    """Whether a command has sub-commands (Typer keeps its own copy of Click, so no isinstance on click.Group)."""
    return hasattr(command, "commands")


def commands(group, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], object]]:
    """Every command of the app, as (its words, the Click-style command), sub-commands included."""
    found = []
    for name, command in group.commands.items():
        found.append(((*prefix, name), command))
        if is_group(command):
            found += commands(command, (*prefix, name))
    return found


ALL_COMMANDS = commands(typer.main.get_command(app))


def test_version_prints_the_package_version(run_cli):
    code, out, _ = run_cli("--version")
    assert code == 0 and out.strip() == f"digitlab {__version__}"


def test_the_apps_help_lists_every_command(run_cli):
    code, out, _ = run_cli("--help")
    top_level = [words[0] for words, _ in ALL_COMMANDS if len(words) == 1]
    assert code == 0 and len(top_level) >= 11
    missing = [name for name in top_level if f" {name} " not in out]
    assert not missing, f"commands missing from `digitlab --help`: {missing}"


def test_the_apps_description_names_what_every_command_does():
    description = typer.main.get_command(app).help
    unnamed = [words[0] for words, _ in ALL_COMMANDS if len(words) == 1 and words[0] not in description]
    assert not unnamed, f"the app's description does not mention {unnamed}"


@pytest.mark.parametrize("words", [words for words, command in ALL_COMMANDS if is_group(command)],
                         ids=" ".join)
def test_each_group_lists_its_commands(run_cli, words):
    code, out, _ = run_cli(*words, "--help")
    names = [found[-1] for found, _ in ALL_COMMANDS if found[:-1] == words]
    assert code == 0 and names and all(f" {name} " in out for name in names)


def test_train_help_names_every_recipe(run_cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # one help line per option, so that no recipe name is split
    code, out, _ = run_cli("train", "--help")
    missing = [name for name in RECIPES if name not in out]
    assert code == 0 and not missing, f"recipes missing from `digitlab train --help`: {missing}"


@pytest.mark.parametrize("words", [words for words, _ in ALL_COMMANDS], ids=" ".join)
def test_every_command_and_option_has_help(words):
    command = dict(ALL_COMMANDS)[words]
    assert command.help or command.short_help, f"`digitlab {' '.join(words)}` has no description"
    undescribed = [parameter.name for parameter in command.params if not getattr(parameter, "help", None)]
    assert not undescribed, f"`digitlab {' '.join(words)}`: no help for {undescribed}"


@pytest.mark.parametrize("words", [words for words, command in ALL_COMMANDS if not is_group(command)], ids=" ".join)
def test_square_brackets_in_the_help_are_printed(run_cli, monkeypatch, words):
    # Typer renders help as Rich markup, where "[ray]" is a style tag that vanishes unless escaped ("\\[ray]").
    monkeypatch.setenv("COLUMNS", "1000")  # no wrapping: each option's help on one line
    code, out, _ = run_cli(*words, "--help")
    command = dict(ALL_COMMANDS)[words]
    expected = [f"[{inside}]" for parameter in command.params
                for inside in re.findall(r"\\?\[([^\]]+)\]", getattr(parameter, "help", None) or "")]
    missing = [text for text in expected if text not in out]
    assert code == 0 and not missing, f"`digitlab {' '.join(words)} --help` lost {missing}"


@pytest.mark.parametrize("command", ["read", "predict"])
def test_with_no_run_and_no_bundled_reader_the_hint_names_the_reader_recipe(run_cli, monkeypatch, tmp_path, command):
    from PIL import Image

    from digitlab.inference import bundled

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(bundled, "is_available", lambda: False)
    Image.new("L", (40, 28), 255).save(tmp_path / "blank.png")
    code, _, err = run_cli(command, "blank.png")
    assert code == 2 and "digitlab train --recipe reader" in err


def test_the_model_options_name_the_bundled_reader(run_cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    for command in ("predict", "read", "serve"):
        code, out, _ = run_cli(command, "--help")
        assert code == 0 and "bundled reader" in out, command
