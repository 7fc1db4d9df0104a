"""Hybrid fusion on hand-made rankings: RRF and min-max linear scores, depth, ties, errors."""

from __future__ import annotations

import numpy as np
import pytest

from odqa.errors import OdqaError
from odqa.retrieval.hybrid import HybridRetriever, linear_scores, rrf_scores
from odqa.retrieval.topk import min_max
from odqa.types import RankedIds


def ranking(ids: list[int], scores: list[float]) -> RankedIds:
    return np.asarray(ids, dtype=np.int64), np.asarray(scores, dtype=np.float32)


class Fixed:
    """A retriever returning a fixed ranking and remembering the depth it was asked for."""

    def __init__(self, ranked: RankedIds) -> None:
        self.ranked = ranked
        self.asked: list[int] = []

    def search_ids(self, queries: list[str], k: int) -> list[RankedIds]:
        self.asked.append(k)
        return [(self.ranked[0][:k], self.ranked[1][:k]) for _ in queries]


SPARSE = ranking([3, 1, 7, 5], [12.0, 9.0, 4.0, 1.0])
DENSE = ranking([1, 8, 3, 2], [0.9, 0.8, 0.7, 0.1])


def test_rrf_sums_reciprocal_ranks() -> None:
    ids, scores = rrf_scores([SPARSE, DENSE], rrf_k=60)
    fused = dict(zip(ids.tolist(), scores.tolist(), strict=True))
    assert fused[1] == pytest.approx(1 / 62 + 1 / 61)
    assert fused[3] == pytest.approx(1 / 61 + 1 / 63)
    assert fused[8] == pytest.approx(1 / 62)
    assert fused[5] == pytest.approx(1 / 64)
    assert sorted(fused) == [1, 2, 3, 5, 7, 8]


def test_rrf_ranking_and_ties_by_passage_index() -> None:
    hybrid = HybridRetriever([Fixed(SPARSE), Fixed(DENSE)])
    ids, scores = hybrid.search_ids(["q"], 4)[0]
    # 1 is ranked 2nd and 1st, 3 is ranked 1st and 3rd.
    assert ids.tolist()[:2] == [1, 3]
    # 8 (dense rank 2) and 7 (sparse rank 3) vs 2 (dense rank 4): 8 first, then 7.
    assert ids.tolist()[2:] == [8, 7]
    assert scores.dtype == np.float32 and np.all(np.diff(scores) <= 0)
    tied = HybridRetriever([Fixed(ranking([9, 4], [2.0, 1.0])),
                             Fixed(ranking([4, 9], [2.0, 1.0]))])
    assert tied.search_ids(["q"], 2)[0][0].tolist() == [4, 9]


def test_min_max_and_linear_fusion() -> None:
    np.testing.assert_allclose(min_max(np.array([2.0, 4.0, 3.0])), [0.0, 1.0, 0.5])
    np.testing.assert_allclose(min_max(np.array([5.0, 5.0])), [1.0, 1.0])
    ids, scores = linear_scores([SPARSE, DENSE], (0.75, 0.25))
    fused = dict(zip(ids.tolist(), scores.tolist(), strict=True))
    sparse_norm = {3: 1.0, 1: 8 / 11, 7: 3 / 11, 5: 0.0}
    dense_norm = {1: 1.0, 8: 0.875, 3: 0.75, 2: 0.0}
    for passage in fused:
        expected = 0.75 * sparse_norm.get(passage, 0.0) + 0.25 * dense_norm.get(passage, 0.0)
        assert fused[passage] == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(("alpha", "first"), [(0.0, 3), (1.0, 1)])
def test_alpha_extremes_follow_one_side(alpha: float, first: int) -> None:
    hybrid = HybridRetriever([Fixed(SPARSE), Fixed(DENSE)], fusion="linear", alpha=alpha)
    assert hybrid.search_ids(["q"], 1)[0][0].tolist() == [first]


def test_each_side_fetches_deeper_than_k() -> None:
    sparse, dense = Fixed(SPARSE), Fixed(DENSE)
    HybridRetriever([sparse, dense]).search_ids(["a", "b"], 5)
    HybridRetriever([sparse, dense], depth=50).search_ids(["a"], 10)
    HybridRetriever([sparse, dense]).search_ids(["a"], 40)
    assert sparse.asked == dense.asked == [100, 50, 160]


def test_bad_settings_are_rejected() -> None:
    with pytest.raises(OdqaError, match="choose one of rrf, linear"):
        HybridRetriever([Fixed(SPARSE), Fixed(DENSE)], fusion="max")
    with pytest.raises(OdqaError, match="alpha"):
        HybridRetriever([Fixed(SPARSE), Fixed(DENSE)], alpha=1.5)
    with pytest.raises(OdqaError, match="positive"):
        HybridRetriever([Fixed(SPARSE), Fixed(DENSE)], depth=0)


THIRD = ranking([8, 5, 9], [3.0, 2.0, 1.0])


def test_three_retrievers_fuse_with_equal_weights() -> None:
    rrf = HybridRetriever([Fixed(SPARSE), Fixed(DENSE), Fixed(THIRD)])
    ids, scores = rrf.search_ids(["q"], 3)[0]
    fused = dict(zip(*rrf_scores([SPARSE, DENSE, THIRD], 60), strict=True))
    # 1 (ranks 2, 1, -) and 8 (-, 2, 1) tie: passage order breaks it; 3 (1, 3, -) is next.
    assert ids.tolist() == [1, 8, 3] and scores[1] == pytest.approx(fused[8])
    linear = HybridRetriever([Fixed(SPARSE), Fixed(DENSE), Fixed(THIRD)], fusion="linear")
    assert linear.weights == pytest.approx((1 / 3, 1 / 3, 1 / 3))
    with pytest.raises(OdqaError, match="equal weights"):
        HybridRetriever([Fixed(SPARSE), Fixed(DENSE), Fixed(THIRD)], alpha=0.3)
    with pytest.raises(OdqaError, match="two or more"):
        HybridRetriever([Fixed(SPARSE)])
