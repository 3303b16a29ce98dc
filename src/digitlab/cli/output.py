"""What the command line prints for people, and how it ends: consoles, errors, warnings, progress bars."""

from __future__ import annotations

from rich.console import Console

from digitlab.errors import EXIT_FAILED

console = Console()
error_console = Console(stderr=True)

EXIT_INTERRUPTED = 130  # Ctrl-C

__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "RichProgress", "console", "error_console",
           "print_error", "print_warning"]


def print_error(err: object) -> None:
    from rich.markup import escape

    # Escaped: a message such as "pip install 'digitlab[train]'" must print its brackets, not style by them.
    error_console.print(f"[bold red]error:[/] {escape(str(err))}", markup=True, highlight=False, soft_wrap=True)


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

