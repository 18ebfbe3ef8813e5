"""The one console layer: everything the user reads goes through here (rich).

Logs (``logging``) go to stderr and are for diagnosis; this module is for the product's
own output: progress, tables, results, and one-line errors.
"""

from __future__ import annotations

import logging
from typing import Any

from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table
from rich.text import Text

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def setup_logging(verbose: bool) -> None:
    """INFO/DEBUG logs with --verbose, warnings only otherwise; always on stderr."""
    level = logging.DEBUG if verbose else logging.WARNING
    logging.basicConfig(
        level=level,
        format="%(name)s: %(message)s",
        handlers=[RichHandler(console=err, show_path=False, show_time=verbose)],
        force=True,
    )
    if not verbose:
        for noisy in ("botocore", "boto3", "urllib3", "websockets"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def info(message: str) -> None:
    out.print(message)


def success(message: str) -> None:
    out.print(f"[green]✓[/green] {message}")


def warn(message: str) -> None:
    err.print(f"[yellow]warning:[/yellow] {message}")


def error(message: str) -> None:
    err.print(f"[red]error:[/red] {message}")


def function_output(function: str, line: str) -> None:
    """One line a handler wrote (print, logging, warnings), marked with its function; the
    runtime's CR-joined error records are shown one line per part, the text never as markup."""
    for part in line.split("\r"):
        out.print(Text.assemble((f"{function} | ", "dim"), part))


def table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    """Print a simple table (used by status, outputs and benchmarks)."""
    grid = Table(title=title, title_justify="left")
    for column in columns:
        grid.add_column(column)
    for row in rows:
        grid.add_row(*(str(cell) for cell in row))
    out.print(grid)
