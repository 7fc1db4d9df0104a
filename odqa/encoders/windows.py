"""Long passages as overlapping windows (MaxP): a passage whose text runs past the encoder's
token limit is encoded as several windows, each with the passage's title, and a dense search
scores the passage by its best window (Dai and Callan 2019, "Deeper Text Understanding for IR
with Contextual Neural Language Modeling"), instead of losing the text past the limit.

The first window is the whole passage as plain truncation encodes it, so a passage that fits
gets exactly the vector it had without windows. Each further window starts half a window after
the previous one (snapped back to the start of a word) and holds as many text tokens as fit
beside the title and the special tokens.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from odqa.types import RankedIds

OVERLAP = 0.5
"""Share of a window repeated at the start of the next one."""

MIN_ROOM = 8
"""Fewer text tokens than this beside the title: the passage is truncated, not windowed."""

Span = tuple[int, int]


def _word_start(offsets: Sequence[Span], text: str, i: int) -> bool:
    """Token ``i`` begins a word (not a continuation piece such as ``##ing``)."""
    begin = offsets[i][0]
    return i == 0 or begin == 0 or offsets[i - 1][1] < begin or text[begin - 1].isspace()


def window_spans(offsets: Sequence[Span], text: str, room: int) -> list[Span]:
    """Character spans of the windows of one passage text.

    Args:
        offsets: the text's token character offsets (no special tokens).
        text: the passage text the offsets index.
        room: text tokens that fit in one window beside the title and special tokens.

    Returns:
        ``[(0, len(text))]`` when the text fits (or ``room`` is under ``MIN_ROOM``); else that
        whole-text first window followed by windows of ``room`` tokens, each starting
        ``room * (1 - OVERLAP)`` tokens after the previous one, the last ending at the text's end.
    """
    count = len(offsets)
    spans = [(0, len(text))]
    if count <= room or room < MIN_ROOM:
        return spans
    step = max(1, int(room * (1 - OVERLAP)))
    start = 0
    while start + room < count:
        wanted = start + step
        begin = wanted
        while begin > start + 1 and not _word_start(offsets, text, begin):
            begin -= 1
        start = begin if _word_start(offsets, text, begin) else wanted
        end = min(start + room, count)
        spans.append((offsets[start][0], offsets[end - 1][1]))
    return spans


def best_window_per_passage(
    search: Callable[[np.ndarray, int], list[RankedIds]],
    queries: np.ndarray,
    owners: np.ndarray,
    k: int,
    passages: int,
) -> list[RankedIds]:
    """Top ``k`` passages per query, each scored by its best window.

    Args:
        search: ``(query vectors, depth)`` -> the top ``depth`` window ids and scores per query,
            best first.
        queries: the query vectors.
        owners: the passage of every window (non-decreasing, memory-mapped is fine).
        k: passages per query.
        passages: passages in the index.

    Windows are fetched deeper than ``k`` (by the index's windows per passage); a query whose
    windows cover fewer than ``k`` passages is searched again twice as deep, up to every window,
    unless the index already returned fewer windows than asked (it has no more for that query).
    """
    total = len(owners)
    k = min(k, passages)
    if k <= 0:
        return [(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)) for _ in queries]
    results: list[RankedIds | None] = [None] * len(queries)
    pending = np.arange(len(queries))
    depth = min(total, math.ceil(k * total / max(passages, 1)) + 8)
    while len(pending):
        short = []
        for q, (ids, scores) in zip(pending, search(queries[pending], depth), strict=True):
            result = _distinct(np.asarray(owners[ids], dtype=np.int64), scores, k)
            exhausted = len(ids) < depth  # e.g. IVF lists visited hold no more windows
            if len(result[0]) < k and depth < total and not exhausted:
                short.append(q)
            results[q] = result
        pending = np.asarray(short, dtype=np.int64)
        depth = min(total, depth * 2)
    return [r for r in results if r is not None]


def _distinct(passage_ids: np.ndarray, scores: np.ndarray, k: int) -> RankedIds:
    """Each passage once with its best score (the first, as hits come best first), best first,
    ties by passage."""
    _, first = np.unique(passage_ids, return_index=True)
    ids, best = passage_ids[first], scores[first].astype(np.float32)
    order = np.lexsort((ids, -best))[:k]
    return ids[order], best[order]
