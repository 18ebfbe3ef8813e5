"""The one console layer: everything the user reads goes through here (rich).

Logs (``logging``) go to stderr and are for diagnosis; this module is for the product's
own output: progress, tables, results, and one-line errors. Log records of warning level
and above look exactly like :func:`warn` and :func:`error`, so a user sees one style.

rich is imported on first output, not at import: ``plldb --help`` never pays for it.
"""

from __future__ import annotations

import functools
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

QUIET_LOGGERS = ("botocore", "boto3", "urllib3", "websockets")


@functools.cache
def _console(stderr: bool) -> Console:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def out() -> Console:
    """The console of the product's output (stdout)."""
    return _console(False)


def err() -> Console:
    """The console of warnings, errors and logs (stderr)."""
    return _console(True)


class ConsoleHandler(logging.Handler):
    """Log records in the console's style: ``warning:``/``error:`` lines, dim diagnostics."""

    def __init__(self, verbose: bool) -> None:
        super().__init__()
        self.verbose = verbose

    def emit(self, record: logging.LogRecord) -> None:
        from rich.markup import escape
        from rich.text import Text

        try:
            message = self.format(record)
        except Exception:  # noqa: BLE001 - logging's own contract: report, never raise
            self.handleError(record)
            return
        if self.verbose:
            message = f"{record.name}: {message}"
        if record.levelno >= logging.ERROR:
            error(escape(message))
        elif record.levelno >= logging.WARNING:
            warn(escape(message))
        else:
            err().print(Text(message, style="dim"))


def setup_logging(verbose: bool) -> None:
    """INFO/DEBUG logs with --verbose, warnings only otherwise; always on stderr."""
    level = logging.DEBUG if verbose else logging.WARNING
    logging.basicConfig(
        level=level, format="%(message)s", handlers=[ConsoleHandler(verbose)], force=True
    )
    if not verbose:
        for noisy in QUIET_LOGGERS:
            logging.getLogger(noisy).setLevel(logging.WARNING)


def info(message: str) -> None:
    out().print(message)


def success(message: str) -> None:
    out().print(f"[green]✓[/green] {message}")


def warn(message: str) -> None:
    err().print(f"[yellow]warning:[/yellow] {message}")


def error(message: str) -> None:
    err().print(f"[red]error:[/red] {message}")


def function_output(function: str, line: str, stderr: bool = False) -> None:
    """One line a handler wrote (print, logging, warnings), marked with its function; the
    runtime's CR-joined error records are shown one line per part, the text never as markup.
    On stderr (``plldb invoke``) when stdout carries the result."""
    from rich.text import Text

    target = err() if stderr else out()
    for part in line.split("\r"):
        target.print(Text.assemble((f"{function} | ", "dim"), part))


def table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    """Print a simple table (used by status, outputs and benchmarks).

    Cells fold instead of being cut: a code path or a session id is only useful whole.
    """
    from rich.table import Table

    grid = Table(title=title, title_justify="left")
    for column in columns:
        grid.add_column(column, overflow="fold")
    for row in rows:
        grid.add_row(*(str(cell) for cell in row))
    out().print(grid)
