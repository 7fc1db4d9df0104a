"""Deterministic top-k selection: highest score first, ties broken by passage index."""

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
