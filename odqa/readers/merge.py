"""Turning a reader's scored candidates into answers: confidence, merging, passage fields.

Every reader ranks candidates best first, gives each a probability (a softmax over scores, or
a beam's sequence probability), merges candidates whose keys (normalised texts) are equal into
one answer that keeps its best candidate, and adds up the merged probability as the answer's
confidence (capped at 1).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

import numpy as np

from odqa.types import Hit

T = TypeVar("T")


def softmax(scores: np.ndarray) -> np.ndarray:
    """Numerically stable softmax of a 1-D array."""
    if not len(scores):
        return scores
    z = np.exp(scores - scores.max())
    return z / z.sum()


def merge_by_key(candidates: Iterable[tuple[T, str, float]], top: int) -> list[tuple[T, float]]:
    """Merge candidates given best first as ``(item, key, probability)``.

    Returns up to ``top`` pairs ``(best item, confidence)``, one per distinct non-empty key in
    order of first appearance; the confidence is the key's summed probability, at most 1.
    """
    best: dict[str, T] = {}
    mass: dict[str, float] = {}
    for item, key, probability in candidates:
        if not key:
            continue
        best.setdefault(key, item)
        mass[key] = mass.get(key, 0.0) + float(probability)
    return [(item, min(1.0, mass[key])) for key, item in list(best.items())[:top]]


def passage_fields(hit: Hit, start: int, end: int) -> dict[str, Any]:
    """The :class:`~odqa.types.Answer` fields of the span ``start:end`` of ``hit``'s text."""
    return {
        "text": hit.text[start:end],
        "passage_id": hit.id,
        "doc_id": hit.doc_id,
        "title": hit.title,
        "start": start,
        "end": end,
        "context": hit.text,
    }
