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
    _ids: tuple[str, str]
    _index: int
    _passage: Passage
    _source: RecordSource

    def __init__(self, source: RecordSource, index: int, score: float, rank: int) -> None:
        _SET_SCORE(self, score)  # the hit is frozen: its slots are set through their descriptors
        _SET_RANK(self, rank)
        _SET_SOURCE(self, source)
        _SET_INDEX(self, index)

    def _load_passage(self) -> Passage:
        try:
            return self._passage
        except AttributeError:  # not read yet (the slot is left empty until then)
            passage = self._source[self._index]
            _SET_PASSAGE(self, passage)
            return passage

    def _load_ids(self) -> tuple[str, str]:
        try:
            return self._ids
        except AttributeError:
            pass
        ids = parse_head(self._source.record_head(self._index, HEAD_BYTES))
        if ids is None:
            passage = self._load_passage()
            ids = (passage.id, passage.doc_id)
        _SET_IDS(self, ids)
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


_SET_SCORE = Hit.__dict__["score"].__set__
_SET_RANK = Hit.__dict__["rank"].__set__
_SET_SOURCE = StoredHit.__dict__["_source"].__set__
_SET_INDEX = StoredHit.__dict__["_index"].__set__
_SET_IDS = StoredHit.__dict__["_ids"].__set__
_SET_PASSAGE = StoredHit.__dict__["_passage"].__set__


def stored_hits(
    source: RecordSource, ranked: Iterable[tuple[np.ndarray, np.ndarray]]
) -> list[list[Hit]]:
    """Per query (passage indices, scores): its :class:`StoredHit` list, ranks from 1.

    Hits are made without calling ``__init__`` (the same four slots set directly: a batch
    makes hundreds of thousands). The cyclic garbage collector is paused meanwhile: hits hold
    no cycles, and would otherwise trigger many full collections.
    """
    new, kind = object.__new__, StoredHit
    set_score, set_rank, set_source, set_index = _SET_SCORE, _SET_RANK, _SET_SOURCE, _SET_INDEX
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        batch: list[list[Hit]] = []
        for indices, scores in ranked:
            hits: list[Hit] = []
            for rank, (i, s) in enumerate(zip(indices.tolist(), scores.tolist()), 1):
                hit = new(kind)
                set_score(hit, s)
                set_rank(hit, rank)
                set_source(hit, source)
                set_index(hit, i)
                hits.append(hit)
            batch.append(hits)
        return batch
    finally:
        if was_enabled:
            gc.enable()
