"""Building an index directory: read the corpus once, write passages and retrievers, then rename.

The build goes to a sibling ``<name>.tmp-build`` folder and is renamed into place only when
complete, so a failed or interrupted build never leaves a half index nor touches an existing one.
An interrupted dense build keeps its encoded chunks there for ``--resume``.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from rich.progress import Progress

from odqa import __version__
from odqa.corpus import CorpusOptions, CorpusStats, iter_passages
from odqa.errors import OdqaError
from odqa.retrieval.bm25_formulas import BM25Params
from odqa.retrieval.sparse import SparseBuilder
from odqa.store import FORMAT, FORMAT_VERSION, MANIFEST, PassageStore, PassageWriter
from odqa.text import Analyzer
from odqa.types import Passage

RETRIEVER_FAMILIES = ("bm25", "dense")


@dataclass(frozen=True)
class BuildOptions:
    """Everything that decides what an index contains."""

    corpus: CorpusOptions = field(default_factory=CorpusOptions)
    retrievers: tuple[str, ...] = ("bm25",)
    bm25: BM25Params = field(default_factory=BM25Params)
    analyzer: Analyzer = field(default_factory=Analyzer)
    dense: Any = None

    def __post_init__(self) -> None:
        unknown = [r for r in self.retrievers if r not in RETRIEVER_FAMILIES]
        if unknown or not self.retrievers:
            raise OdqaError(
                f"unknown retriever '{','.join(unknown)}' in --retrievers: choose from "
                f"{', '.join(RETRIEVER_FAMILIES)} (comma-separated)"
            )
        if "dense" in self.retrievers and self.dense is None:
            raise OdqaError("a dense index needs encoder settings (DenseOptions)")


def bm25_text(passage: Passage) -> str:
    """What BM25 indexes for a passage: its title followed by its text (as Pyserini's DPR
    Wikipedia indexes do), so title words match too."""
    return f"{passage.title}\n{passage.text}" if passage.title else passage.text


def temporary_path(out: Path) -> Path:
    """The sibling folder a build of ``out`` is written to before the final rename."""
    return out.with_name(out.name + ".tmp-build")


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape an index, for the manifest."""
    versions = {"python": sys.version.split()[0]}
    for name in ("numpy", "scipy", "PyStemmer", "torch", "transformers", "faiss-cpu"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _has_resumable_work(tmp: Path) -> bool:
    chunks = tmp / "dense" / "chunks"
    return chunks.is_dir() and any(chunks.iterdir())


def build_index(
    inputs: list[Path],
    out: Path,
    options: BuildOptions,
    *,
    force: bool = False,
    resume: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Build the index for ``inputs`` at ``out`` and return its manifest.

    Raises:
        OdqaError: ``out`` exists without ``force``; bad input (file:line); encoder problems.
    """
    if out.exists() and not force:
        raise OdqaError(f"index '{out}' already exists: pass --force to replace it")
    tmp = temporary_path(out)
    if tmp.exists() and not resume:
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        manifest = _build_into(tmp, inputs, options, resume, progress)
    except BaseException:
        if not _has_resumable_work(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    manifest["build_seconds"] = round(time.perf_counter() - started, 3)
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    _replace(tmp, out)
    return manifest


def _build_into(
    tmp: Path,
    inputs: list[Path],
    options: BuildOptions,
    resume: bool,
    progress: Progress | None,
) -> dict[str, Any]:
    stats = CorpusStats()
    writer = PassageWriter(tmp)
    sparse = None
    if "bm25" in options.retrievers:
        sparse = SparseBuilder(options.analyzer, options.bm25, scratch=tmp / "bm25-chunks")
    task = None
    if progress is not None:
        task = progress.add_task("reading corpus", total=None, unit="passages", count=0)
    try:
        for passage in iter_passages(inputs, options.corpus, stats):
            writer.add(passage)
            if sparse is not None:
                sparse.add(bm25_text(passage))
            if progress is not None and stats.passages % 512 == 0:
                _show_reading(progress, task, stats)
    finally:
        writer.close()
    if progress is not None:
        stats.bytes_read = stats.bytes_total
        _show_reading(progress, task, stats)
    if stats.passages == 0:
        raise OdqaError(
            f"the corpus has no passages ({stats.documents} documents, "
            f"{stats.empty_skipped} empty): nothing to index"
        )
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "odqa_version": __version__,
        "kinds": list(options.retrievers),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "corpus": {
            "inputs": [str(Path(p).resolve()) for p in inputs],
            **options.corpus.__dict__,
            **stats.to_dict(),
        },
        "libraries": library_versions(),
    }
    if sparse is not None:
        manifest["bm25"] = sparse.write(tmp / "bm25")
    if "dense" in options.retrievers:
        from odqa.retrieval.dense import build_dense

        dense_dir = tmp / "dense"
        dense_dir.mkdir(exist_ok=True)
        manifest["dense"] = build_dense(
            dense_dir, PassageStore(tmp), options.dense, resume=resume, progress=progress
        )
    return manifest


def _show_reading(progress: Progress, task: Any, stats: CorpusStats) -> None:
    """The corpus pass: a bar over the input bytes (for time left), labelled in passages."""
    progress.update(
        task, completed=stats.bytes_read, total=stats.bytes_total or None, count=stats.passages
    )


def _replace(tmp: Path, out: Path) -> None:
    """Move the finished build into place, replacing ``out`` only once the new one is whole."""
    old = out.with_name(out.name + ".tmp-old")
    if old.exists():
        shutil.rmtree(old)
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    if old.exists():
        shutil.rmtree(old)


def directory_size(path: Path) -> int:
    """Bytes used by the files below ``path``."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
