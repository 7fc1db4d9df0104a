"""Hybrid retrieval: fuse the rankings of two or more retrievers (any stored families).

The hybrid owns no index: it asks each retriever for a deeper candidate list than ``k`` and
fuses them with reciprocal rank fusion (``sum 1 / (rrf_k + rank)``, rank from 1) or a weighted
sum of min-max normalised scores (a passage missing from a list gets 0 from that side). With
two retrievers the linear weights are ``(1 - alpha, alpha)`` (``alpha`` weighs the second,
e.g. dense over BM25); with more they are equal.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from odqa.errors import OdqaError
from odqa.retrieval.topk import min_max, top_k
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


def linear_scores(
    rankings: list[RankedIds], weights: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """``sum_i weights[i] * min_max(rankings[i])`` per passage: (unique ids, fused scores)."""
    ids = np.concatenate([r[0] for r in rankings]).astype(np.int64)
    weighted = np.concatenate([w * min_max(r[1]) for r, w in zip(rankings, weights, strict=True)])
    return _sum_by_id(ids, weighted)


def _sum_by_id(ids: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    unique, inverse = np.unique(ids, return_inverse=True)
    return unique, np.bincount(inverse, weights=values, minlength=len(unique))


class HybridRetriever:
    """Composes retrievers and fuses their rankings.

    Args:
        retrievers: two or more, e.g. BM25 and a dense retriever.
        names: their names (for error messages), e.g. the family names.
        fusion: ``rrf`` (default) or ``linear``.
        alpha: with two retrievers and ``linear``, the weight of the second (0..1; default
            0.5); more retrievers get equal weights.
        rrf_k: the RRF constant (60 as in Cormack et al.).
        depth: candidates fetched from each side (default ``max(100, 4k)``; at least ``k``).

    Raises:
        OdqaError: fewer than two retrievers, unknown fusion, alpha outside [0, 1] or with
            more than two retrievers, non-positive rrf_k or depth.
    """

    def __init__(
        self,
        retrievers: Sequence[Retriever],
        names: Sequence[str] | None = None,
        fusion: str = "rrf",
        alpha: float | None = None,
        rrf_k: float = 60.0,
        depth: int | None = None,
    ) -> None:
        names = tuple(names) if names is not None else tuple(
            f"retriever {i + 1}" for i in range(len(retrievers)))
        if len(retrievers) < 2 or len(names) != len(retrievers):
            raise OdqaError(f"a hybrid fuses two or more retrievers, got {', '.join(names)}")
        if fusion not in FUSIONS:
            raise OdqaError(f"unknown fusion '{fusion}': choose one of {', '.join(FUSIONS)}")
        if alpha is not None and not 0.0 <= alpha <= 1.0:
            raise OdqaError(f"--alpha must be between 0 and 1, got {alpha}")
        if alpha is not None and len(retrievers) != 2:
            raise OdqaError(
                f"--alpha weighs the second of two fused retrievers; {', '.join(names)} are "
                "fused with equal weights"
            )
        if rrf_k <= 0 or (depth is not None and depth < 1):
            raise OdqaError(f"rrf_k and depth must be positive, got {rrf_k} and {depth}")
        self.retrievers = list(retrievers)
        self.names = names
        self.fusion = fusion
        share = 0.5 if alpha is None else alpha
        self.weights = ((1.0 - share, share) if len(retrievers) == 2
                        else (1.0 / len(retrievers),) * len(retrievers))
        self.rrf_k = rrf_k
        self.depth = depth

    def candidate_depth(self, k: int) -> int:
        """How many candidates each side returns for a final top ``k``."""
        return max(k, self.depth if self.depth is not None else max(MIN_DEPTH, 4 * k))

    def fuse(self, rankings: list[RankedIds], k: int) -> RankedIds:
        """Fuse one query's rankings (one per retriever) into its top ``k``."""
        if self.fusion == "rrf":
            ids, scores = rrf_scores(rankings, self.rrf_k)
        else:
            ids, scores = linear_scores(rankings, self.weights)
        ids, scores = top_k(scores, ids, k)
        return ids.astype(np.int64), scores.astype(np.float32)

    def search_ids(self, queries: list[str], k: int) -> list[RankedIds]:
        """Top ``k`` fused passage indices and scores per query, best first, ties by index."""
        depth = self.candidate_depth(k)
        per_side = [r.search_ids(queries, depth) for r in self.retrievers]
        return [self.fuse(list(rankings), k) for rankings in zip(*per_side, strict=True)]
