"""Ranking helpers: deterministic top-k (highest score first, ties by passage index) and the
one min-max scaling used to put scores of different systems on [0, 1]."""

from __future__ import annotations

import numpy as np


def top_k(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best ``(ids, scores)``, ordered by (-score, id).

    Finds the k-th highest score with ``partition`` (linear time) and keeps every entry tied
    with it before the final sort, so ties at the cut are broken by ``ids`` exactly as a full
    sort would.
    """
    n = len(scores)
    if k <= 0:
        return ids[:0], scores[:0]
    if k < n:
        kept = scores >= np.partition(scores, n - k)[n - k]
        ids, scores = ids[kept], scores[kept]
    order = np.lexsort((ids, -scores))[:k]
    return ids[order], scores[order]


def min_max(scores: np.ndarray) -> np.ndarray:
    """Scores scaled to [0, 1]; a constant list maps to all ones."""
    scores = scores.astype(np.float64)
    if len(scores) == 0:
        return scores
    low, high = scores.min(), scores.max()
    return np.ones_like(scores) if high == low else (scores - low) / (high - low)
