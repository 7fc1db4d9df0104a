"""BM25 retrieval over a precomputed term x passage score matrix (CSR rows = terms).

Build: passages are tokenised once as they stream in; term ids and counts are gathered in
chunks, then every (term, passage) score is computed with the formulas of
:mod:`odqa.retrieval.bm25_formulas` and stored as ``.npy`` arrays (memory-mapped at search).
Search: a query's score vector is the sum of its terms' rows; top-k by ``argpartition`` over the
touched passages only, ties broken by passage order.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from odqa.errors import IndexLoadError
from odqa.retrieval import bm25_formulas as f
from odqa.retrieval.bm25_formulas import BM25Params
from odqa.retrieval.topk import top_k_indices
from odqa.text import Analyzer
from odqa.types import RankedIds

ARRAYS = ("data", "indices", "indptr", "term_base", "doc_lengths")
CHUNK_TOKENS = 4_000_000


class SparseBuilder:
    """Accumulates tokenised passages and writes a BM25 score matrix."""

    def __init__(self, analyzer: Analyzer, params: BM25Params) -> None:
        self.analyzer = analyzer
        self.params = params
        self.vocab: dict[str, int] = {}
        self._docs = 0
        self._lengths: list[int] = []
        self._pending_terms: list[int] = []
        self._pending_docs: list[int] = []
        self._triples: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def add(self, text: str) -> None:
        """Tokenise one passage (passages must be added in index order)."""
        tokens = self.analyzer.tokenize(text)
        vocab = self.vocab
        ids = [vocab.setdefault(t, len(vocab)) for t in tokens]
        self._pending_terms.extend(ids)
        self._pending_docs.extend([self._docs] * len(ids))
        self._lengths.append(len(ids))
        self._docs += 1
        if len(self._pending_terms) >= CHUNK_TOKENS:
            self._flush()

    def _flush(self) -> None:
        if not self._pending_terms:
            return
        terms = np.asarray(self._pending_terms, dtype=np.int64)
        docs = np.asarray(self._pending_docs, dtype=np.int64)
        keys, counts = np.unique(docs * (1 << 32) + terms, return_counts=True)
        self._triples.append(
            (
                (keys >> 32).astype(np.int32),
                (keys & 0xFFFFFFFF).astype(np.int32),
                counts.astype(np.int32),
            )
        )
        self._pending_terms, self._pending_docs = [], []

    def write(self, folder: Path) -> dict[str, Any]:
        """Compute scores, write the arrays and vocabulary to ``folder``; return manifest stats."""
        self._flush()
        folder.mkdir(parents=True, exist_ok=True)
        n_docs, n_terms = self._docs, len(self.vocab)
        docs = _concat([t[0] for t in self._triples], np.int32)
        terms = _concat([t[1] for t in self._triples], np.int32)
        tf = _concat([t[2] for t in self._triples], np.int32)
        self._triples = []
        lengths = np.asarray(self._lengths, dtype=np.int32)
        df = np.bincount(terms, minlength=n_terms)
        avgdl = float(lengths.mean()) if n_docs else 0.0
        idf = f.idf(self.params, df, n_docs)
        norm = f.length_norm(self.params, lengths[docs], avgdl)
        base = f.absent_weight(self.params)
        scores = idf[terms] * (f.weight(self.params, tf, norm) - base)
        matrix = sp.csr_matrix((scores.astype(np.float32), (terms, docs)), shape=(n_terms, n_docs))
        matrix.sort_indices()
        arrays = {
            "data": matrix.data.astype(np.float32),
            "indices": matrix.indices.astype(np.int32),
            "indptr": matrix.indptr.astype(np.int64),
            "term_base": (idf * base).astype(np.float64),
            "doc_lengths": lengths,
        }
        for name, array in arrays.items():
            np.save(folder / f"{name}.npy", array, allow_pickle=False)
        terms_by_id = sorted(self.vocab, key=self.vocab.__getitem__)
        (folder / "vocab.json").write_text(json.dumps(terms_by_id, ensure_ascii=False))
        return {
            "params": self.params.to_dict(),
            "analyzer": self.analyzer.to_dict(),
            "vocabulary_size": n_terms,
            "nonzeros": int(matrix.nnz),
            "average_length": avgdl,
        }


def _concat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)


class BM25Retriever:
    """Scores queries against a memory-mapped BM25 matrix written by :class:`SparseBuilder`."""

    def __init__(self, folder: Path, section: dict[str, Any], n_passages: int) -> None:
        self.folder = folder
        self.params = BM25Params(**section["params"])
        self.analyzer = Analyzer(**section["analyzer"])
        try:
            loaded = {n: np.load(folder / f"{n}.npy", mmap_mode="r") for n in ARRAYS}
        except (OSError, ValueError) as exc:
            raise IndexLoadError(
                f"{folder}: BM25 arrays unreadable ({exc}); rebuild the index"
            ) from None
        self.data, self.indices, self.indptr = loaded["data"], loaded["indices"], loaded["indptr"]
        self.term_base, self.doc_lengths = loaded["term_base"], loaded["doc_lengths"]
        self.n_passages = n_passages
        expected_terms = section["vocabulary_size"]
        if len(self.indptr) != expected_terms + 1 or len(self.doc_lengths) != n_passages:
            raise IndexLoadError(
                f"{folder}: BM25 arrays do not match the manifest ({len(self.indptr) - 1} terms, "
                f"{len(self.doc_lengths)} passages); rebuild the index with --force"
            )
        self._vocab: dict[str, int] | None = None
        self._buffer = np.zeros(n_passages, dtype=np.float32)

    @property
    def vocab(self) -> dict[str, int]:
        """Term -> row, loaded on first use."""
        if self._vocab is None:
            terms = json.loads((self.folder / "vocab.json").read_text(encoding="utf-8"))
            self._vocab = {t: i for i, t in enumerate(terms)}
        return self._vocab

    def query_terms(self, query: str) -> tuple[np.ndarray, np.ndarray]:
        """Rows of the query's known terms and how often each occurs in the query."""
        vocab = self.vocab
        ids = [vocab[t] for t in self.analyzer.tokenize(query) if t in vocab]
        rows, counts = np.unique(np.asarray(ids, dtype=np.int64), return_counts=True)
        return rows, counts

    def scores(self, queries: list[str]) -> np.ndarray:
        """Full score matrix (queries x passages); for checks and small corpora."""
        out = np.zeros((len(queries), self.n_passages), dtype=np.float64)
        for i, query in enumerate(queries):
            rows, counts = self.query_terms(query)
            out[i] += float(np.dot(self.term_base[rows], counts))
            for row, count in zip(rows, counts):
                lo, hi = self.indptr[row], self.indptr[row + 1]
                out[i, self.indices[lo:hi]] += count * self.data[lo:hi].astype(np.float64)
        return out

    def search_ids(self, queries: list[str], k: int) -> list[RankedIds]:
        """Top ``k`` passages per query among those sharing at least one term with it."""
        return [self._search_one(q, k) for q in queries]

    def _search_one(self, query: str, k: int) -> RankedIds:
        rows, counts = self.query_terms(query)
        buffer = self._buffer
        touched = []
        for row, count in zip(rows.tolist(), counts.tolist()):
            lo, hi = self.indptr[row], self.indptr[row + 1]
            idx = self.indices[lo:hi]
            buffer[idx] += self.data[lo:hi] if count == 1 else count * self.data[lo:hi]
            touched.append(idx)
        if not touched:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        candidates = touched[0] if len(touched) == 1 else np.unique(np.concatenate(touched))
        values = buffer[candidates]
        buffer[candidates] = 0.0
        order = top_k_indices(values, candidates, k)
        base = np.float32(np.dot(self.term_base[rows], counts))
        return candidates[order].astype(np.int64), values[order] + base
