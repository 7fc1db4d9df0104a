"""``odqa merge``: combine the shards of a sharded build into one index, equal to the index one
process would have built from the whole corpus.

The shards must be a complete set (shard ``0..N-1`` of one ``N``, built from the same corpus
with the same options); their passage ranges are contiguous, so the merged passage store is
their concatenation. Each family merges its own folders
(:meth:`~odqa.index.families.Family.merge`): BM25 rescored from the shards' raw counts with
global statistics, dense FAISS indexes rebuilt over the shards' exact vectors, phrase arrays
concatenated and their FAISS indexes rebuilt.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from odqa import __version__
from odqa.errors import OdqaError
from odqa.index.families import get_family
from odqa.index.manifest import BuildRecord, Manifest, read_manifest
from odqa.index.passages import OFFSETS, PASSAGES, load_offsets


@dataclass(frozen=True)
class ShardPart:
    """One shard's folder of a family, its manifest section and its passage range."""

    folder: Path
    section: dict[str, Any]
    start: int
    passages: int


def read_shards(paths: list[Path]) -> list[tuple[Path, Manifest]]:
    """The shards' manifests in shard order, checked to form one complete, consistent set.

    Raises:
        OdqaError: a folder that is not a shard, a missing or repeated shard, shards of
            different corpora, options or retriever families.
    """
    shards = []
    for path in paths:
        manifest = read_manifest(Path(path))
        if manifest.shard is None:
            raise OdqaError(
                f"'{path}' is a whole index, not a shard: merge folders built with --shard I/N"
            )
        shards.append((Path(path), manifest))
    shards.sort(key=lambda item: item[1].shard.index if item[1].shard else 0)
    first_path, first = shards[0]
    assert first.shard is not None
    count = first.shard.count
    numbers = [m.shard.index for _, m in shards if m.shard]
    if numbers != list(range(count)):
        missing = sorted(set(range(count)) - set(numbers))
        repeated = sorted({n for n in numbers if numbers.count(n) > 1})
        problem = (f"shard {', '.join(map(str, repeated))} given twice" if repeated
                   else f"shard {', '.join(map(str, missing))} missing")
        raise OdqaError(f"the shards do not form one set of {count}: {problem}")
    for path, manifest in shards[1:]:
        assert manifest.shard is not None
        for what, mine, theirs in (
            ("shard count", manifest.shard.count, count),
            ("corpus inputs", manifest.corpus.inputs, first.corpus.inputs),
            ("corpus options", manifest.corpus.options, first.corpus.options),
            ("passage total", manifest.shard.total, first.shard.total),
            ("retriever families", manifest.kinds, first.kinds),
        ):
            if mine != theirs:
                raise OdqaError(
                    f"'{path}' and '{first_path}' differ in {what} ({mine} vs {theirs}): "
                    "rebuild the shards with one command line"
                )
    stops = [m.shard.stop for _, m in shards if m.shard]
    starts = [m.shard.start for _, m in shards if m.shard]
    if starts[0] != 0 or starts[1:] != stops[:-1] or stops[-1] != first.shard.total:
        raise OdqaError("the shards' passage ranges do not cover the corpus in order: "
                        "rebuild them from the same corpus")
    return shards


def _merge_passages(shards: list[tuple[Path, Manifest]], tmp: Path) -> None:
    """The passage store of the shards concatenated, offsets shifted by the bytes before."""
    offsets = [np.zeros(1, dtype=np.int64)]
    total = 0
    with open(tmp / PASSAGES, "wb") as out:
        for path, _ in shards:
            shard_offsets = np.asarray(load_offsets(path), dtype=np.int64)
            with open(path / PASSAGES, "rb") as handle:
                shutil.copyfileobj(handle, out, 16 << 20)
            offsets.append(shard_offsets[1:] + total)
            total += int(shard_offsets[-1])
    np.save(tmp / OFFSETS, np.concatenate(offsets), allow_pickle=False)


def merge_shards(
    paths: list[Path],
    out: Path,
    *,
    force: bool = False,
    progress: Any = None,
    notify: Callable[[str], None] | None = None,
) -> Manifest:
    """Merge the shard indexes at ``paths`` into the index ``out``; return its manifest.

    Raises:
        OdqaError: see :func:`read_shards`, and :func:`~odqa.index.build.index_transaction`
            for the target.
    """
    from odqa.index.build import _notice, finish_folder, index_transaction, library_versions

    shards = read_shards(paths)
    first = shards[0][1]
    with index_transaction([p for p, _ in shards], out, force, False, notify or _notice) as tmp:
        started = time.perf_counter()
        _merge_passages(shards, tmp)
        sections = {}
        for kind in first.kinds:
            parts = [
                ShardPart(path / kind, manifest.section(kind), manifest.shard.start,
                          manifest.corpus.passages)
                for path, manifest in shards
                if manifest.shard is not None
            ]
            sections[kind] = get_family(kind).merge(tmp / kind, parts, progress)
        corpus = replace(first.corpus, passages=first.shard.total if first.shard else 0)
        created = datetime.now(timezone.utc).isoformat(timespec="seconds")
        build = BuildRecord(__version__, created, round(time.perf_counter() - started, 3),
                            library_versions())
        manifest = Manifest(first.kinds, corpus, build, sections)
        finish_folder(tmp, manifest)
    return manifest
