"""The README and the documentation stay true to the software: every `digitlab ...` command line in them
parses with the real command line (each command, option and argument exists; nothing runs), every
relative link points at a file that exists, and no page uses the project's own bookkeeping words.

The site itself is built with `--strict` by `bash scripts/docs` (run by `scripts/test`), which checks
the links between its pages and generates the reference pages from the code.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest
import typer

from digitlab.cli import app

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted([ROOT / "README.md", ROOT / "CHANGELOG.md", *(ROOT / "docs").rglob("*.md")])
# How the pages call the command: the installed script, the one in an environment, or the module.
PROGRAM = re.compile(r"^(?:\S*/)?digitlab$")
# A value the reader fills in: runs/<run>, RUN, S, N, PORT... Parsed as "1", which every option type takes.
PLACEHOLDER = re.compile(r"<[^>]*>|^[A-Z][A-Z0-9_]*$")
# Words about how the project is run, which a user's document has no use for; and issue numbers.
BOOKKEEPING = re.compile(r"\b(sessions?|targets?|budgets?|moonshots?|helpers?)\b|#\d+\b|\bissues? \d+\b", re.IGNORECASE)


def relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


def code_blocks(text: str) -> list[str]:
    """The lines of every fenced code block, with continued lines (ending in a backslash) joined."""
    lines, inside = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            inside = not inside
            continue
        if inside:
            lines.append(line)
    joined = "\n".join(lines).replace("\\\n", " ")
    return joined.splitlines()


def inline_spans(text: str) -> list[str]:
    """Inline code spans outside fenced blocks."""
    outside = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    return re.findall(r"`([^`\n]+)`", outside)


def command_lines(text: str) -> list[tuple[list[str], bool]]:
    """Each `digitlab` invocation as (its arguments, whether it is a whole command line from a code block);
    inline spans such as `digitlab predict` may name a command without its required arguments."""
    found = []
    for source, whole in [(line, True) for line in code_blocks(text)] + [(span, False) for span in inline_spans(text)]:
        try:
            lexer = shlex.shlex(source, posix=True, punctuation_chars="|&;")
            lexer.whitespace_split, lexer.commenters = True, "#"
            tokens = list(lexer)
        except ValueError:
            continue  # not shell: an output line or prose in code
        segment: list[str] = []
        for token in [*tokens, ";"]:
            if token in ("|", "||", "&&", ";", "&"):
                found += _invocation(segment, whole)
                segment = []
            else:
                segment.append(token)
    return found


def _invocation(tokens: list[str], whole: bool) -> list[tuple[list[str], bool]]:
    while tokens and re.match(r"^[A-Z_][A-Z0-9_]*=", tokens[0]):  # VARIABLE=value before the command
        tokens = tokens[1:]
    if tokens[:3] in (["python", "-m", "digitlab"], ["python3", "-m", "digitlab"]):
        tokens = ["digitlab", *tokens[3:]]
    if not tokens or not PROGRAM.match(tokens[0]):
        return []
    arguments = tokens[1:]
    if "..." in arguments:  # `digitlab data ...`: the rest left out on purpose
        arguments, whole = arguments[:arguments.index("...")], False
    return [([("1" if PLACEHOLDER.search(token) else token) for token in arguments], whole)]


COMMAND = typer.main.get_command(app)


def parse(arguments: list[str]) -> None:
    """Parse `digitlab ARGUMENTS` as the real command line does, down to the command, running nothing.

    Raises the command line's own usage error (an unknown command or option, a missing argument, a
    value of the wrong type).
    """
    command = COMMAND
    context = command.make_context("digitlab", list(arguments))
    while hasattr(command, "commands"):  # a group: find the command it names, and parse the rest for it
        remaining = [*context._protected_args, *context.args] if hasattr(context, "_protected_args") else \
            [*context.protected_args, *context.args]
        if not remaining:
            return
        name, command, rest = command.resolve_command(context, remaining)
        context = command.make_context(name, rest, parent=context)


def parses(arguments: list[str], whole: bool) -> str | None:
    """None if the arguments parse (or stop at --help or --version), else why not."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            parse(arguments)
        except Exception as err:  # the command line's own exception types (Typer keeps its own copy of Click)
            kind = type(err).__name__
            if kind == "Exit" and getattr(err, "exit_code", 0) == 0:
                return None  # --help or --version
            if kind in ("MissingParameter", "NoArgsIsHelpError") and not whole:
                return None  # an inline mention of a command (or of `digitlab` itself), without its arguments
            message = err.format_message() if hasattr(err, "format_message") else str(err)
            return f"{kind}: {message}"
    return None


def test_the_pages_are_found():
    assert ROOT / "README.md" in PAGES and len(PAGES) > 20


@pytest.mark.parametrize("page", PAGES, ids=relative)
def test_every_command_line_parses(page):
    invocations = command_lines(page.read_text())
    failures = [f"digitlab {' '.join(arguments)}  ->  {reason}" for arguments, whole in invocations
                if (reason := parses(arguments, whole))]
    assert not failures, f"{relative(page)}:\n" + "\n".join(failures)


def test_the_readme_and_the_quickstart_show_commands():
    assert len(command_lines((ROOT / "README.md").read_text())) >= 10
    assert len(command_lines((ROOT / "docs" / "getting-started" / "quickstart.md").read_text())) >= 10


def test_the_parser_check_catches_a_wrong_option_a_wrong_command_and_a_missing_argument():
    assert parses(["train", "--recipe", "speedrun", "--seed", "1"], whole=True) is None
    assert parses(["predict", "photo.jpg", "--json", "--top", "1"], whole=True) is None
    assert parses(["--version"], whole=True) is None
    assert "--no-such-flag" in parses(["train", "--no-such-flag"], whole=True)
    assert parses(["trian"], whole=True) is not None
    assert parses(["train", "--epochs", "five"], whole=True) is not None
    assert parses(["predict"], whole=True) is not None and parses(["predict"], whole=False) is None
    found = command_lines("```bash\nDIGITLAB_DATA=/d .venv/bin/digitlab data fetch mnist  # fetch\n```\n"
                          "and `digitlab read runs/<run>` | `python -m digitlab --help`")
    assert found == [(["data", "fetch", "mnist"], True), (["read", "1"], False), (["--help"], False)]
    assert command_lines("every `digitlab data ...` command") == [(["data"], False)]


@pytest.mark.parametrize("page", [ROOT / "README.md", ROOT / "CHANGELOG.md"], ids=relative)
def test_links_from_the_repository_pages_point_at_files(page):
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.DOTALL)
    targets = [link.split("#")[0] for link in re.findall(r"\]\(([^)\s]+)\)", text)]
    missing = [link for link in targets if link and "://" not in link and not (page.parent / link).exists()]
    assert not missing, f"{relative(page)} links to missing files: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=relative)
def test_no_page_speaks_of_the_projects_bookkeeping(page):
    found = [f"line {number}: {match.group(0)!r}" for number, line in enumerate(page.read_text().splitlines(), 1)
             for match in BOOKKEEPING.finditer(line)]
    assert not found, f"{relative(page)}: {found}"


def test_the_readme_is_short_and_leads_with_install_reading_and_serving():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 250
    first_screen = "\n".join(lines[:60])
    for expected in ("pip install", "bash scripts/quickstart", "bash scripts/test", "digitlab read", "digitlab serve"):
        assert expected in first_screen, expected


def test_ci_runs_the_test_command_the_readme_gives():
    assert "bash scripts/test" in (ROOT / "README.md").read_text()
    assert "bash scripts/test" in (ROOT / ".ci" / "run").read_text()


def test_the_readmes_reading_figures_are_the_bundled_readers():
    """The README quotes the bundled reader's figures; its manifest is where they are measured."""
    import json

    scores = json.loads((ROOT / "src" / "digitlab" / "bundled" / "manifest.json").read_text())["scores"]
    readme = (ROOT / "README.md").read_text()
    quoted = {"numbers read exactly": scores["numbers"]["read_exactly"], "touching": scores["numbers"]["touching"],
              "singles right": scores["singles"]["right"], "singles refused": scores["singles"]["refused"],
              "unseen kinds refused": scores["unseen_non_digits"]["refused"],
              "handwriting fonts": scores["handwriting_numbers"]["read_exactly"]}
    stale = {name: f"{100 * value:.1f}%" for name, value in quoted.items() if f"{100 * value:.1f}%" not in readme}
    assert not stale, f"README.md does not quote the bundled reader's manifest: {stale}"


def test_the_notebook_the_site_shows_speaks_to_users():
    import json

    notebook = json.loads((ROOT / "notebooks" / "tutorial.ipynb").read_text())
    text = "\n".join("".join(cell["source"]) for cell in notebook["cells"])
    found = sorted({match.group(0) for match in BOOKKEEPING.finditer(text)})
    assert not found, f"notebooks/tutorial.ipynb: {found}"
