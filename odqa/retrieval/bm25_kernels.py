"""Compiled BM25 query kernels (numba): exhaustive term-at-a-time scoring and block-max MaxScore.

Both give exactly the NumPy path's results. A passage's score is the float32 sum, over the
query's distinct terms in ascending row order, of ``float32(count) * stored score``; only
passages holding at least one query term are ranked; the order is (-score, passage index).

- :func:`exhaustive_one` adds every posting of every query term into a dense accumulator
  (no branch per posting), then keeps the best k touched passages in a heap: found through the
  postings when they are few, else by a scan of the accumulator. With positive scores the scan
  first takes each chunk's maximum (as int32 bit patterns, whose order is the float order for
  scores >= 0, so the loop vectorises); the k-th largest chunk maximum is a lower bound on the
  k-th best score (k distinct passages reach it), so only chunks and passages at or above it are
  offered to the heap. Other signs use a chunked scan that skips chunks where no score can enter
  the heap. Any sign of stored scores.
- :func:`maxscore_one` walks the postings document-at-a-time with MaxScore: terms are ordered by
  their largest possible contribution (``count * term_max``); once the k-th best score reaches
  the sum of the smallest ones, those terms only complete the scores of passages found through
  the others, and per-block maxima skip passages that cannot enter the top k without reading
  their postings. It needs every stored score to be > 0 (a passage missing a term then loses,
  never gains). Bounds are compared with a float32 rounding margin, so a pruned passage can
  never have scored above the k-th best, and the survivors' scores are summed in row order.

Compiled with ``cache=True`` (the machine code is kept in ``__pycache__``) and ``nogil=True``, so
a thread pool runs batches in parallel.
"""

from __future__ import annotations

import numba as nb
import numpy as np

NO_DOC = np.int64(1) << np.int64(62)
ROUNDING = 2.0**-22
"""Relative float32 error allowed per summed term when a bound is compared with a score."""
CHUNK = 64
"""Passages per chunk when scanning the accumulator: a chunk is read element by element only
when one of its scores can enter the heap."""
MAX_CHUNK = 128
"""Passages per chunk maximum in the positive scan (a fixed trip count, so it vectorises)."""


@nb.njit(cache=True, nogil=True, inline="always")
def _worse(score_a, doc_a, score_b, doc_b) -> bool:
    """Whether (score_a, doc_a) ranks below (score_b, doc_b): lower score, or later passage."""
    return score_a < score_b or (score_a == score_b and doc_a > doc_b)


@nb.njit(cache=True, nogil=True)
def _sift_down(scores, docs, size, at) -> None:
    while True:
        child = 2 * at + 1
        if child >= size:
            return
        if child + 1 < size and _worse(
            scores[child + 1], docs[child + 1], scores[child], docs[child]
        ):
            child += 1
        if not _worse(scores[child], docs[child], scores[at], docs[at]):
            return
        scores[at], scores[child] = scores[child], scores[at]
        docs[at], docs[child] = docs[child], docs[at]
        at = child


@nb.njit(cache=True, nogil=True)
def _offer(scores, docs, size, k, score, doc) -> int:
    """Put (score, doc) into the min-heap of the k best (root: the worst kept); return its size."""
    if size < k:
        at = size
        scores[at], docs[at] = score, doc
        while at > 0:
            parent = (at - 1) // 2
            if not _worse(scores[at], docs[at], scores[parent], docs[parent]):
                break
            scores[at], scores[parent] = scores[parent], scores[at]
            docs[at], docs[parent] = docs[parent], docs[at]
            at = parent
        return size + 1
    if _worse(scores[0], docs[0], score, doc):
        scores[0], docs[0] = score, doc
        _sift_down(scores, docs, size, 0)
    return size


@nb.njit(cache=True, nogil=True)
def _sort_heap(scores, docs, size) -> None:
    """Order the heap in place best first: (-score, doc)."""
    for end in range(size - 1, 0, -1):
        scores[0], scores[end] = scores[end], scores[0]
        docs[0], docs[end] = docs[end], docs[0]
        _sift_down(scores, docs, end, 0)


@nb.njit(cache=True, nogil=True)
def _count_above(acc, marks, lo, hi, marked, floor) -> int:
    """How many (marked, when ``marked``) passages in ``lo:hi`` have ``acc > floor``; a plain
    count, so the compiler vectorises it."""
    found = 0
    if marked:
        for doc in range(lo, hi):
            found += (marks[doc] != 0) & (acc[doc] > floor)
    else:
        for doc in range(lo, hi):
            found += acc[doc] > floor
    return found


@nb.njit(cache=True, nogil=True)
def _scan_top(acc, marks, marked, k, out_scores, out_docs) -> int:
    """The best ``k`` touched passages of the dense accumulator, into the heap; returns its size.

    Touched: ``marks == 1`` when ``marked``, else ``acc > 0``. In passage order a newcomer must
    beat the worst kept score strictly (it loses ties).
    """
    n = len(acc)
    size = 0
    floor = -np.inf if marked else 0.0
    for lo in range(0, n, CHUNK):
        hi = min(n, lo + CHUNK)
        if _count_above(acc, marks, lo, hi, marked, floor) == 0:
            continue
        for doc in range(lo, hi):
            if (marked and marks[doc] == 0) or acc[doc] <= floor:
                continue
            size = _offer(out_scores, out_docs, size, k, acc[doc], np.int64(doc))
            if size == k:
                floor = out_scores[0]
    return size


@nb.njit(cache=True, nogil=True)
def _chunk_maxima(bits, maxima) -> int:
    """Each ``MAX_CHUNK`` chunk's largest value of ``bits`` (>= 0) into ``maxima``; the count."""
    n = len(bits)
    full = n // MAX_CHUNK
    for c in range(full):
        lo = c * MAX_CHUNK
        best = np.int32(0)
        for d in range(MAX_CHUNK):
            value = bits[lo + d]
            if value > best:
                best = value
        maxima[c] = best
    if full * MAX_CHUNK == n:
        return full
    best = np.int32(0)
    for d in range(full * MAX_CHUNK, n):
        value = bits[d]
        if value > best:
            best = value
    maxima[full] = best
    return full + 1


@nb.njit(cache=True, nogil=True)
def _scan_top_positive(acc, maxima, k, out_scores, out_docs) -> int:
    """The best ``k`` passages with ``acc > 0`` (every value >= 0) into the heap; its size.

    Passages below the k-th largest chunk maximum cannot be among the k best and are skipped;
    the others are offered in passage order, so the heap ends as the full scan's would.
    """
    bits = acc.view(np.int32)
    count = _chunk_maxima(bits, maxima)
    bound = np.int32(1)  # the smallest positive float32: only touched passages
    if count > k:
        kth = np.partition(maxima[:count], count - k)[count - k]
        if kth > bound:
            bound = kth
    size = 0
    for c in range(count):
        if maxima[c] < bound:
            continue
        lo = c * MAX_CHUNK
        for doc in range(lo, min(lo + MAX_CHUNK, len(acc))):
            if bits[doc] < bound or (size == k and acc[doc] <= out_scores[0]):
                continue
            size = _offer(out_scores, out_docs, size, k, acc[doc], np.int64(doc))
    return size


@nb.njit(cache=True, nogil=True)
def exhaustive_one(
    data, indices, indptr, rows, counts, k, positive, acc, marks, touched, out_scores, out_docs
) -> int:
    """Top ``k`` of one query by term-at-a-time accumulation; returns the number of hits.

    Any sign of stored scores; ``positive``: all are > 0 (then ``acc > 0`` marks the touched
    passages and ``marks`` is not written). ``acc`` (float32) and ``marks`` (uint8), one slot
    per passage, must be zero on entry and are left zero; ``touched`` (int32, one slot per
    passage) is scratch. Results go to ``out_scores[:n]`` / ``out_docs[:n]``, best first.
    """
    n = len(acc)
    if k <= 0 or len(rows) == 0:
        return 0
    postings = 0
    for i in range(len(rows)):
        postings += indptr[rows[i] + 1] - indptr[rows[i]]
    dense = postings * 8 >= n
    mark = dense and not positive
    for i in range(len(rows)):
        count = np.float32(counts[i])
        for j in range(indptr[rows[i]], indptr[rows[i] + 1]):
            doc = indices[j]
            acc[doc] += count * data[j]
            if mark:
                marks[doc] = 1
    size = 0
    if not dense:
        found = 0
        for i in range(len(rows)):
            for j in range(indptr[rows[i]], indptr[rows[i] + 1]):
                doc = indices[j]
                if marks[doc] == 0:
                    marks[doc] = 1
                    touched[found] = doc
                    found += 1
        for t in range(found):
            marks[touched[t]] = 0
        for t in range(found):
            doc = touched[t]
            size = _offer(out_scores, out_docs, size, k, acc[doc], np.int64(doc))
            acc[doc] = 0.0
    elif positive:
        size = _scan_top_positive(acc, touched, k, out_scores, out_docs)
        acc[:] = 0.0
    else:
        size = _scan_top(acc, marks, True, k, out_scores, out_docs)
        acc[:] = 0.0
        marks[:] = 0
    _sort_heap(out_scores, out_docs, size)
    return size


@nb.njit(cache=True, nogil=True)
def _block_bound(indices, starts, ends, cursor_blocks, block_size, i, doc) -> int:
    """Move term ``i``'s block cursor to the first block whose last passage is >= ``doc``.

    Returns the block's number within the term's row, or -1 when the row has no such block.
    """
    blk = cursor_blocks[i]
    start, end = starts[i], ends[i]
    while True:
        block_start = start + blk * block_size
        if block_start >= end:
            cursor_blocks[i] = blk
            return -1
        last = min(block_start + block_size, end) - 1
        if indices[last] >= doc:
            cursor_blocks[i] = blk
            return blk
        blk += 1


@nb.njit(cache=True, nogil=True)
def _seek(indices, lo, hi, doc) -> int:
    """First position in ``indices[lo:hi]`` (sorted) holding a passage >= ``doc``."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if indices[mid] < doc:
            lo = mid + 1
        else:
            hi = mid
    return lo


@nb.njit(cache=True, nogil=True)
def maxscore_one(
    data,
    indices,
    indptr,
    term_max,
    block_max,
    block_ptr,
    block_size,
    rows,
    counts,
    k,
    out_scores,
    out_docs,
) -> int:
    """Top ``k`` of one query by block-max MaxScore (stored scores must all be > 0).

    ``term_max[row]`` is the largest score in a row, ``block_max[block_ptr[row] + b]`` the
    largest in its ``b``-th run of ``block_size`` postings. Returns the number of hits.
    """
    m = len(rows)
    size = 0
    if m == 0 or k <= 0:
        return 0
    bound = np.empty(m, dtype=np.float64)
    for i in range(m):
        bound[i] = np.float64(counts[i]) * np.float64(term_max[rows[i]])
    order = np.argsort(bound, kind="mergesort")
    below = np.zeros(m + 1, dtype=np.float64)
    for t in range(m):
        below[t + 1] = below[t] + bound[order[t]]
    margin = 1.0 + (m + 2) * ROUNDING
    pos = np.empty(m, dtype=np.int64)
    starts = np.empty(m, dtype=np.int64)
    ends = np.empty(m, dtype=np.int64)
    for i in range(m):
        starts[i] = indptr[rows[i]]
        ends[i] = indptr[rows[i] + 1]
        pos[i] = starts[i]
    cursor_blocks = np.zeros(m, dtype=np.int64)
    contrib = np.zeros(m, dtype=np.float32)
    scale = np.empty(m, dtype=np.float32)
    for i in range(m):
        scale[i] = np.float32(counts[i])
    theta = -np.inf
    lazy = 0  # terms order[:lazy] only complete scores; the others propose passages
    while lazy < m:
        doc = NO_DOC
        for t in range(lazy, m):
            i = order[t]
            if pos[i] < ends[i] and indices[pos[i]] < doc:
                doc = np.int64(indices[pos[i]])
        if doc == NO_DOC:
            break
        found = 0.0
        for t in range(lazy, m):
            i = order[t]
            if pos[i] < ends[i] and indices[pos[i]] == doc:
                contrib[i] = scale[i] * data[pos[i]]
                found += contrib[i]
                pos[i] += 1
            else:
                contrib[i] = 0.0
        full = size == k
        if full and (found + below[lazy]) * margin <= theta:
            continue
        if full and lazy > 0:
            blocks = found
            for t in range(lazy):
                i = order[t]
                blk = _block_bound(indices, starts, ends, cursor_blocks, block_size, i, doc)
                if blk >= 0:
                    blocks += np.float64(scale[i]) * block_max[block_ptr[rows[i]] + blk]
            if blocks * margin <= theta:
                continue
        alive = True
        for t in range(lazy - 1, -1, -1):
            if full and (found + below[t + 1]) * margin <= theta:
                alive = False
                break
            i = order[t]
            blk = _block_bound(indices, starts, ends, cursor_blocks, block_size, i, doc)
            contrib[i] = 0.0
            if blk < 0:
                pos[i] = ends[i]
                continue
            block_start = starts[i] + blk * block_size
            lo = max(pos[i], block_start)
            pos[i] = _seek(indices, lo, min(block_start + block_size, ends[i]), doc)
            if pos[i] < ends[i] and indices[pos[i]] == doc:
                contrib[i] = scale[i] * data[pos[i]]
                found += contrib[i]
        if not alive:
            continue
        score = np.float32(0.0)
        for i in range(m):
            score += contrib[i]
        size = _offer(out_scores, out_docs, size, k, score, doc)
        if size == k:
            theta = np.float64(out_scores[0])
            while lazy < m and below[lazy + 1] * margin <= theta:
                lazy += 1
    _sort_heap(out_scores, out_docs, size)
    return size


@nb.njit(cache=True, nogil=True)
def exhaustive_batch(
    data, indices, indptr, rows, counts, offsets, k, positive, acc, marks, touched, out_scores,
    out_docs, out_sizes,
) -> None:
    """:func:`exhaustive_one` for queries ``offsets[q]:offsets[q + 1]`` of ``rows``/``counts``."""
    for q in range(len(offsets) - 1):
        lo, hi = offsets[q], offsets[q + 1]
        out_sizes[q] = exhaustive_one(
            data, indices, indptr, rows[lo:hi], counts[lo:hi], k, positive, acc, marks, touched,
            out_scores[q], out_docs[q],
        )


@nb.njit(cache=True, nogil=True)
def maxscore_batch(
    data, indices, indptr, term_max, block_max, block_ptr, block_size, rows, counts, offsets, k,
    out_scores, out_docs, out_sizes,
) -> None:
    """:func:`maxscore_one` for queries ``offsets[q]:offsets[q + 1]`` of ``rows``/``counts``."""
    for q in range(len(offsets) - 1):
        lo, hi = offsets[q], offsets[q + 1]
        out_sizes[q] = maxscore_one(
            data, indices, indptr, term_max, block_max, block_ptr, block_size, rows[lo:hi],
            counts[lo:hi], k, out_scores[q], out_docs[q],
        )
