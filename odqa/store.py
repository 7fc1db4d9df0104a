"""The index directory: one manifest, passages with byte offsets, and a folder per retriever.

Layout::

    manifest.json            format, versions, parameters, corpus statistics, build time
    passages.jsonl           one {"id", "doc_id", "title", "text"} per line
    passages.offsets.npy     int64 byte offsets (passages + 1), so passage i is one slice
    bm25/                    data/indices/indptr/term_base/doc_lengths .npy + vocab.json
    dense/                   encoder settings + FAISS index (when built)
"""

from __future__ import annotations

import json
import mmap
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from odqa.errors import IndexLoadError, OdqaError
from odqa.text import Analyzer
from odqa.types import Hit, Passage, RankedIds

FORMAT = "odqa-index"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
PASSAGES = "passages.jsonl"
OFFSETS = "passages.offsets.npy"
RETRIEVER_NAMES = ("bm25", "dense", "hybrid")


class PassageWriter:
    """Appends passages to ``passages.jsonl`` and records their byte offsets."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._handle = open(folder / PASSAGES, "wb")  # noqa: SIM115 - closed in close()
        self._offsets = [0]

    def add(self, passage: Passage) -> None:
        """Write one passage."""
        record = {
            "id": passage.id,
            "doc_id": passage.doc_id,
            "title": passage.title,
            "text": passage.text,
        }
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        self._handle.write(line)
        self._offsets.append(self._offsets[-1] + len(line))

    def close(self) -> int:
        """Flush the file and offsets; return the number of passages."""
        self._handle.close()
        np.save(
            self.folder / OFFSETS, np.asarray(self._offsets, dtype=np.int64), allow_pickle=False
        )
        return len(self._offsets) - 1


class PassageStore:
    """Random access to the passages of an index without loading them all."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.offsets = np.load(folder / OFFSETS, mmap_mode="r")
        path = folder / PASSAGES
        size = path.stat().st_size
        if int(self.offsets[-1]) != size:
            raise IndexLoadError(
                f"{folder}: {PASSAGES} is {size} bytes but the offsets say {int(self.offsets[-1])}"
                "; the index is damaged, rebuild it with --force"
            )
        self._file = open(path, "rb")  # noqa: SIM115 - kept open for the store's lifetime
        self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ) if size else b""

    def close(self) -> None:
        """Release the memory map and the file handle."""
        if isinstance(self._map, mmap.mmap):
            self._map.close()
        self._file.close()

    def __del__(self) -> None:
        file = getattr(self, "_file", None)
        if file is not None and not file.closed:
            self.close()

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> Passage:
        if not 0 <= i < len(self):
            raise IndexError(f"passage {i} out of range 0..{len(self) - 1}")
        record = json.loads(self._map[int(self.offsets[i]) : int(self.offsets[i + 1])])
        return Passage(record["id"], record["doc_id"], record["title"], record["text"])

    def get_many(self, indices: list[int] | np.ndarray) -> list[Passage]:
        """Passages at ``indices``, in the order given."""
        return [self[int(i)] for i in indices]

    def __iter__(self) -> Iterator[Passage]:
        with open(self.folder / PASSAGES, "rb") as handle:
            for line in handle:
                record = json.loads(line)
                yield Passage(record["id"], record["doc_id"], record["title"], record["text"])


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


def read_manifest(path: Path) -> dict[str, Any]:
    """Read and validate ``manifest.json`` of the index at ``path``."""
    if not path.is_dir():
        raise IndexLoadError(
            f"no index at '{path}': build one with `odqa index CORPUS --out {path}`"
        )
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise IndexLoadError(
            f"'{path}' is not an odqa index (no {MANIFEST}); build it with `odqa index`"
        )
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise IndexLoadError(
            f"{manifest_path}: unreadable manifest ({exc}); rebuild the index"
        ) from None
    if manifest.get("format") != FORMAT:
        raise IndexLoadError(f"{manifest_path}: not an odqa index manifest")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise IndexLoadError(
            f"{path}: index format version {version}, this odqa reads version {FORMAT_VERSION}; "
            "rebuild the index with this odqa (`odqa index ... --force`)"
        )
    for name in (PASSAGES, OFFSETS, *(f"{kind}" for kind in manifest.get("kinds", []))):
        if not (path / name).exists():
            raise IndexLoadError(f"{path}: '{name}' is missing; rebuild the index with --force")
    return manifest


class Index:
    """An opened index: passages plus the retrievers it was built with."""

    def __init__(self, path: Path, manifest: dict[str, Any]) -> None:
        self.path = path
        self.manifest = manifest
        self.passages = PassageStore(path)
        expected = manifest["corpus"]["passages"]
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
        return list(self.manifest.get("kinds", []))

    @property
    def analyzer(self) -> Analyzer | None:
        """The BM25 tokeniser settings, or None without a BM25 index."""
        section = self.manifest.get("bm25")
        return Analyzer(**section["analyzer"]) if section else None

    def retrievers(self) -> list[str]:
        """Retriever names usable with this index."""
        names = [k for k in self.kinds if k in ("bm25", "dense")]
        if "bm25" in names and "dense" in names:
            names.append("hybrid")
        return names

    def retriever(self, name: str, **options: Any) -> Any:
        """The retriever ``name`` (cached per options), loaded on first use."""
        key = (name, tuple(sorted(options.items())))
        if key not in self._retrievers:
            self._retrievers[key] = self._open_retriever(name, options)
        return self._retrievers[key]

    def _open_retriever(self, name: str, options: dict[str, Any]) -> Any:
        available = self.retrievers()
        if name not in available:
            raise OdqaError(
                f"retriever '{name}' is not available in index '{self.path}' "
                f"(built with: {', '.join(available) or 'none'}); choose one of those or rebuild "
                f"with `odqa index ... --retrievers {name if name != 'hybrid' else 'bm25,dense'}`"
            )
        if name == "bm25":
            from odqa.retrieval.sparse import BM25Retriever

            if options:
                raise OdqaError(f"bm25 takes no search options, got {', '.join(options)}")
            return BM25Retriever(self.path / "bm25", self.manifest["bm25"], len(self.passages))
        if name == "dense":
            from odqa.retrieval.dense import DenseRetriever

            return DenseRetriever.load(self.path / "dense", self.manifest["dense"], **options)
        from odqa.retrieval.dense import QUERY_OPTIONS
        from odqa.retrieval.hybrid import HybridRetriever

        dense_options = {k: v for k, v in options.items() if k in QUERY_OPTIONS}
        fusion_options = {k: v for k, v in options.items() if k not in QUERY_OPTIONS}
        return HybridRetriever(
            self.retriever("bm25"), self.retriever("dense", **dense_options), **fusion_options
        )

    def to_hits(self, ranked: list[RankedIds]) -> list[list[Hit]]:
        """Turn per-query (indices, scores) into :class:`Hit` lists with passage text."""
        results = []
        for indices, scores in ranked:
            passages = self.passages.get_many(indices)
            results.append(
                [
                    Hit(p.id, p.doc_id, float(s), rank, p.title, p.text)
                    for rank, (p, s) in enumerate(zip(passages, scores), 1)
                ]
            )
        return results

    def search(
        self, queries: list[str], k: int = 10, retriever: str = "bm25", **options: Any
    ) -> list[list[Hit]]:
        """Search a batch of queries; per query, up to ``k`` hits best first."""
        if k <= 0:
            raise OdqaError(f"k must be positive, got {k}")
        return self.to_hits(self.retriever(retriever, **options).search_ids(queries, k))
