"""Term counts as mergeable parts, and the one writer of a BM25 score matrix.

A :class:`TermCounts` is what tokenising a run of consecutive passages yields: its vocabulary
(terms in order of first occurrence), each passage's length, each term's document frequency and
``(passage, term, count)`` triples in chunks, all with ids local to the part. :func:`write_bm25`
takes the parts of a corpus in passage order and writes the matrix exactly as one pass over the
whole corpus would: the global vocabulary is the parts' vocabularies in order (so terms keep
their first-occurrence ids), document frequencies and the average length are global, and every
score is computed from raw counts with :mod:`odqa.retrieval.bm25_formulas`. That makes a part
interchangeable whoever produced it: the streaming builder of one process (one part), a
distributed work unit (:func:`count_passages`, one part per passage range) or the shards of a
sharded build (:func:`shard_counts`, whose ``tf.npy`` keeps the raw counts).
"""

from __future__ import annotations

import itertools
import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from odqa.retrieval import bm25_bounds
from odqa.retrieval import bm25_formulas as f
from odqa.retrieval.bm25_formulas import BM25Params
from odqa.text import Analyzer

SCORE_SLICE = 8_000_000
SHARD_SLICE = 4_000_000
"""Postings per chunk read back from a shard's arrays."""
TF_FILE = "tf.npy"
"""Raw term counts aligned with ``data.npy``: kept by shard builds so a merge can rescore."""
VOCAB_FILE = "vocab.json"

Chunk = Path | Callable[[], np.ndarray]
"""A ``(3, n)`` int32 array of (passage, term, count) rows: a ``.npy`` file (removed once
written into the matrix) or a function returning the array."""


@dataclass
class TermCounts:
    """Counts of consecutive passages, with passage and term ids local to the part."""

    vocab: list[str]
    lengths: np.ndarray
    df: np.ndarray
    chunks: list[Chunk]

    @property
    def passages(self) -> int:
        return len(self.lengths)


def _load_chunk(chunk: Chunk) -> np.ndarray:
    if isinstance(chunk, Path):
        return np.load(chunk, allow_pickle=False)
    return chunk()


def _global_terms(parts: list[TermCounts]) -> tuple[dict[str, int], list[np.ndarray]]:
    """The merged vocabulary (first occurrence over the parts in order) and each part's map
    from local to global term ids."""
    vocab: dict[str, int] = {}
    maps = []
    for part in parts:
        maps.append(np.fromiter((vocab.setdefault(t, len(vocab)) for t in part.vocab),
                                dtype=np.int32, count=len(part.vocab)))
    return vocab, maps


def _parts_chunks(parts: list[TermCounts], maps: list[np.ndarray]) -> Iterator[np.ndarray]:
    """Every chunk of every part with global passage and term ids."""
    first = 0
    for part, mapping in zip(parts, maps, strict=True):
        for chunk in part.chunks:
            triples = _load_chunk(chunk)
            yield np.stack([triples[0] + first, mapping[triples[1]], triples[2]])
            if isinstance(chunk, Path):
                chunk.unlink()
        first += part.passages


def write_bm25(
    folder: Path,
    params: BM25Params,
    analyzer: Analyzer,
    parts: list[TermCounts],
    keep_tf: bool = False,
) -> dict[str, Any]:
    """Compute scores, write the arrays and vocabulary to ``folder``; return the manifest
    section. ``keep_tf`` also writes the raw counts (``tf.npy``, for a shard).

    Postings are placed chunk by chunk (chunks hold passages in index order, so each term's
    row ends up sorted by passage) straight into memory-mapped output arrays.
    """
    folder.mkdir(parents=True, exist_ok=True)
    vocab, maps = _global_terms(parts)
    n_terms = len(vocab)
    df = np.zeros(n_terms, dtype=np.int64)
    for part, mapping in zip(parts, maps, strict=True):
        local = np.zeros(len(mapping), dtype=np.int64)
        local[: len(part.df)] = part.df
        df[mapping] += local
    lengths = (np.concatenate([p.lengths for p in parts]).astype(np.int32, copy=False)
               if parts else np.zeros(0, np.int32))
    n_docs = len(lengths)
    avgdl = float(lengths.mean()) if n_docs else 0.0
    idf = f.idf(params, df, n_docs)
    base = f.absent_weight(params)
    indptr = np.zeros(n_terms + 1, dtype=np.int64)
    np.cumsum(df, out=indptr[1:])
    nnz = int(indptr[-1])
    data = np.lib.format.open_memmap(folder / "data.npy", "w+", np.float32, (nnz,))
    indices = np.lib.format.open_memmap(folder / "indices.npy", "w+", np.int32, (nnz,))
    tf_out = (np.lib.format.open_memmap(folder / TF_FILE, "w+", np.int32, (nnz,))
              if keep_tf else None)
    cursor = indptr[:-1].copy()
    for docs, terms, tf in _parts_chunks(parts, maps):
        scores = _scores(params, docs, terms, tf, lengths, avgdl, idf, base)
        order = np.argsort(terms, kind="stable")
        terms = terms[order]
        per_term = np.bincount(terms, minlength=n_terms)
        group_start = np.cumsum(per_term) - per_term
        positions = cursor[terms] + (np.arange(len(terms)) - group_start[terms])
        data[positions] = scores[order]
        indices[positions] = docs[order]
        if tf_out is not None:
            tf_out[positions] = tf[order]
        cursor += per_term
    for written in (data, indices, tf_out):
        if written is not None:
            written.flush()
    del data, indices, tf_out
    arrays: dict[str, np.ndarray] = {
        "indptr": indptr,
        "term_base": (idf * base).astype(np.float64),
        "doc_lengths": lengths,
    }
    for name, array in arrays.items():
        np.save(folder / f"{name}.npy", array, allow_pickle=False)
    smallest = bm25_bounds.write_maxima(folder, indptr, bm25_bounds.BLOCK_SIZE)
    terms_by_id = sorted(vocab, key=vocab.__getitem__)
    (folder / VOCAB_FILE).write_text(json.dumps(terms_by_id, ensure_ascii=False))
    return {
        "params": params.to_dict(),
        "analyzer": analyzer.to_dict(),
        "vocabulary_size": n_terms,
        "nonzeros": nnz,
        "average_length": avgdl,
        "block_size": bm25_bounds.BLOCK_SIZE,
        "min_score": smallest,
    }


def _scores(
    params: BM25Params,
    docs: np.ndarray,
    terms: np.ndarray,
    tf: np.ndarray,
    lengths: np.ndarray,
    avgdl: float,
    idf: np.ndarray,
    base: float,
) -> np.ndarray:
    """Scores of one chunk's (passage, term, count) triples, in slices that bound the float64
    temporaries."""
    scores = np.empty(len(terms), dtype=np.float32)
    for lo in range(0, len(terms), SCORE_SLICE):
        part = slice(lo, lo + SCORE_SLICE)
        norm = f.length_norm(params, lengths[docs[part]], avgdl)
        scores[part] = idf[terms[part]] * (f.weight(params, tf[part], norm) - base)
    return scores


# --- parts saved to disk: the output of a distributed work unit --------------------------

_PART_ARRAYS = ("lengths", "df")


def save_counts(counts: TermCounts, target: Path) -> None:
    """Write ``counts`` as the folder ``target`` (atomically: a ``.partial`` folder renamed)."""
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    np.save(partial / "lengths.npy", counts.lengths, allow_pickle=False)
    np.save(partial / "df.npy", counts.df, allow_pickle=False)
    for number, chunk in enumerate(counts.chunks):
        np.save(partial / f"chunk-{number:05d}.npy", _load_chunk(chunk), allow_pickle=False)
        if isinstance(chunk, Path):
            chunk.unlink()
    (partial / VOCAB_FILE).write_text(json.dumps(counts.vocab, ensure_ascii=False))
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)


def load_counts(target: Path) -> TermCounts:
    """The counts :func:`save_counts` wrote (chunks stay on disk until written)."""
    vocab = json.loads((target / VOCAB_FILE).read_text(encoding="utf-8"))
    lengths, df = (np.load(target / f"{name}.npy", allow_pickle=False) for name in _PART_ARRAYS)
    chunks: list[Chunk] = [*sorted(target.glob("chunk-*.npy"))]
    return TermCounts(vocab, lengths, df, chunks)


def count_passages(
    store_folder: Path, start: int, stop: int, analyzer: dict[str, Any], target: Path
) -> int:
    """Work unit: tokenise passages ``start:stop`` of the passage store at ``store_folder``
    with the analyzer of the settings ``analyzer`` (``Analyzer.to_dict()``) and save their
    counts as ``target``; return the number of passages."""
    from odqa.index.build import bm25_text
    from odqa.index.passages import PassageStore
    from odqa.retrieval.sparse import SparseBuilder

    store = PassageStore(store_folder)
    scratch = target.with_name(target.name + ".scratch")
    shutil.rmtree(scratch, ignore_errors=True)
    try:
        builder = SparseBuilder(Analyzer(**analyzer), BM25Params(), scratch=scratch)
        for i in range(start, stop):
            builder.add(bm25_text(store[i]))
        save_counts(builder.counts(), target)
    finally:
        store.close()
        shutil.rmtree(scratch, ignore_errors=True)
    return stop - start


# --- parts read back from a shard's BM25 folder --------------------------------------------


def shard_counts(folder: Path) -> TermCounts:
    """The counts of a shard's BM25 folder (built with ``keep_tf``), read memory-mapped."""
    indptr = np.load(folder / "indptr.npy", allow_pickle=False)
    indices = np.load(folder / "indices.npy", mmap_mode="r", allow_pickle=False)
    tf = np.load(folder / TF_FILE, mmap_mode="r", allow_pickle=False)
    lengths = np.load(folder / "doc_lengths.npy", allow_pickle=False)
    vocab = json.loads((folder / VOCAB_FILE).read_text(encoding="utf-8"))
    bounds = np.searchsorted(indptr, np.arange(0, int(indptr[-1]), SHARD_SLICE), "right") - 1
    edges = [*dict.fromkeys(int(b) for b in bounds), len(indptr) - 1]

    def chunk(lo: int, hi: int) -> Callable[[], np.ndarray]:
        def read() -> np.ndarray:
            p0, p1 = int(indptr[lo]), int(indptr[hi])
            terms = np.repeat(np.arange(lo, hi, dtype=np.int32), np.diff(indptr[lo : hi + 1]))
            return np.stack([np.asarray(indices[p0:p1]), terms, np.asarray(tf[p0:p1])])

        return read

    chunks: list[Chunk] = [chunk(lo, hi) for lo, hi in itertools.pairwise(edges) if hi > lo]
    return TermCounts(vocab, lengths, np.diff(indptr), chunks)
