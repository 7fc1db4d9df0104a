"""Small frozen result types shared by retrievers, readers and renderers, and their protocols."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np


@dataclass(frozen=True, slots=True)
class Passage:
    """One retrievable unit of a corpus: a whole document or a window of it."""

    id: str
    doc_id: str
    title: str
    text: str


@dataclass(frozen=True, slots=True)
class Hit:
    """A retrieved passage with its score and 1-based rank."""

    id: str
    doc_id: str
    score: float
    rank: int
    title: str
    text: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict in the documented field order."""
        return {
            "rank": self.rank,
            "id": self.id,
            "doc_id": self.doc_id,
            "score": self.score,
            "title": self.title,
            "text": self.text,
        }


@dataclass(frozen=True, slots=True)
class Answer:
    """A ranked answer. Passage fields are None for closed-book answers.

    ``context[start:end] == text`` holds whenever ``context`` is set.
    ``confidence`` is in [0, 1]; ``score`` is the mode's raw score (see the README).
    """

    rank: int
    text: str
    score: float
    confidence: float
    passage_id: str | None = None
    doc_id: str | None = None
    title: str | None = None
    start: int | None = None
    end: int | None = None
    context: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict in the documented field order."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class QuestionAnswers:
    """All answers to one question, with the mode that produced them.

    ``mode`` is one of ``extractive``, ``sentence``, ``closed-book``, ``generative``, ``phrase``.
    """

    question_id: str
    question: str
    mode: str
    answers: list[Answer] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: ``{"question_id", "question", "mode", "answers": [...]}``."""
        return {
            "question_id": self.question_id,
            "question": self.question,
            "mode": self.mode,
            "answers": [a.to_dict() for a in self.answers],
        }


RankedIds = tuple[np.ndarray, np.ndarray]
"""Per query: (passage indices int64, scores float32), best first."""


class Retriever(Protocol):
    """Anything that ranks passages of an index for a batch of queries."""

    def search_ids(self, queries: list[str], k: int) -> list[RankedIds]:
        """Return, per query, the top ``k`` passage indices and scores, best first."""
        ...


@dataclass(frozen=True, slots=True)
class Query:
    """A question or query read from a file, with its id (line number when the file has none)."""

    id: str
    text: str
