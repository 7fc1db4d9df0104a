"""Answer-sentence selection: the fallback reader when no extractive model is available.

The sentences of a question's retrieved passages are ranked by similarity to the question: the
cosine of the index's dense encoder embeddings when the index has one, otherwise BM25 computed
over the question's own sentence pool with the index's analyzer. Answers are whole sentences
(``mode: "sentence"``), start/end giving the sentence inside its passage. Confidence is a softmax
over the pool's scores (cosines divided by a temperature of 0.05, BM25 scores as they are); equal
sentences (after normalisation) are merged and their probability mass added.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable

import numpy as np

from odqa.readers.merge import merge_by_key, passage_fields, softmax
from odqa.retrieval import bm25_formulas as bm25
from odqa.text import Analyzer, normalize_answer
from odqa.types import Answer, Hit

COSINE_TEMPERATURE = 0.05

# A sentence ends at ., ! or ? (closing quotes/brackets included) followed by space and an
# uppercase letter, digit or opening quote; a line break always ends one.
_BOUNDARY = re.compile(r"(?<=[.!?])([\"'”’)\]]*)\s+(?=[\"'“‘(\[]?[A-Z0-9À-Ý])|\s*\n\s*")

Scorer = Callable[[str, list[str]], np.ndarray]


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Character (start, end) spans of the sentences of ``text``, whitespace trimmed."""
    spans, begin = [], 0
    for m in _BOUNDARY.finditer(text):
        spans.append((begin, m.end(1) if m.group(1) is not None else m.start()))
        begin = m.end()
    spans.append((begin, len(text)))
    result = []
    for start, end in spans:
        piece = text[start:end]
        if piece.strip():
            left = len(piece) - len(piece.lstrip())
            result.append((start + left, start + len(piece.rstrip())))
    return result


def sentence_around(text: str, start: int, end: int) -> tuple[int, int]:
    """The span of the sentence(s) of ``text`` holding ``text[start:end]`` (for evidence)."""
    spans = split_sentences(text)
    first = next((s for s, e in spans if e > start), start)
    last = next((e for s, e in reversed(spans) if s < end), end)
    return min(first, start), max(last, end)


def bm25_scorer(analyzer: Analyzer, k1: float = 1.2, b: float = 0.75) -> Scorer:
    """Lucene BM25 (:mod:`odqa.retrieval.bm25_formulas`) of the question against a pool of
    sentences, statistics taken from the pool; each question term counts once."""
    params = bm25.BM25Params(variant="lucene", k1=k1, b=b)

    def score(question: str, sentences: list[str]) -> np.ndarray:
        docs = analyzer.tokenize_many(sentences)
        terms = sorted(set(analyzer.tokenize(question)))
        if not docs or not terms:
            return np.zeros(len(docs))
        lengths = np.array([len(d) for d in docs], dtype=np.float64)
        norm = bm25.length_norm(params, lengths, max(float(lengths.mean()), 1e-9))
        counts = [Counter(d) for d in docs]
        tf = np.array([[c.get(term, 0) for c in counts] for term in terms], dtype=np.float64)
        idf = bm25.idf(params, np.count_nonzero(tf, axis=1), len(docs))
        return idf @ bm25.weight(params, tf, norm[None, :])

    return score


def cosine_scorer(encode_queries, encode_passages) -> Scorer:
    """Cosine similarity with a dense encoder (two functions: texts -> [n, dim] arrays)."""

    def score(question: str, sentences: list[str]) -> np.ndarray:
        if not sentences:
            return np.zeros(0)
        q = np.asarray(encode_queries([question]), dtype=np.float32)[0]
        s = np.asarray(encode_passages(sentences), dtype=np.float32)
        q = q / max(float(np.linalg.norm(q)), 1e-12)
        s = s / np.maximum(np.linalg.norm(s, axis=1, keepdims=True), 1e-12)
        return (s @ q) / COSINE_TEMPERATURE

    return score


def rank_sentences(question: str, hits: list[Hit], scorer: Scorer, *, top: int = 5) -> list[Answer]:
    """The ``top`` sentences of ``hits`` most similar to ``question``, as answers.

    ``score`` is the scorer's value (a cosine divided by the temperature, or BM25).
    """
    where = [(p, s, e) for p, h in enumerate(hits) for s, e in split_sentences(h.text)]
    if not where:
        return []
    texts = [hits[p].text[s:e] for p, s, e in where]
    scores = np.asarray(scorer(question, texts), dtype=np.float64)
    probability = softmax(scores)
    passage = np.array([p for p, _, _ in where])
    order = np.lexsort((np.arange(len(where)), passage, -scores))
    candidates = ((int(i), normalize_answer(texts[i]) or texts[i], probability[i]) for i in order)
    return [
        Answer(
            rank=rank,
            score=float(scores[i]),
            confidence=confidence,
            **passage_fields(hits[where[i][0]], where[i][1], where[i][2]),
        )
        for rank, (i, confidence) in enumerate(merge_by_key(candidates, top), start=1)
    ]
