"""The rich consoles odqa prints through: one for notices, errors and progress bars (stderr),
and one made per output stream for tables."""

from __future__ import annotations

from typing import TextIO

from rich.console import Console

stderr_console = Console(stderr=True, highlight=False, soft_wrap=True)
"""Notices, warnings, errors and progress bars."""

PIPED_WIDTH = 200
"""Columns of a wide table written to a file or pipe (rich would cut it at 80)."""


def output_console(out: TextIO | None = None, *, wide_when_piped: bool = False) -> Console:
    """A console writing to ``out`` (stdout when None); with ``wide_when_piped``, files and
    pipes get :data:`PIPED_WIDTH` columns instead of 80."""
    console = Console(file=out)
    if wide_when_piped and not console.is_terminal:
        console = Console(file=out, width=PIPED_WIDTH)
    return console
