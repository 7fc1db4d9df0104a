"""`odqa index`: build an index directory from one or more corpus inputs."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from odqa.commands._common import default_index_root, err_console, fail_on_error
from odqa.corpus import CorpusFormat


class BM25Variant(str, Enum):
    lucene = "lucene"
    okapi = "okapi"
    bm25l = "bm25l"
    bm25plus = "bm25plus"
    robertson = "robertson"


class Stopwords(str, Enum):
    en = "en"
    none = "none"


class Stemmer(str, Enum):
    english = "english"
    none = "none"


def default_name(inputs: list[Path]) -> str:
    """Index name from the first input: its file name without extensions."""
    name = inputs[0].resolve().name
    for suffix in (".gz", ".jsonl", ".json", ".tsv", ".txt", ".ndjson"):
        name = name.removesuffix(suffix)
    return name or "index"


def index_command(
    corpus: Annotated[
        list[Path], typer.Argument(help="Corpus files or folders (several allowed).")
    ],
    out: Annotated[Path | None, typer.Option("--out", help="Index directory to write.")] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="Index name under the default index folder.")
    ] = None,
    fmt: Annotated[CorpusFormat, typer.Option("--format", help="Corpus format.")] = (
        CorpusFormat.auto
    ),
    id_field: Annotated[str, typer.Option(help="JSON lines: id field.")] = "id",
    title_field: Annotated[str, typer.Option(help="JSON lines: title field.")] = "title",
    text_field: Annotated[str, typer.Option(help="JSON lines: text field.")] = "text",
    passage_words: Annotated[
        int, typer.Option(min=0, help="Words per passage (0 keeps documents whole).")
    ] = 100,
    passage_stride: Annotated[
        int | None, typer.Option(min=1, help="Words between passage starts (default: no overlap).")
    ] = None,
    retrievers: Annotated[
        str, typer.Option(help="Retriever families to build, comma-separated: bm25,dense.")
    ] = "bm25",
    bm25: Annotated[BM25Variant, typer.Option(help="BM25 variant.")] = BM25Variant.lucene,
    k1: Annotated[float, typer.Option(help="BM25 k1.")] = 0.9,
    b: Annotated[float, typer.Option(help="BM25 b.")] = 0.4,
    delta: Annotated[
        float | None, typer.Option(help="BM25L/BM25+ delta (default 0.5 / 1.0).")
    ] = None,
    epsilon: Annotated[float, typer.Option(help="okapi: idf floor as a share of mean idf.")] = 0.25,
    stopwords: Annotated[Stopwords, typer.Option(help="Stopword list.")] = Stopwords.en,
    stemmer: Annotated[Stemmer, typer.Option(help="Stemmer.")] = Stemmer.english,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing index.")] = False,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue an interrupted build (keeps encoded chunks).")
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")
    ] = False,
) -> None:
    """Build an index (passages + BM25, and dense when asked) from corpus files."""
    from odqa.build import BuildOptions, build_index, directory_size
    from odqa.corpus import CorpusOptions
    from odqa.progress import make_progress
    from odqa.retrieval.bm25_formulas import BM25Params
    from odqa.text import Analyzer

    with fail_on_error():
        if out is not None and name is not None:
            raise typer.BadParameter("give --out or --name, not both")
        target = out or default_index_root() / (name or default_name(corpus))
        families = tuple(r.strip() for r in retrievers.split(",") if r.strip())
        options = BuildOptions(
            corpus=CorpusOptions(
                format=fmt.value,
                id_field=id_field,
                title_field=title_field,
                text_field=text_field,
                passage_words=passage_words,
                passage_stride=passage_stride,
            ),
            retrievers=families,
            bm25=BM25Params(variant=bm25.value, k1=k1, b=b, delta=delta, epsilon=epsilon),
            analyzer=Analyzer(stopwords=stopwords.value, stemmer=stemmer.value),
            dense=None,
        )
        with make_progress(enabled=not quiet) as progress:
            manifest = build_index(
                corpus, target, options, force=force, resume=resume, progress=progress
            )
        if not quiet:
            err_console.print(summary_table(target, manifest, directory_size(target)))


def summary_table(path: Path, manifest: dict, size: int) -> Table:
    """The end-of-build summary."""
    corpus = manifest["corpus"]
    table = Table(title=f"index written to {path}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("retrievers", ", ".join(manifest["kinds"]))
    table.add_row("documents", f"{corpus['documents']:,}")
    table.add_row("passages", f"{corpus['passages']:,}")
    table.add_row("empty documents skipped", f"{corpus['empty_skipped']:,}")
    if "bm25" in manifest:
        table.add_row("vocabulary", f"{manifest['bm25']['vocabulary_size']:,}")
        table.add_row("BM25 non-zeros", f"{manifest['bm25']['nonzeros']:,}")
    table.add_row("size on disk", f"{size / 1e6:,.1f} MB")
    table.add_row("build time", f"{manifest['build_seconds']:.1f} s")
    return table
