"""Searching a phrase index: answer spans for questions (no reader), and passages ranked by
their best phrase ("Phrase Retrieval Learns Passage Retrieval, Too", Lee et al. 2021)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from odqa.errors import OdqaError
from odqa.phrase.index import PhraseIndex
from odqa.phrase.sparse import SparseScoring, bm25_top, rescore
from odqa.types import RankedIds

DEFAULT_MAX_ANSWER_LENGTH = 10
"""Longest phrase in tokens (``j - i < max_answer_length``)."""


@dataclass(frozen=True, slots=True)
class PhraseSpan:
    """One phrase found for a question: its passage (index), characters and score."""

    passage: int
    start: int
    end: int
    score: float


class PhraseRetriever:
    """A phrase index with its query encoder (loaded on first use)."""

    def __init__(
        self, folder: Path, section: dict[str, Any], passage_count: int, *,
        candidates: int | None = None, max_answer_length: int = DEFAULT_MAX_ANSWER_LENGTH,
        device: str = "auto",
    ) -> None:
        if candidates is not None and candidates < 1:
            raise OdqaError(f"--phrase-candidates must be at least 1, got {candidates}")
        if max_answer_length < 1:
            raise OdqaError(f"--max-answer-length must be at least 1, got {max_answer_length}")
        self.index = PhraseIndex(folder, section, passage_count)
        self.folder = folder
        self.section = section
        self.candidates = candidates
        self.max_answer_length = max_answer_length
        self.device = device
        self._encoder: Any = None

    @property
    def encoder(self):
        """The phrase model's query side, loaded on first use: the index's ONNX export on the
        CPU (no torch import), else the torch model."""
        if self._encoder is None:
            from odqa.phrase.query_onnx import usable_export

            if self.device in ("auto", "cpu"):
                self._encoder = usable_export(self.folder, self.section)
            if self._encoder is None:
                from odqa.phrase.index import PhraseEncoder

                self._encoder = PhraseEncoder(self.section["encoder"], self.device)
        return self._encoder

    def phrases(
        self, questions: list[str], top: int, sparse: SparseScoring | None = None
    ) -> list[list[PhraseSpan]]:
        """Per question, up to ``top`` spans, best first (distinct token spans); with
        ``sparse``, scored dense + BM25 (:mod:`odqa.phrase.sparse`)."""
        if not questions:
            return []
        qs, qe = self.encoder.encode_queries(list(questions))
        candidates = self.candidates or max(64, 4 * top)
        found = self.index.spans(qs, qe, candidates=candidates,
                                 max_answer_length=self.max_answer_length, top=top)
        if sparse is not None:
            tops = bm25_top(sparse, list(questions))
            found = [rescore(self.index, sparse, question, rows, tops[i], qs[i], qe[i],
                             max_answer_length=self.max_answer_length, top=top)
                     for i, (question, rows) in enumerate(zip(questions, found))]
        out = []
        for rows in found:
            spans = []
            for t_start, t_end, score in rows:
                passage, start, end = self.index.chars(int(t_start), int(t_end))
                spans.append(PhraseSpan(passage, start, end, float(score)))
            out.append(spans)
        return out

    def search_ids(self, queries: list[str], k: int) -> list[RankedIds]:
        """Passages ranked by their best phrase's score (ties by passage order)."""
        depth = max(100, 8 * k)
        results = []
        for spans in self.phrases(queries, depth):
            best: dict[int, float] = {}
            for s in spans:
                best[s.passage] = max(best.get(s.passage, -np.inf), s.score)
            ids = np.fromiter(best, dtype=np.int64, count=len(best))
            scores = np.fromiter(best.values(), dtype=np.float32, count=len(best))
            order = np.lexsort((ids, -scores))[:k]
            results.append((ids[order], scores[order]))
        return results
