"""Console output: progress bars, summary tables and error messages."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

out = Console()
err = Console(stderr=True)


@contextlib.contextmanager
def progress(description: str, total: int | None = None, quiet: bool = False) -> Iterator[Any]:
    """A progress bar on stderr; yields `update(completed)`."""
    bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), console=err, transient=True, disable=quiet)
    with bar:
        task = bar.add_task(description, total=total)
        yield lambda completed, **fields: bar.update(task, completed=completed, **fields)


def table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    t = Table(title=title, title_justify="left", show_lines=False)
    for column in columns:
        t.add_column(column, overflow="fold")
    for row in rows:
        t.add_row(*["" if v is None else str(v) for v in row])
    return t


def key_values(title: str, items: dict[str, Any]) -> Table:
    t = Table(title=title, title_justify="left", show_header=False)
    t.add_column("key", style="bold")
    t.add_column("value", overflow="fold")
    for key, value in items.items():
        t.add_row(key, "" if value is None else str(value))
    return t


def human(n: float) -> str:
    return f"{n:,.0f}" if float(n).is_integer() else f"{n:,.2f}"
