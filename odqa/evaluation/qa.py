"""Question-answering evaluation: EM / F1 of the top answer, open-book or closed-book."""

from __future__ import annotations

from typing import Any

from odqa.evaluation.results import SystemResult
from odqa.evaluation.runner import timed_run


def score_answers(
    name: str, data: Any, predicted: list[str | None], latency: dict | None, failures: list
) -> tuple[SystemResult, list[dict]]:
    """EM / F1 (max over golds) of one system's answers; a missing answer scores 0."""
    from odqa.evaluate import qa_scores

    rows, records = [], []
    for q, answer in zip(data.questions, predicted):
        if answer is None:  # never scored: an empty string can equal an all-punctuation gold
            scores = {"em": 0.0, "f1": None if data.regex_answers else 0.0}
        else:
            scores = qa_scores(answer, q.answers, regex_answers=data.regex_answers)
        rows.append(scores)
        records.append(
            {
                "system": name,
                "id": q.id,
                "question": q.question,
                "prediction": answer,
                "answers": list(q.answers),
                **scores,
            }
        )
    n = max(len(rows), 1)
    metrics: dict[str, float | None] = {"em": sum(r["em"] for r in rows) / n}
    metrics["f1"] = None if data.regex_answers else sum(r["f1"] for r in rows) / n
    missing = sum(a is None for a in predicted)
    return SystemResult(name, metrics, latency, failures, counts={"missing": missing}), records


def _top_text(answered) -> list[str]:
    return [qa.answers[0].text if qa.answers else "" for qa in answered]


def _systems(
    mode: str, index: Any, names: list[str], reader: str | None, passages: int,
    reader_options: dict[str, Any],
):
    """(name, batch call) per system to evaluate in ``mode``."""
    from odqa.types import Query

    if mode == "closed-book":
        from odqa.answering.closed_book import DEFAULT_CLOSED_BOOK_MODEL, answer_closed_book

        def closed(batch):
            qs = [Query(q.id, q.question) for q in batch]
            return _top_text(answer_closed_book(qs, model=reader, top=1))

        return [(reader or DEFAULT_CLOSED_BOOK_MODEL, closed)]
    if mode == "phrase":
        from odqa.phrase.answer import answer_phrase

        def phrase(batch):
            qs = [Query(q.id, q.question) for q in batch]
            return _top_text(answer_phrase(index, qs, top=1))

        return [("phrase", phrase)]
    from odqa.answering.open_book import answer_open_book

    def open_book(batch, name):
        qs = [Query(q.id, q.question) for q in batch]
        found = answer_open_book(
            index, qs, retriever=name, passages=passages, top=1, reader=reader, **reader_options
        )
        return _top_text(found)

    return [(name, lambda b, n=name: open_book(b, n)) for name in names]


def evaluate_qa(
    data: Any,
    mode: str,
    index: Any,
    names: list[str],
    *,
    reader: str | None,
    passages: int,
    batch_size: int,
    latency_sample: int = 0,
    progress: Any,
    reader_options: dict[str, Any] | None = None,
) -> tuple[list[SystemResult], list[dict]]:
    """Answer every question (top answer only) with each system and score EM / F1.

    ``mode`` is ``"open-book"`` (one system per retriever in ``names``) or ``"closed-book"``.
    """
    results, records = [], []
    for name, call in _systems(mode, index, names, reader, passages, reader_options or {}):
        run, latency = timed_run(
            data.questions,
            call,
            batch_size=batch_size,
            progress=progress,
            label=name,
            latency_sample=latency_sample,
        )
        result, rows = score_answers(name, data, run.outputs, latency, run.failures)
        result.counts.pop("missing")  # here an unanswered question is a failed one
        results.append(result)
        records += rows
    return results, records
