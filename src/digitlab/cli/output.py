"""What the command line prints for people, and how it ends: consoles, errors, warnings, progress bars,
and file names printed safely (control characters escaped; lossless in JSON; long lists cut short)."""

from __future__ import annotations

import base64
import os
import unicodedata
from collections.abc import Sequence
from typing import Any

from rich.console import Console

from digitlab.errors import EXIT_FAILED

console = Console()
error_console = Console(stderr=True)

EXIT_INTERRUPTED = 130  # Ctrl-C
# How many failed files the closing line names; --json gives every one.
FAILED_NAMES_SHOWN = 20
# Keys of a result's JSON object that hold a file name (a lossless byte form is added when not UTF-8).
PATH_KEYS = ("path", "annotated", "preprocessed")
# Characters that reorder or hide text on a terminal, escaped like control characters.
_INVISIBLE = {"\u200e", "\u200f", "\u2028", "\u2029", "\ufeff", *map(chr, range(0x202A, 0x202F)),
              *map(chr, range(0x2066, 0x206A))}

__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "RichProgress", "console", "error_console", "failed_summary",
           "json_safe", "print_error", "print_file_error", "print_warning", "printable"]


def printable(text: str) -> str:
    """`text` safe on a terminal: control characters, bidi overrides and bytes that were not UTF-8 escaped.

    A newline prints as \\n, an escape character as \\x1b, a file name byte that is not UTF-8 (kept by
    Python as a lone surrogate) as \\xff: one file's name can neither break a line nor restyle the terminal.
    """
    if text.isprintable():
        return text
    return "".join(_escaped(character) for character in text)


def _escaped(character: str) -> str:
    code = ord(character)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8, as os.fsdecode keeps it
        return f"\\x{code - 0xDC00:02x}"
    if character in ("\n", "\r", "\t"):
        return repr(character)[1:-1]
    if character in _INVISIBLE or unicodedata.category(character) in ("Cc", "Cs", "Zl", "Zp"):
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    return character


def json_safe(values: dict[str, Any]) -> dict[str, Any]:
    """A result's JSON object with valid UTF-8 strings only, and no file name lost.

    A file name that is not valid UTF-8 keeps its key (with each bad byte as \\xNN), gets
    `<key>_bytes`: the name's bytes in base64 (`base64.b64decode` gives the exact name back), and
    `<key>_utf8`: false. Other strings have bad bytes written as \\xNN.
    """
    safe: dict[str, Any] = {}
    for key, value in values.items():
        if not isinstance(value, str) or _is_utf8(value):
            safe[key] = value
            continue
        safe[key] = value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        if key in PATH_KEYS:
            safe[f"{key}_bytes"] = base64.b64encode(os.fsencode(value)).decode("ascii")
            safe[f"{key}_utf8"] = False
    return safe


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def failed_summary(failed: Sequence[str], count: int, noun: str = "images") -> str:
    """'3 of 10 images failed: a.png, b.png, c.png', naming FAILED_NAMES_SHOWN files at most."""
    shown = ", ".join(printable(name) for name in failed[:FAILED_NAMES_SHOWN])
    more = len(failed) - FAILED_NAMES_SHOWN
    rest = f" ... and {more:,} more (--json gives every file's error)" if more > 0 else ""
    return f"{len(failed):,} of {count:,} {noun} failed: {shown}{rest}"


def print_error(err: object) -> None:
    from rich.markup import escape

    # Escaped: a message such as "pip install 'digitlab[train]'" must print its brackets, not style by them;
    # and a file name in it must not print control characters.
    error_console.print(f"[bold red]error:[/] {escape(printable(str(err)))}", markup=True, highlight=False,
                        soft_wrap=True)


def print_file_error(message: str) -> None:
    """One file's error (the command goes on with the next files), on one line of stderr."""
    print_error(message)


def print_warning(message: str) -> None:
    """Something the user should know that did not stop the command (a repaired cache file, a run that did not learn)."""
    error_console.print(f"warning: {message}", markup=False, highlight=False, soft_wrap=True)


class RichProgress:
    """Adapts the library's progress callback to Rich progress bars on stderr."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                                 TimeRemainingColumn(), console=error_console, transient=False)
        self.tasks: dict[str, int] = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        if self.tasks:
            self.progress.stop()

    def __call__(self, description: str, done: int, total: int | None) -> None:
        if not self.tasks:
            self.progress.start()  # only when there is something to show: a cache hit prints nothing
        if description not in self.tasks:
            self.tasks[description] = self.progress.add_task(description, total=total)
        self.progress.update(self.tasks[description], completed=done, total=total)

