"""Length-sorted batching and right-padding for model calls: on a CPU a batch costs its padded
size, so every model odqa runs (readers, generators, phrase and dense encoders) batches inputs of
similar length together."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from odqa.errors import OdqaError

MAX_PADDING = 0.1
"""Largest share of padding an input may carry in its batch: a batch never mixes an input with
one more than 10% longer."""


def length_sorted_batches(
    lengths: Sequence[int] | np.ndarray, batch_size: int, max_padding: float = MAX_PADDING
) -> list[np.ndarray]:
    """Indices grouped into batches of at most ``batch_size`` inputs of similar length (longest
    first, so an out-of-memory error shows on the first batch): an input joins a batch only if
    it is at least ``1 - max_padding`` times as long as the batch's longest."""
    if batch_size < 1:
        raise OdqaError(f"--batch-size must be at least 1, got {batch_size}")
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(-lengths, kind="stable")
    batches: list[np.ndarray] = []
    current: list[int] = []
    for i in order:
        full = len(current) == batch_size
        if current and (full or lengths[i] < (1 - max_padding) * lengths[current[0]]):
            batches.append(np.array(current))
            current = []
        current.append(int(i))
    if current:
        batches.append(np.array(current))
    return batches


def pad_ids(
    ids: Sequence[Sequence[int] | np.ndarray], pad_id: int, multiple: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad token id lists into ``(input_ids, attention_mask)`` int64 arrays, the width
    rounded up to ``multiple`` (few distinct shapes keep compiled kernels reused)."""
    lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
    width = -(-int(lengths.max(initial=1)) // multiple) * multiple
    input_ids = np.full((len(ids), width), pad_id, dtype=np.int64)
    for row, x in enumerate(ids):
        input_ids[row, : len(x)] = x
    return input_ids, (np.arange(width)[None, :] < lengths[:, None]).astype(np.int64)
