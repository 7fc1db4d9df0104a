"""Evaluation metrics as pure functions: answer matching, top-k accuracy, MRR, BEIR, EM/F1, latency.

Conventions follow the reference implementations the ODQA literature reports with:

- ``has_answer`` is DPR's rule (``dpr/data/qa_validation.py``): NFD-normalise, tokenise with DrQA's
  ``SimpleTokenizer`` (runs of letters/digits/marks, or any single other non-space character),
  lowercase, and look for the answer's token sequence inside the passage's. Regex answers
  (CuratedTREC) are searched case-insensitively in the NFD-normalised text.
- EM / F1 are the official SQuAD v1.1 script's, maximised over the gold answers.
- BEIR metrics are computed at document level: a document ranks where its best passage ranks.

All scores are fractions in [0, 1].
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import lru_cache

import numpy as np
import regex

from odqa.text import normalize_answer

# DrQA / DPR SimpleTokenizer: a run of letters, digits and combining marks, or one other
# non-separator, non-control character.
_DPR_TOKEN = regex.compile(
    r"([\p{L}\p{N}\p{M}]+)|([^\p{Z}\p{C}])",
    flags=regex.IGNORECASE | regex.UNICODE | regex.MULTILINE,
)
# Joins tokens into one string for substring search; a control character never occurs in a token.
_SEP = "\x00"
_REGEX_FLAGS = re.IGNORECASE | re.UNICODE | re.MULTILINE


def dpr_tokenize(text: str) -> list[str]:
    """DPR's matching tokens of ``text``: NFD-normalised, SimpleTokenizer words, lowercased."""
    return [m.group().lower() for m in _DPR_TOKEN.finditer(unicodedata.normalize("NFD", text))]


def token_key(text: str) -> str:
    """``text``'s DPR tokens joined so that a token-sequence match becomes a substring test.

    ``token_key(answer) in token_key(passage)`` is exactly DPR's sliding-window comparison of
    token lists (each token is framed by separators that no token contains). An answer with no
    tokens gives ``""``; :func:`has_answer` treats it as never found.
    """
    tokens = dpr_tokenize(text)
    return _SEP + _SEP.join(tokens) + _SEP if tokens else ""


@lru_cache(maxsize=4096)
def compile_answer_regex(pattern: str) -> re.Pattern[str] | None:
    """Compile a regex answer as DPR does (ignore case, Unicode, multiline); None if invalid."""
    try:
        return re.compile(unicodedata.normalize("NFD", pattern), _REGEX_FLAGS)
    except re.error:
        return None


def has_answer(answers: Sequence[str], text: str, *, regex_answers: bool = False) -> bool:
    """DPR's has_answer: does ``text`` contain any of ``answers``?

    Args:
        answers: gold answer strings, or regular expressions when ``regex_answers``.
        text: passage text.
        regex_answers: search each answer as a regex (case-insensitive) instead of tokens.

    Empty answers (no tokens) never match; DPR's loop would match them everywhere.
    """
    if regex_answers:
        nfd = unicodedata.normalize("NFD", text)
        return any(
            (p := compile_answer_regex(a)) is not None and p.search(nfd) is not None
            for a in answers
        )
    key = token_key(text)
    return any(k and k in key for k in map(token_key, answers))


class AnswerMatcher:
    """Batched :func:`has_answer` over retrieved passages, tokenising each passage only once.

    Args:
        texts: a callable returning the text of passage index ``i`` (e.g. from an index).
        regex_answers: answers are regular expressions.
    """

    def __init__(self, texts: Callable[[int], str], *, regex_answers: bool = False) -> None:
        self._texts = texts
        self.regex_answers = regex_answers
        self._cache: dict[int, str] = {}

    def _passage(self, index: int) -> str:
        cached = self._cache.get(index)
        if cached is None:
            text = self._texts(index)
            cached = unicodedata.normalize("NFD", text) if self.regex_answers else token_key(text)
            self._cache[index] = cached
        return cached

    def matches(self, answers: Sequence[str], passage_ids: Iterable[int]) -> np.ndarray:
        """Boolean array: which of ``passage_ids`` (in order) contain one of ``answers``."""
        ids = [int(i) for i in passage_ids]
        if self.regex_answers:
            patterns = [p for p in map(compile_answer_regex, answers) if p is not None]
            hits = [any(p.search(self._passage(i)) for p in patterns) for i in ids]
        else:
            keys = [k for k in map(token_key, answers) if k]
            hits = [any(k in self._passage(i) for k in keys) for i in ids]
        return np.asarray(hits, dtype=bool)


def first_hit_rank(matches: np.ndarray) -> int:
    """1-based rank of the first True in ``matches``, 0 when there is none."""
    where = np.flatnonzero(matches)
    return int(where[0]) + 1 if where.size else 0


def top_k_accuracy(first_ranks: Sequence[int] | np.ndarray, ks: Iterable[int]) -> dict[int, float]:
    """Fraction of questions with an answer-bearing passage in the top ``k``, for each ``k``.

    Args:
        first_ranks: per question, the 1-based rank of the first passage with the answer
            (0 when none was retrieved).
        ks: cut-offs.
    """
    ranks = np.asarray(first_ranks, dtype=np.int64)
    if ranks.size == 0:
        return {int(k): 0.0 for k in ks}
    found = ranks > 0
    return {int(k): float(np.mean(found & (ranks <= k))) for k in ks}


def top_k_curve(first_ranks: Sequence[int] | np.ndarray, max_k: int) -> np.ndarray:
    """Top-k accuracy for every k in 1..``max_k`` (index ``k - 1``), for plotting."""
    ranks = np.asarray(first_ranks, dtype=np.int64)
    if ranks.size == 0:
        return np.zeros(max_k)
    counts = np.bincount(ranks[(ranks > 0) & (ranks <= max_k)], minlength=max_k + 1)[1:]
    return np.cumsum(counts) / ranks.size


def mean_reciprocal_rank(
    first_ranks: Sequence[int] | np.ndarray, cutoff: int | None = None
) -> float:
    """Mean of ``1 / rank`` of the first relevant result (0 when absent or beyond ``cutoff``)."""
    ranks = np.asarray(first_ranks, dtype=np.float64)
    if ranks.size == 0:
        return 0.0
    keep = ranks > 0
    if cutoff is not None:
        keep &= ranks <= cutoff
    return float(np.sum(1.0 / ranks[keep]) / ranks.size)


def documents_in_rank_order(doc_ids: Iterable[str]) -> list[str]:
    """Distinct documents of a passage ranking, each at the rank of its best passage."""
    return list(dict.fromkeys(doc_ids))


def ndcg_at_k(ranked_docs: Sequence[str], qrels: Mapping[str, int], k: int = 10) -> float:
    """nDCG@k with linear gains (trec_eval / BEIR): sum rel / log2(rank + 1), ideal-normalised."""
    gains = np.array([max(qrels.get(d, 0), 0) for d in ranked_docs[:k]], dtype=np.float64)
    ideal = np.sort(np.array([g for g in qrels.values() if g > 0], dtype=np.float64))[::-1][:k]
    if ideal.size == 0:
        return 0.0
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    return float(gains @ discounts[: gains.size] / (ideal @ discounts[: ideal.size]))


def recall_at_k(ranked_docs: Sequence[str], qrels: Mapping[str, int], k: int = 100) -> float:
    """Fraction of the relevant documents (relevance > 0) found in the top ``k``."""
    relevant = {d for d, rel in qrels.items() if rel > 0}
    if not relevant:
        return 0.0
    return len(relevant.intersection(ranked_docs[:k])) / len(relevant)


def reciprocal_rank_at_k(
    ranked_docs: Sequence[str], qrels: Mapping[str, int], k: int = 10
) -> float:
    """``1 / rank`` of the first relevant document within the top ``k``, else 0."""
    for rank, doc in enumerate(ranked_docs[:k], start=1):
        if qrels.get(doc, 0) > 0:
            return 1.0 / rank
    return 0.0


def beir_scores(
    runs: Mapping[str, Sequence[str]], qrels: Mapping[str, Mapping[str, int]]
) -> dict[str, float]:
    """Mean nDCG@10, recall@100 and MRR@10 over the queries that have relevant documents.

    Args:
        runs: query id -> document ids best first (already at document level).
        qrels: query id -> {document id: relevance}. A judged query missing from ``runs``
            scores 0.
    """
    judged = [q for q, rels in qrels.items() if any(r > 0 for r in rels.values())]
    if not judged:
        return {"ndcg@10": 0.0, "recall@100": 0.0, "mrr@10": 0.0, "queries": 0}
    rows = np.array(
        [
            (
                ndcg_at_k(runs.get(q, ()), qrels[q], 10),
                recall_at_k(runs.get(q, ()), qrels[q], 100),
                reciprocal_rank_at_k(runs.get(q, ()), qrels[q], 10),
            )
            for q in judged
        ]
    )
    ndcg, recall, mrr = rows.mean(axis=0)
    return {
        "ndcg@10": float(ndcg),
        "recall@100": float(recall),
        "mrr@10": float(mrr),
        "queries": len(judged),
    }


def exact_match(prediction: str, gold: str) -> float:
    """SQuAD v1.1 exact match after :func:`odqa.text.normalize_answer` (1.0 or 0.0)."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def f1(prediction: str, gold: str) -> float:
    """SQuAD v1.1 token F1 between normalised ``prediction`` and ``gold``."""
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    common = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if common == 0:
        return 0.0
    precision = common / len(pred_tokens)
    recall = common / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def regex_match(prediction: str, pattern: str) -> float:
    """DrQA's regex answer score: 1.0 when ``pattern`` matches at the start of ``prediction``."""
    compiled = compile_answer_regex(pattern)
    nfd = unicodedata.normalize("NFD", prediction)
    return float(compiled is not None and compiled.match(nfd) is not None)


def best_over_golds(
    metric: Callable[[str, str], float], prediction: str, golds: Sequence[str]
) -> float:
    """Maximum of ``metric(prediction, gold)`` over ``golds`` (0.0 when there are none)."""
    return max((metric(prediction, g) for g in golds), default=0.0)


def qa_scores(prediction: str, golds: Sequence[str], *, regex_answers: bool = False) -> dict:
    """EM and F1 of one prediction, max over golds; regex golds give EM only (F1 is None)."""
    if regex_answers:
        return {"em": best_over_golds(regex_match, prediction, golds), "f1": None}
    return {
        "em": best_over_golds(exact_match, prediction, golds),
        "f1": best_over_golds(f1, prediction, golds),
    }


def latency_summary(
    seconds: Sequence[float] | np.ndarray, wall_seconds: float | None = None
) -> dict:
    """p50 / p95 latency in milliseconds and throughput in questions per second.

    Args:
        seconds: per-question latencies.
        wall_seconds: total elapsed time; defaults to the sum of ``seconds``.
    """
    values = np.asarray(seconds, dtype=np.float64)
    if values.size == 0:
        return {"p50_ms": 0.0, "p95_ms": 0.0, "questions_per_s": 0.0}
    total = float(values.sum()) if wall_seconds is None else float(wall_seconds)
    p50, p95 = np.percentile(values, [50, 95]) * 1000.0
    return {
        "p50_ms": float(p50),
        "p95_ms": float(p95),
        "questions_per_s": float(values.size / total) if total > 0 else float("inf"),
    }
