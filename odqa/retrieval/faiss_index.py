"""FAISS inner-product indexes: exact ``flat``, graph ``hnsw`` and compressed ``ivfpq``.

Vectors arrive in chunks (arrays or ``.npy`` files read memory-mapped) so a build never holds more
than one chunk beyond what the index itself stores. Reading maps the file into memory where FAISS
allows it (flat codes and IVF lists).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from odqa.errors import IndexLoadError, OdqaError

if TYPE_CHECKING:
    import faiss

Chunk = np.ndarray | Path
TRAIN_SAMPLE = 100_000


def _load(chunk: Chunk) -> np.ndarray:
    array = np.load(chunk, mmap_mode="r", allow_pickle=False) if isinstance(chunk, Path) else chunk
    return np.ascontiguousarray(array, dtype=np.float32)


def auto_nlist(count: int) -> int:
    """About 4 sqrt(n) lists, with at least 39 training points per list."""
    return max(1, min(int(4 * math.sqrt(count)), count // 39))


def auto_pq_m(dimension: int) -> int:
    """The largest divisor of ``dimension`` not above ``dimension / 4`` (4 dims per code byte)."""
    target = max(1, dimension // 4)
    return max(m for m in range(1, target + 1) if dimension % m == 0)


def resolve_params(kind: str, count: int, dimension: int, **params: Any) -> dict[str, Any]:
    """The concrete parameters of a ``kind`` index over ``count`` vectors (``None`` filled in)."""
    if kind == "flat":
        return {}
    if kind == "hnsw":
        return {"m": params["hnsw_m"], "ef_construction": params["ef_construction"]}
    if kind == "ivfpq":
        m = params.get("pq_m") or auto_pq_m(dimension)
        if dimension % m:
            raise OdqaError(f"--pq-m {m} must divide the vector dimension {dimension}")
        nbits = params["pq_nbits"]
        if count < 2**nbits:
            nbits = max(1, int(math.log2(max(count, 2))))
        return {"nlist": params.get("nlist") or auto_nlist(count), "m": m, "nbits": nbits}
    raise OdqaError(f"unknown FAISS index kind '{kind}': choose one of flat, hnsw, ivfpq")


def _empty_index(kind: str, dimension: int, params: dict[str, Any]) -> faiss.Index:
    import faiss

    ip = faiss.METRIC_INNER_PRODUCT
    if kind == "flat":
        return faiss.IndexFlatIP(dimension)
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dimension, params["m"], ip)
        index.hnsw.efConstruction = params["ef_construction"]
        return index
    quantizer = faiss.IndexFlatIP(dimension)
    return faiss.IndexIVFPQ(quantizer, dimension, params["nlist"], params["m"], params["nbits"], ip)


def _training_sample(chunks: Sequence[Chunk], count: int, seed: int = 0) -> np.ndarray:
    """Up to TRAIN_SAMPLE vectors drawn uniformly (seeded) across all chunks."""
    rng = np.random.default_rng(seed)
    wanted = np.sort(rng.choice(count, size=min(count, TRAIN_SAMPLE), replace=False))
    parts, offset = [], 0
    for chunk in chunks:
        array = np.load(chunk, mmap_mode="r") if isinstance(chunk, Path) else chunk
        inside = wanted[(wanted >= offset) & (wanted < offset + len(array))] - offset
        parts.append(np.asarray(array[inside], dtype=np.float32))
        offset += len(array)
    return np.ascontiguousarray(np.concatenate(parts))


def build_index(
    chunks: Sequence[Chunk],
    kind: str,
    params: dict[str, Any],
    on_chunk: Callable[[int], None] | None = None,
) -> faiss.Index:
    """Build a FAISS index over the vectors of ``chunks`` (arrays or ``.npy`` paths), in order.

    Args:
        chunks: float32 arrays (n_i, dim), all of one dimension.
        kind: ``flat``, ``hnsw`` or ``ivfpq``.
        params: from :func:`resolve_params`.
        on_chunk: called with each chunk's size after it is added.
    """
    shapes = [np.load(c, mmap_mode="r").shape if isinstance(c, Path) else c.shape for c in chunks]
    count, dimension = sum(s[0] for s in shapes), shapes[0][1]
    index = _empty_index(kind, dimension, params)
    if kind == "ivfpq":
        index.train(_training_sample(chunks, count))
    for chunk in chunks:
        vectors = _load(chunk)
        index.add(vectors)
        if on_chunk is not None:
            on_chunk(len(vectors))
    return index


def write_index(index: faiss.Index, path: Path) -> None:
    """Write ``index`` to ``path`` with FAISS's own format."""
    import faiss

    faiss.write_index(index, str(path))


def read_index(path: Path, mmap: bool = True) -> faiss.Index:
    """Read a FAISS index, memory-mapped where FAISS supports it for that kind.

    Raises:
        IndexLoadError: when the file is missing or unreadable.
    """
    import faiss

    if not path.is_file():
        raise IndexLoadError(f"dense index file {path} is missing: rebuild the index")
    flags = [faiss.IO_FLAG_MMAP | getattr(faiss, "IO_FLAG_MMAP_IFC", 0) | faiss.IO_FLAG_READ_ONLY]
    flags = [*flags, faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY, 0] if mmap else [0]
    for position, flag in enumerate(flags):
        try:
            return faiss.read_index(str(path), flag)
        except RuntimeError as exc:
            if position == len(flags) - 1:
                raise IndexLoadError(f"cannot read dense index file {path}: {exc}") from exc
    raise AssertionError("unreachable")


def set_search_params(index: faiss.Index, ef_search: int | None, nprobe: int | None) -> None:
    """Apply query-time knobs: HNSW beam width, IVF lists visited."""
    import faiss

    if ef_search is not None and hasattr(index, "hnsw"):
        index.hnsw.efSearch = int(ef_search)
    if nprobe is not None:
        ivf = faiss.try_extract_index_ivf(index)
        if ivf is not None:
            ivf.nprobe = int(nprobe)


def search(
    index: faiss.Index,
    queries: np.ndarray,
    k: int,
    vectors: np.ndarray | None = None,
    refine: int = 0,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Top ``k`` (ids int64, scores float32) per query row, best first, ties by id.

    Args:
        index: any inner-product FAISS index.
        queries: (n, dim) float32.
        k: results per query.
        vectors: the exact indexed vectors (memory-mapped), for re-ranking.
        refine: with ``vectors``, fetch ``refine * k`` candidates and re-score them exactly.
    """
    k = min(k, index.ntotal)
    if k <= 0 or len(queries) == 0:
        empty = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))
        return [empty for _ in range(len(queries))]
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    depth = min(k * refine, index.ntotal) if vectors is not None and refine > 1 else k
    scores, ids = index.search(queries, depth)
    results = []
    for query, row_ids, row_scores in zip(queries, ids, scores, strict=True):
        keep = row_ids >= 0
        row_ids, row_scores = row_ids[keep].astype(np.int64), row_scores[keep].astype(np.float32)
        if depth > k and vectors is not None:
            row_scores = _exact_scores(vectors, row_ids, query)
        order = np.lexsort((row_ids, -row_scores))[:k]
        results.append((row_ids[order], row_scores[order]))
    return results


def _exact_scores(vectors: np.ndarray, ids: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Inner products of ``query`` with the rows ``ids`` (read in sorted order from the map)."""
    order = np.argsort(ids)
    rows = np.asarray(vectors[ids[order]], dtype=np.float32)
    scores = np.empty(len(ids), dtype=np.float32)
    scores[order] = rows @ query
    return scores
