"""Hits that read their passage from the index only when a field is first used.

A search returns indices and scores; turning them into :class:`~odqa.types.Hit` objects with
text would parse every record of ``passages.jsonl`` even when only ids are written (TREC runs)
or a reader looks at a few hits. :class:`StoredHit` keeps the passage index and parses on
first access: the id and doc id from the head of the record alone, title and text from the
whole record.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Iterable
from typing import Any, Protocol

import numpy as np

from odqa.types import Hit, Passage

HEAD_BYTES = 512
"""Bytes read from the start of a record to find its id and doc id."""
_ID_KEY = b'{"id": '
_DOC_ID_KEY = ', "doc_id": '
_decoder = json.JSONDecoder()


class RecordSource(Protocol):
    """Where :class:`StoredHit` reads passages: a passage store."""

    def __getitem__(self, i: int) -> Passage: ...

    def record_head(self, i: int, size: int) -> bytes: ...


def parse_head(head: bytes) -> tuple[str, str] | None:
    """``(id, doc_id)`` from the start of a ``passages.jsonl`` record, or None when the start is
    not in the layout odqa writes (or is cut before the doc id ends)."""
    if not head.startswith(_ID_KEY):
        return None
    text = head.decode("utf-8", errors="ignore")
    try:
        passage_id, end = _decoder.raw_decode(text, len(_ID_KEY))
        if not text.startswith(_DOC_ID_KEY, end):
            return None
        doc_id, _ = _decoder.raw_decode(text, end + len(_DOC_ID_KEY))
    except ValueError:
        return None
    if not isinstance(passage_id, str) or not isinstance(doc_id, str):
        return None
    return passage_id, doc_id


class StoredHit(Hit):
    """A :class:`Hit` whose passage fields are read from ``source`` on first use.

    Compares equal to a plain :class:`Hit` with the same fields.
    """

    __slots__ = ("_ids", "_index", "_passage", "_source")
    _ids: tuple[str, str] | None
    _index: int
    _passage: Passage | None
    _source: RecordSource

    def __init__(self, source: RecordSource, index: int, score: float, rank: int) -> None:
        setter = object.__setattr__  # the hit is frozen
        setter(self, "score", score)
        setter(self, "rank", rank)
        setter(self, "_source", source)
        setter(self, "_index", index)
        setter(self, "_ids", None)
        setter(self, "_passage", None)

    def _load_passage(self) -> Passage:
        passage = self._passage
        if passage is None:
            passage = self._source[self._index]
            object.__setattr__(self, "_passage", passage)
        return passage

    def _load_ids(self) -> tuple[str, str]:
        ids = self._ids
        if ids is None:
            ids = parse_head(self._source.record_head(self._index, HEAD_BYTES))
            if ids is None:
                passage = self._load_passage()
                ids = (passage.id, passage.doc_id)
            object.__setattr__(self, "_ids", ids)
        return ids

    @property
    def id(self) -> str:
        return self._load_ids()[0]

    @property
    def doc_id(self) -> str:
        return self._load_ids()[1]

    @property
    def title(self) -> str:
        return self._load_passage().title

    @property
    def text(self) -> str:
        return self._load_passage().text

    def _fields(self) -> tuple[Any, ...]:
        return (self.id, self.doc_id, self.score, self.rank, self.title, self.text)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Hit):
            return NotImplemented
        other_fields = (other.id, other.doc_id, other.score, other.rank, other.title, other.text)
        return self._fields() == other_fields

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return f"StoredHit(id={self.id!r}, score={self.score!r}, rank={self.rank!r})"


def stored_hits(
    source: RecordSource, ranked: Iterable[tuple[np.ndarray, np.ndarray]]
) -> list[list[Hit]]:
    """Per query (passage indices, scores): its :class:`StoredHit` list, ranks from 1.

    The cyclic garbage collector is paused meanwhile: hits hold no cycles, and a batch makes
    hundreds of thousands of them, which would otherwise trigger many full collections.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return [
            [
                StoredHit(source, i, s, rank)
                for rank, (i, s) in enumerate(zip(indices.tolist(), scores.tolist()), 1)
            ]
            for indices, scores in ranked
        ]
    finally:
        if was_enabled:
            gc.enable()
