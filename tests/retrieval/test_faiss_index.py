"""FAISS indexes: flat equals brute force, HNSW and IVF-PQ recall against flat, file round trips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from odqa.errors import IndexLoadError, OdqaError
from odqa.retrieval import faiss_index

DIM = 32


def embeddings(count: int, seed: int) -> np.ndarray:
    """Unit vectors near a 12-dimensional subspace, the way sentence embeddings concentrate."""
    rng = np.random.default_rng(seed)
    basis = np.random.default_rng(99).normal(size=(12, DIM))
    vectors = rng.normal(size=(count, 12)) @ basis + 0.3 * rng.normal(size=(count, DIM))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def corpus() -> np.ndarray:
    return embeddings(3000, seed=1)


@pytest.fixture(scope="module")
def queries() -> np.ndarray:
    return embeddings(100, seed=2)


def brute_force(vectors: np.ndarray, queries: np.ndarray, k: int) -> list[np.ndarray]:
    scores = queries @ vectors.T
    ids = np.arange(len(vectors))
    return [np.lexsort((ids, -row))[:k] for row in scores]


def recall(found: list, truth: list) -> float:
    return float(np.mean([len(set(f[0]) & set(t[0])) / len(t[0]) for f, t in zip(found, truth)]))


def params(kind: str, count: int, **extra) -> dict:
    settings = dict(hnsw_m=32, ef_construction=200, nlist=None, pq_m=None, pq_nbits=8) | extra
    return faiss_index.resolve_params(kind, count, DIM, **settings)


def test_flat_equals_brute_force_numpy(corpus: np.ndarray, queries: np.ndarray) -> None:
    index = faiss_index.build_index([corpus[:1000], corpus[1000:]], "flat", {})
    results = faiss_index.search(index, queries, 10)
    expected = brute_force(corpus, queries, 10)
    for (ids, scores), query, truth in zip(results, queries, expected, strict=True):
        np.testing.assert_array_equal(ids, truth)
        np.testing.assert_allclose(scores, corpus[truth] @ query, rtol=1e-5)
        assert ids.dtype == np.int64 and scores.dtype == np.float32


def test_ties_are_broken_by_passage_index() -> None:
    vectors = np.repeat(np.eye(4, DIM, dtype=np.float32), 3, axis=0)[::-1].copy()
    index = faiss_index.build_index([vectors], "flat", {})
    ids, scores = faiss_index.search(index, vectors[:1], 3)[0]
    assert list(ids) == [0, 1, 2] and len(set(scores.tolist())) == 1


def test_hnsw_recall_against_flat(corpus: np.ndarray, queries: np.ndarray) -> None:
    flat = faiss_index.search(faiss_index.build_index([corpus], "flat", {}), queries, 10)
    hnsw = faiss_index.build_index([corpus], "hnsw", params("hnsw", len(corpus)))
    faiss_index.set_search_params(hnsw, ef_search=64, nprobe=None)
    assert recall(faiss_index.search(hnsw, queries, 10), flat) >= 0.9


def test_ivfpq_recall_against_flat_with_exact_reranking(
    corpus: np.ndarray, queries: np.ndarray
) -> None:
    flat = faiss_index.search(faiss_index.build_index([corpus], "flat", {}), queries, 10)
    settings = params("ivfpq", len(corpus))
    assert settings == {"nlist": 76, "m": 8, "nbits": 8}
    index = faiss_index.build_index([corpus], "ivfpq", settings)
    faiss_index.set_search_params(index, ef_search=None, nprobe=16)
    codes_only = recall(faiss_index.search(index, queries, 10), flat)
    reranked = recall(faiss_index.search(index, queries, 10, corpus, refine=4), flat)
    assert reranked >= 0.9
    assert reranked > codes_only


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivfpq"])
def test_write_then_read_memory_mapped_gives_the_same_results(
    kind: str, corpus: np.ndarray, queries: np.ndarray, tmp_path: Path
) -> None:
    chunk_files = []
    for number, part in enumerate(np.array_split(corpus, 3)):
        chunk_files.append(tmp_path / f"{number}.npy")
        np.save(chunk_files[-1], part)
    index = faiss_index.build_index(chunk_files, kind, params(kind, len(corpus)))
    faiss_index.write_index(index, tmp_path / "index.faiss")
    loaded = faiss_index.read_index(tmp_path / "index.faiss")
    for opened in (index, loaded):
        faiss_index.set_search_params(opened, ef_search=64, nprobe=8)
    before = faiss_index.search(index, queries, 5)
    after = faiss_index.search(loaded, queries, 5)
    assert loaded.ntotal == len(corpus)
    for (ids_a, scores_a), (ids_b, scores_b) in zip(before, after, strict=True):
        np.testing.assert_array_equal(ids_a, ids_b)
        np.testing.assert_allclose(scores_a, scores_b, rtol=1e-6)


def test_k_beyond_the_index_and_bad_files(tmp_path: Path) -> None:
    vectors = np.eye(3, DIM, dtype=np.float32)
    ids, _ = faiss_index.search(faiss_index.build_index([vectors], "flat", {}), vectors[:1], 10)[0]
    assert sorted(ids.tolist()) == [0, 1, 2]
    with pytest.raises(IndexLoadError, match="missing"):
        faiss_index.read_index(tmp_path / "absent.faiss")
    (tmp_path / "broken.faiss").write_bytes(b"not a faiss index")
    with pytest.raises(IndexLoadError, match="cannot read"):
        faiss_index.read_index(tmp_path / "broken.faiss")


def test_automatic_ivfpq_parameters() -> None:
    assert faiss_index.auto_pq_m(384) == 96 and faiss_index.auto_pq_m(30) == 6
    assert faiss_index.auto_nlist(1_000_000) == 4000 and faiss_index.auto_nlist(50) == 1
    assert params("ivfpq", 100)["nbits"] == 6
    with pytest.raises(OdqaError, match="must divide"):
        params("ivfpq", 1000, pq_m=5)
