"""The CLI's progress display: rich bars on stderr with a throughput column and the task's
fields, and plain status lines where stderr is a log file or a pipe (rich draws nothing there
until the work ends).
The CLI installs it as what :func:`odqa.progress.make_progress` gives."""

from __future__ import annotations

import datetime
import threading
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from odqa.cli.consoles import stderr_console


class RateColumn(ProgressColumn):
    """Items per second, labelled with the task's ``unit`` field (default: items).

    A task whose bar measures something else (e.g. bytes of input) gives its item count in a
    ``count`` field; the rate is then that count over the elapsed time.
    """

    def render(self, task: Task) -> Text:
        unit = task.fields.get("unit", "items")
        if "count" in task.fields:
            elapsed = task.finished_time or task.elapsed
            speed = task.fields["count"] / elapsed if elapsed else None
        else:
            speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} {unit}/s" if speed else f"- {unit}/s", style="cyan")


class CountColumn(MofNCompleteColumn):
    """``done/total``, or the ``count`` field with its unit when the task has one."""

    def render(self, task: Task) -> Text:
        if "count" in task.fields:
            unit = task.fields.get("unit", "items")
            return Text(f"{task.fields['count']:,} {unit}", style="progress.download")
        return super().render(task)


class FieldsColumn(ProgressColumn):
    """The task's own fields (e.g. ``loss 2.651``), apart from ``unit`` and ``count``."""

    def render(self, task: Task) -> Text:
        shown = [f"{k} {v}" for k, v in task.fields.items() if k not in ("unit", "count")]
        return Text(" ".join(shown), style="magenta")


LOG_SECONDS = 60.0
"""Seconds between the plain status lines written when stderr is not a terminal."""


def _clock(seconds: float | None) -> str:
    return "-" if seconds is None else str(datetime.timedelta(seconds=int(seconds)))


def status_line(task: Task) -> str:
    """One plain line for a task: description, count, share, its fields, elapsed, remaining."""
    done = f"{task.completed:,.0f}" + (f"/{task.total:,.0f} ({task.percentage:.0f}%)"
                                       if task.total else "")
    fields = " ".join(f"{k} {v}" for k, v in task.fields.items() if k != "unit")
    speed = task.speed
    rate = f"{speed:,.1f} {task.fields.get('unit', 'items')}/s" if speed else ""
    parts = [f"{task.description}: {done}", fields, rate,
             f"elapsed {_clock(task.elapsed)}", f"remaining {_clock(task.time_remaining)}"]
    return ", ".join(p for p in parts if p)


class LoggedProgress(Progress):
    """A rich :class:`Progress` that, on a console that is not a terminal, also writes
    :func:`status_line` for every running task every ``log_seconds``, so long jobs whose
    stderr goes to a log show how far they are."""

    def __init__(self, *columns: Any, log_seconds: float = LOG_SECONDS, **kwargs: Any) -> None:
        super().__init__(*columns, **kwargs)
        self.log_seconds = log_seconds
        self._stop_logging = threading.Event()
        self._logger: threading.Thread | None = None

    def start(self) -> None:
        super().start()
        if not self.disable and not self.console.is_terminal and self._logger is None:
            self._stop_logging.clear()
            self._logger = threading.Thread(target=self._log_until_stopped, daemon=True)
            self._logger.start()

    def stop(self) -> None:
        if self._logger is not None:
            self._stop_logging.set()
            self._logger.join()
            self._logger = None
        super().stop()

    def _log_until_stopped(self) -> None:
        while not self._stop_logging.wait(self.log_seconds):
            self.log_status()

    def log_status(self) -> None:
        """Write the status line of every started, unfinished task."""
        for task in self.tasks:
            if task.started and not task.finished:
                self.console.file.write(status_line(task) + "\n")
        self.console.file.flush()


def rich_progress(enabled: bool = True) -> LoggedProgress:
    """A progress display for long work: bar, count, rate, fields, elapsed and remaining time."""
    return LoggedProgress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        CountColumn(),
        RateColumn(),
        FieldsColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=stderr_console,
        disable=not enabled,
        transient=False,
    )

