"""Helpers shared by the CLI commands: error boundary, index lookup, output files."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

import typer
from rich.console import Console
from rich.markup import escape

from odqa.errors import OdqaError
from odqa.store import default_index_root, resolve_index
from odqa.types import Query

__all__ = [
    "default_index_root",
    "err_console",
    "fail_on_error",
    "gather_queries",
    "output_stream",
    "resolve_index",
]

err_console = Console(stderr=True, highlight=False, soft_wrap=True)


@contextmanager
def fail_on_error() -> Iterator[None]:
    """Turn an :class:`OdqaError` into one line on stderr and exit code 1 (no traceback)."""
    try:
        yield
    except OdqaError as exc:
        err_console.print(f"[red]error:[/] {escape(str(exc))}", markup=True, highlight=False)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        err_console.print("interrupted")
        raise typer.Exit(130) from None


def gather_queries(text: str | None, queries_file: str | None) -> list[Query]:
    """The query given on the command line, or those of ``--queries FILE|-`` (exactly one)."""
    from odqa.queries import read_queries

    if text is not None and queries_file is not None:
        raise OdqaError("give either a query argument or --queries FILE, not both")
    if queries_file is not None:
        return read_queries(queries_file)
    if text is None or not text.strip():
        raise OdqaError("no query: give one as an argument or use --queries FILE (or - for stdin)")
    return [Query("1", text.strip())]


@contextmanager
def output_stream(path: Path | None) -> Iterator[TextIO]:
    """``path`` opened for writing (UTF-8), or stdout when None."""
    if path is None:
        yield sys.stdout
        return
    try:
        handle = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise OdqaError(f"cannot write output file '{path}': {exc.strerror}") from None
    with handle:
        yield handle
