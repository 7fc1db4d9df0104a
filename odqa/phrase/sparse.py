"""Dense + sparse phrase scores (DenSPI, Seo et al. 2019): a span's score is its dense phrase
score plus ``weight`` x the question's BM25 score of the span's passage.

The candidate spans are the dense search's, plus the best spans (found exhaustively) of the
BM25 top ``passages`` passages, so a passage the dense vectors missed can still answer. No
reader runs: BM25 scores come from the index's own ``bm25`` family. The default weight was
chosen on SQuAD v1.1 **train** paragraphs (45 articles, 1,694 paragraphs, 1,000 questions the
bundled model did not train on): EM@1 19.0 dense only, 26.7 at 1.5, flat from 1.5 to 3.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from odqa.errors import OdqaError

DEFAULT_SPARSE_WEIGHT = 1.5
DEFAULT_SPARSE_PASSAGES = 5
SPANS_PER_SPARSE_PASSAGE = 5


@dataclass(frozen=True)
class SparseScoring:
    """How BM25 joins phrase scores: the BM25 retriever, its weight, passages searched."""

    bm25: Any
    weight: float = DEFAULT_SPARSE_WEIGHT
    passages: int = DEFAULT_SPARSE_PASSAGES

    def __post_init__(self) -> None:
        if not self.weight >= 0:
            raise OdqaError(f"--phrase-sparse-weight must be 0 or more, got {self.weight}")
        if self.passages < 0:
            raise OdqaError(f"--phrase-sparse-passages must be 0 or more, got {self.passages}")


def sparse_scoring(index: Any, weight: float | None, passages: int) -> SparseScoring | None:
    """The scoring for ``index`` (None: dense only). ``weight`` None means the default when
    the index has BM25, else dense only; a weight asked of an index without BM25 is an error."""
    if weight == 0 or (weight is None and "bm25" not in index.kinds):
        return None
    if "bm25" not in index.kinds:
        raise OdqaError(
            f"--phrase-sparse-weight needs a bm25 index beside the phrase one in '{index.path}': "
            "rebuild with `--retrievers bm25,phrase`, or pass --phrase-sparse-weight 0"
        )
    return SparseScoring(index.retriever("bm25"),
                         DEFAULT_SPARSE_WEIGHT if weight is None else weight, passages)


def bm25_top(scoring: SparseScoring, questions: list[str]) -> list[np.ndarray]:
    """Per question, the BM25 top ``scoring.passages`` passages (one batched search)."""
    if not scoring.passages:
        return [np.zeros(0, dtype=np.int64) for _ in questions]
    return [ids for ids, _ in scoring.bm25.search_ids(questions, scoring.passages)]


def rescore(
    phrase_index: Any, scoring: SparseScoring, question: str, dense: np.ndarray,
    top_passages: np.ndarray, q_start: np.ndarray, q_end: np.ndarray, *,
    max_answer_length: int, top: int,
) -> np.ndarray:
    """``dense`` span rows ``(start, end, score)`` and the best spans of ``top_passages``
    (:func:`bm25_top`), scored dense + weight x BM25, best first (ties by token rows), at most
    ``top``."""
    pool = [dense]
    if len(top_passages):
        pool.append(phrase_index.passage_spans(
            top_passages, q_start, q_end, max_answer_length=max_answer_length,
            top=SPANS_PER_SPARSE_PASSAGE))
    rows = np.concatenate(pool)
    if not len(rows):
        return rows
    _, first = np.unique(rows[:, :2], axis=0, return_index=True)
    rows = rows[np.sort(first)]
    passages = phrase_index.passage_of[rows[:, 0].astype(np.int64)]
    unique, inverse = np.unique(passages, return_inverse=True)
    bm25 = scoring.bm25.passage_scores(question, unique).astype(np.float64)[inverse]
    scores = rows[:, 2] + scoring.weight * bm25
    order = np.lexsort((rows[:, 1], rows[:, 0], -scores))[:top]
    return np.column_stack([rows[order, :2], scores[order]])
