"""One question-answering pipeline for `odqa ask` and `odqa eval`: settings -> answerer.

An *answerer* turns a batch of questions into ranked answers. :data:`ANSWERERS` is the
registry: the extractive and generative readers (retrieve passages, then read them), phrase
retrieval (the phrase index returns spans, no reader) and the closed-book generator (no
corpus). Each entry names the :class:`AskSettings` fields it reads, so the CLI rejects an
option that does nothing for the chosen answerer, and ask and eval build answerers the same
way (:func:`make_answerer`), with the same options.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from odqa.errors import OdqaError
from odqa.types import Query, QuestionAnswers

Answer = Callable[[list[Query]], list[QuestionAnswers]]
"""An answerer ready to run: questions in, one QuestionAnswers per question out."""


@dataclass(frozen=True)
class AskSettings:
    """Every setting of a question-answering run (the options of `odqa ask`).

    ``None`` means "the answerer's own default" (e.g. the longest answer: 30 tokens for the
    extractive reader, 10 for phrases; the model: each answerer's bundled or default model).
    """

    retriever: str = "bm25"
    retriever_options: Mapping[str, Any] = field(default_factory=dict)
    passages: int = 20
    top: int = 5
    reader: str | None = None
    max_seq_length: int = 384
    doc_stride: int = 128
    max_answer_length: int | None = None
    score: str = "combined"
    retriever_weight: float = 1.0
    no_answer_threshold: float | None = None
    phrase_sparse_weight: float | None = None
    phrase_sparse_passages: int = 5
    batch_size: int = 32
    device: str = "auto"
    backend: str = "auto"
    precision: str = "auto"
    num_beams: int = 8
    max_new_tokens: int = 32
    prefix: str = ""

    def __post_init__(self) -> None:
        if self.passages < 1 or self.top < 1:
            raise OdqaError(
                f"--passages and --top must be at least 1, got {self.passages} and {self.top}"
            )

    def reader_params(self) -> Any:
        """The extractive reader's :class:`~odqa.readers.extractive.ReaderParams`."""
        from odqa.readers.extractive import ReaderParams

        extra: dict[str, Any] = {} if self.max_answer_length is None else {
            "max_answer_length": self.max_answer_length}
        return ReaderParams(
            max_seq_length=self.max_seq_length, doc_stride=self.doc_stride,
            batch_size=self.batch_size, no_answer_threshold=self.no_answer_threshold,
            device=self.device, precision=self.precision, backend=self.backend, **extra,
        )

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The setting names (as CLI parameter names)."""
        return tuple(f.name for f in fields(cls))


@dataclass(frozen=True)
class Answerer:
    """One registered way of answering."""

    name: str
    description: str
    needs_index: bool
    settings: frozenset[str]
    """The :class:`AskSettings` fields this answerer reads (``top`` is always read)."""
    make: Callable[[AskSettings, Any], Answer]
    """``make(settings, index)`` -> the answer function (``index`` None without one)."""


def _extractive(settings: AskSettings, index: Any) -> Answer:
    from functools import partial

    from odqa.answering.open_book import answer_open_book

    extra: dict[str, Any] = {} if settings.max_answer_length is None else {
        "max_answer_length": settings.max_answer_length}
    return partial(
        answer_open_book, index, retriever=settings.retriever, passages=settings.passages,
        top=settings.top, reader=settings.reader, max_seq_length=settings.max_seq_length,
        doc_stride=settings.doc_stride, score=settings.score,
        retriever_weight=settings.retriever_weight,
        no_answer_threshold=settings.no_answer_threshold, batch_size=settings.batch_size,
        device=settings.device, backend=settings.backend, precision=settings.precision,
        retriever_options=dict(settings.retriever_options), **extra,
    )


def _generative(settings: AskSettings, index: Any) -> Answer:
    from functools import partial

    from odqa.answering.open_book_generative import answer_open_book_generative

    return partial(
        answer_open_book_generative, index, retriever=settings.retriever,
        passages=settings.passages, top=settings.top, model=settings.reader,
        retriever_options=dict(settings.retriever_options), num_beams=settings.num_beams,
        max_new_tokens=settings.max_new_tokens, batch_size=settings.batch_size,
        device=settings.device,
    )


def _phrase(settings: AskSettings, index: Any) -> Answer:
    from functools import partial

    from odqa.phrase.answer import answer_phrase
    from odqa.phrase.search import DEFAULT_MAX_ANSWER_LENGTH

    return partial(
        answer_phrase, index, top=settings.top, device=settings.device,
        sparse_weight=settings.phrase_sparse_weight,
        sparse_passages=settings.phrase_sparse_passages,
        max_answer_length=settings.max_answer_length or DEFAULT_MAX_ANSWER_LENGTH,
    )


def _closed_book(settings: AskSettings, index: Any) -> Answer:
    from functools import partial

    from odqa.answering.closed_book import answer_closed_book

    return partial(
        answer_closed_book, model=settings.reader, top=settings.top,
        num_beams=settings.num_beams, max_new_tokens=settings.max_new_tokens,
        prefix=settings.prefix, batch_size=settings.batch_size, device=settings.device,
    )


_RETRIEVAL = frozenset({"retriever", "retriever_options", "passages"})
ANSWERERS: dict[str, Answerer] = {
    a.name: a
    for a in (
        Answerer(
            "extractive", "an extractive reader over retrieved passages", True,
            _RETRIEVAL | {"reader", "max_seq_length", "doc_stride", "max_answer_length",
                          "score", "retriever_weight", "no_answer_threshold", "batch_size",
                          "device", "backend", "precision"},
            _extractive,
        ),
        Answerer(
            "generative", "a seq2seq reader over retrieved passages (--reader-kind generative)",
            True,
            _RETRIEVAL | {"reader", "num_beams", "max_new_tokens", "batch_size", "device"},
            _generative,
        ),
        Answerer(
            "phrase", "the phrase index, with no reader (--mode phrase)", True,
            frozenset({"max_answer_length", "phrase_sparse_weight", "phrase_sparse_passages",
                       "device"}), _phrase,
        ),
        Answerer(
            "closed-book", "a seq2seq model with no passages (--mode closed-book)", False,
            frozenset({"reader", "num_beams", "max_new_tokens", "prefix", "batch_size",
                       "device"}),
            _closed_book,
        ),
    )
}
"""The registry of answerers, by name."""


def answerer_for(mode: str, reader_kind: str = "extractive") -> Answerer:
    """The answerer of an ``--mode`` (open-book, phrase, closed-book) and ``--reader-kind``."""
    name = reader_kind if mode == "open-book" else mode
    try:
        return ANSWERERS[name]
    except KeyError:
        raise OdqaError(
            f"unknown answering mode '{name}': choose one of {', '.join(ANSWERERS)}"
        ) from None


def unused_settings(answerer: Answerer) -> dict[str, str | None]:
    """Why each setting does nothing with ``answerer`` (None: it is used)."""
    reason = f"{answerer.description} does not use it"
    return {name: None if name in answerer.settings or name == "top" else reason
            for name in AskSettings.names()}


def make_answerer(answerer: Answerer, settings: AskSettings, index: Any = None) -> Answer:
    """The answer function of ``answerer`` with ``settings`` (``index``: an opened Index)."""
    if answerer.needs_index and index is None:
        raise OdqaError(f"{answerer.description} needs an index (--index DIR)")
    return answerer.make(settings, index)


def ask(questions: list[Query], settings: AskSettings, *, mode: str = "open-book",
        reader_kind: str = "extractive", index: Any = None) -> list[QuestionAnswers]:
    """Answer ``questions`` in one call (the library form of `odqa ask`)."""
    return make_answerer(answerer_for(mode, reader_kind), settings, index)(list(questions))
