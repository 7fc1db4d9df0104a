"""Hybrid retrieval: fuse the rankings of a sparse and a dense retriever.

The hybrid owns no index: it asks both retrievers for a deeper candidate list than ``k`` and
fuses them with reciprocal rank fusion (``sum 1 / (rrf_k + rank)``, rank from 1) or a linear
mix of min-max normalised scores (``alpha * dense + (1 - alpha) * sparse``; a passage missing
from one list gets 0 from that side).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from odqa.errors import OdqaError
from odqa.types import RankedIds, Retriever

FUSIONS = ("rrf", "linear")
MIN_DEPTH = 100


def rrf_scores(rankings: list[RankedIds], rrf_k: float) -> tuple[np.ndarray, np.ndarray]:
    """Reciprocal rank fusion of ``rankings``: (unique ids, fused scores)."""
    ids = np.concatenate([r[0] for r in rankings]).astype(np.int64)
    contributions = np.concatenate(
        [1.0 / (rrf_k + np.arange(1, len(r[0]) + 1, dtype=np.float64)) for r in rankings]
    )
    return _sum_by_id(ids, contributions)


def min_max(scores: np.ndarray) -> np.ndarray:
    """Scores scaled to [0, 1]; a constant list maps to all ones."""
    scores = scores.astype(np.float64)
    if len(scores) == 0:
        return scores
    low, high = scores.min(), scores.max()
    return np.ones_like(scores) if high == low else (scores - low) / (high - low)


def linear_scores(
    sparse: RankedIds, dense: RankedIds, alpha: float
) -> tuple[np.ndarray, np.ndarray]:
    """``alpha * dense + (1 - alpha) * sparse`` on min-max normalised scores: (ids, scores)."""
    ids = np.concatenate([sparse[0], dense[0]]).astype(np.int64)
    weighted = np.concatenate([(1.0 - alpha) * min_max(sparse[1]), alpha * min_max(dense[1])])
    return _sum_by_id(ids, weighted)


def _sum_by_id(ids: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    unique, inverse = np.unique(ids, return_inverse=True)
    return unique, np.bincount(inverse, weights=values, minlength=len(unique))


def top_k(ids: np.ndarray, scores: np.ndarray, k: int) -> RankedIds:
    """The ``k`` best by (-score, id) as (int64 ids, float32 scores)."""
    order = np.lexsort((ids, -scores))[:k]
    return ids[order].astype(np.int64), scores[order].astype(np.float32)


class HybridRetriever:
    """Composes a sparse and a dense retriever and fuses their rankings.

    Args:
        sparse: e.g. the BM25 retriever.
        dense: e.g. a :class:`~odqa.retrieval.dense.DenseRetriever`.
        fusion: ``rrf`` (default) or ``linear``.
        alpha: weight of the dense side for ``linear`` (0..1).
        rrf_k: the RRF constant (60 as in Cormack et al.).
        depth: candidates fetched from each side (default ``max(100, 4k)``; at least ``k``).

    Raises:
        OdqaError: unknown fusion, alpha outside [0, 1], non-positive rrf_k or depth.
    """

    def __init__(
        self,
        sparse: Retriever,
        dense: Retriever,
        fusion: str = "rrf",
        alpha: float = 0.5,
        rrf_k: float = 60.0,
        depth: int | None = None,
    ) -> None:
        if fusion not in FUSIONS:
            raise OdqaError(f"unknown fusion '{fusion}': choose one of {', '.join(FUSIONS)}")
        if not 0.0 <= alpha <= 1.0:
            raise OdqaError(f"--alpha must be between 0 and 1, got {alpha}")
        if rrf_k <= 0 or (depth is not None and depth < 1):
            raise OdqaError(f"rrf_k and depth must be positive, got {rrf_k} and {depth}")
        self.sparse = sparse
        self.dense = dense
        self.fusion = fusion
        self.alpha = alpha
        self.rrf_k = rrf_k
        self.depth = depth

    def candidate_depth(self, k: int) -> int:
        """How many candidates each side returns for a final top ``k``."""
        return max(k, self.depth if self.depth is not None else max(MIN_DEPTH, 4 * k))

    def fuse(self, sparse: RankedIds, dense: RankedIds, k: int) -> RankedIds:
        """Fuse one query's two rankings into its top ``k``."""
        if self.fusion == "rrf":
            ids, scores = rrf_scores([sparse, dense], self.rrf_k)
        else:
            ids, scores = linear_scores(sparse, dense, self.alpha)
        return top_k(ids, scores, k)

    def search_ids(self, queries: list[str], k: int) -> list[RankedIds]:
        """Top ``k`` fused passage indices and scores per query, best first, ties by index."""
        depth = self.candidate_depth(k)
        sparse = self.sparse.search_ids(queries, depth)
        dense = self.dense.search_ids(queries, depth)
        return [self.fuse(s, d, k) for s, d in zip(sparse, dense, strict=True)]

    def describe(self) -> dict[str, Any]:
        """The fusion settings (for logs and benchmarks)."""
        names = ("fusion", "alpha", "rrf_k", "depth")
        return {name: getattr(self, name) for name in names}
