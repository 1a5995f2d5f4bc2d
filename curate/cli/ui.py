"""Console output: progress, summary tables and messages.

Data never goes through Rich markup: both consoles have markup and emoji codes off, and
table cells, titles and messages are `Text`, so a cell holding `[/INST]`, `List[float]` or
`:smile:` prints as it is. Styling is added with `styled`/`note`, never with markup strings.

Progress goes to stderr: a live bar with rate and ETA on a terminal, and plain lines
every `PLAIN_INTERVAL` seconds or 10% (and at the end of each stage) when stderr is
redirected to a file or a pipe, so a log shows how far a long run got.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, TextIO

from rich.console import Console
from rich.progress import (BarColumn, Progress, ProgressColumn, SpinnerColumn, Task, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)
from rich.table import Table
from rich.text import Text

out = Console(markup=False, emoji=False, highlight=False, soft_wrap=True)  # a long path stays one line
err = Console(stderr=True, markup=False, emoji=False, highlight=False, soft_wrap=True)

PLAIN_INTERVAL = 10.0  # seconds between plain progress lines at most
PLAIN_MIN_GAP = 1.0  # a 10% step prints only this long after the previous line
Update = Callable[..., None]  # update(completed, total=..., description=..., unit=...)


def styled(text: Any, style: str = "") -> Text:
    """Plain text (never markup) with an optional style."""
    return Text("" if text is None else str(text), style=style)


def note(label: str, message: Any, style: str = "yellow", console: Console | None = None) -> None:
    """`label: message` on stderr, the label styled, the message printed as it is."""
    (console or err).print(styled(f"{label}: ", style) + styled(message), soft_wrap=True)


def say(message: Any) -> None:
    """One progress remark on stderr ("• ingested 1,000 rows")."""
    err.print(styled("• ", "dim") + styled(message), soft_wrap=True)


def table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    t = Table(title=styled(title), title_justify="left", show_lines=False)
    for column in columns:
        t.add_column(styled(column), overflow="fold")
    for row in rows:
        t.add_row(*[styled(v) for v in row])
    return t


def key_values(title: str, items: dict[str, Any]) -> Table:
    t = Table(title=styled(title), title_justify="left", show_header=False)
    t.add_column("key", style="bold")
    t.add_column("value", overflow="fold")
    for key, value in items.items():
        t.add_row(styled(key), styled(value))
    return t


def unit_of(stage: str) -> str:
    """What a stage of a long command counts: training stages count steps, loops rounds, the rest rows."""
    lowered = stage.lower()
    if "round" in lowered:
        return "rounds"
    if "training" in lowered or "proxy" in lowered or lowered.startswith("sft"):
        return "steps"
    return "rows"


def human(n: float) -> str:
    return f"{n:,.0f}" if float(n).is_integer() else f"{n:,.2f}"


def duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds == float("inf"):
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def rate_text(done: float, seconds: float, unit: str) -> str:
    rate = done / seconds if seconds > 0 else 0.0
    shown = f"{rate:,.0f}" if rate >= 100 else f"{rate:,.1f}" if rate >= 1 else f"{rate:,.2f}"
    return f"{shown} {unit}/s"


class _Stage:
    """One stretch of progress with one total: its start time for the rate and the ETA."""

    def __init__(self, description: str, total: int | None, unit: str, now: float):
        self.description, self.total, self.unit, self.started = description, total, unit, now
        self.done = 0
        self.updated = now  # time of the last update: the stage's end, once it is over
        self.printed: int | None = None  # the count its last line showed


class PlainProgress:
    """Progress as plain lines, for a stderr that is not a terminal.

    A line is written every `interval` seconds, and when the count crosses a 10% step
    (at least `min_gap` seconds after the previous line); a stage that wrote a line, or
    ran for `min_gap` seconds, ends with a line of its final count. A new stage starts
    when the total changes or the count goes back; its clock starts at the previous
    stage's last update, when its work began.
    """

    def __init__(self, description: str, total: int | None = None, unit: str = "rows", stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic, interval: float | None = None,
                 min_gap: float | None = None):
        self.stream = stream if stream is not None else sys.stderr
        self.clock = clock
        self.interval = PLAIN_INTERVAL if interval is None else interval
        self.min_gap = PLAIN_MIN_GAP if min_gap is None else min_gap
        self.unit = unit
        self.stage = _Stage(description, total, unit, clock())
        self.last_line = self.stage.started

    def update(self, completed: int, total: int | None = None, description: str | None = None,
               unit: str | None = None, **_: Any) -> None:
        now = self.clock()
        stage = self.stage
        total = stage.total if total is None else total
        if total != stage.total or completed < stage.done:
            self.finish()
            stage = self.stage = _Stage(description or stage.description, total, unit or self.unit, stage.updated)
        stage.description = description or stage.description
        stage.unit = unit or stage.unit
        before, stage.done, stage.updated = stage.done, completed, now
        step = bool(stage.total) and int(10 * completed / stage.total) > int(10 * before / stage.total)
        if now - self.last_line >= self.interval or (step and now - self.last_line >= self.min_gap):
            self._line(now)

    def finish(self) -> None:
        """The stage's final count, when it wrote lines before or took a while (and not twice)."""
        stage = self.stage
        took = stage.updated - stage.started
        if stage.done and stage.printed != stage.done and (stage.printed is not None or took >= self.min_gap):
            self._line(stage.updated)

    def _line(self, now: float) -> None:
        stage = self.stage
        elapsed = now - stage.started
        count = f"{stage.done:,}/{stage.total:,} {stage.unit} ({100 * stage.done / stage.total:.0f}%)" \
            if stage.total else f"{stage.done:,} {stage.unit}"
        parts = [f"{stage.description}: {count}", rate_text(stage.done, elapsed, stage.unit),
                 f"elapsed {duration(elapsed)}"]
        if stage.total and stage.done:
            parts.append(f"ETA {duration((stage.total - stage.done) * elapsed / stage.done)}")
        print(", ".join(parts), file=self.stream, flush=True)
        stage.printed = stage.done
        self.last_line = now


class _Count(ProgressColumn):
    """"12/300 rows", or "12 rows" while the total is unknown (never "12/?")."""

    def render(self, task: Task) -> Text:
        unit = task.fields.get("unit", "")
        if task.total is None:
            return Text(f"{int(task.completed):,} {unit}".rstrip(), style="progress.download")
        return Text(f"{int(task.completed):,}/{int(task.total):,} {unit}".rstrip(), style="progress.download")


class _Rate(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if speed is None:
            return Text("")
        return Text(rate_text(speed, 1.0, task.fields.get("unit", "it")), style="progress.data.speed")


class _LiveProgress:
    """The Rich bar: description, bar, count, rate, elapsed time and ETA."""

    def __init__(self, description: str, total: int | None, unit: str, console: Console | None = None):
        self.bar = Progress(SpinnerColumn(), TextColumn("{task.description}", markup=False), BarColumn(), _Count(),
                            _Rate(), TimeElapsedColumn(), TextColumn("ETA", style="dim"), TimeRemainingColumn(),
                            console=console or err, transient=True)
        self.task = self.bar.add_task(description, total=total, unit=unit)
        self.unit = unit

    def update(self, completed: int, total: int | None = None, description: str | None = None,
               unit: str | None = None, **fields: Any) -> None:
        task = self.bar.tasks[0]
        total = task.total if total is None else total
        if total != task.total or completed < task.completed:  # a new stage: its own rate and ETA
            self.bar.reset(self.task, total=total, description=description or task.description,
                           unit=unit or self.unit)
        self.bar.update(self.task, completed=completed, total=total, description=description, **fields,
                        **({"unit": unit} if unit else {}))


@contextlib.contextmanager
def progress(description: str, total: int | None = None, quiet: bool = False, unit: str = "rows") -> Iterator[Update]:
    """Progress on stderr; yields `update(completed, total=None, description=None, unit=None)`."""
    if quiet:
        yield lambda completed, **fields: None
        return
    if not err.is_terminal:
        plain = PlainProgress(description, total, unit)
        try:
            yield plain.update
        finally:
            plain.finish()
        return
    live = _LiveProgress(description, total, unit)
    with live.bar:
        yield live.update
