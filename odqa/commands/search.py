"""`odqa search`: ranked passages for one query or a file of queries."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from odqa.commands._choices import Fusion, HitFormat
from odqa.commands._common import (
    UnmatchedNotices,
    check_retrievers,
    fail_on_error,
    gather_queries,
    in_chunks,
    output_stream,
    prepare_output,
    reject_unused,
    resolve_index,
    work_progress,
)

SEARCH_BATCH = 1000
"""Queries searched and written at a time: results stream out while a long file runs."""


def search_command(
    ctx: typer.Context,
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
    threads: Annotated[
        int | None,
        typer.Option(min=1, help="bm25: threads sharing a batch of queries (default: all cores)."),
    ] = None,
    fmt: Annotated[HitFormat, typer.Option("--format", help="Output format.")] = HitFormat.table,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here.")] = None,
) -> None:
    """Search an index and print ranked passages."""
    from odqa import load_index
    from odqa.render import check_trec_id, write_hits

    with fail_on_error():
        check_retrievers([retriever])
        reject_unused(ctx, unused_options(retriever, fusion))
        options = retriever_options(
            fusion=fusion.value if fusion else None,
            alpha=alpha,
            rrf_k=rrf_k,
            depth=depth,
            ef_search=ef_search,
            nprobe=nprobe,
            threads=threads,
        )
        prepare_output(output, "--output")
        batch = gather_queries(query, queries)
        trec = fmt is HitFormat.trec
        for q in batch if trec else []:
            check_trec_id(q.id, "query id")
        opened = load_index(resolve_index(index))
        reject_unused(ctx, unused_by_index(opened.manifest))
        spaced = opened.manifest["corpus"].get("whitespace_id")
        if trec and spaced:
            check_trec_id(spaced, "passage id")
        notices = UnmatchedNotices(retriever)
        with (
            output_stream(output) as out,
            work_progress(len(batch), "queries", SEARCH_BATCH) as advance,
        ):
            for part in in_chunks(batch, SEARCH_BATCH):
                results = opened.search([q.text for q in part], k=k, retriever=retriever, **options)
                write_hits(list(part), results, fmt.value, out)
                out.flush()
                notices.add(part, results)
                advance(len(part))
        notices.close()


def retriever_options(**given: object) -> dict[str, object]:
    """The search options that were given (None means "not given")."""
    return {key: value for key, value in given.items() if value is not None}


def unused_options(retriever: str, fusion: Fusion | None) -> dict[str, str | None]:
    """Why each search option does nothing with ``retriever`` and ``fusion`` (None: it works)."""
    hybrid = None if retriever == "hybrid" else f"only --retriever hybrid uses it, not {retriever}"
    dense = None if retriever in ("dense", "hybrid") else (
        f"it tunes dense search; --retriever {retriever} does not use it"
    )
    linear = fusion is Fusion.linear
    return {
        "fusion": hybrid,
        "depth": hybrid,
        "alpha": hybrid or (None if linear else "it weighs --fusion linear; rrf does not use it"),
        "rrf_k": hybrid or ("it is the rrf constant; --fusion linear does not use it" if linear
                            else None),
        "ef_search": dense,
        "nprobe": dense,
        "threads": None if retriever == "bm25" else (
            f"only --retriever bm25 uses it, not {retriever}"
        ),
    }


def unused_by_index(manifest: dict) -> dict[str, str | None]:
    """Why each dense search option does nothing for the FAISS index kind this index has."""
    kind = manifest.get("dense", {}).get("faiss", {}).get("kind")
    if kind is None:
        return {}
    return {
        option: None if kind == needed else f"it tunes {needed} search; this index is {kind}"
        for option, needed in (("ef_search", "hnsw"), ("nprobe", "ivfpq"))
    }
