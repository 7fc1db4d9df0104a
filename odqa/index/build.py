"""Building an index directory: read the corpus once, write passages and retrievers, then rename.

The build goes to a sibling ``<name>.tmp-build`` folder and is renamed into place only when
complete, so a failed or interrupted build never leaves a half index nor touches an existing one.
An interrupted dense build keeps its encoded chunks there for ``--resume``. The whole build,
rename included, holds an exclusive lock on ``<name>.lock`` (with the builder's pid), so two
builds of one target never mix; ``--force`` replaces only a folder that is an odqa index.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from odqa import __version__
from odqa.errors import OdqaError
from odqa.index.executors import Executor, InProcess
from odqa.index.families import FAMILIES, BuildContext, get_family
from odqa.index.manifest import (
    MANIFEST,
    BuildRecord,
    CorpusRecord,
    Manifest,
    ShardRecord,
    index_entries,
    is_odqa_index,
)
from odqa.index.passages import PassageStore, PassageWriter
from odqa.io.corpus import CorpusOptions, CorpusStats, iter_passages
from odqa.progress import ProgressDisplay
from odqa.retrieval.bm25_formulas import BM25Params
from odqa.text import Analyzer
from odqa.types import Passage

BUILD_MARKER = ".odqa-build"
"""File in a ``.tmp-build`` folder that says odqa made it (removed before the final rename)."""
SCRATCH = "scratch"
"""Build-local folder for families' temporary files (never part of a finished index)."""


def build_entries() -> frozenset[str]:
    """What a ``.tmp-build`` folder odqa made may hold."""
    return index_entries() | {SCRATCH, "bm25-chunks", BUILD_MARKER}


@dataclass(frozen=True)
class BuildOptions:
    """Everything that decides what an index contains.

    ``retrievers`` names families of :data:`~odqa.index.families.FAMILIES`; each takes its
    settings from here (:meth:`~odqa.index.families.Family.options`): the built-in ones from
    their fields, others from ``extra[name]``.
    """

    corpus: CorpusOptions = field(default_factory=CorpusOptions)
    retrievers: tuple[str, ...] = ("bm25",)
    bm25: BM25Params = field(default_factory=BM25Params)
    analyzer: Analyzer = field(default_factory=Analyzer)
    dense: Any = None
    phrase: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = [r for r in self.retrievers if r not in FAMILIES]
        if unknown or not self.retrievers:
            raise OdqaError(
                f"unknown retriever '{','.join(unknown)}' in --retrievers: choose from "
                f"{', '.join(FAMILIES)} (comma-separated)"
            )
        for name in self.retrievers:
            FAMILIES[name].options(self)


@dataclass(frozen=True)
class ShardSpec:
    """Shard ``index`` of ``count`` (from 0): the ``index``-th of ``count`` contiguous, equal
    (to one passage) ranges of the corpus's passages, in corpus order."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise OdqaError(
                f"--shard {self.index}/{self.count}: the shard number must be 0 to "
                f"{self.count - 1} (shards are counted from 0), e.g. --shard 0/{self.count}"
            )

    @classmethod
    def parse(cls, text: str) -> ShardSpec:
        """``"I/N"`` as a shard spec (OdqaError with the expected form otherwise)."""
        index, _, count = text.partition("/")
        if not (index.strip().isdigit() and count.strip().isdigit()) or int(count) < 1:
            raise OdqaError(f"--shard '{text}' is not I/N (shard I of N, from 0), e.g. 0/4")
        return cls(int(index), int(count))

    def range(self, total: int) -> tuple[int, int]:
        """The ``[start, stop)`` passages of this shard among ``total``."""
        return total * self.index // self.count, total * (self.index + 1) // self.count


def bm25_text(passage: Passage) -> str:
    """What BM25 indexes for a passage: its title followed by its text (as Pyserini's DPR
    Wikipedia indexes do), so title words match too."""
    return f"{passage.title}\n{passage.text}" if passage.title else passage.text


def temporary_path(out: Path) -> Path:
    """The sibling folder a build of ``out`` is written to before the final rename."""
    return out.with_name(out.name + ".tmp-build")


def lock_path(out: Path) -> Path:
    """The lock file beside ``out`` that a build holds from start to final rename."""
    return out.with_name(out.name + ".lock")


def _read_pid(fd: int) -> int | None:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 64).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None


class BuildLock:
    """An exclusive ``fcntl`` lock on ``NAME.lock`` beside the target, holding the builder's pid.

    The kernel drops the lock when its process dies, so a lock file left by a killed build is
    stale: it is taken over, and :attr:`stale_pid` names the build that left it.
    """

    def __init__(self, out: Path) -> None:
        self.out = out
        self.path = lock_path(out)
        self.stale_pid: int | None = None
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock at once, or raise :class:`OdqaError` naming the build that holds it."""
        import fcntl

        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                reason = exc.strerror
                raise OdqaError(f"cannot create the lock file '{self.path}': {reason}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = _read_pid(fd)
                os.close(fd)
                raise OdqaError(
                    f"another build of {self.out} is running (pid {pid if pid else 'unknown'}): "
                    f"wait for it to finish (lock file {self.path})"
                ) from None
            try:
                current = os.stat(self.path).st_ino
            except FileNotFoundError:
                current = None
            if current == os.fstat(fd).st_ino:
                break
            os.close(fd)  # the previous holder removed the file as we opened it: try again
        previous = _read_pid(fd)
        if previous is not None and previous != os.getpid():
            self.stale_pid = previous
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        self._fd = fd

    def release(self) -> None:
        """Remove the lock file and drop the lock."""
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> BuildLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _notice(message: str) -> None:
    print(f"notice: {message}", file=sys.stderr)


def _is_within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _odqa_build_folder(path: Path) -> bool:
    """Whether ``path`` is a build folder odqa left (its marker, or only odqa's entries)."""
    names = {p.name for p in path.iterdir()}
    return BUILD_MARKER in names or names <= build_entries()


def check_target(inputs: list[Path], out: Path, force: bool) -> None:
    """Refuse a target that a build would damage, before any work.

    Raises:
        OdqaError: a corpus input inside ``out``; ``out`` a file; a folder that is not an odqa
            index; an existing index without ``force``.
    """
    target = Path(out).resolve()
    for source in inputs:
        if _is_within(Path(source).resolve(), target):
            raise OdqaError(
                f"corpus input '{source}' lies inside --out '{out}': building there would replace "
                "it; choose an --out outside the corpus"
            )
    if not target.exists():
        return
    if not target.is_dir():
        raise OdqaError(f"--out '{out}' is a file, not an index folder: choose another --out")
    entries = sorted(p.name for p in target.iterdir())
    if not entries:
        return
    if not is_odqa_index(target):
        shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
        raise OdqaError(
            f"'{out}' exists and is not an odqa index (it holds {shown}): --force replaces only "
            "an odqa index; choose another --out"
        )
    if not force:
        raise OdqaError(f"index '{out}' already exists: pass --force to replace it")


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
    """Whether a build folder holds work a resumable family kept (its folder is not empty)."""
    for family in FAMILIES.values():
        folder = tmp / family.name
        if family.resumable and folder.is_dir() and any(folder.rglob("*.npy")):
            return True
    return False


def build_index(
    inputs: list[Path],
    out: Path,
    options: BuildOptions,
    *,
    force: bool = False,
    resume: bool = False,
    progress: ProgressDisplay | None = None,
    notify: Callable[[str], None] = _notice,
    executor: Executor | None = None,
    shard: ShardSpec | None = None,
) -> Manifest:
    """Build the index for ``inputs`` at ``out`` and return its manifest.

    ``notify`` receives one-line notices (a stale lock or partial build taken over).
    ``executor`` runs the families' work units (default: this process); ``shard`` builds only
    that shard of the passages (merge the shards with :func:`odqa.index.merge.merge_shards`).

    Raises:
        OdqaError: ``out`` is not a replaceable target (see :func:`check_target`), another
            build of it is running, bad input (file:line), encoder problems.
    """
    inputs = [Path(p) for p in inputs]
    with index_transaction(inputs, out, force, resume, notify) as tmp:
        started = time.perf_counter()
        manifest = _build_into(tmp, inputs, options, resume, progress, executor or InProcess(),
                               shard)
        manifest = manifest.with_build_seconds(round(time.perf_counter() - started, 3))
        finish_folder(tmp, manifest)
    return manifest


@contextmanager
def index_transaction(
    inputs: list[Path], out: Path, force: bool, resume: bool, notify: Callable[[str], None]
) -> Iterator[Path]:
    """Write an index at ``out`` all or nothing: yield the locked ``.tmp-build`` folder to fill
    (finish it with :func:`finish_folder`), then rename it into place. On an error the folder
    is removed, unless it holds resumable work. ``inputs`` must not lie inside ``out``.

    Raises:
        OdqaError: ``out`` is not a replaceable target (see :func:`check_target`), or another
            build of it is running.
    """
    target = Path(out).resolve()
    check_target(inputs, out, force)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OdqaError(f"cannot create the folder of --out '{out}': {exc.strerror}") from None
    with BuildLock(target) as lock:
        if lock.stale_pid is not None:
            notify(f"took over the lock of build pid {lock.stale_pid}, which is no longer running")
        check_target(inputs, out, force)
        tmp = _fresh_build_folder(target, resume, notify)
        try:
            yield tmp
        except BaseException:
            if not _has_resumable_work(tmp):
                shutil.rmtree(tmp, ignore_errors=True)
            raise
        _replace(tmp, target)


def finish_folder(tmp: Path, manifest: Manifest) -> None:
    """Write the manifest into a filled build folder and mark it finished."""
    text = json.dumps(manifest.to_json(), indent=2, ensure_ascii=False) + "\n"
    (tmp / MANIFEST).write_text(text)
    (tmp / BUILD_MARKER).unlink()


def _fresh_build_folder(target: Path, resume: bool, notify: Callable[[str], None]) -> Path:
    """The ``.tmp-build`` folder, made afresh; one left by a killed build is reused for
    ``--resume`` (when it holds encoded chunks) or removed, with a notice either way."""
    tmp = temporary_path(target)
    if tmp.exists():
        if not tmp.is_dir() or not _odqa_build_folder(tmp):
            raise OdqaError(f"'{tmp}' is in the way and was not made by odqa: move it elsewhere")
        if resume and _has_resumable_work(tmp):
            notify(f"resuming the interrupted build kept in {tmp}")
        else:
            notify(f"removing the partial build left in {tmp} by an interrupted run")
            shutil.rmtree(tmp)
    try:
        tmp.mkdir(exist_ok=True)
    except OSError as exc:
        raise OdqaError(f"cannot create the build folder '{tmp}': {exc.strerror}") from None
    (tmp / BUILD_MARKER).write_text(f"{os.getpid()}\n")
    return tmp


def _count_passages(
    inputs: list[Path], options: BuildOptions, progress: ProgressDisplay | None
) -> CorpusStats:
    """One reading pass that only counts (and validates) the corpus, for a shard's range."""
    stats = CorpusStats()
    task = None
    if progress is not None:
        task = progress.add_task("counting passages", total=None, unit="passages", count=0)
    for _ in iter_passages(inputs, options.corpus, stats):
        if progress is not None and stats.passages % 4096 == 0:
            _show_reading(progress, task, stats)
    if progress is not None:
        stats.bytes_read = stats.bytes_total
        _show_reading(progress, task, stats)
    return stats


def _build_into(
    tmp: Path,
    inputs: list[Path],
    options: BuildOptions,
    resume: bool,
    progress: ProgressDisplay | None,
    executor: Executor,
    shard: ShardSpec | None = None,
) -> Manifest:
    whole = _count_passages(inputs, options, progress) if shard is not None else None
    start, stop = shard.range(whole.passages) if shard and whole else (0, sys.maxsize)
    stats = CorpusStats()
    writer = PassageWriter(tmp)
    families = [get_family(name) for name in options.retrievers]
    context = BuildContext(resume, tmp / SCRATCH, executor, shard is not None)
    builders = [family.builder(tmp / family.name, family.options(options), context)
                for family in families]
    task = None
    if progress is not None:
        task = progress.add_task("reading corpus", total=None, unit="passages", count=0)
    kept = 0
    try:
        for position, passage in enumerate(iter_passages(inputs, options.corpus, stats)):
            if position < start:
                continue
            if position >= stop:
                break
            writer.add(passage)
            kept += 1
            for builder in builders:
                builder.add(passage)
            if progress is not None and stats.passages % 512 == 0:
                _show_reading(progress, task, stats)
    finally:
        writer.close()
    if progress is not None:
        stats.bytes_read = stats.bytes_total
        _show_reading(progress, task, stats)
    if whole is not None:
        stats = whole
    if kept == 0:
        where = f" for shard {shard.index}/{shard.count}" if shard else ""
        raise OdqaError(
            f"the corpus has no passages{where} ({stats.passages} passages in "
            f"{stats.documents} documents, {stats.empty_skipped} empty): nothing to index"
        )
    sections = {
        family.name: builder.finish(PassageStore(tmp), progress)
        for family, builder in zip(families, builders, strict=True)
    }
    shutil.rmtree(tmp / SCRATCH, ignore_errors=True)
    corpus = CorpusRecord(
        tuple(str(Path(p).resolve()) for p in inputs), options.corpus, stats.documents,
        kept, stats.empty_skipped, stats.whitespace_id,
    )
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    build = BuildRecord(__version__, created, 0.0, library_versions())
    record = None
    if shard is not None:
        record = ShardRecord(shard.index, shard.count, start, start + kept, stats.passages)
    return Manifest(tuple(options.retrievers), corpus, build, sections, record)


def _show_reading(progress: ProgressDisplay, task: Any, stats: CorpusStats) -> None:
    """The corpus pass: a bar over the input bytes (for time left), labelled in passages."""
    progress.update(
        task, completed=stats.bytes_read, total=stats.bytes_total or None, count=stats.passages
    )


def _replace(tmp: Path, out: Path) -> None:
    """Move the finished build into place, replacing ``out`` only once the new one is whole.

    An empty ``out`` folder, or one holding the working directory (``--out .``), keeps its
    place: the entries move instead of the folder.
    """
    old = out.with_name(out.name + ".tmp-old")
    if old.exists():
        if not is_odqa_index(old):
            raise OdqaError(f"'{old}' is in the way and is not an odqa index: move it elsewhere")
        shutil.rmtree(old)
    if out.is_dir() and (not any(out.iterdir()) or _is_within(Path.cwd(), out)):
        _replace_entries(tmp, out, old)
        return
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    if old.exists():
        shutil.rmtree(old)


def _replace_entries(tmp: Path, out: Path, old: Path) -> None:
    """:func:`_replace` entry by entry, for a folder that must stay where it is."""
    old.mkdir()
    for entry in list(out.iterdir()):
        entry.rename(old / entry.name)
    for entry in list(tmp.iterdir()):
        entry.rename(out / entry.name)
    tmp.rmdir()
    shutil.rmtree(old)


def directory_size(path: Path) -> int:
    """Bytes used by the files below ``path``."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
