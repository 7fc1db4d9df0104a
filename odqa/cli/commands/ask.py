"""`odqa ask`: answer questions from an index (open-book) or from a model alone (closed-book)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from odqa.cli.commands import _answer_options as opts
from odqa.cli.commands._choices import (
    AnswerFormat,
    AskMode,
    Device,
    Precision,
    ReaderBackend,
    ReaderKind,
    ScoreMode,
)
from odqa.cli.commands._common import (
    RETRIEVER_HELP,
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

ASK_BATCH = 16
"""Questions answered and written at a time: answers stream out while a long file runs."""


def ask_command(
    ctx: typer.Context,
    question: Annotated[
        str | None, typer.Argument(help="The question (or use --questions).")
    ] = None,
    index: Annotated[
        Path | None, typer.Option("--index", "-i", help="Index directory (default: the only one).")
    ] = None,
    mode: Annotated[
        AskMode, typer.Option(help="open-book reads retrieved passages; closed-book needs none.")
    ] = AskMode.open_book,
    retriever: Annotated[str, typer.Option(help=RETRIEVER_HELP)] = "bm25",
    passages: Annotated[int, typer.Option(min=1, help="Passages retrieved and read.")] = 20,
    top: Annotated[int, typer.Option(min=1, help="Answers per question.")] = 5,
    reader: opts.ReaderOption = None,
    reader_kind: opts.ReaderKindOption = ReaderKind.extractive,
    questions: Annotated[
        str | None,
        typer.Option("--questions", help="Questions file (JSONL, TSV, lines) or - for stdin."),
    ] = None,
    fmt: Annotated[AnswerFormat, typer.Option("--format", help="Output format.")] = (
        AnswerFormat.table
    ),
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here.")] = None,
    max_seq_length: opts.MaxSeqLengthOption = 384,
    doc_stride: opts.DocStrideOption = 128,
    max_answer_length: opts.MaxAnswerLengthOption = None,
    score: opts.ScoreOption = ScoreMode.combined,
    retriever_weight: opts.RetrieverWeightOption = 1.0,
    no_answer_threshold: opts.NoAnswerThresholdOption = None,
    phrase_sparse_weight: opts.PhraseSparseWeightOption = None,
    phrase_sparse_passages: opts.PhraseSparsePassagesOption = 5,
    batch_size: Annotated[int, typer.Option(min=1, help="Windows (or questions) per batch.")] = 32,
    device: opts.DeviceOption = Device.auto,
    backend: opts.BackendOption = ReaderBackend.auto,
    precision: opts.PrecisionOption = Precision.auto,
    num_beams: opts.NumBeamsOption = 8,
    max_new_tokens: opts.MaxNewTokensOption = 32,
    prefix: opts.PrefixOption = "",
) -> None:
    """Answer questions with ranked answers and their evidence."""
    from odqa.answering.pipeline import answerer_for, make_answerer
    from odqa.cli.render_answers import write_answers

    with fail_on_error():
        answerer = answerer_for(mode.value, reader_kind.value)
        reject_unused(ctx, unused_options(mode, reader_kind, score))
        check_retrievers([retriever])
        prepare_output(output, "--output")
        batch = gather_queries(question, questions, "--questions")
        settings = opts.settings_from(
            locals(), retriever=retriever, passages=passages, top=top, batch_size=batch_size
        )
        opened = None
        if answerer.needs_index:
            from odqa import load_index

            opened = load_index(resolve_index(index))
        answer = make_answerer(answerer, settings, opened)
        with (
            output_stream(output) as out,
            work_progress(len(batch), "questions", ASK_BATCH) as advance,
        ):
            for part in in_chunks(batch, ASK_BATCH):
                write_answers(answer(list(part)), fmt.value, out)
                out.flush()
                advance(len(part))


def unused_options(
    mode: AskMode, reader_kind: ReaderKind, score: ScoreMode
) -> dict[str, str | None]:
    """Why each option does nothing in this mode (None: it applies), from the answerer's
    settings in the registry."""
    from odqa.answering.pipeline import answerer_for, unused_settings

    answerer = answerer_for(mode.value, reader_kind.value)
    unused = unused_settings(answerer)
    unused["index"] = None if answerer.needs_index else f"{answerer.description} reads no index"
    unused["reader_kind"] = None if mode is AskMode.open_book else (
        f"only --mode open-book has reader kinds, not --mode {mode.value}")
    if unused["retriever_weight"] is None and score is not ScoreMode.combined:
        unused["retriever_weight"] = "only --score combined uses it"
    return unused
