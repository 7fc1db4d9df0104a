"""Searching the shards of a sharded build in place, without merging them first.

A folder whose subfolders are a complete set of shards (``odqa index --shard I/N`` into
``DIR/shard-I``, say) opens as a :class:`ShardedIndex`: passages are numbered globally in shard
order, so hits, ids and runs are those of the merged index. BM25 scores use *global* statistics
(document frequencies summed over the shards, the average length of the whole corpus), computed
per query from the shards' raw counts (``tf.npy``) with :mod:`odqa.retrieval.bm25_formulas`: the
scores equal the merged index's up to float32 rounding of the sum, and the ranking is the same.
Dense search encodes each query once and merges the shards' top k by inner product (exact for
flat indexes; HNSW and IVF shards are searched each with their own graph or lists). Hybrid
fuses those two. Phrase search needs the merged index (``odqa merge``).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from odqa.errors import OdqaError
from odqa.index.families import FAMILIES, HYBRID
from odqa.index.manifest import MANIFEST, Manifest
from odqa.index.passages import PassageStore
from odqa.index.store import Index
from odqa.retrieval.topk import top_k
from odqa.types import Passage, RankedIds


def shard_folders(path: Path) -> list[Path]:
    """Subfolders of ``path`` that hold a shard's manifest (empty when there are none)."""
    if not path.is_dir() or (path / MANIFEST).is_file():
        return []
    found = []
    for child in sorted(p for p in path.iterdir() if (p / MANIFEST).is_file()):
        try:
            manifest = json.loads((child / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(manifest, dict) and manifest.get("shard") is not None:
            found.append(child)
    return found


class ShardedPassages:
    """The shards' passage stores as one store numbered globally."""

    def __init__(self, stores: list[PassageStore]) -> None:
        self.stores = stores
        self.starts = np.cumsum([0, *(len(s) for s in stores)])

    def __len__(self) -> int:
        return int(self.starts[-1])

    def _locate(self, i: int) -> tuple[PassageStore, int]:
        if not 0 <= i < len(self):
            raise IndexError(f"passage {i} out of range 0..{len(self) - 1}")
        shard = int(np.searchsorted(self.starts, i, side="right")) - 1
        return self.stores[shard], i - int(self.starts[shard])

    def __getitem__(self, i: int) -> Passage:
        store, local = self._locate(int(i))
        return store[local]

    def get_many(self, indices: list[int] | np.ndarray) -> list[Passage]:
        return [self[int(i)] for i in indices]

    def record_head(self, i: int, size: int) -> bytes:
        store, local = self._locate(int(i))
        return store.record_head(local, size)

    def close(self) -> None:
        for store in self.stores:
            store.close()


class ShardedBM25:
    """BM25 over the shards with global statistics (see the module docstring)."""

    def __init__(self, shards: list[Any], tfs: list[np.ndarray], starts: np.ndarray) -> None:
        from odqa.retrieval import bm25_formulas as f

        self.shards, self.tfs, self.starts = shards, tfs, starts
        self.params, self.analyzer = shards[0].params, shards[0].analyzer
        lengths = [np.asarray(s.doc_lengths) for s in shards]
        self.n_passages = int(sum(len(x) for x in lengths))
        self.avgdl = float(np.concatenate(lengths).mean()) if self.n_passages else 0.0
        self.norms = [f.length_norm(self.params, x, self.avgdl) for x in lengths]
        self.base = f.absent_weight(self.params)

    def _terms(self, query: str) -> dict[str, int]:
        """The query's terms and how often each occurs, in first-seen order."""
        words = self.analyzer.split(query)
        mapping = self.analyzer.term_map(words)
        counts: dict[str, int] = {}
        for word in words:
            term = mapping[word]
            if term is not None:
                counts[term] = counts.get(term, 0) + 1
        return counts

    def search_ids(self, queries: list[str], k: int) -> list[RankedIds]:
        """Top ``k`` global passage indices and BM25 scores per query."""
        return [self._search_one(query, k) for query in queries]

    def _search_one(self, query: str, k: int) -> RankedIds:
        from odqa.retrieval import bm25_formulas as f

        terms = self._terms(query)
        rows = [[s.vocab.get(t, -1) for t in terms] for s in self.shards]
        df = np.zeros(len(terms), dtype=np.int64)
        for shard, shard_rows in zip(self.shards, rows, strict=True):
            for j, row in enumerate(shard_rows):
                if row >= 0:
                    df[j] += int(shard.indptr[row + 1] - shard.indptr[row])
        idf = f.idf(self.params, df, self.n_passages)
        counts = np.fromiter(terms.values(), dtype=np.int64, count=len(terms))
        absent = np.float32(np.dot(idf * self.base, counts)) if len(terms) else np.float32(0)
        ids, scores = [], []
        for s, shard in enumerate(self.shards):
            found: list[np.ndarray] = []
            buffer = np.zeros(len(shard.doc_lengths), dtype=np.float32)
            for j, row in enumerate(rows[s]):
                if row < 0:
                    continue
                lo, hi = int(shard.indptr[row]), int(shard.indptr[row + 1])
                idx = np.asarray(shard.indices[lo:hi])
                weight = f.weight(self.params, np.asarray(self.tfs[s][lo:hi]), self.norms[s][idx])
                posting = (idf[j] * (weight - self.base)).astype(np.float32)
                buffer[idx] += posting if counts[j] == 1 else counts[j] * posting
                found.append(idx)
            if not found:
                continue
            candidates = np.unique(np.concatenate(found))
            best, values = top_k(buffer[candidates], candidates, k)
            ids.append(best.astype(np.int64) + int(self.starts[s]))
            scores.append(values)
        if not ids:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        best, values = top_k(np.concatenate(scores), np.concatenate(ids), k)
        return best, values + absent


class ShardedDense:
    """Dense search over the shards: one query encoding, the shards' top k merged."""

    def __init__(self, shards: list[Any], starts: np.ndarray) -> None:
        self.shards, self.starts = shards, starts

    def encode(self, queries: list[str]) -> np.ndarray:
        return self.shards[0].encode(queries)

    def search_ids(self, queries: list[str], k: int) -> list[RankedIds]:
        if not queries:
            return []
        return self.search_vectors(self.encode(queries), k)

    def search_vectors(self, vectors: np.ndarray, k: int) -> list[RankedIds]:
        per_shard = [shard.search_vectors(vectors, k) for shard in self.shards]
        results = []
        for q in range(len(vectors)):
            ids = np.concatenate([r[q][0] + int(self.starts[s]) for s, r in enumerate(per_shard)])
            scores = np.concatenate([r[q][1] for r in per_shard])
            results.append(top_k(scores, ids, k))
        return results


class ShardedIndex(Index):
    """An :class:`Index` over a folder of shards, searched in place."""

    def __init__(self, path: Path, shards: list[tuple[Path, Manifest]]) -> None:
        self.path = path
        self.shards = shards
        first = shards[0][1]
        total = first.shard.total if first.shard else 0
        self.manifest = replace(first, corpus=replace(first.corpus, passages=total), shard=None)
        passages = ShardedPassages([PassageStore(p) for p, _ in shards])
        self._starts = passages.starts
        self.passages = passages  # type: ignore[assignment]
        self._retrievers: dict[tuple[str, tuple], Any] = {}

    @classmethod
    def load(cls, path: str | Path) -> ShardedIndex:
        """Open the complete set of shards in the subfolders of ``path``."""
        from odqa.index.merge import read_shards

        path = Path(path)
        return cls(path, read_shards(shard_folders(path)))

    def _open_retriever(self, name: str, options: dict[str, Any]) -> Any:
        if name in (HYBRID, *FAMILIES) and name not in ("bm25", "dense", HYBRID):
            raise OdqaError(
                f"{name} search over unmerged shards is not supported: merge them first "
                f"(`odqa merge {self.path}/* --out MERGED`)"
            )
        if name == HYBRID or name not in self.kinds:
            return super()._open_retriever(name, options)
        parts = [Index(p, m).retriever(name, **options) for p, m in self.shards]
        if name == "dense":
            return ShardedDense(parts, self._starts)
        from odqa.retrieval.bm25_counts import TF_FILE

        tfs = [np.load(p / "bm25" / TF_FILE, mmap_mode="r", allow_pickle=False)
               for p, _ in self.shards]
        return ShardedBM25(parts, tfs, self._starts)
