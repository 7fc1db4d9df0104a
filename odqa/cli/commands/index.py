"""`odqa index`: build an index directory from one or more corpus inputs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from odqa.cli.commands._choices import (
    Backend,
    BM25Variant,
    Device,
    ExecutorName,
    FaissKind,
    LongPassages,
    PhraseIndexKind,
    Pooling,
    Precision,
    Stemmer,
    Stopwords,
)
from odqa.cli.commands._common import (
    default_index_root,
    err_console,
    fail_on_error,
    reject_unused,
)
from odqa.io.corpus import CorpusFormat
from odqa.retrieval.bm25_formulas import DEFAULT_DELTA
from odqa.runtime.hub import DEFAULT_DENSE_ENCODER

if TYPE_CHECKING:
    from odqa.index.manifest import Manifest

RESUME_CHUNK = 1024
"""Passages per saved dense chunk: an interrupted build keeps all chunks finished before."""


def default_name(inputs: list[Path]) -> str:
    """Index name from the first input: its file name without extensions."""
    name = inputs[0].resolve().name
    for suffix in (".gz", ".jsonl", ".json", ".tsv", ".txt", ".ndjson"):
        name = name.removesuffix(suffix)
    return name or "index"


def check_name(name: str) -> None:
    """Exit 2 unless ``name`` is a plain folder name (no path: it goes under the index root)."""
    if name in ("", ".", "..") or "/" in name or "\\" in name or name != name.strip():
        raise typer.BadParameter(
            f"'{name}' is not a plain name: --name NAME builds the index folder NAME under "
            "the index root; use --out PATH for a path",
            param_hint="'--name'",
        )


BM25_OPTIONS = ("bm25", "k1", "b", "delta", "epsilon", "stopwords", "stemmer")
DENSE_OPTIONS = (
    "encoder", "query_encoder", "pooling", "normalize", "query_prefix", "passage_prefix",
    "max_length", "long_passages", "backend", "precision", "faiss",
)  # fmt: skip
ENCODING_OPTIONS = ("batch_size", "device", "resume_chunk")
PHRASE_OPTIONS = ("phrase_encoder", "phrase_index", "phrase_filter_threshold")
FAISS_OPTIONS = {
    "hnsw_m": "hnsw", "ef_construction": "hnsw", "nlist": "ivfpq", "pq_m": "ivfpq",
    "pq_nbits": "ivfpq",
}  # fmt: skip


OPTION_FAMILIES = {
    **{name: ("bm25",) for name in BM25_OPTIONS},
    **{name: ("dense",) for name in DENSE_OPTIONS},
    **{name: ("phrase",) for name in PHRASE_OPTIONS},
    **{name: ("dense", "phrase") for name in ENCODING_OPTIONS},
}
"""The families each build option configures."""


def unused_options(
    families: tuple[str, ...], passage_words: int, faiss: FaissKind, bm25: BM25Variant
) -> dict[str, str | None]:
    """Why each build option does nothing with these choices (None: it applies)."""
    unused: dict[str, str | None] = {
        name: None
        if set(users) & set(families)
        else (f"only a {' or '.join(users)} index (--retrievers {' or '.join(users)}) uses it")
        for name, users in OPTION_FAMILIES.items()
    }
    no_bm25, no_dense = unused["bm25"], unused["encoder"]
    for name, kind in FAISS_OPTIONS.items():
        unused[name] = no_dense or (
            None if faiss.value == kind else f"only --faiss {kind} uses it, not {faiss.value}"
        )
    if bm25.value not in DEFAULT_DELTA:
        unused["delta"] = no_bm25 or f"only --bm25 {'/'.join(DEFAULT_DELTA)} use it"
    if bm25 is not BM25Variant.okapi:
        unused["epsilon"] = no_bm25 or "only --bm25 okapi uses it"
    unused["passage_stride"] = (
        "--passage-words 0 keeps documents whole, so there is no stride"
        if passage_words == 0
        else None
    )
    return unused


def index_command(
    ctx: typer.Context,
    corpus: Annotated[
        list[Path], typer.Argument(help="Corpus files or folders (several allowed).")
    ],
    out: Annotated[Path | None, typer.Option("--out", help="Index directory to write.")] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="Index name under the default index folder.")
    ] = None,
    fmt: Annotated[
        CorpusFormat, typer.Option("--format", help="Corpus format.", rich_help_panel="Corpus")
    ] = (CorpusFormat.auto),
    id_field: Annotated[
        str, typer.Option(help="JSON lines: id field.", rich_help_panel="Corpus")
    ] = "id",
    title_field: Annotated[
        str, typer.Option(help="JSON lines: title field.", rich_help_panel="Corpus")
    ] = "title",
    text_field: Annotated[
        str, typer.Option(help="JSON lines: text field.", rich_help_panel="Corpus")
    ] = "text",
    passage_words: Annotated[
        int,
        typer.Option(
            min=0, help="Words per passage (0 keeps documents whole).", rich_help_panel="Corpus"
        ),
    ] = 100,
    passage_stride: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Words between passage starts (default: no overlap).",
            rich_help_panel="Corpus",
        ),
    ] = None,
    retrievers: Annotated[
        str, typer.Option(help="Retriever families to build, comma-separated: bm25,dense,phrase.")
    ] = "bm25,dense",
    bm25: Annotated[
        BM25Variant, typer.Option(help="BM25 variant.", rich_help_panel="BM25")
    ] = BM25Variant.lucene,
    k1: Annotated[float, typer.Option(help="BM25 k1.", rich_help_panel="BM25")] = 0.9,
    b: Annotated[float, typer.Option(help="BM25 b.", rich_help_panel="BM25")] = 0.4,
    delta: Annotated[
        float | None,
        typer.Option(help="BM25L/BM25+ delta (default 0.5 / 1.0).", rich_help_panel="BM25"),
    ] = None,
    epsilon: Annotated[
        float, typer.Option(help="okapi: idf floor as a share of mean idf.", rich_help_panel="BM25")
    ] = 0.25,
    stopwords: Annotated[
        Stopwords, typer.Option(help="Stopword list.", rich_help_panel="BM25")
    ] = Stopwords.en,
    stemmer: Annotated[
        Stemmer, typer.Option(help="Stemmer.", rich_help_panel="BM25")
    ] = Stemmer.english,
    encoder: Annotated[
        str,
        typer.Option(
            help="Dense passage encoder: sentence-transformers or HF model (hub id or folder).",
            rich_help_panel="Dense",
        ),
    ] = DEFAULT_DENSE_ENCODER,
    query_encoder: Annotated[
        str | None,
        typer.Option(help="Separate question encoder (DPR pairs).", rich_help_panel="Dense"),
    ] = None,
    pooling: Annotated[
        Pooling | None,
        typer.Option(
            help="Pooling (default: as the model says, else mean).", rich_help_panel="Dense"
        ),
    ] = None,
    normalize: Annotated[
        bool | None,
        typer.Option(
            "--normalize/--no-normalize",
            help="L2-normalise (default: as the model says).",
            rich_help_panel="Dense",
        ),
    ] = None,
    query_prefix: Annotated[
        str, typer.Option(help='Text before each query, e.g. "query: ".', rich_help_panel="Dense")
    ] = "",
    passage_prefix: Annotated[
        str, typer.Option(help="Text before each passage.", rich_help_panel="Dense")
    ] = "",
    max_length: Annotated[
        int | None,
        typer.Option(
            min=2, help="Tokens per text (default: the model's).", rich_help_panel="Dense"
        ),
    ] = None,
    long_passages: Annotated[
        LongPassages,
        typer.Option(
            help="Passages longer than --max-length tokens: windows (overlapping windows, each "
            "with the title; a passage scores its best window) or truncate (the beginning only).",
            rich_help_panel="Dense",
        ),
    ] = LongPassages.windows,
    batch_size: Annotated[
        int,
        typer.Option(
            min=1, help="Texts per encoder batch.", rich_help_panel="Encoding (dense and phrase)"
        ),
    ] = 64,
    device: Annotated[
        Device,
        typer.Option(
            help="Encoder device (fp16 on CUDA).", rich_help_panel="Encoding (dense and phrase)"
        ),
    ] = Device.auto,
    backend: Annotated[
        Backend,
        typer.Option(
            help="Encoder runtime: torch, onnx or int8 (ONNX Runtime, CPU), openvino (CPU, "
                 "bf16 on AMX/AVX512-BF16 CPUs; pip install openvino).",
            rich_help_panel="Dense",
        ),
    ] = Backend.torch,
    precision: Annotated[
        Precision,
        typer.Option(
            help="Encoder precision (torch, openvino): auto = fp16 on CUDA, bf16 on CPUs with "
                 "AMX or AVX512-BF16.",
            rich_help_panel="Dense",
        ),
    ] = Precision.auto,
    faiss: Annotated[
        FaissKind, typer.Option(help="FAISS index kind.", rich_help_panel="Dense")
    ] = FaissKind.flat,
    hnsw_m: Annotated[
        int, typer.Option(min=2, help="HNSW: links per node.", rich_help_panel="Dense")
    ] = 32,
    ef_construction: Annotated[
        int, typer.Option(min=1, help="HNSW: build beam width.", rich_help_panel="Dense")
    ] = 200,
    nlist: Annotated[
        int | None,
        typer.Option(
            min=1, help="IVF-PQ: lists (default about 4 sqrt(n)).", rich_help_panel="Dense"
        ),
    ] = None,
    pq_m: Annotated[
        int | None,
        typer.Option(
            min=1, help="IVF-PQ: sub-quantisers (default dim / 4).", rich_help_panel="Dense"
        ),
    ] = None,
    pq_nbits: Annotated[
        int, typer.Option(min=1, max=16, help="IVF-PQ: bits per code.", rich_help_panel="Dense")
    ] = 8,
    phrase_encoder: Annotated[
        str,
        typer.Option(
            help="Phrase model (odqa's or DensePhrases layout; id or folder).",
            rich_help_panel="Phrase",
        ),
    ] = "odqa/phrase-minilm",
    phrase_index: Annotated[
        PhraseIndexKind,
        typer.Option(help="Phrase vectors in FAISS: flat, sq8 or ivfpq.", rich_help_panel="Phrase"),
    ] = PhraseIndexKind.sq8,
    phrase_filter_threshold: Annotated[
        float,
        typer.Option(
            help="Keep tokens whose start/end filter logit reaches this.", rich_help_panel="Phrase"
        ),
    ] = -4.0,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing odqa index (nothing else).")
    ] = False,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue an interrupted build (keeps encoded chunks).")
    ] = False,
    resume_chunk: Annotated[
        int,
        typer.Option(
            min=1,
            help="Dense: passages encoded per saved chunk (what --resume keeps at most).",
            rich_help_panel="Encoding (dense and phrase)",
        ),
    ] = RESUME_CHUNK,
    shard: Annotated[
        str | None,
        typer.Option(
            help="Build only shard I of N (I from 0), e.g. 0/4; join them with `odqa merge`.",
            rich_help_panel="Scale-out",
        ),
    ] = None,
    executor: Annotated[
        ExecutorName,
        typer.Option(
            help="Where the work units run: this process, worker processes here (pool), "
            "or a Dask cluster.",
            rich_help_panel="Scale-out",
        ),
    ] = ExecutorName.process,
    scheduler: Annotated[
        str | None,
        typer.Option(
            help="Dask: scheduler address (tcp://host:8786) or local:N worker processes "
            "(default local:2); pool: local:N (default one per core).",
            rich_help_panel="Scale-out",
        ),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")
    ] = False,
) -> None:
    """Build an index (passages + BM25, and dense when asked) from corpus files."""
    from odqa.index.build import BuildOptions, ShardSpec, build_index, directory_size
    from odqa.index.executors import make_executor
    from odqa.io.corpus import CorpusOptions
    from odqa.phrase.index import PhraseOptions
    from odqa.progress import make_progress
    from odqa.retrieval.bm25_formulas import BM25Params
    from odqa.retrieval.dense_options import DenseOptions
    from odqa.text import Analyzer

    with fail_on_error():
        if out is not None and name is not None:
            raise typer.BadParameter("give --out or --name, not both")
        if name is not None:
            check_name(name)
        target = out or default_index_root() / (name or default_name(corpus))
        families = tuple(r.strip() for r in retrievers.split(",") if r.strip())
        reject_unused(ctx, unused_options(families, passage_words, faiss, bm25))
        settings = {
            "dense": lambda: DenseOptions(
                encoder=encoder,
                query_encoder=query_encoder,
                pooling=pooling.value if pooling else None,
                normalize=normalize,
                query_prefix=query_prefix,
                passage_prefix=passage_prefix,
                max_length=max_length,
                long_passages=long_passages.value,
                batch_size=batch_size,
                device=device.value,
                backend=backend.value,
                precision=precision.value,
                faiss=faiss.value,
                hnsw_m=hnsw_m,
                ef_construction=ef_construction,
                nlist=nlist,
                pq_m=pq_m,
                pq_nbits=pq_nbits,
                chunk_size=resume_chunk,
            ),
            "phrase": lambda: PhraseOptions(
                encoder=phrase_encoder,
                filter_threshold=phrase_filter_threshold,
                index=phrase_index.value,
                batch_size=batch_size,
                chunk_size=resume_chunk,
                device=device.value,
            ),
        }
        chosen = {name: make() for name, make in settings.items() if name in families}
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
            dense=chosen.get("dense"),
            phrase=chosen.get("phrase"),
        )
        shard_spec = ShardSpec.parse(shard) if shard is not None else None
        runner = make_executor(executor.value, scheduler)
        try:
            with make_progress(enabled=not quiet) as progress:
                manifest = build_index(
                    corpus, target, options, force=force, resume=resume, progress=progress,
                    executor=runner, shard=shard_spec,
                )
        finally:
            runner.close()
        if not quiet:
            err_console.print(summary_table(target, manifest, directory_size(target)))


def summary_table(path: Path, manifest: Manifest, size: int) -> Table:
    """The end-of-build summary (each family adds its own rows)."""
    from odqa.index.families import FAMILIES

    corpus = manifest.corpus
    table = Table(title=f"index written to {path}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("retrievers", ", ".join(manifest.kinds))
    table.add_row("documents", f"{corpus.documents:,}")
    table.add_row("passages", f"{corpus.passages:,}")
    if manifest.shard is not None:
        shard = manifest.shard
        table.add_row("shard", f"{shard.index}/{shard.count}: passages {shard.start:,} to "
                      f"{shard.stop - 1:,} of {shard.total:,}")
    table.add_row("empty documents skipped", f"{corpus.empty_skipped:,}")
    for kind in manifest.kinds:
        for label, value in FAMILIES[kind].summary_rows(manifest.section(kind)):
            table.add_row(label, value)
    table.add_row("size on disk", f"{size / 1e6:,.1f} MB")
    table.add_row("build time", f"{manifest.build.seconds:.1f} s")
    return table
