"""Rich progress bars on stderr, with a throughput column."""

from __future__ import annotations

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

from odqa.consoles import stderr_console


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


def make_progress(enabled: bool = True) -> Progress:
    """A progress display for long work: bar, count, rate, elapsed and remaining time."""
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        CountColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=stderr_console,
        disable=not enabled,
        transient=False,
    )
