"""Helpers shared by the CLI commands: error boundary, index lookup, output files, options."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO, TypeVar

import typer
from rich.markup import escape

from odqa.cli.consoles import stderr_console
from odqa.errors import OdqaError, Terminated
from odqa.index.store import default_index_root, resolve_index
from odqa.types import Hit, Query

__all__ = [
    "RETRIEVER_HELP",
    "UnmatchedNotices",
    "check_retrievers",
    "default_index_root",
    "err_console",
    "fail_on_error",
    "gather_queries",
    "in_chunks",
    "output_stream",
    "parse_names",
    "prepare_output",
    "reject_unused",
    "resolve_index",
    "work_progress",
]

T = TypeVar("T")

err_console = stderr_console


def _retriever_help() -> str:
    from odqa.index.families import retriever_names

    names = retriever_names()
    return f"{', '.join(names[:-1])} or {names[-1]}."


RETRIEVER_HELP = _retriever_help()
"""Help of every --retriever option, from the family registry."""

EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143
SHOWN_NOTICES = 5
GIVEN = ("COMMANDLINE", "ENVIRONMENT")
"""Parameter sources of options the user set (by name: Typer bundles its own Click)."""


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """While the block runs, SIGTERM raises :class:`Terminated` (so clean-up runs as on Ctrl-C)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


@contextmanager
def fail_on_error() -> Iterator[None]:
    """Turn an :class:`OdqaError` into one line on stderr and exit code 1 (no traceback);
    Ctrl-C exits 130 and SIGTERM 143, after the work in progress has cleaned up."""
    try:
        with terminate_as_interrupt():
            yield
    except OdqaError as exc:
        err_console.print(f"[red]error:[/] {escape(str(exc))}", markup=True, highlight=False)
        raise typer.Exit(1) from None
    except Terminated:
        err_console.print("terminated")
        raise typer.Exit(EXIT_TERMINATED) from None
    except KeyboardInterrupt:
        err_console.print("interrupted")
        raise typer.Exit(EXIT_INTERRUPTED) from None


def gather_queries(
    text: str | None, queries_file: str | None, flag: str = "--queries"
) -> list[Query]:
    """The query given on the command line, or those of ``flag FILE|-`` (exactly one)."""
    from odqa.io.queries import read_queries

    if text is not None and queries_file is not None:
        raise OdqaError(f"give either a query argument or {flag} FILE, not both")
    if queries_file is not None:
        return read_queries(queries_file)
    if text is None or not text.strip():
        raise OdqaError(f"no query: give one as an argument or use {flag} FILE (or - for stdin)")
    return [Query("1", text.strip())]


def prepare_output(path: Path | None, flag: str) -> None:
    """Check, before any work, that ``path`` can be written; missing parent folders are made.

    Raises:
        OdqaError: ``path`` is a folder, or it (or its folder) cannot be created or written.
    """
    if path is None:
        return
    if path.is_dir():
        raise OdqaError(f"{flag} '{path}' is a folder: give a file path")
    existed = path.exists()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "ab"):
            pass
    except OSError as exc:
        raise OdqaError(f"cannot write {flag} '{path}': {exc.strerror or exc}") from None
    if not existed:
        path.unlink(missing_ok=True)


@contextmanager
def output_stream(path: Path | None) -> Iterator[TextIO]:
    """``path`` opened for writing (UTF-8, parent folders made), or stdout when None."""
    if path is None:
        yield sys.stdout
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise OdqaError(f"cannot write output file '{path}': {exc.strerror}") from None
    with handle:
        yield handle


def reject_unused(ctx: typer.Context, unused: dict[str, str | None]) -> None:
    """Exit 2 when the user gave an option that does nothing here.

    Args:
        ctx: the command's context (tells given options from defaults).
        unused: parameter name -> why it does nothing in this run (None: it applies).
    """
    for name, reason in unused.items():
        source = ctx.get_parameter_source(name)
        if reason is not None and source is not None and source.name in GIVEN:
            param = next(p for p in ctx.command.params if p.name == name)
            raise typer.BadParameter(reason, ctx=ctx, param=param)


def check_retrievers(names: Iterable[str], option: str = "--retriever") -> None:
    """Exit 2 for a retriever name odqa does not know (before any work starts)."""
    from odqa.index.families import FAMILIES, retriever_names

    known = retriever_names() if option == "--retriever" else tuple(FAMILIES)
    for name in names:
        if name not in known:
            raise typer.BadParameter(
                f"unknown retriever '{name}': choose one of {', '.join(known)}",
                param_hint=f"'{option}'",
            )


def parse_names(value: str) -> tuple[str, ...]:
    """``"bm25, dense"`` -> ``("bm25", "dense")`` (order kept, duplicates dropped)."""
    return tuple(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))


def in_chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of ``items`` of at most ``size`` (none for an empty sequence)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


@contextmanager
def work_progress(total: int, unit: str, chunk: int) -> Iterator[Callable[[int], None]]:
    """An ``advance(n)`` callback with a bar on stderr (rate, time left) when ``total`` spans
    more than one ``chunk``; a single chunk shows nothing."""
    if total <= chunk:
        yield lambda n: None
        return
    from odqa.progress import make_progress

    with make_progress() as progress:
        task = progress.add_task(unit, total=total, unit=unit)
        yield lambda n: progress.update(task, advance=n)


class UnmatchedNotices:
    """Says on stderr which queries found no passage (the first few, then a count)."""

    def __init__(self, retriever: str) -> None:
        self.reason = (
            "no passage shares a term with the query" if retriever == "bm25" else "no passage found"
        )
        self.count = 0

    def add(self, queries: Sequence[Query], results: Sequence[Sequence[Hit]]) -> None:
        """Note the queries of one batch whose result list is empty."""
        for query, hits in zip(queries, results):
            if hits:
                continue
            self.count += 1
            if self.count <= SHOWN_NOTICES:
                err_console.print(
                    f"notice: query {query.id} ({query.text!r}): {self.reason}", markup=False
                )

    def close(self) -> None:
        """The total, when more were found than were shown."""
        if self.count > SHOWN_NOTICES:
            err_console.print(f"notice: {self.count} queries found no passage", markup=False)
