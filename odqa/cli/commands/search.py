"""`odqa search`: ranked passages for one query or a file of queries."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from odqa.cli.commands._choices import Fusion, HitFormat
from odqa.cli.commands._common import (
    RETRIEVER_HELP,
    UnmatchedNotices,
    check_retrievers,
    fail_on_error,
    gather_queries,
    in_chunks,
    output_stream,
    parse_names,
    prepare_output,
    reject_unused,
    resolve_index,
    work_progress,
)

if TYPE_CHECKING:
    from odqa.index.manifest import Manifest

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
    retriever: Annotated[str, typer.Option(help=RETRIEVER_HELP)] = "bm25",
    fuse: Annotated[
        str | None,
        typer.Option(help="hybrid: families to fuse, comma-separated (default bm25,dense)."),
    ] = None,
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
    from odqa.cli.render_hits import check_trec_id, write_hits

    with fail_on_error():
        check_retrievers([retriever])
        fused = parse_names(fuse) if fuse is not None else None
        check_retrievers(fused or [], "--fuse")
        reject_unused(ctx, unused_options(retriever, fusion, fused))
        options = retriever_options(
            fuse=fused,
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
        spaced = opened.manifest.corpus.whitespace_id
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


SEARCH_FAMILY_OPTIONS = ("ef_search", "nprobe", "threads")
"""`odqa search` options that tune one family's retriever (see Family.search_options)."""


def unused_options(
    retriever: str, fusion: Fusion | None, fused: tuple[str, ...] | None = None
) -> dict[str, str | None]:
    """Why each search option does nothing with ``retriever`` and ``fusion`` (None: it works).

    Which family uses which option comes from the registry; with ``hybrid``, an option works
    when one of the fused families (``fused``, else any) takes it.
    """
    from odqa.index.families import FAMILIES, HYBRID

    is_hybrid = retriever == HYBRID
    hybrid = None if is_hybrid else f"only --retriever hybrid uses it, not {retriever}"
    linear = fusion is Fusion.linear
    unused: dict[str, str | None] = {
        "fuse": hybrid,
        "fusion": hybrid,
        "depth": hybrid,
        "alpha": hybrid or (None if linear else "it weighs --fusion linear; rrf does not use it"),
        "rrf_k": hybrid or ("it is the rrf constant; --fusion linear does not use it" if linear
                            else None),
    }
    if is_hybrid and fused is not None and len(fused) != 2 and linear:
        unused["alpha"] = f"it weighs the second of two fused families, not of {len(fused)}"
    active = (fused or tuple(FAMILIES)) if is_hybrid else (retriever,)
    for option in SEARCH_FAMILY_OPTIONS:
        users = [name for name, f in FAMILIES.items() if option in f.search_options]
        unused[option] = None if set(users) & set(active) else (
            f"only --retriever {' or '.join(users)} uses it, not {retriever}"
            + (f" of {','.join(active)}" if is_hybrid else "")
        )
    return unused


def unused_by_index(manifest: Manifest) -> dict[str, str | None]:
    """Why each dense search option does nothing for the FAISS index kind this index has."""
    if "dense" not in manifest.families:
        return {}
    kind = manifest.section("dense")["faiss"]["kind"]
    return {
        option: None if kind == needed else f"it tunes {needed} search; this index is {kind}"
        for option, needed in (("ef_search", "hnsw"), ("nprobe", "ivfpq"))
    }
