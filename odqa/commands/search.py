"""`odqa search`: ranked passages for one query or a file of queries."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from odqa.commands._choices import Fusion, HitFormat
from odqa.commands._common import (
    fail_on_error,
    gather_queries,
    output_stream,
    resolve_index,
)
from odqa.errors import OdqaError


def search_command(
    query: Annotated[str | None, typer.Argument(help="The query (or use --queries).")] = None,
    index: Annotated[
        Path | None, typer.Option("--index", "-i", help="Index directory (default: the only one).")
    ] = None,
    k: Annotated[int, typer.Option("-k", "--k", min=1, help="Hits per query.")] = 10,
    queries: Annotated[
        str | None,
        typer.Option("--queries", help="Queries file (JSONL, TSV, lines) or - for stdin."),
    ] = None,
    retriever: Annotated[str, typer.Option(help="bm25, dense or hybrid.")] = "bm25",
    fusion: Annotated[
        Fusion | None, typer.Option(help="hybrid: rrf (reciprocal rank, k=60) or linear.")
    ] = None,
    alpha: Annotated[
        float | None,
        typer.Option(min=0.0, max=1.0, help="hybrid linear: weight of the dense scores."),
    ] = None,
    rrf_k: Annotated[
        float | None, typer.Option(min=0.0, help="hybrid rrf: the constant k (default 60).")
    ] = None,
    depth: Annotated[
        int | None,
        typer.Option(min=1, help="hybrid: candidates fetched per side (default max(100, 4k))."),
    ] = None,
    ef_search: Annotated[
        int | None, typer.Option(min=1, help="dense HNSW: search beam width.")
    ] = None,
    nprobe: Annotated[int | None, typer.Option(min=1, help="dense IVF-PQ: lists visited.")] = None,
    fmt: Annotated[HitFormat, typer.Option("--format", help="Output format.")] = HitFormat.table,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here.")] = None,
) -> None:
    """Search an index and print ranked passages."""
    from odqa import load_index
    from odqa.render import write_hits

    with fail_on_error():
        options = retriever_options(
            retriever,
            fusion=fusion.value if fusion else None,
            alpha=alpha,
            rrf_k=rrf_k,
            depth=depth,
            ef_search=ef_search,
            nprobe=nprobe,
        )
        batch = gather_queries(query, queries)
        opened = load_index(resolve_index(index))
        results = opened.search([q.text for q in batch], k=k, retriever=retriever, **options)
        with output_stream(output) as out:
            write_hits(batch, results, fmt.value, out)


def retriever_options(retriever: str, **given: object) -> dict[str, object]:
    """The search options that were given, checked against the retriever they apply to."""
    options = {key: value for key, value in given.items() if value is not None}
    allowed = {"bm25": set(), "dense": {"ef_search", "nprobe"}}.get(retriever)
    extra = sorted(set(options) - allowed) if allowed is not None else []
    if extra:
        flags = ", ".join("--" + name.replace("_", "-") for name in extra)
        raise OdqaError(f"{flags}: not used by --retriever {retriever} (see odqa search --help)")
    return options
