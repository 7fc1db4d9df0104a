"""Retriever families as plug-ins: what an index can store, and the one registry of them.

A *family* is one kind of stored retriever (BM25, dense, phrase). It owns the folder of its
name inside an index and the manifest section of its name: it builds them, says which fields
and files they must have, checks them file by file, and opens its retriever with the search
options it accepts. :data:`FAMILIES` is the only list of families: the build, manifest
validation, ``Index.retrievers()``, the CLI's choices and ``odqa info --check`` all read it, so
adding a family is one module implementing :class:`Family` plus :func:`register_family`.

Heavy modules are imported inside the methods, so importing this registry costs nothing.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from odqa.errors import OdqaError

if TYPE_CHECKING:
    from odqa.index.build import BuildOptions
    from odqa.index.executors import Executor
    from odqa.index.passages import PassageStore
    from odqa.types import Passage, Retriever

HYBRID = "hybrid"
"""The composite retriever: fuses the rankings of stored families (it stores nothing)."""
HYBRID_OPTIONS = ("fusion", "alpha", "rrf_k", "depth", "fuse")
"""Search options of the hybrid itself (the rest go to the families it fuses)."""
DEFAULT_FUSED = ("bm25", "dense")
"""What ``--retriever hybrid`` fuses when the index has both and ``fuse`` is not given."""


@dataclass(frozen=True)
class BuildContext:
    """How a family builds, not what: resume or not, where temporary files go, who runs the
    work units, and whether this is a shard (which keeps what a merge needs: raw BM25 counts,
    exact dense vectors)."""

    resume: bool
    scratch: Path
    executor: Executor
    shard: bool = False


BM25_UNIT = 20_000
"""Passages per BM25 counting unit when the executor does not stream (a cluster)."""


class FamilyBuilder(Protocol):
    """Builds one family's folder during a build."""

    def add(self, passage: Passage) -> None:
        """Take one passage during the single corpus pass (a no-op for post-pass families)."""

    def finish(self, passages: PassageStore, progress: Any) -> dict[str, Any]:
        """Complete the folder once every passage is stored; return the manifest section."""


@runtime_checkable
class Family(Protocol):
    """One retriever family (see the module docstring)."""

    name: str
    summary: str
    schema: Mapping[str, type]
    """Required fields of the manifest section and their types (dotted keys reach inside)."""
    search_options: tuple[str, ...]
    """Query-time options the retriever accepts (``Index.retriever(name, **options)``)."""
    resumable: bool
    """Whether an interrupted build keeps work in the folder for ``--resume``."""

    def options(self, build: BuildOptions) -> Any:
        """This family's build settings out of the build options; raise OdqaError if absent."""

    def builder(self, folder: Path, options: Any, context: BuildContext) -> FamilyBuilder:
        """A builder writing into ``folder`` (see :class:`BuildContext`)."""

    def merge(self, folder: Path, parts: list[Any], progress: Any) -> dict[str, Any]:
        """Write ``folder`` from the shards' folders (``odqa.index.merge.ShardPart``, in passage
        order) as a one-process build of the whole corpus would; return the section."""

    def files(self, section: dict[str, Any]) -> list[str]:
        """Files (relative to the family folder) that must exist for the index to load."""

    def open(self, folder: Path, section: dict[str, Any], passages: int,
             options: dict[str, Any]) -> Retriever:
        """The retriever over ``folder`` (options already checked against search_options)."""

    def check(self, folder: Path, section: dict[str, Any], passages: int) -> list[str]:
        """Verify every file against the section (``odqa info --check``); one line per check."""

    def summary_rows(self, section: dict[str, Any]) -> list[tuple[str, str]]:
        """(label, value) rows for the end-of-build summary of `odqa index`."""


FAMILIES: dict[str, Family] = {}
"""Registered families by name, in registration order (the order of ``--retrievers`` help)."""


def register_family(family: Family) -> Family:
    """Add ``family`` to :data:`FAMILIES` (replacing one of the same name); return it."""
    if family.name == HYBRID or not family.name.isidentifier():
        raise ValueError(f"'{family.name}' cannot name a retriever family")
    FAMILIES[family.name] = family
    return family


def get_family(name: str) -> Family:
    """The family ``name``, or an OdqaError listing the known ones."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise OdqaError(
            f"unknown retriever family '{name}': choose from {', '.join(FAMILIES)}"
        ) from None


def retriever_names() -> tuple[str, ...]:
    """Every name ``--retriever`` accepts: the families, then the hybrid."""
    return (*FAMILIES, HYBRID)


def folder_entries() -> frozenset[str]:
    """The top-level folders families write into an index."""
    return frozenset(FAMILIES)


class _PostPass:
    """A builder that needs every passage stored first (it encodes the passage store)."""

    def __init__(self, finish) -> None:
        self._finish = finish

    def add(self, passage: Passage) -> None:
        return None

    def finish(self, passages: PassageStore, progress: Any) -> dict[str, Any]:
        return self._finish(passages, progress)


def _bm25_by_units(folder: Path, passages: PassageStore, options: Any, context: BuildContext,
                   progress: Any) -> dict[str, Any]:
    """BM25 as work units: each counts a range of stored passages; the parts merge here."""
    from odqa.index.executors import WorkUnit, passage_ranges
    from odqa.retrieval.bm25_counts import count_passages, load_counts, write_bm25

    analyzer, params = options
    parts = context.scratch / "bm25-parts"
    shutil.rmtree(parts, ignore_errors=True)  # counting is cheap: never reuse stale parts
    parts.mkdir(parents=True)
    units = [
        WorkUnit(count_passages, (passages.folder, start, stop, analyzer.to_dict(), target),
                 target,
                 stop - start)
        for number, (start, stop) in enumerate(passage_ranges(len(passages), BM25_UNIT))
        for target in [parts / f"{number:05d}"]
    ]
    context.executor.run(units, progress, "bm25 counting")
    section = write_bm25(folder, params, analyzer, [load_counts(u.target) for u in units],
                         keep_tf=context.shard)
    shutil.rmtree(parts, ignore_errors=True)
    return section


class BM25Family:
    """Sparse BM25 (:mod:`odqa.retrieval.sparse`): a CSC term-passage matrix of impacts."""

    name = "bm25"
    summary = "sparse BM25 over title + text"
    schema: Mapping[str, type] = {"params": dict, "analyzer": dict, "vocabulary_size": int,
                                  "nonzeros": int}
    search_options: tuple[str, ...] = ("threads", "strategy")
    resumable = False

    def options(self, build: BuildOptions) -> Any:
        return build.analyzer, build.bm25

    def builder(self, folder: Path, options: Any, context: BuildContext) -> FamilyBuilder:
        from odqa.index.build import bm25_text
        from odqa.retrieval.sparse import SparseBuilder

        analyzer, params = options
        if not context.executor.streams:
            return _PostPass(lambda passages, progress: _bm25_by_units(
                folder, passages, options, context, progress))
        sparse = SparseBuilder(analyzer, params, scratch=context.scratch / "bm25-chunks")

        class Builder:
            def add(self, passage: Passage) -> None:
                sparse.add(bm25_text(passage))

            def finish(self, passages: PassageStore, progress: Any) -> dict[str, Any]:
                return sparse.write(folder, keep_tf=context.shard)

        return Builder()

    def merge(self, folder: Path, parts: list[Any], progress: Any) -> dict[str, Any]:
        from odqa.retrieval.bm25_counts import TF_FILE, shard_counts, write_bm25
        from odqa.retrieval.bm25_formulas import BM25Params
        from odqa.text import Analyzer

        first = parts[0].section
        for part in parts:
            if (part.section["params"], part.section["analyzer"]) != (first["params"],
                                                                      first["analyzer"]):
                raise OdqaError(f"{part.folder}: the shards' BM25 settings differ: rebuild the "
                                "shards with one command line")
            if not (part.folder / TF_FILE).is_file():
                raise OdqaError(f"{part.folder}: no raw term counts ({TF_FILE}) to merge: "
                                "rebuild this shard with `odqa index --shard`")
        return write_bm25(folder, BM25Params(**first["params"]), Analyzer(**first["analyzer"]),
                          [shard_counts(part.folder) for part in parts])

    def files(self, section: dict[str, Any]) -> list[str]:
        from odqa.retrieval.sparse import BM25_FILES, BM25_VOCAB

        return [*BM25_FILES, BM25_VOCAB]

    def open(self, folder: Path, section: dict[str, Any], passages: int,
             options: dict[str, Any]) -> Retriever:
        from odqa.retrieval.sparse import open_bm25

        return open_bm25(folder, section, passages, **options)

    def check(self, folder: Path, section: dict[str, Any], passages: int) -> list[str]:
        from odqa.index.check import check_bm25

        return check_bm25(folder, section, passages)

    def summary_rows(self, section: dict[str, Any]) -> list[tuple[str, str]]:
        return [("vocabulary", f"{section['vocabulary_size']:,}"),
                ("BM25 non-zeros", f"{section['nonzeros']:,}")]


class DenseFamily:
    """Dense vectors of a bi-encoder in FAISS (:mod:`odqa.retrieval.dense`)."""

    name = "dense"
    summary = "dense bi-encoder vectors in FAISS"
    schema: Mapping[str, type] = {"format": int, "encoder": dict, "count": int,
                                  "dimension": int, "faiss": dict, "faiss.kind": str,
                                  "faiss.file": str}
    search_options: tuple[str, ...] = ("ef_search", "nprobe", "refine", "device", "batch_size",
                                       "backend")
    resumable = True

    def options(self, build: BuildOptions) -> Any:
        if build.dense is None:
            raise OdqaError("a dense index needs encoder settings (DenseOptions)")
        return build.dense

    def builder(self, folder: Path, options: Any, context: BuildContext) -> FamilyBuilder:
        from odqa.retrieval.dense import build_dense

        folder.mkdir(exist_ok=True)
        return _PostPass(lambda passages, progress: build_dense(
            folder, passages, options, resume=context.resume, progress=progress,
            executor=context.executor, keep_vectors=context.shard))

    def merge(self, folder: Path, parts: list[Any], progress: Any) -> dict[str, Any]:
        from odqa.retrieval.dense import merge_dense

        return merge_dense(folder, parts, progress)

    def files(self, section: dict[str, Any]) -> list[str]:
        windows = section.get("windows")
        owners = [windows["owners"]] if isinstance(windows, dict) and "owners" in windows else []
        return [section["faiss"]["file"], *owners]

    def open(self, folder: Path, section: dict[str, Any], passages: int,
             options: dict[str, Any]) -> Retriever:
        from odqa.retrieval.dense import DenseRetriever

        return DenseRetriever.load(folder, section, passages=passages, **options)

    def check(self, folder: Path, section: dict[str, Any], passages: int) -> list[str]:
        from odqa.index.check import check_dense

        return check_dense(folder, section, passages)

    def summary_rows(self, section: dict[str, Any]) -> list[tuple[str, str]]:
        vectors = f"{section['count']:,} x {section['dimension']} ({section['faiss']['kind']})"
        windows = section.get("windows")
        if windows:
            vectors += f", {windows['passages_split']:,} long passages in windows"
        return [("dense encoder", section["encoder"]["passage"]["model"]),
                ("dense vectors", vectors)]


class PhraseFamily:
    """Phrase vectors (DensePhrases-style, :mod:`odqa.phrase`): passages ranked by their best
    phrase; ``odqa ask --mode phrase`` answers from the same index."""

    name = "phrase"
    summary = "phrase start/end vectors (answers without a reader)"
    schema: Mapping[str, type] = {"format": str, "encoder": str, "tokens": int, "dimension": int}
    search_options: tuple[str, ...] = ("candidates", "max_answer_length", "device")
    resumable = True

    def options(self, build: BuildOptions) -> Any:
        if build.phrase is None:
            raise OdqaError("a phrase index needs phrase settings (PhraseOptions)")
        return build.phrase

    def builder(self, folder: Path, options: Any, context: BuildContext) -> FamilyBuilder:
        from odqa.phrase.index import build_phrase

        return _PostPass(lambda passages, progress: build_phrase(
            folder, passages, options, resume=context.resume, progress=progress,
            executor=context.executor))

    def merge(self, folder: Path, parts: list[Any], progress: Any) -> dict[str, Any]:
        from odqa.phrase.index import merge_phrase

        return merge_phrase(folder, parts, progress)

    def files(self, section: dict[str, Any]) -> list[str]:
        from odqa.phrase.index import INDEX_FILES

        return list(INDEX_FILES)

    def open(self, folder: Path, section: dict[str, Any], passages: int,
             options: dict[str, Any]) -> Retriever:
        from odqa.phrase.search import PhraseRetriever

        return PhraseRetriever(folder, section, passages, **options)

    def check(self, folder: Path, section: dict[str, Any], passages: int) -> list[str]:
        from odqa.phrase.index import PhraseIndex

        index = PhraseIndex(folder, section, passages)
        return [f"phrase/: {len(index.tokens):,} tokens, start/end candidates "
                f"{section.get('start_candidates', 0):,}/{section.get('end_candidates', 0):,}"]

    def summary_rows(self, section: dict[str, Any]) -> list[tuple[str, str]]:
        kept = section.get("kept_share")
        share = f" ({100 * kept:.1f}% of the text tokens)" if kept is not None else ""
        return [("phrase encoder", section["encoder"]),
                ("phrase tokens", f"{section['tokens']:,}{share}, {section.get('index', '?')}")]


register_family(BM25Family())
register_family(DenseFamily())
register_family(PhraseFamily())
