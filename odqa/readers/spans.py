"""Span decoding: the best answer spans of each window from its start and end logits.

A span (i, j) is valid when both tokens lie in the passage, ``j >= i`` and it is at most
``max_answer_length`` tokens long; its score is ``start[i] + end[j]``. The search is exact: every
valid span of the band ``i <= j < i + max_answer_length`` is scored at once (a [batch, length,
max_answer_length] tensor), and the ``n_best`` best are kept per window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class WindowSpans:
    """Top spans of a batch of windows: token starts/ends and scores ([batch, n], -inf = none),
    and the no-answer score ``start[cls] + end[cls]`` per window."""

    starts: np.ndarray
    ends: np.ndarray
    scores: np.ndarray
    null_scores: np.ndarray


def top_spans(start_logits, end_logits, context, cls, *, max_answer_length: int, n_best: int):
    """Best ``n_best`` valid spans per window.

    Args:
        start_logits: float tensor [batch, length].
        end_logits: float tensor [batch, length].
        context: bool tensor [batch, length], true on passage tokens.
        cls: long tensor [batch], position of the no-answer token.
        max_answer_length: longest span in tokens.
        n_best: spans kept per window.

    Returns:
        :class:`WindowSpans` with numpy arrays.
    """
    import torch
    import torch.nn.functional as F

    start = start_logits.float().masked_fill(~context, float("-inf"))
    end = end_logits.float().masked_fill(~context, float("-inf"))
    batch, length = start.shape
    width = max(1, min(max_answer_length, length))
    # band[b, i, d] = start[b, i] + end[b, i + d]: every span of at most `width` tokens.
    end_band = F.pad(end, (0, width - 1), value=float("-inf")).unfold(1, width, 1)
    band = start[:, :, None] + end_band
    k = min(n_best, length * width)
    scores, flat = band.reshape(batch, -1).topk(k, dim=1)
    starts = torch.div(flat, width, rounding_mode="floor")
    ends = starts + flat % width
    rows = torch.arange(batch, device=start.device)
    null = start_logits[rows, cls].float() + end_logits[rows, cls].float()
    return WindowSpans(
        starts=starts.cpu().numpy(),
        ends=ends.cpu().numpy(),
        scores=scores.cpu().numpy(),
        null_scores=null.cpu().numpy(),
    )


def spans_to_chars(offsets: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Character (start, end) of token spans, from one window's offset mapping; shape [n, 2]."""
    return np.stack([offsets[starts, 0], offsets[ends, 1]], axis=1)
