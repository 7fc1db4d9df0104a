"""BM25 retrieval over a precomputed term x passage score matrix (CSR rows = terms).

Build: passages are tokenised once as they stream in (each distinct word is stemmed once and
memoised); (passage, term, count) triples are gathered in chunks that are spilled to disk, so
memory does not grow with the corpus. At the end every (term, passage) score is computed with
the formulas of :mod:`odqa.retrieval.bm25_formulas`, chunk by chunk, and scattered into
memory-mapped ``.npy`` arrays in term order (memory-mapped again at search).
The per-term and per-block maximum scores (:mod:`odqa.retrieval.bm25_bounds`) are written too.
Search: a query's score vector is the sum of its terms' rows; the top k among the passages that
hold a query term, ties broken by passage order. :meth:`BM25Retriever.search_ids` runs the
compiled kernels (:mod:`odqa.retrieval.bm25_engine`: block-max MaxScore, or exhaustive
term-at-a-time scoring), over several threads for a batch; :meth:`BM25Retriever.search_ids_numpy`
is the NumPy reference with the same results (one sparse product (queries x terms) @ (terms x
passages) per batch, top-k by ``partition``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from odqa.errors import IndexLoadError, OdqaError
from odqa.retrieval import bm25_bounds
from odqa.retrieval.bm25_counts import Chunk, TermCounts, write_bm25
from odqa.retrieval.bm25_formulas import BM25Params
from odqa.retrieval.topk import top_k
from odqa.text import Analyzer
from odqa.types import RankedIds

if TYPE_CHECKING:
    from scipy.sparse import csr_matrix

ARRAYS = ("data", "indices", "indptr", "term_base", "doc_lengths")
BM25_FILES = tuple(f"{name}.npy" for name in ARRAYS)
BM25_VOCAB = "vocab.json"
CHUNK_TOKENS = 4_000_000
BATCH_POSTINGS = 4_000_000
MAX_MEMO_WORDS = 1_000_000
SEARCH_STRATEGIES = ("exhaustive", "maxscore")
NUMPY_BATCH = 4
"""Batches this small are scored with NumPy alone while the compiled kernels are not loaded: a
one-query CLI call then imports neither numba nor scipy (about a second each)."""


def _csr_matrix() -> Any:
    """scipy's CSR matrix class, imported on first use (scipy takes about a second to load)."""
    from scipy.sparse import csr_matrix

    return csr_matrix


class SparseBuilder:
    """Accumulates tokenised passages and writes a BM25 score matrix.

    Passages are split into words as they arrive and each word gets a provisional id; the
    distinct words are stemmed in bulk when a chunk is counted, and terms get their ids in order
    of first occurrence, exactly as tokenising and looking up every token in turn would.
    """

    def __init__(self, analyzer: Analyzer, params: BM25Params, scratch: Path) -> None:
        """``scratch``: a folder for the spilled chunks (created; removed by :meth:`write`)."""
        self.analyzer = analyzer
        self.params = params
        self.scratch = scratch
        scratch.mkdir(parents=True, exist_ok=True)
        self.vocab: dict[str, int] = {}
        self._word_ids: dict[str, int] = {}
        self._unmapped_words: list[str] = []
        self._term_of_word: list[int] = []
        self._docs = 0
        self._flushed_docs = 0
        self._word_counts: list[int] = []
        self._pending_words: list[int] = []
        self._lengths: list[np.ndarray] = []
        self._chunks: list[Path] = []
        self._df = np.zeros(0, dtype=np.int64)

    def add(self, text: str) -> None:
        """Tokenise one passage (passages must be added in index order)."""
        words = self.analyzer.split(text)
        try:
            ids = list(map(self._word_ids.__getitem__, words))
        except KeyError:
            self._learn(words)
            ids = list(map(self._word_ids.__getitem__, words))
        self._pending_words.extend(ids)
        self._word_counts.append(len(ids))
        self._docs += 1
        if len(self._pending_words) >= CHUNK_TOKENS:
            self._flush()

    def _learn(self, words: list[str]) -> None:
        """Give each new word the next provisional id, in order of first occurrence."""
        memo = self._word_ids
        for word in words:
            if word not in memo:
                memo[word] = len(memo)
                self._unmapped_words.append(word)

    def _word_terms(self) -> np.ndarray:
        """Term id of every word seen so far (-1 for stopwords), stemming the new ones."""
        new, self._unmapped_words = self._unmapped_words, []
        vocab, term_of_word = self.vocab, self._term_of_word
        for term in self.analyzer.term_map(new).values():
            term_of_word.append(-1 if term is None else vocab.setdefault(term, len(vocab)))
        return np.asarray(term_of_word, dtype=np.int32)

    def _flush(self) -> None:
        """Count the (passage, term) pairs of the pending passages."""
        first, n_docs = self._flushed_docs, self._docs - self._flushed_docs
        terms = self._word_terms()[np.asarray(self._pending_words, dtype=np.int64)]
        docs = np.repeat(np.arange(n_docs, dtype=np.int32), self._word_counts)
        kept = terms >= 0
        terms, docs = terms[kept], docs[kept]
        self._lengths.append(np.bincount(docs, minlength=n_docs).astype(np.int32))
        # a CSR sum of duplicates counts the pairs with short per-passage sorts, not one
        # sort of all pairs
        import scipy.sparse as sp

        counts = sp.csr_matrix(
            (np.ones(len(terms), dtype=np.int32), (docs, terms)), shape=(n_docs, len(self.vocab))
        )
        counts.sum_duplicates()
        chunk_terms = np.asarray(counts.indices, dtype=np.int32)
        chunk = self.scratch / f"{len(self._chunks):06d}.npy"
        np.save(
            chunk,
            np.stack(
                [
                    np.repeat(np.arange(first, self._docs, dtype=np.int32), np.diff(counts.indptr)),
                    chunk_terms,
                    np.asarray(counts.data, dtype=np.int32),
                ]
            ),
            allow_pickle=False,
        )
        self._chunks.append(chunk)
        df = np.bincount(chunk_terms, minlength=len(self.vocab))
        df[: len(self._df)] += self._df
        self._df = df
        self._pending_words, self._word_counts = [], []
        self._flushed_docs = self._docs

    def counts(self) -> TermCounts:
        """Everything added so far as one part of counts (its chunks stay in the scratch
        folder until written)."""
        self._flush()
        df = np.zeros(len(self.vocab), dtype=np.int64)
        df[: len(self._df)] = self._df
        lengths = np.concatenate(self._lengths) if self._lengths else np.zeros(0, np.int32)
        vocab = sorted(self.vocab, key=self.vocab.__getitem__)
        chunks: list[Chunk] = list(self._chunks)
        return TermCounts(vocab, lengths, df, chunks)

    def write(self, folder: Path, keep_tf: bool = False) -> dict[str, Any]:
        """Compute scores, write the arrays and vocabulary to ``folder``; return manifest stats
        (see :func:`~odqa.retrieval.bm25_counts.write_bm25`)."""
        section = write_bm25(folder, self.params, self.analyzer, [self.counts()], keep_tf)
        shutil.rmtree(self.scratch, ignore_errors=True)
        return section


class BM25Retriever:
    """Scores queries against a memory-mapped BM25 matrix written by :class:`SparseBuilder`."""

    def __init__(
        self,
        folder: Path,
        section: dict[str, Any],
        n_passages: int,
        threads: int | None = None,
        strategy: str = "exhaustive",
    ) -> None:
        """Memory-map the arrays in ``folder``. ``threads``: for a batch of queries (None: all
        cores); ``strategy``: ``exhaustive`` or ``maxscore`` (same results)."""
        if threads is not None and (
            isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
        ):
            raise OdqaError(f"bm25 threads must be a positive integer, got {threads!r}")
        if strategy not in SEARCH_STRATEGIES:
            raise OdqaError(
                f"unknown bm25 strategy {strategy!r}: choose {', '.join(SEARCH_STRATEGIES)}"
            )
        self.folder = folder
        self.section = section
        self.threads = threads
        self.strategy = strategy
        self.params = BM25Params(**section["params"])
        self.analyzer = Analyzer(**section["analyzer"])
        try:
            loaded = {n: np.load(folder / f"{n}.npy", mmap_mode="r") for n in ARRAYS}
        except (OSError, ValueError) as exc:
            raise IndexLoadError(
                f"{folder}: BM25 arrays unreadable ({exc}); rebuild the index"
            ) from None
        # Plain ndarray views of the maps: every np.memmap slice runs Python-level hooks.
        plain = {n: np.asarray(a) for n, a in loaded.items()}
        self.data, self.indices, self.indptr = plain["data"], plain["indices"], plain["indptr"]
        self.term_base, self.doc_lengths = plain["term_base"], plain["doc_lengths"]
        self.n_passages = n_passages
        expected_terms = section["vocabulary_size"]
        if len(self.indptr) != expected_terms + 1 or len(self.doc_lengths) != n_passages:
            raise IndexLoadError(
                f"{folder}: BM25 arrays do not match the manifest ({len(self.indptr) - 1} terms, "
                f"{len(self.doc_lengths)} passages); rebuild the index with --force"
            )
        self._vocab: dict[str, int] | None = None
        self._rows_of_words: dict[str, int] = {}
        self._buffer: np.ndarray | None = None
        self._marks: np.ndarray | None = None
        self._has_base = bool(np.any(self.term_base))
        self._matrix: csr_matrix | None = None
        min_score = section.get("min_score")
        self._positive: bool | None = None if min_score is None else min_score > 0
        self._bounds = self._load_bounds()
        self._engine: Any = None

    def _load_bounds(self) -> Any:
        """The per-term and per-block maxima, or None (an index built before they existed, or
        one with scores <= 0, which pruning cannot use: then every posting is scored)."""
        block_size = self.section.get("block_size")
        paths = [self.folder / f"{name}.npy" for name in bm25_bounds.FILES]
        if not isinstance(block_size, int) or block_size < 1 or self._positive is False:
            return None
        if not all(path.is_file() for path in paths):
            return None
        try:
            term_max, block_max = (np.asarray(np.load(p, mmap_mode="r")) for p in paths)
        except (OSError, ValueError) as exc:
            raise IndexLoadError(
                f"{self.folder}: BM25 bounds unreadable ({exc}); rebuild the index with --force"
            ) from None
        block_ptr = bm25_bounds.block_pointers(self.indptr, block_size)
        if len(term_max) != len(self.indptr) - 1 or len(block_max) != block_ptr[-1] or (
            term_max.dtype != np.float32 or block_max.dtype != np.float32
        ):
            raise IndexLoadError(
                f"{self.folder}: term_max.npy / block_max.npy do not match the BM25 matrix; "
                "rebuild the index with --force"
            )
        return {
            "term_max": term_max,
            "block_max": block_max,
            "block_ptr": block_ptr,
            "block_size": block_size,
        }

    @property
    def pruned(self) -> bool:
        """Whether :meth:`search_ids` prunes with block-max MaxScore (else it scores every
        posting of the query's terms; the results are the same)."""
        return self._compiled().pruned

    @property
    def vocab(self) -> dict[str, int]:
        """Term -> row, loaded on first use."""
        if self._vocab is None:
            terms = json.loads((self.folder / BM25_VOCAB).read_text(encoding="utf-8"))
            self._vocab = {t: i for i, t in enumerate(terms)}
        return self._vocab

    def _word_rows(self, query: str) -> list[int]:
        """Rows of the query's known terms in query order, memoised per word (-1: no row)."""
        words = self.analyzer.split(query)
        memo = self._rows_of_words
        try:
            return [r for w in words if (r := memo[w]) >= 0]
        except KeyError:
            if len(memo) > MAX_MEMO_WORDS:
                memo.clear()
            vocab = self.vocab
            for word, term in self.analyzer.term_map(words).items():
                memo[word] = -1 if term is None else vocab.get(term, -1)
            return [r for w in words if (r := memo[w]) >= 0]

    def _rows_counts(self, query: str) -> tuple[list[int], list[int]]:
        """Distinct rows of the query's terms, ascending, and each one's count in the query."""
        ids = self._word_rows(query)
        if len(ids) < 2:
            return ids, [1] * len(ids)
        rows = sorted(set(ids))
        if len(rows) == len(ids):
            return rows, [1] * len(rows)
        return rows, [ids.count(r) for r in rows]

    def query_terms(self, query: str) -> tuple[np.ndarray, np.ndarray]:
        """Rows of the query's known terms and how often each occurs in the query."""
        rows, counts = self._rows_counts(query)
        return np.asarray(rows, dtype=np.int64), np.asarray(counts, dtype=np.int64)

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

    def passage_scores(self, query: str, passages: np.ndarray) -> np.ndarray:
        """Exact scores of ``query`` for the given passages (float32, in their order)."""
        passages = np.asarray(passages, dtype=np.int64)
        rows, counts = self.query_terms(query)
        out = np.full(len(passages), float(np.dot(self.term_base[rows], counts)),
                      dtype=np.float32)
        for row, count in zip(rows, counts):
            postings = self.indices[self.indptr[row] : self.indptr[row + 1]]
            if not len(postings):
                continue
            at = np.minimum(np.searchsorted(postings, passages), len(postings) - 1)
            found = postings[at] == passages
            out[found] += count * self.data[self.indptr[row] + at[found]]
        return out

    def search_ids(self, queries: list[str], k: int) -> list[RankedIds]:
        """Top ``k`` passages per query among those sharing at least one term with it.

        Compiled kernels, the batch shared between :attr:`threads` threads; the results equal
        :meth:`search_ids_numpy`'s exactly. Until the kernels are loaded, batches of at most
        :data:`NUMPY_BATCH` queries are scored with NumPy alone (same results, no imports).
        """
        if k <= 0:
            return [(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)) for _ in queries]
        if self._engine is None and len(queries) <= NUMPY_BATCH:
            return [self._search_one(*self._rows_counts(q), k) for q in queries]
        from odqa.retrieval.bm25_engine import QueryBatch

        terms = [self._rows_counts(q) for q in queries]
        rows: list[int] = []
        counts: list[int] = []
        offsets = [0]
        for query_rows, query_counts in terms:
            rows.extend(query_rows)
            counts.extend(query_counts)
            offsets.append(len(rows))
        batch = QueryBatch(
            np.asarray(rows, dtype=np.int64),
            np.asarray(counts, dtype=np.float32),
            np.asarray(offsets, dtype=np.int64),
        )
        engine = self._compiled()
        scores, docs, sizes = engine.search(batch, k, self._thread_count())
        results: list[RankedIds] = []
        for q, (query_rows, query_counts) in enumerate(terms):
            n = int(sizes[q])
            ids, found = docs[q, :n].copy(), scores[q, :n].copy()
            if self._has_base and n:
                found = found + self._base(query_rows, query_counts)
            results.append((ids, found))
        return results

    def warm_up(self) -> None:
        """Load the compiled kernels now (imports numba), so every batch size uses them."""
        self._compiled()

    def _thread_count(self) -> int:
        from odqa.retrieval.bm25_engine import all_cores

        return self.threads or all_cores()

    def _compiled(self) -> Any:
        """The compiled search engine, made on first use (imports numba)."""
        if self._engine is None:
            from odqa.retrieval.bm25_engine import Bounds, CompiledSearch

            bounds = Bounds(**self._bounds) if self._bounds is not None else None
            self._engine = CompiledSearch(
                self.data,
                self.indices,
                self.indptr,
                self.n_passages,
                self._all_positive(),
                bounds,
                self.strategy,
            )
        return self._engine

    def search_ids_numpy(self, queries: list[str], k: int) -> list[RankedIds]:
        """:meth:`search_ids` in NumPy/SciPy, one thread (the reference the kernels match)."""
        terms = [self._rows_counts(q) for q in queries]
        if not self._all_positive():
            return [self._search_one(rows, counts, k) for rows, counts in terms]
        rows: list[int] = []
        counts: list[int] = []
        lengths = []
        for query_rows, query_counts in terms:
            rows.extend(query_rows)
            counts.extend(query_counts)
            lengths.append(len(query_rows))
        offsets = np.zeros(len(terms) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        rows_a = np.asarray(rows, dtype=np.int64)
        counts_a = np.asarray(counts, dtype=np.float32)
        results: list[RankedIds] = []
        for lo, hi in self._batches(rows_a, offsets):
            start, stop = offsets[lo], offsets[hi]
            # int32 throughout, or scipy would widen the (large) passage index to int64
            query_matrix = _csr_matrix()(
                (
                    counts_a[start:stop],
                    rows_a[start:stop].astype(np.int32),
                    (offsets[lo : hi + 1] - start).astype(np.int32),
                ),
                shape=(hi - lo, len(self.indptr) - 1),
            )
            results.extend(self._search_batch(query_matrix, terms[lo:hi], k))
        return results

    def _all_positive(self) -> bool:
        """Whether every stored score is > 0 (then no sum of them can be 0)."""
        if self._positive is None:
            self._positive = bool(len(self.data) == 0 or self.data.min() > 0)
        return self._positive

    def _batches(self, rows: np.ndarray, offsets: np.ndarray) -> list[tuple[int, int]]:
        """Query ranges whose summed posting lengths stay near ``BATCH_POSTINGS``."""
        ends = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(self.indptr[rows + 1] - self.indptr[rows], out=ends[1:])
        postings = np.minimum(ends[offsets[1:]] - ends[offsets[:-1]], self.n_passages)
        total = np.cumsum(postings)
        ranges, start = [], 0
        while start < len(postings):
            done = total[start - 1] if start else 0
            stop = int(np.searchsorted(total, done + BATCH_POSTINGS, side="right"))
            stop = max(stop, start + 1)
            ranges.append((start, stop))
            start = stop
        return ranges

    def _score_matrix(self) -> csr_matrix:
        if self._matrix is None:
            # int32 offsets (when they fit) keep scipy from copying the int32 indices to int64
            fits = len(self.data) < np.iinfo(np.int32).max
            indptr = self.indptr.astype(np.int32) if fits else self.indptr
            self._matrix = _csr_matrix()(
                (self.data, self.indices, indptr),
                shape=(len(self.indptr) - 1, self.n_passages),
                copy=False,
            )
        return self._matrix

    def _search_batch(
        self, query_matrix: csr_matrix, terms: list[tuple[list[int], list[int]]], k: int
    ) -> list[RankedIds]:
        """Score a batch with one sparse product (queries x terms) @ (terms x passages).

        Each passage's sum is accumulated in float32 over the query's terms in ascending row
        order, exactly as :meth:`_search_one` does; the product only drops zero sums, which
        cannot occur when every stored score is positive.
        """
        product = query_matrix @ self._score_matrix()
        bounds, values = product.indptr.tolist(), product.data
        candidates = product.indices.astype(np.int64)
        results = []
        for i, (rows, counts) in enumerate(terms):
            lo, hi = bounds[i], bounds[i + 1]
            ids, scores = top_k(values[lo:hi], candidates[lo:hi], k)
            if self._has_base and lo < hi:
                scores = scores + self._base(rows, counts)
            results.append((ids, scores))
        return results

    def _base(self, rows: list[int], counts: list[int]) -> np.float32:
        """Score every passage gets from the query's terms it lacks (bm25plus only)."""
        rows_a, counts_a = np.asarray(rows, dtype=np.int64), np.asarray(counts, dtype=np.int64)
        return np.float32(np.dot(self.term_base[rows_a], counts_a))

    def _search_one(self, rows: list[int], counts: list[int], k: int) -> RankedIds:
        """One query by scattering its rows into a dense buffer (any sign of scores)."""
        if not rows:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        if self._buffer is None or self._marks is None:
            self._buffer = np.zeros(self.n_passages, dtype=np.float32)
            self._marks = np.zeros(self.n_passages, dtype=np.bool_)
        buffer, marks, indptr = self._buffer, self._marks, self.indptr
        touched = []
        for row, count in zip(rows, counts):
            lo, hi = indptr[row], indptr[row + 1]
            idx = self.indices[lo:hi]
            buffer[idx] += self.data[lo:hi] if count == 1 else count * self.data[lo:hi]
            touched.append(idx)
        if len(touched) == 1:
            candidates = touched[0]
        elif sum(len(t) for t in touched) * 16 < self.n_passages:
            candidates = np.unique(np.concatenate(touched))
        else:
            for idx in touched:
                marks[idx] = True
            candidates = np.flatnonzero(marks).astype(np.int32)
            marks[candidates] = False
        values = buffer[candidates]
        buffer[candidates] = 0.0
        ids, scores = top_k(values, candidates, k)
        return ids.astype(np.int64), scores + self._base(rows, counts)


def open_bm25(
    folder: Path, section: dict[str, Any], passages: int, **options: Any
) -> BM25Retriever:
    """The BM25 retriever of an index folder, its vocabulary loaded and checked against the
    manifest ``section``.

    Raises:
        IndexLoadError: unreadable arrays or vocabulary, or a vocabulary of the wrong size.
    """
    try:
        retriever = BM25Retriever(folder, section, passages, **options)
    except (TypeError, ValueError, OSError) as exc:
        raise IndexLoadError(
            f"{folder}: unreadable BM25 files ({_first_line(exc)}); rebuild the index with --force"
        ) from None
    try:
        vocab = retriever.vocab
    except (TypeError, ValueError, OSError) as exc:
        raise IndexLoadError(
            f"{folder / BM25_VOCAB}: unreadable ({_first_line(exc)}); rebuild the index "
            "with --force"
        ) from None
    expected = section["vocabulary_size"]
    if len(vocab) != expected or not all(isinstance(term, str) for term in vocab):
        raise IndexLoadError(
            f"{folder / BM25_VOCAB}: expected a list of {expected} terms, found {len(vocab)} "
            "entries; rebuild the index with --force"
        )
    return retriever


def _first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type when it has none), shortened."""
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__
