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

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from odqa.errors import OdqaError

if TYPE_CHECKING:
    from odqa.index.build import BuildOptions
    from odqa.index.passages import PassageStore
    from odqa.types import Passage, Retriever

HYBRID = "hybrid"
"""The composite retriever: fuses the rankings of stored families (it stores nothing)."""
HYBRID_OPTIONS = ("fusion", "alpha", "rrf_k", "depth", "fuse")
"""Search options of the hybrid itself (the rest go to the families it fuses)."""
DEFAULT_FUSED = ("bm25", "dense")
"""What ``--retriever hybrid`` fuses when the index has both and ``fuse`` is not given."""


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

    def builder(self, folder: Path, options: Any, *, resume: bool, scratch: Path) -> FamilyBuilder:
        """A builder writing into ``folder`` (``scratch``: a build-local folder for temp files)."""

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

    def builder(self, folder: Path, options: Any, *, resume: bool, scratch: Path) -> FamilyBuilder:
        from odqa.index.build import bm25_text
        from odqa.retrieval.sparse import SparseBuilder

        analyzer, params = options
        sparse = SparseBuilder(analyzer, params, scratch=scratch / "bm25-chunks")

        class Builder:
            def add(self, passage: Passage) -> None:
                sparse.add(bm25_text(passage))

            def finish(self, passages: PassageStore, progress: Any) -> dict[str, Any]:
                return sparse.write(folder)

        return Builder()

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

    def builder(self, folder: Path, options: Any, *, resume: bool, scratch: Path) -> FamilyBuilder:
        from odqa.retrieval.dense import build_dense

        folder.mkdir(exist_ok=True)
        return _PostPass(lambda passages, progress: build_dense(
            folder, passages, options, resume=resume, progress=progress))

    def files(self, section: dict[str, Any]) -> list[str]:
        return [section["faiss"]["file"]]

    def open(self, folder: Path, section: dict[str, Any], passages: int,
             options: dict[str, Any]) -> Retriever:
        from odqa.retrieval.dense import DenseRetriever

        return DenseRetriever.load(folder, section, **options)

    def check(self, folder: Path, section: dict[str, Any], passages: int) -> list[str]:
        from odqa.index.check import check_dense

        return check_dense(folder, section, passages)

    def summary_rows(self, section: dict[str, Any]) -> list[tuple[str, str]]:
        vectors = f"{section['count']:,} x {section['dimension']} ({section['faiss']['kind']})"
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

    def builder(self, folder: Path, options: Any, *, resume: bool, scratch: Path) -> FamilyBuilder:
        from odqa.phrase.index import build_phrase

        return _PostPass(lambda passages, progress: build_phrase(
            folder, passages, options, resume=resume, progress=progress))

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
