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
    metrics: dict[str, float | None] = {"em": sum(r["em"] or 0.0 for r in rows) / n}
    metrics["f1"] = None if data.regex_answers else sum(r["f1"] or 0.0 for r in rows) / n
    missing = sum(a is None for a in predicted)
    return SystemResult(name, metrics, latency, failures, counts={"missing": missing}), records


def _systems(
    mode: str, index: Any, names: list[str], settings: Any, reader_kind: str, ks: list[int],
    ranked: dict[str, dict[str, list[str]]],
) -> list[tuple[str, Any]]:
    """(name, batch call) per system to evaluate in ``mode``: one per retriever in ``names``
    for answerers that retrieve, else one. Every call keeps each question's ranked answer texts
    in ``ranked[system][question id]`` (for EM@k) and returns the top answer's text."""
    from dataclasses import replace

    from odqa.answering.closed_book import DEFAULT_CLOSED_BOOK_MODEL
    from odqa.answering.pipeline import answerer_for, make_answerer
    from odqa.types import Query

    answerer = answerer_for(mode, reader_kind)
    deepest = replace(settings, top=max(ks))

    def system(name: str, answer: Any):
        kept = ranked.setdefault(name, {})

        def call(batch):
            found = answer([Query(q.id, q.question) for q in batch])
            for q, answered in zip(batch, found, strict=True):
                kept[q.id] = [a.text for a in answered.answers]
            return [qa.answers[0].text if qa.answers else "" for qa in found]

        return name, call

    if "retriever" not in answerer.settings:
        name = (settings.reader or DEFAULT_CLOSED_BOOK_MODEL) if mode == "closed-book" else mode
        return [system(name, make_answerer(answerer, deepest, index))]
    return [system(n, make_answerer(answerer, replace(deepest, retriever=n), index))
            for n in names]


def evaluate_qa(
    data: Any,
    mode: str,
    index: Any,
    names: list[str],
    *,
    settings: Any,
    reader_kind: str = "extractive",
    batch_size: int,
    latency_sample: int = 0,
    progress: Any,
    ks: list[int] | None = None,
) -> tuple[list[SystemResult], list[dict]]:
    """Answer every question with each system of ``mode`` (the answerers of `odqa ask`, with
    ``settings``) and score EM / F1 of the top answer and EM@k / F1@k of the ranked ones."""
    results, records = [], []
    ks = ks or [1]
    ranked: dict[str, dict[str, list[str]]] = {}
    for name, call in _systems(mode, index, names, settings, reader_kind, ks, ranked):
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
        result.metrics.update(scores_at_k(data, ranked[name], ks))
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
