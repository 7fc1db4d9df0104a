"""Retrieval evaluation: top-k accuracy and MRR on answer datasets, BEIR metrics on qrels."""

from __future__ import annotations

import math
from typing import Any

from odqa.evaluation.results import SystemResult
from odqa.evaluation.runner import timed_run


def retrieval_depth(index: Any, ks: list[int], beir: bool) -> int:
    """Passages to retrieve: the largest k; for BEIR enough to reach 100 distinct documents."""
    depth = max(ks)
    if beir:
        corpus = index.manifest.corpus
        per_doc = corpus.passages / max(corpus.documents, 1)
        depth = max(depth, 100) * max(1, math.ceil(per_doc))
    return min(depth, len(index.passages))


class PassageIds:
    """Passage and document ids by passage index, read from the index once each."""

    def __init__(self, passages: Any) -> None:
        self._passages = passages
        self._ids: dict[int, tuple[str, str]] = {}

    def __call__(self, i: int) -> tuple[str, str]:
        if i not in self._ids:
            p = self._passages[i]
            self._ids[i] = (p.id, p.doc_id)
        return self._ids[i]


def evaluate_retrieval(
    data: Any,
    index: Any,
    names: list[str],
    ks: list[int],
    *,
    batch_size: int,
    progress: Any,
    latency_sample: int = 0,
) -> tuple[list[SystemResult], list[dict]]:
    """Top-k accuracy and MRR (answer datasets) or nDCG@10 / R@100 / MRR@10 (BEIR) per retriever.

    Returns the results and, per retriever and question, a record of the ranking.
    """
    from odqa.evaluate import AnswerMatcher

    depth = retrieval_depth(index, ks, data.qrels is not None)
    ids = PassageIds(index.passages)
    matcher = AnswerMatcher(lambda i: index.passages[i].text, regex_answers=data.regex_answers)
    results, records = [], []
    for name in names:
        retriever = index.retriever(name)

        def call(batch, retriever=retriever):
            return retriever.search_ids([q.question for q in batch], depth)

        run, latency = timed_run(
            data.questions,
            call,
            batch_size=batch_size,
            progress=progress,
            label=name,
            latency_sample=latency_sample,
        )
        result = SystemResult(name, {}, latency, run.failures)
        rankings = [None if out is None else [int(i) for i in out[0]] for out in run.outputs]
        if data.qrels is not None:
            records += score_documents(result, data, rankings, ids)
        else:
            records += score_passages(result, data, rankings, ids, matcher, ks, depth)
        results.append(result)
    return results, records


def score_passages(
    result: SystemResult, data: Any, rankings: list, ids: PassageIds, matcher: Any, ks, depth: int
) -> list[dict]:
    """Fill ``result`` with top-k accuracy, MRR and the curve; return per-question records."""
    from odqa.evaluate import first_hit_rank, mean_reciprocal_rank, top_k_accuracy, top_k_curve

    ranks, records = [], []
    for q, ranked in zip(data.questions, rankings):
        ranked = ranked or []
        found = matcher.matches(q.answers, ranked)
        ranks.append(first_hit_rank(found))
        records.append(
            {
                "retriever": result.name,
                "id": q.id,
                "question": q.question,
                "answers": list(q.answers),
                "passages": [ids(i)[0] for i in ranked],
                "has_answer": found.tolist(),
                "first_hit": ranks[-1] or None,
            }
        )
    result.metrics = {f"top-{k}": v for k, v in top_k_accuracy(ranks, ks).items()}
    result.metrics[f"mrr@{depth}"] = mean_reciprocal_rank(ranks)
    result.curve = top_k_curve(ranks, depth)
    return records


def score_documents(result: SystemResult, data: Any, rankings: list, ids: PassageIds) -> list[dict]:
    """Fill ``result`` with BEIR's document-level metrics; return per-query records."""
    from odqa.evaluate import beir_scores, documents_in_rank_order

    runs = {
        q.id: documents_in_rank_order(ids(i)[1] for i in ranked)
        for q, ranked in zip(data.questions, rankings)
        if ranked is not None
    }
    scores = beir_scores(runs, data.qrels)
    result.counts["queries"] = int(scores.pop("queries"))
    result.metrics = dict(scores)
    return [{"retriever": result.name, "id": q, "documents": d[:100]} for q, d in runs.items()]
