"""Open-book question answering: retrieve passages from an index, then read them.

The extractive reader reads every window of every retrieved passage of every question in shared
batches; when the default reader cannot be loaded, one notice is printed and answer-sentence
selection takes over (answers marked ``mode: "sentence"``). An explicitly named reader that cannot
be loaded is an error.
"""

from __future__ import annotations

import sys
from typing import Any

from odqa.errors import ModelNotAvailableError, OdqaError
from odqa.readers.extractive import DEFAULT_READER, ExtractiveReader, ReaderParams
from odqa.readers.ranking import DEFAULT_SCORE, SCORE_MODES, rank_answers
from odqa.readers.sentence import Scorer, bm25_scorer, cosine_scorer, rank_sentences
from odqa.text import Analyzer
from odqa.types import Hit, Passage, Query, QuestionAnswers

RANKING_OPTIONS = ("score", "retriever_weight")
_NOTICES_GIVEN: set[str] = set()


def answer_open_book(
    index,
    questions: list[Query],
    *,
    retriever: str = "bm25",
    passages: int = 20,
    top: int = 5,
    reader: str | None = None,
    **reader_options: Any,
) -> list[QuestionAnswers]:
    """Answer ``questions`` from the passages ``retriever`` finds in ``index``.

    Args:
        index: an opened :class:`odqa.index.store.Index`.
        questions: the questions (ids are kept in the results).
        retriever: ``bm25``, ``dense`` or ``hybrid`` (as the index allows).
        passages: passages retrieved and read per question.
        top: answers returned per question.
        reader: extractive QA model (hub id or folder); ``None`` for the default
            (:data:`DEFAULT_READER`) with the sentence fallback when it cannot be loaded.
        **reader_options: :class:`ReaderParams` fields (``max_seq_length``, ``doc_stride``,
            ``max_answer_length``, ``n_best``, ``batch_size``, ``no_answer_threshold``,
            ``device``...), ``score`` (``reader`` or ``combined``), ``retriever_weight``, and
            ``retriever_options`` (a dict passed to the retriever).

    Returns:
        One :class:`QuestionAnswers` per question, in order.

    Raises:
        ModelNotAvailableError: when an explicitly named ``reader`` cannot be loaded.
        OdqaError: for unknown options or retrievers.
    """
    retriever_options = reader_options.pop("retriever_options", None) or {}
    if passages < 1 or top < 1:
        raise OdqaError(f"--passages and --top must be at least 1, got {passages} and {top}")
    hits = index.search([q.text for q in questions], passages, retriever, **retriever_options)
    return read_hits(index, questions, hits, top=top, reader=reader, **reader_options)


def read_hits(
    index,
    questions: list[Query],
    hits: list[list[Hit]],
    *,
    top: int = 5,
    reader: str | None = None,
    **reader_options: Any,
) -> list[QuestionAnswers]:
    """The reading half of :func:`answer_open_book`, for hits already retrieved."""
    ranking = {k: reader_options.pop(k) for k in RANKING_OPTIONS if k in reader_options}
    unknown = sorted(set(reader_options) - set(ReaderParams.names()))
    if unknown:
        valid = ", ".join((*ReaderParams.names(), *RANKING_OPTIONS, "retriever_options"))
        raise OdqaError(f"unknown reader option(s) {', '.join(unknown)}: valid ones are {valid}")
    if ranking.get("score", DEFAULT_SCORE) not in SCORE_MODES:
        raise OdqaError(
            f"unknown --score '{ranking['score']}': choose one of {', '.join(SCORE_MODES)}"
        )
    params = ReaderParams(**reader_options)
    extractive = ExtractiveReader(reader or DEFAULT_READER, params)
    try:
        extractive.warm_up()
    except ModelNotAvailableError as exc:
        if reader is not None:
            raise
        if str(exc) not in _NOTICES_GIVEN:
            _NOTICES_GIVEN.add(str(exc))
            print(
                f"notice: {exc} Falling back to answer-sentence selection "
                "(answers are whole sentences).",
                file=sys.stderr,
            )
        scorer = sentence_scorer(index)
        return [
            QuestionAnswers(q.id, q.text, "sentence", rank_sentences(q.text, h, scorer, top=top))
            for q, h in zip(questions, hits)
        ]
    spans = extractive.read([q.text for q in questions], [[h.text for h in hs] for hs in hits])
    return [
        QuestionAnswers(
            q.id,
            q.text,
            "extractive",
            rank_answers(
                hs, sp, top=top, no_answer_threshold=params.no_answer_threshold, **ranking
            ),
        )
        for q, hs, sp in zip(questions, hits, spans)
    ]


def sentence_scorer(index) -> Scorer:
    """Sentence similarity for the fallback: the index's dense encoder if any, else BM25."""
    if "dense" in index.retrievers():
        dense = index.retriever("dense")
        encoder = getattr(dense, "encoder", dense)
        if hasattr(encoder, "encode_queries") and hasattr(encoder, "encode_passages"):
            return cosine_scorer(
                encoder.encode_queries,
                lambda texts: encoder.encode_passages([Passage("", "", "", t) for t in texts]),
            )
    return bm25_scorer(index.analyzer or Analyzer())
