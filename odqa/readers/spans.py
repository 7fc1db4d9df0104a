"""Span decoding: the best answer spans of each window from its start and end logits.

A span (i, j) is valid when both tokens lie in the passage, ``j >= i`` and it is at most
``max_answer_length`` tokens long; its score is ``start[i] + end[j]``. The search is exact: every
valid span of the band ``i <= j < i + max_answer_length`` is scored at once (a [batch, length,
max_answer_length] array), and the ``n_best`` best are kept per window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


@dataclass(frozen=True, slots=True)
class WindowSpans:
    """Top spans of a batch of windows: token starts/ends and scores ([batch, n], -inf = none),
    and the no-answer score ``start[cls] + end[cls]`` per window."""

    starts: np.ndarray
    ends: np.ndarray
    scores: np.ndarray
    null_scores: np.ndarray


def top_spans(start_logits, end_logits, context, cls, *, max_answer_length: int, n_best: int):
    """Best ``n_best`` valid spans per window (numpy; array-likes such as CPU tensors work too).

    Args:
        start_logits: float array [batch, length].
        end_logits: float array [batch, length].
        context: bool array [batch, length], true on passage tokens.
        cls: int array [batch], position of the no-answer token.
        max_answer_length: longest span in tokens.
        n_best: spans kept per window.

    Returns:
        :class:`WindowSpans`, best first per window.
    """
    start_raw = np.asarray(start_logits, dtype=np.float32)
    end_raw = np.asarray(end_logits, dtype=np.float32)
    context = np.asarray(context, dtype=bool)
    start = np.where(context, start_raw, -np.inf)
    end = np.where(context, end_raw, -np.inf)
    batch, length = start.shape
    width = max(1, min(max_answer_length, length))
    # band[b, i, d] = start[b, i] + end[b, i + d]: every span of at most `width` tokens.
    padded = np.pad(end, ((0, 0), (0, width - 1)), constant_values=-np.inf)
    band = (start[:, :, None] + sliding_window_view(padded, width, axis=1)).reshape(batch, -1)
    k = min(n_best, band.shape[1])
    best = np.argpartition(-band, k - 1, axis=1)[:, :k] if k < band.shape[1] else None
    if best is None:
        best = np.broadcast_to(np.arange(band.shape[1]), band.shape)
    scores = np.take_along_axis(band, best, axis=1)
    order = np.lexsort((best, -scores), axis=1)
    flat = np.take_along_axis(best, order, axis=1)
    rows = np.arange(batch)
    cls = np.asarray(cls, dtype=np.int64)
    return WindowSpans(
        starts=flat // width,
        ends=flat // width + flat % width,
        scores=np.take_along_axis(scores, order, axis=1),
        null_scores=start_raw[rows, cls] + end_raw[rows, cls],
    )


def spans_to_chars(offsets: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Character (start, end) of token spans, from one window's offset mapping; shape [n, 2]."""
    return np.stack([offsets[starts, 0], offsets[ends, 1]], axis=1)
