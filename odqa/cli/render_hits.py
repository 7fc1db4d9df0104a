"""Rendering retrieval results: rich tables for people, JSON lines and TREC runs for scripts."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any, TextIO

from rich.table import Table

from odqa.cli.consoles import output_console
from odqa.errors import OdqaError
from odqa.types import Hit, Query

_WHITESPACE = re.compile(r"\s")


def snippet(text: str, width: int = 120) -> str:
    """The first ``width`` characters of ``text`` on one line, with an ellipsis when cut."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1].rstrip() + "…"


def hits_table(query: Query, hits: list[Hit]) -> Table:
    """A table of ranked hits: rank, id, score, title, snippet."""
    table = Table(title=f"[bold]{query.text}[/]", title_justify="left", expand=False)
    table.add_column("rank", justify="right")
    table.add_column("id", style="cyan", no_wrap=True)
    table.add_column("score", justify="right")
    table.add_column("title", style="green")
    table.add_column("snippet")
    for hit in hits:
        table.add_row(str(hit.rank), hit.id, f"{hit.score:.4f}", hit.title, snippet(hit.text))
    return table


def write_hits(queries: list[Query], results: list[list[Hit]], fmt: str, out: TextIO) -> None:
    """Write ``results`` to ``out`` as ``table``, ``jsonl`` or ``trec``."""
    if fmt == "table":
        console = output_console(out)
        for query, hits in zip(queries, results):
            console.print(hits_table(query, hits))
        return
    writer = {"jsonl": jsonl_lines, "trec": trec_lines}[fmt]
    for line in writer(queries, results):
        out.write(line + "\n")


def jsonl_lines(queries: list[Query], results: list[list[Hit]]) -> Iterable[str]:
    """One JSON object per query: query_id, query, hits."""
    for query, hits in zip(queries, results):
        record: dict[str, Any] = {
            "query_id": query.id,
            "query": query.text,
            "hits": [hit.to_dict() for hit in hits],
        }
        yield json.dumps(record, ensure_ascii=False)


def check_trec_id(value: str, what: str) -> None:
    """Raise :class:`OdqaError` when ``value`` cannot be a TREC run field (it holds whitespace).

    ``what`` names the field in the message, e.g. ``"query id"``.
    """
    if not value or _WHITESPACE.search(value):
        raise OdqaError(
            f"{what} {value!r} contains whitespace, which TREC runs cannot carry (a run line is "
            "split on spaces): use --format jsonl, or ids without spaces"
        )


def trec_lines(queries: list[Query], results: list[list[Hit]], tag: str = "odqa") -> Iterable[str]:
    """TREC run lines: ``qid Q0 docid rank score tag``.

    Raises:
        OdqaError: a query or passage id holds whitespace (the line would not parse).
    """
    for query in queries:
        check_trec_id(query.id, "query id")
    for query, hits in zip(queries, results):
        for hit in hits:
            check_trec_id(hit.id, "passage id")
        for hit in hits:
            yield f"{query.id} Q0 {hit.id} {hit.rank} {hit.score:.6f} {tag}"
