"""Batch BM25 search with the compiled kernels of :mod:`odqa.retrieval.bm25_kernels`.

A batch of queries (their rows and counts, concatenated) is cut into runs of consecutive
queries; with several threads the runs go to a thread pool (the kernels release the GIL).
Strategies (:data:`STRATEGIES`), with identical results: ``exhaustive`` term-at-a-time scoring
(one dense accumulator per thread), and ``maxscore``: block-max MaxScore, which needs the
index's per-block maxima and every stored score > 0 (else it runs ``exhaustive``).
"""

from __future__ import annotations

import os
import queue
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from odqa.retrieval import bm25_kernels as kernels

RUN_QUERIES = 16
"""Queries per kernel call when a batch is shared between threads (balances uneven queries)."""
OUTPUT_ENTRIES = 4_000_000
"""Result slots (queries x k) allocated at a time."""
STRATEGIES = ("exhaustive", "maxscore")


def all_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class Bounds:
    """Per-term and per-block maximum scores (see :mod:`odqa.retrieval.bm25_bounds`)."""

    term_max: np.ndarray
    block_max: np.ndarray
    block_ptr: np.ndarray
    block_size: int


@dataclass(frozen=True)
class QueryBatch:
    """Queries as CSR rows: query ``q`` has terms ``rows[offsets[q]:offsets[q + 1]]`` (ascending)
    counted ``counts[...]`` times."""

    rows: np.ndarray
    counts: np.ndarray
    offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def part(self, lo: int, hi: int) -> QueryBatch:
        """Queries ``lo:hi`` (offsets rebased, arrays shared)."""
        start, stop = self.offsets[lo], self.offsets[hi]
        return QueryBatch(
            self.rows[start:stop], self.counts[start:stop], self.offsets[lo : hi + 1] - start
        )


class CompiledSearch:
    """Top-k search over a BM25 score matrix (CSR, rows = terms) with compiled kernels."""

    def __init__(
        self,
        data: np.ndarray,
        indices: np.ndarray,
        indptr: np.ndarray,
        n_passages: int,
        positive: bool,
        bounds: Bounds | None,
        strategy: str = "exhaustive",
    ) -> None:
        """``positive``: every stored score is > 0. ``strategy``: one of :data:`STRATEGIES`;
        ``maxscore`` without ``bounds`` or with a score <= 0 runs ``exhaustive``."""
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}: choose {', '.join(STRATEGIES)}")
        self.data, self.indices, self.indptr = data, indices, indptr
        self.n_passages = n_passages
        self.positive = positive
        self.bounds = bounds if strategy == "maxscore" and positive else None
        self._buffers: queue.SimpleQueue = queue.SimpleQueue()
        self._pool: ThreadPoolExecutor | None = None
        self._pool_threads = 0

    @property
    def pruned(self) -> bool:
        """Whether queries run with block-max MaxScore (else exhaustive scoring)."""
        return self.bounds is not None

    def search(
        self, batch: QueryBatch, k: int, threads: int = 1
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(scores float32 (n, k), passages int64 (n, k), hits per query int64 (n,))``."""
        n = len(batch)
        scores = np.zeros((n, k), dtype=np.float32)
        docs = np.zeros((n, k), dtype=np.int64)
        sizes = np.zeros(n, dtype=np.int64)
        step = max(1, OUTPUT_ENTRIES // max(k, 1))
        for lo in range(0, n, step):
            hi = min(n, lo + step)
            self._search_part(batch, lo, hi, k, threads, scores, docs, sizes)
        return scores, docs, sizes

    def _search_part(self, batch, lo, hi, k, threads, scores, docs, sizes) -> None:
        runs = [(a, min(hi, a + RUN_QUERIES)) for a in range(lo, hi, RUN_QUERIES)]
        if threads <= 1 or len(runs) == 1:
            self._run(batch.part(lo, hi), k, scores[lo:hi], docs[lo:hi], sizes[lo:hi])
            return
        pool = self._thread_pool(threads)
        futures = [
            pool.submit(self._run, batch.part(a, b), k, scores[a:b], docs[a:b], sizes[a:b])
            for a, b in runs
        ]
        for future in futures:
            future.result()

    def _thread_pool(self, threads: int) -> ThreadPoolExecutor:
        if self._pool is None or self._pool_threads != threads:
            if self._pool is not None:
                self._pool.shutdown()
            self._pool = ThreadPoolExecutor(threads, thread_name_prefix="odqa-bm25")
            self._pool_threads = threads
        return self._pool

    def _run(self, batch: QueryBatch, k: int, scores, docs, sizes) -> None:
        """One kernel call for consecutive queries, writing into the given result rows."""
        if self.bounds is not None:
            b = self.bounds
            kernels.maxscore_batch(
                self.data, self.indices, self.indptr, b.term_max, b.block_max, b.block_ptr,
                b.block_size, batch.rows, batch.counts, batch.offsets, k, scores, docs, sizes,
            )
            return
        buffers = self._take_buffers()
        try:
            kernels.exhaustive_batch(
                self.data, self.indices, self.indptr, batch.rows, batch.counts, batch.offsets, k,
                self.positive, *buffers, scores, docs, sizes,
            )
        finally:
            self._buffers.put(buffers)

    def _take_buffers(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A free (accumulator, marks, touched) set: one per concurrent kernel call."""
        try:
            return self._buffers.get_nowait()
        except queue.Empty:
            n = self.n_passages
            return (
                np.zeros(n, dtype=np.float32),
                np.zeros(n, dtype=np.uint8),
                np.zeros(n, dtype=np.int32),
            )

    def close(self) -> None:
        """Stop the thread pool (it is restarted when needed)."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
