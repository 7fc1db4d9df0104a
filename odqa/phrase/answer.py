"""Phrase-retrieval question answering: the phrase index returns answer spans directly, with no
reader at query time. Answers carry the same fields as extractive ones."""

from __future__ import annotations

import numpy as np

from odqa.errors import OdqaError
from odqa.phrase.sparse import DEFAULT_SPARSE_PASSAGES, sparse_scoring
from odqa.readers.merge import merge_by_key, passage_fields, softmax
from odqa.text import normalize_answer
from odqa.types import Answer, Hit, Query, QuestionAnswers

SPANS_PER_ANSWER = 8
"""Spans searched per requested answer: duplicates of one answer are merged."""


def answer_phrase(
    index, questions: list[Query], *, top: int = 5, sparse_weight: float | None = None,
    sparse_passages: int = DEFAULT_SPARSE_PASSAGES, **options
) -> list[QuestionAnswers]:
    """Answer ``questions`` from ``index``'s phrase index.

    ``sparse_weight``: weight of the BM25 score of a span's passage (None: the default when
    the index has BM25, else none; 0: dense only), ``sparse_passages``: BM25 top passages
    whose best spans join the candidates (:mod:`odqa.phrase.sparse`). ``options`` are
    :class:`~odqa.phrase.search.PhraseRetriever` query options (``candidates``,
    ``max_answer_length``, ``device``). The confidence is a softmax over the question's
    candidate spans, summed over the spans merged into an answer.
    """
    if top < 1:
        raise OdqaError(f"--top must be at least 1, got {top}")
    sparse = sparse_scoring(index, sparse_weight, sparse_passages)
    retriever = index.retriever("phrase", **options)
    found = retriever.phrases([q.text for q in questions], top * SPANS_PER_ANSWER, sparse)
    results = []
    for question, spans in zip(questions, found):
        passages = index.passages.get_many(np.array([s.passage for s in spans], dtype=np.int64))
        hits = [Hit(p.id, p.doc_id, s.score, 0, p.title, p.text) for p, s in zip(passages, spans)]
        probability = softmax(np.array([s.score for s in spans], dtype=np.float64))
        candidates = (
            ((hit, s), normalize_answer(hit.text[s.start : s.end]), probability[i])
            for i, (hit, s) in enumerate(zip(hits, spans))
        )
        answers = [
            Answer(rank=rank, score=s.score, confidence=confidence,
                   **passage_fields(hit, s.start, s.end))
            for rank, ((hit, s), confidence) in enumerate(merge_by_key(candidates, top), start=1)
        ]
        results.append(QuestionAnswers(question.id, question.text, "phrase", answers))
    return results
