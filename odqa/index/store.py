"""An opened index: its manifest, its passages and the retrievers of its families.

Layout::

    manifest.json            format, versions, parameters, corpus statistics, build time
    passages.jsonl           one {"id", "doc_id", "title", "text"} per line
    passages.offsets.npy     int64 byte offsets (passages + 1), so passage i is one slice
    <family>/                one folder per retriever family (bm25/, dense/, phrase/)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from odqa.errors import IndexLoadError, OdqaError
from odqa.index.families import (
    DEFAULT_FUSED,
    FAMILIES,
    HYBRID,
    HYBRID_OPTIONS,
    retriever_names,
)
from odqa.index.manifest import MANIFEST, Manifest, read_manifest
from odqa.index.passages import PassageStore
from odqa.lazy_hits import stored_hits
from odqa.text import Analyzer
from odqa.types import Hit, RankedIds


def default_index_root() -> Path:
    """Where indexes go by default: ``$ODQA_INDEX_DIR`` or ``./indexes``."""
    return Path(os.environ.get("ODQA_INDEX_DIR", "indexes"))


def resolve_index(index: Path | None) -> Path:
    """``index`` when given; else the only index under the default root, or a clear error."""
    if index is not None:
        return index
    root = default_index_root()
    found = sorted(p for p in root.glob("*") if (p / MANIFEST).is_file()) if root.is_dir() else []
    if len(found) == 1:
        return found[0]
    if not found:
        raise OdqaError(
            f"no index given and none under '{root}/': build one with `odqa index CORPUS` "
            "or pass --index DIR"
        )
    names = ", ".join(p.name for p in found)
    raise OdqaError(f"several indexes under '{root}/' ({names}): choose one with --index DIR")


class Index:
    """An opened index: passages plus the retrievers it was built with."""

    def __init__(self, path: Path, manifest: Manifest) -> None:
        self.path = path
        self.manifest = manifest
        self.passages = PassageStore(path)
        expected = manifest.corpus.passages
        if len(self.passages) != expected:
            raise IndexLoadError(
                f"{path}: {len(self.passages)} passages on disk, manifest says {expected}; "
                "rebuild the index with --force"
            )
        self._retrievers: dict[tuple[str, tuple], Any] = {}

    @classmethod
    def load(cls, path: str | Path) -> Index:
        """Open the index directory at ``path`` (validated, arrays memory-mapped)."""
        path = Path(path)
        return cls(path, read_manifest(path))

    @property
    def kinds(self) -> list[str]:
        """Retriever families stored in this index (e.g. ``["bm25", "dense"]``)."""
        return list(self.manifest.kinds)

    @property
    def analyzer(self) -> Analyzer | None:
        """The BM25 tokeniser settings, or None without a BM25 index."""
        if "bm25" not in self.manifest.families:
            return None
        return Analyzer(**self.manifest.section("bm25")["analyzer"])

    def retrievers(self) -> list[str]:
        """Retriever names usable with this index: its families, and the hybrid with two."""
        names = [k for k in self.kinds if k in FAMILIES]
        return [*names, HYBRID] if len(names) >= 2 else names

    def fused_by_default(self) -> tuple[str, ...]:
        """What ``hybrid`` fuses without ``fuse``: bm25 + dense when stored, else all."""
        kinds = self.kinds
        return DEFAULT_FUSED if all(k in kinds for k in DEFAULT_FUSED) else tuple(kinds)

    def retriever(self, name: str, **options: Any) -> Any:
        """The retriever ``name`` (cached per options), loaded on first use."""
        key = (name, tuple(sorted(options.items())))
        if key not in self._retrievers:
            self._retrievers[key] = self._open_retriever(name, options)
        return self._retrievers[key]

    def _open_retriever(self, name: str, options: dict[str, Any]) -> Any:
        if name not in retriever_names():
            raise OdqaError(
                f"unknown retriever '{name}': choose one of {', '.join(retriever_names())}"
            )
        available = self.retrievers()
        if name not in available:
            hint = name if name != HYBRID else ",".join(DEFAULT_FUSED)
            raise OdqaError(
                f"retriever '{name}' is not available in index '{self.path}' "
                f"(built with: {', '.join(available) or 'none'}); choose one of those or rebuild "
                f"with `odqa index ... --retrievers {hint}`"
            )
        if name == HYBRID:
            return self._open_hybrid(options)
        family = FAMILIES[name]
        unknown = sorted(set(options) - set(family.search_options))
        if unknown:
            raise OdqaError(
                f"{name} search options are {', '.join(family.search_options) or 'none'}; "
                f"got {', '.join(unknown)}"
            )
        return family.open(
            self.path / name, self.manifest.section(name), len(self.passages), options
        )

    def _open_hybrid(self, options: dict[str, Any]) -> Any:
        from odqa.retrieval.hybrid import HybridRetriever

        fused = tuple(options.get("fuse") or self.fused_by_default())
        missing = [f for f in fused if f not in self.kinds]
        if len(fused) < 2 or missing:
            raise OdqaError(
                f"hybrid fuses two or more of this index's families ({', '.join(self.kinds)}); "
                f"got {','.join(fused)}"
            )
        own = {k: v for k, v in options.items() if k in HYBRID_OPTIONS and k != "fuse"}
        rest = {k: v for k, v in options.items() if k not in HYBRID_OPTIONS}
        unused = set(rest) - {o for f in fused for o in FAMILIES[f].search_options}
        if unused:
            raise OdqaError(
                f"no family fused by hybrid ({', '.join(fused)}) takes {', '.join(sorted(unused))}"
            )
        parts = [
            self.retriever(f, **{k: v for k, v in rest.items()
                                 if k in FAMILIES[f].search_options})
            for f in fused
        ]
        return HybridRetriever(parts, names=fused, **own)

    def to_hits(self, ranked: list[RankedIds]) -> list[list[Hit]]:
        """Turn per-query (indices, scores) into :class:`Hit` lists; each hit reads its passage
        on first use (:class:`~odqa.lazy_hits.StoredHit`), so ids alone never parse text."""
        return stored_hits(self.passages, ranked)

    def search(
        self, queries: list[str], k: int = 10, retriever: str = "bm25", **options: Any
    ) -> list[list[Hit]]:
        """Search a batch of queries; per query, up to ``k`` hits best first."""
        if k <= 0:
            raise OdqaError(f"k must be positive, got {k}")
        return self.to_hits(self.retriever(retriever, **options).search_ids(queries, k))


def load_index(path: str | Path) -> Index:
    """Open the index directory at ``path`` (arrays memory-mapped) and return an :class:`Index`;
    a folder of shards (``odqa index --shard I/N``) opens as one index searched in place
    (:class:`~odqa.index.sharded.ShardedIndex`)."""
    path = Path(path)
    if not (path / MANIFEST).is_file():
        from odqa.index.sharded import ShardedIndex, shard_folders

        if shard_folders(path):
            return ShardedIndex.load(path)
    return Index.load(path)
