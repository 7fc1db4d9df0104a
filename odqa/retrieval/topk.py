"""Deterministic top-k selection: highest score first, ties broken by passage index."""

from __future__ import annotations

import numpy as np


def top_k_indices(scores: np.ndarray, ids: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` best entries of ``scores``, ordered by (-score, id).

    Finds the k-th highest score with ``partition`` (linear time) and keeps every entry tied
    with it before the final sort, so ties at the cut are broken by ``ids`` exactly as a full
    sort would.
    """
    n = len(scores)
    if k <= 0 or n == 0:
        return np.zeros(0, dtype=np.int64)
    if k < n:
        threshold = np.partition(scores, n - k)[n - k]
        part = np.flatnonzero(scores >= threshold)
        order = np.lexsort((ids[part], -scores[part]))
        return part[order[:k]]
    return np.lexsort((ids, -scores))


def top_k(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best ``(ids, scores)``, ordered by (-score, id): :func:`top_k_indices` with
    fewer array operations, for the per-query hot loop."""
    n = len(scores)
    if k <= 0:
        return ids[:0], scores[:0]
    if k < n:
        kept = scores >= np.partition(scores, n - k)[n - k]
        ids, scores = ids[kept], scores[kept]
    order = np.lexsort((ids, -scores))[:k]
    return ids[order], scores[order]
