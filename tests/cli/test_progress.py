"""Progress bars: plain status lines when stderr is a log file or a pipe."""

from __future__ import annotations

import io
import re
import time

from rich.console import Console
from rich.progress import TextColumn

from odqa.cli.progress import LoggedProgress

from conftest import REPO


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


def test_only_the_cli_imports_rich():
    import ast

    package = REPO / "odqa"
    importers = []
    for path in sorted(package.rglob("*.py")):
        if path.is_relative_to(package / "cli"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n == "rich" or n.startswith("rich.") for n in names):
                importers.append(str(path.relative_to(package)))
    assert importers == []


def test_library_progress_shows_nothing_until_a_display_is_installed():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from odqa.progress import NullProgress, make_progress\n"
        "assert isinstance(make_progress(), NullProgress)\n"
        "import odqa.cli\n"
        "from odqa.cli.progress import LoggedProgress\n"
        "assert isinstance(make_progress(), LoggedProgress)\n"
        "assert isinstance(make_progress(False), NullProgress)\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "ok", done.stderr
