"""Closed-book QA: answers generated from a seq2seq model's parameters alone, with no corpus.

As in "How Much Knowledge Can You Pack Into the Parameters of a Language Model?" (Roberts et
al., 2020): T5 pre-trained with salient span masking and fine-tuned on Natural Questions. The
released ``google/t5-{small,large,xl,xxl}-ssm-nq`` checkpoints take the raw question; checkpoints
trained with an input prefix (the original T5 code used ``"nq question: "``) need ``prefix``.
"""

from __future__ import annotations

from odqa.readers.generative import GenerationParams, Seq2SeqReader
from odqa.types import Query, QuestionAnswers

DEFAULT_CLOSED_BOOK_MODEL = "google/t5-small-ssm-nq"
MODE = "closed-book"


def closed_book_inputs(questions: list[Query], prefix: str = "") -> list[str]:
    """Model inputs: ``prefix`` followed by the question text."""
    return [prefix + q.text for q in questions]


def answer_closed_book(
    questions: list[Query],
    *,
    model: str | None = None,
    top: int = 5,
    num_beams: int = 8,
    max_new_tokens: int = 32,
    prefix: str = "",
    batch_size: int = 16,
    device: str = "auto",
) -> list[QuestionAnswers]:
    """Answer each question with beam search over a seq2seq model, no retrieval.

    Args:
        questions: the questions, answered in length-sorted batches.
        model: hub id or local folder; ``None`` means ``google/t5-small-ssm-nq``.
        top: distinct answers (after answer normalisation) to return per question, at most
            ``num_beams``.
        num_beams: beam width; every beam is returned and ranked.
        max_new_tokens: longest answer, in tokens.
        prefix: text put before each question (e.g. ``"nq question: "``).
        batch_size: questions per ``generate`` call.
        device: ``auto``, ``cpu`` or ``cuda``.

    Returns:
        One ``QuestionAnswers(mode="closed-book")`` per question, in input order; answers carry
        no passage fields, ``score`` is the sequence log-probability and ``confidence`` the
        probability mass of the beams merged into the answer (see
        :mod:`odqa.readers.generative`).

    Raises:
        ModelNotAvailableError: the model cannot be loaded (names it and the ``--reader`` fix).
        OdqaError: a non-positive setting or an unknown device.
    """
    params = GenerationParams(
        num_beams=num_beams, max_new_tokens=max_new_tokens, top=top, batch_size=batch_size
    )
    reader = Seq2SeqReader(
        model or DEFAULT_CLOSED_BOOK_MODEL, params, device=device, role="closed-book reader"
    )
    if not questions:
        return []
    answers = reader.answer(closed_book_inputs(questions, prefix))
    return [
        QuestionAnswers(q.id, q.text, MODE, found)
        for q, found in zip(questions, answers, strict=True)
    ]
