"""Progress bars: plain status lines when stderr is a log file or a pipe."""

from __future__ import annotations

import io
import re
import time

from rich.console import Console
from rich.progress import TextColumn

from odqa.progress import LoggedProgress


def run_bar(console: Console) -> None:
    bar = LoggedProgress(TextColumn("{task.description}"), console=console, log_seconds=0.02)
    with bar:
        task = bar.add_task("train reader", total=10, loss="1.250", unit="steps")
        for _ in range(5):
            bar.advance(task)
            time.sleep(0.03)


def test_a_log_file_gets_plain_status_lines_while_work_runs():
    log = io.StringIO()
    run_bar(Console(file=log, force_terminal=False))
    lines = [line for line in log.getvalue().splitlines() if line.startswith("train reader:")]
    assert lines, log.getvalue()
    assert re.fullmatch(r"train reader: \d+/10 \(\d+%\), loss 1\.250, (?:[\d.]+ steps/s, )?"
                        r"elapsed 0:00:00, remaining \S+", lines[0])
    done = [int(re.match(r"train reader: (\d+)/", line).group(1)) for line in lines]
    assert done == sorted(done) and max(done) <= 5


def test_a_terminal_gets_the_bar_only():
    screen = io.StringIO()
    run_bar(Console(file=screen, force_terminal=True, width=80))
    assert "train reader:" not in screen.getvalue()
