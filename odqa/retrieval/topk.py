"""Deterministic top-k selection: highest score first, ties broken by passage index."""

from __future__ import annotations

import numpy as np


def top_k_indices(scores: np.ndarray, ids: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` best entries of ``scores``, ordered by (-score, id).

    Uses ``argpartition`` (linear time) and keeps every entry tied with the k-th score before
    the final sort, so ties at the cut are broken by ``ids`` exactly as a full sort would.
    """
    n = len(scores)
    if k <= 0 or n == 0:
        return np.zeros(0, dtype=np.int64)
    if k < n:
        part = np.argpartition(-scores, k - 1)[:k]
        threshold = scores[part].min()
        part = np.flatnonzero(scores >= threshold)
    else:
        part = np.arange(n)
    order = np.lexsort((ids[part], -scores[part].astype(np.float64)))
    return part[order[:k]]
