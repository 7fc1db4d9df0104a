"""Open-book generation: a seq2seq reader writes the answer from the retrieved passages.

The input is ``"question: <question> context: <title>: <text> <title>: <text> ..."`` over the
retrieved passages, best first, truncated to the reader's input length (512 tokens by default),
so only the first few passages of a long list are read. Answers are ranked like closed-book
ones: distinct after normalisation, by sequence log-probability, with the probability mass of
the beams merged into an answer as its confidence (see :mod:`odqa.readers.generative`). A
generated answer is free text; when it occurs in a retrieved passage (the best-ranked one wins,
exact case first) the answer carries that passage and the span, and its text is the span.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from odqa.errors import OdqaError
from odqa.readers.generative import GenerationParams, Seq2SeqReader
from odqa.readers.merge import passage_fields
from odqa.types import Answer, Hit, Query, QuestionAnswers

DEFAULT_GENERATIVE_READER = "google/flan-t5-base"
MODE = "generative"


def generative_input(question: str, hits: list[Hit]) -> str:
    """``question: ... context: ...`` with each passage as ``title: text``, best first."""
    context = " ".join(f"{h.title}: {h.text}" if h.title else h.text for h in hits)
    return f"question: {question} context: {context}"


def locate(answer: Answer, hits: list[Hit]) -> Answer:
    """``answer`` with the passage fields of the best-ranked hit whose text contains it (exact
    case first, then ignoring case; the text becomes the passage's span), else unchanged."""
    needle = answer.text.strip()
    if not needle:
        return answer
    for fold in (False, True):
        for hit in hits:
            haystack = hit.text.lower() if fold else hit.text
            start = haystack.find(needle.lower() if fold else needle)
            if start >= 0:
                fields = passage_fields(hit, start, start + len(needle))
                return dataclasses.replace(answer, **fields)
    return answer


def read_hits_generative(
    questions: list[Query],
    hits: list[list[Hit]],
    *,
    model: str | None = None,
    top: int = 5,
    num_beams: int = 8,
    max_new_tokens: int = 32,
    batch_size: int = 16,
    device: str = "auto",
    max_input_tokens: int = 512,
) -> list[QuestionAnswers]:
    """The reading half of :func:`answer_open_book_generative`, for hits already retrieved."""
    params = GenerationParams(num_beams, max_new_tokens, top, batch_size, max_input_tokens)
    reader = Seq2SeqReader(model or DEFAULT_GENERATIVE_READER, params, device=device)
    if not questions:
        return []
    inputs = [generative_input(q.text, hs) for q, hs in zip(questions, hits, strict=True)]
    return [
        QuestionAnswers(q.id, q.text, MODE, [locate(a, hs) for a in answers])
        for q, hs, answers in zip(questions, hits, reader.answer(inputs), strict=True)
    ]


def answer_open_book_generative(
    index: Any,
    questions: list[Query],
    *,
    retriever: str = "bm25",
    passages: int = 5,
    top: int = 5,
    model: str | None = None,
    retriever_options: dict[str, Any] | None = None,
    **generation: Any,
) -> list[QuestionAnswers]:
    """Retrieve ``passages`` per question from ``index`` and generate answers from them.

    Args:
        index: an opened :class:`odqa.index.store.Index`.
        questions: the questions (ids are kept in the results).
        retriever: ``bm25``, ``dense`` or ``hybrid`` (as the index allows).
        passages: passages retrieved and put in the context, best first.
        top: distinct answers per question (at most ``num_beams``).
        model: seq2seq reader (hub id or folder); ``None`` means ``google/flan-t5-base``.
        retriever_options: passed to the retriever.
        **generation: ``num_beams``, ``max_new_tokens``, ``batch_size``, ``device``,
            ``max_input_tokens`` (see :func:`read_hits_generative`).

    Returns:
        One ``QuestionAnswers(mode="generative")`` per question, in order.

    Raises:
        ModelNotAvailableError: the reader cannot be loaded (no fallback).
        OdqaError: a non-positive setting, an unknown retriever or device.
    """
    if passages < 1:
        raise OdqaError(f"--passages must be at least 1, got {passages}")
    hits = index.search(
        [q.text for q in questions], passages, retriever, **(retriever_options or {})
    )
    return read_hits_generative(questions, hits, model=model, top=top, **generation)
