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
    reader_options: dict[str, Any], ks: list[int], ranked: dict[str, list[str]],
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
            found = answer_phrase(index, qs, top=max(ks))
            for q, answered in zip(batch, found):
                ranked[q.id] = [a.text for a in answered.answers]
            return _top_text(found)

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
    ks: list[int] | None = None,
) -> tuple[list[SystemResult], list[dict]]:
    """Answer every question (top answer only) with each system and score EM / F1.

    ``mode`` is ``"open-book"`` (one system per retriever in ``names``) or ``"closed-book"``.
    """
    results, records = [], []
    ks = ks or [1]
    ranked: dict[str, list[str]] = {}
    systems = _systems(mode, index, names, reader, passages, reader_options or {}, ks, ranked)
    for name, call in systems:
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
        if ranked:
            result.metrics.update(scores_at_k(data, ranked, ks))
        results.append(result)
        records += rows
    return results, records


def scores_at_k(data: Any, ranked: dict[str, list[str]], ks: list[int]) -> dict[str, float]:
    """EM@k / F1@k: the best of each question's top-k answers (for systems that rank several)."""
    from odqa.evaluate import qa_scores

    n = max(len(data.questions), 1)
    metrics: dict[str, float] = {}
    for k in ks:
        em = f1 = 0.0
        for q in data.questions:
            scored = [qa_scores(t, q.answers, regex_answers=data.regex_answers)
                      for t in ranked.get(q.id, [])[:k]]
            em += max((s["em"] for s in scored), default=0.0)
            f1 += max((s["f1"] or 0.0 for s in scored), default=0.0)
        metrics[f"em@{k}"] = em / n
        if not data.regex_answers:
            metrics[f"f1@{k}"] = f1 / n
    return metrics
