"""`odqa ask`: answer questions from an index (open-book) or from a model alone (closed-book)."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Annotated

import typer

from odqa.commands._choices import (
    AnswerFormat,
    AskMode,
    Device,
    Precision,
    ReaderBackend,
    ReaderKind,
    ScoreMode,
)
from odqa.commands._common import (
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
    reader: Annotated[
        str | None,
        typer.Option(
            help="Model (hub id or folder): extractive reader, or generator in closed-book."
        ),
    ] = None,
    reader_kind: Annotated[
        ReaderKind,
        typer.Option(help="Open-book: extract spans, or generate answers with a seq2seq reader."),
    ] = ReaderKind.extractive,
    questions: Annotated[
        str | None,
        typer.Option("--questions", help="Questions file (JSONL, TSV, lines) or - for stdin."),
    ] = None,
    fmt: Annotated[AnswerFormat, typer.Option("--format", help="Output format.")] = (
        AnswerFormat.table
    ),
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write here.")] = None,
    max_seq_length: Annotated[int, typer.Option(min=8, help="Tokens per reader window.")] = 384,
    doc_stride: Annotated[int, typer.Option(min=0, help="Tokens shared by windows.")] = 128,
    max_answer_length: Annotated[
        int | None,
        typer.Option(min=1, help="Longest answer in tokens (default: 30, phrase mode 10)."),
    ] = None,
    score: Annotated[
        ScoreMode, typer.Option(help="Rank by reader score, or combined with the retriever's.")
    ] = ScoreMode.reader,
    retriever_weight: Annotated[
        float, typer.Option(help="Weight of the [0, 1]-scaled retriever score (--score combined).")
    ] = 1.0,
    no_answer_threshold: Annotated[
        float | None,
        typer.Option(help="SQuAD 2.0 readers: keep spans beating the no-answer score by more."),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Windows (or questions) per batch.")] = 32,
    device: Annotated[Device, typer.Option(help="auto, cpu or cuda.")] = Device.auto,
    backend: Annotated[
        ReaderBackend,
        typer.Option(help="Reader runtime: auto (onnx on CPU, else torch), torch, onnx, int8."),
    ] = ReaderBackend.auto,
    precision: Annotated[
        Precision, typer.Option(help="Reader precision (torch): auto = fp16 on CUDA, else fp32.")
    ] = Precision.auto,
    num_beams: Annotated[int, typer.Option(min=1, help="Closed-book: beams.")] = 8,
    max_new_tokens: Annotated[int, typer.Option(min=1, help="Closed-book: answer tokens.")] = 32,
    prefix: Annotated[str, typer.Option(help="Closed-book: text put before each question.")] = "",
) -> None:
    """Answer questions with ranked answers and their evidence."""
    from odqa.render_answers import write_answers

    with fail_on_error():
        reject_unused(ctx, unused_options(mode, reader_kind, score))
        check_retrievers([retriever])
        prepare_output(output, "--output")
        batch = gather_queries(question, questions, "--questions")
        if mode is AskMode.closed_book:
            from odqa.answering.closed_book import answer_closed_book

            answer = partial(
                answer_closed_book,
                model=reader,
                top=top,
                num_beams=num_beams,
                max_new_tokens=max_new_tokens,
                prefix=prefix,
                batch_size=batch_size,
                device=device.value,
            )
        elif mode is AskMode.phrase:
            from odqa import load_index
            from odqa.phrase.answer import answer_phrase
            from odqa.phrase.search import DEFAULT_MAX_ANSWER_LENGTH

            answer = partial(
                answer_phrase,
                load_index(resolve_index(index)),
                top=top,
                max_answer_length=max_answer_length or DEFAULT_MAX_ANSWER_LENGTH,
                device=device.value,
            )
        elif reader_kind is ReaderKind.generative:
            from odqa import load_index
            from odqa.answering.open_book_generative import answer_open_book_generative

            answer = partial(
                answer_open_book_generative,
                load_index(resolve_index(index)),
                retriever=retriever,
                passages=passages,
                top=top,
                model=reader,
                num_beams=num_beams,
                max_new_tokens=max_new_tokens,
                batch_size=batch_size,
                device=device.value,
            )
        else:
            from odqa import load_index
            from odqa.answering.open_book import answer_open_book

            answer = partial(
                answer_open_book,
                load_index(resolve_index(index)),
                retriever=retriever,
                passages=passages,
                top=top,
                reader=reader,
                max_seq_length=max_seq_length,
                doc_stride=doc_stride,
                **({"max_answer_length": max_answer_length} if max_answer_length else {}),
                score=score.value,
                retriever_weight=retriever_weight,
                no_answer_threshold=no_answer_threshold,
                batch_size=batch_size,
                device=device.value,
                backend=backend.value,
                precision=precision.value,
            )
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
    """Why each option does nothing in this mode (None: it applies)."""
    closed = mode is AskMode.closed_book
    phrase = "--mode phrase answers from the phrase index, with no reader" if (
        mode is AskMode.phrase) else None
    generative = reader_kind is ReaderKind.generative
    no_passages = "--mode closed-book reads no passages" if closed else None
    extractive = no_passages or phrase or (
        "--reader-kind generative does not use it" if generative else None)
    generation = None if closed or (generative and not phrase) else (
        "only generation (--mode closed-book or --reader-kind generative) uses it"
    )
    combined = None if score is ScoreMode.combined else "only --score combined uses it"
    return {
        "index": no_passages,
        "retriever": no_passages or phrase,
        "passages": no_passages or phrase,
        "reader": phrase,
        "reader_kind": no_passages or phrase,
        "batch_size": phrase,
        "max_seq_length": extractive,
        "doc_stride": extractive,
        "max_answer_length": no_passages or (None if phrase else extractive),
        "score": extractive,
        "retriever_weight": extractive or combined,
        "no_answer_threshold": extractive,
        "backend": extractive,
        "precision": extractive,
        "num_beams": generation,
        "max_new_tokens": generation,
        "prefix": None if closed else "only --mode closed-book uses it",
    }
