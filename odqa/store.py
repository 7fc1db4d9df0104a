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
from odqa.lazy_hits import stored_hits
from odqa.text import Analyzer
from odqa.types import Hit, Passage, RankedIds

FORMAT = "odqa-index"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
PASSAGES = "passages.jsonl"
OFFSETS = "passages.offsets.npy"
RETRIEVER_NAMES = ("bm25", "dense", "hybrid", "phrase")
KINDS = ("bm25", "dense", "phrase")
INDEX_ENTRIES = frozenset({MANIFEST, PASSAGES, OFFSETS, *KINDS})
"""The top-level entries odqa writes into an index folder."""
BM25_FILES = ("data.npy", "indices.npy", "indptr.npy", "term_base.npy", "doc_lengths.npy")
BM25_VOCAB = "vocab.json"
BM25_OPTIONS = ("threads", "strategy")
"""Search options the BM25 retriever takes (see :class:`odqa.retrieval.sparse.BM25Retriever`)."""

# Required manifest fields and their types, per section ("" is the top level). An index whose
# manifest breaks this schema is refused on load with the field named.
MANIFEST_SCHEMA: dict[str, dict[str, type]] = {
    "": {"format": str, "format_version": int, "kinds": list, "corpus": dict},
    "corpus": {"documents": int, "passages": int},
    "bm25": {"params": dict, "analyzer": dict, "vocabulary_size": int, "nonzeros": int},
    "dense": {"format": int, "encoder": dict, "count": int, "dimension": int, "faiss": dict},
    "dense.faiss": {"kind": str, "file": str},
    "phrase": {"format": str, "encoder": str, "tokens": int, "dimension": int},
}
_TYPE_NAMES = {str: "a string", int: "an integer", list: "a list", dict: "an object"}


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


def load_offsets(folder: Path) -> np.ndarray:
    """The memory-mapped passage offsets of the index at ``folder``, checked for shape and type.

    Raises:
        IndexLoadError: the file is missing, truncated or not a 1-D integer array from 0.
    """
    path = folder / OFFSETS
    try:
        offsets = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise IndexLoadError(
            f"{path}: unreadable ({exc}); the index is damaged, rebuild it with --force"
        ) from None
    if offsets.ndim != 1 or len(offsets) == 0 or offsets.dtype.kind not in "iu" or offsets[0]:
        raise IndexLoadError(
            f"{path}: expected a 1-D integer array starting at 0, found shape {offsets.shape} "
            f"of {offsets.dtype}; the index is damaged, rebuild it with --force"
        )
    return offsets


class PassageStore:
    """Random access to the passages of an index without loading them all."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.offsets = load_offsets(folder)
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

    def record_head(self, i: int, size: int) -> bytes:
        """The first ``size`` bytes (at most) of passage ``i``'s record, for its id alone."""
        if not 0 <= i < len(self):
            raise IndexError(f"passage {i} out of range 0..{len(self) - 1}")
        start = int(self.offsets[i])
        return self._map[start : min(int(self.offsets[i + 1]), start + size)]

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


def is_odqa_index(path: Path) -> bool:
    """Whether the folder ``path`` is an odqa index that ``--force`` may replace: its manifest
    names the odqa format, or (a damaged index) it holds a manifest and only odqa's entries."""
    if not path.is_dir():
        return False
    names = {p.name for p in path.iterdir()}
    if MANIFEST in names and names <= INDEX_ENTRIES:
        return True
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("format") == FORMAT


def _reason(exc: BaseException) -> str:
    """The first line of an exception's message (its type when it has none), shortened."""
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _type_problem(value: Any, expected: type) -> str | None:
    if isinstance(value, expected) and not (expected is int and isinstance(value, bool)):
        return None
    return f"must be {_TYPE_NAMES[expected]}, got {json.dumps(value)[:40]}"


def validate_manifest(manifest: Any, where: Path) -> None:
    """Check a parsed manifest against this odqa's format version and :data:`MANIFEST_SCHEMA`.

    Raises:
        IndexLoadError: naming the first field that is missing or of the wrong type.
    """
    rebuild = "rebuild the index with this odqa (`odqa index ... --force`)"
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise IndexLoadError(f"{where}: not an odqa index manifest; {rebuild}")
    version = manifest.get("format_version")
    problem = _type_problem(version, int)
    if problem:
        raise IndexLoadError(f"{where}: 'format_version' {problem}; {rebuild}")
    if version != FORMAT_VERSION:
        raise IndexLoadError(
            f"{where.parent}: index format version {version}, this odqa reads version "
            f"{FORMAT_VERSION}; {rebuild}"
        )
    _check_fields(manifest, "", where, rebuild)
    kinds = manifest["kinds"]
    if not kinds or any(k not in KINDS for k in kinds):
        raise IndexLoadError(
            f"{where}: 'kinds' must list some of {', '.join(KINDS)}, got {json.dumps(kinds)}; "
            f"{rebuild}"
        )
    for section in ("corpus", *kinds, *(["dense.faiss"] if "dense" in kinds else [])):
        data: Any = manifest
        for part in section.split("."):
            data = data.get(part) if isinstance(data, dict) else None
        if not isinstance(data, dict):
            raise IndexLoadError(f"{where}: section '{section}' is missing; {rebuild}")
        _check_fields(data, section, where, rebuild)


def _check_fields(data: dict[str, Any], section: str, where: Path, rebuild: str) -> None:
    for key, expected in MANIFEST_SCHEMA[section].items():
        name = f"{section}.{key}" if section else key
        if key not in data:
            raise IndexLoadError(f"{where}: '{name}' is missing; {rebuild}")
        problem = _type_problem(data[key], expected)
        if problem:
            raise IndexLoadError(f"{where}: '{name}' {problem}; {rebuild}")


def index_files(manifest: dict[str, Any]) -> list[str]:
    """Paths (relative to the index folder) of every file the manifest says the index has."""
    files = [PASSAGES, OFFSETS]
    if "bm25" in manifest["kinds"]:
        files += [f"bm25/{name}" for name in (*BM25_FILES, BM25_VOCAB)]
    if "dense" in manifest["kinds"]:
        files.append(f"dense/{manifest['dense']['faiss']['file']}")
    if "phrase" in manifest["kinds"]:
        files += [f"phrase/{name}" for name in ("tokens.npy", "flags.npy", "start.npy")]
    return files


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
    validate_manifest(manifest, manifest_path)
    for name in index_files(manifest):
        if not (path / name).is_file():
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
        names = [k for k in self.kinds if k in ("bm25", "dense", "phrase")]
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
        if name not in RETRIEVER_NAMES:
            raise OdqaError(
                f"unknown retriever '{name}': choose one of {', '.join(RETRIEVER_NAMES)}"
            )
        available = self.retrievers()
        if name not in available:
            raise OdqaError(
                f"retriever '{name}' is not available in index '{self.path}' "
                f"(built with: {', '.join(available) or 'none'}); choose one of those or rebuild "
                f"with `odqa index ... --retrievers {name if name != 'hybrid' else 'bm25,dense'}`"
            )
        if name == "bm25":
            unknown = sorted(set(options) - set(BM25_OPTIONS))
            if unknown:
                raise OdqaError(
                    f"bm25 search options are {', '.join(BM25_OPTIONS)}; got {', '.join(unknown)}"
                )
            return self._open_bm25(**options)
        if name == "phrase":
            from odqa.phrase.search import PhraseRetriever

            return PhraseRetriever(
                self.path / "phrase", self.manifest["phrase"], len(self.passages), **options
            )
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

    def _open_bm25(self, **options: Any) -> Any:
        """The BM25 retriever with its vocabulary loaded and checked against the manifest."""
        from odqa.retrieval.sparse import BM25Retriever

        folder, section = self.path / "bm25", self.manifest["bm25"]
        try:
            retriever = BM25Retriever(folder, section, len(self.passages), **options)
        except (TypeError, ValueError, OSError) as exc:
            raise IndexLoadError(
                f"{folder}: unreadable BM25 files ({_reason(exc)}); rebuild the index with --force"
            ) from None
        try:
            vocab = retriever.vocab
        except (TypeError, ValueError, OSError) as exc:
            raise IndexLoadError(
                f"{folder / BM25_VOCAB}: unreadable ({_reason(exc)}); rebuild the index "
                "with --force"
            ) from None
        expected = section["vocabulary_size"]
        if len(vocab) != expected or not all(isinstance(term, str) for term in vocab):
            raise IndexLoadError(
                f"{folder / BM25_VOCAB}: expected a list of {expected} terms, found {len(vocab)} "
                "entries; rebuild the index with --force"
            )
        return retriever

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
