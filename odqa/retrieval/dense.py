"""Dense retrieval: encode passages in resumable on-disk chunks, index them with FAISS, and
search with queries encoded exactly as the manifest records.

Layout of ``<index>/dense``::

    index.faiss      the FAISS index (inner product)
    owners.npy       int64 passage of every vector, only when long passages were split into
                     windows (:mod:`odqa.encoders.windows`; format 2): a passage scores its
                     best window
    vectors.npy      exact float32 vectors, only for IVF-PQ re-ranking (read memory-mapped)
    query_onnx/      the query encoder in ONNX + tokenizer.json: queries are encoded without
                     torch (see :mod:`odqa.encoders.query_export`)

While building, ``chunks/NNNNN.npy`` (with ``NNNNN.owners.npy``, each vector's passage) and
``build.json`` hold the encoded chunks and the settings they were made with; a resumed build
keeps the chunks only when those settings match.
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from odqa.encoders.windows import OVERLAP, best_window_per_passage
from odqa.errors import IndexLoadError, OdqaError
from odqa.retrieval import faiss_index
from odqa.retrieval.dense_options import DenseOptions
from odqa.types import RankedIds

if TYPE_CHECKING:
    from odqa.encoders import DualEncoder
    from odqa.index.executors import Executor
    from odqa.index.passages import PassageStore
    from odqa.progress import ProgressDisplay

DENSE_FORMAT = 1
WINDOWS_FORMAT = 2
"""The format of an index with ``owners.npy``: a version reading only format 1 would return
vector numbers as passages, so it must refuse it."""
INDEX_FILE = "index.faiss"
OWNERS_FILE = "owners.npy"
VECTORS_FILE = "vectors.npy"
STATE_FILE = "build.json"
CHUNKS = "chunks"


def _advancer(progress: ProgressDisplay | None, task: Any) -> Any:
    """A callback advancing ``task`` of ``progress`` by n (None without a progress bar)."""
    if progress is None:
        return None
    return lambda n: progress.update(task, advance=n)


def _chunk_path(dense_dir: Path, number: int) -> Path:
    return dense_dir / CHUNKS / f"{number:05d}.npy"


def _prepare_chunks(dense_dir: Path, state: dict[str, Any], resume: bool) -> None:
    """Keep existing chunks only for a resume with identical settings; else start afresh."""
    state_file = dense_dir / STATE_FILE
    previous = json.loads(state_file.read_text()) if state_file.is_file() else None
    if not (resume and previous == state):
        shutil.rmtree(dense_dir / CHUNKS, ignore_errors=True)
    (dense_dir / CHUNKS).mkdir(parents=True, exist_ok=True)
    state_file.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")


def _digest(passages: PassageStore) -> str | None:
    """A fingerprint of the passage layout (byte offsets), so a changed corpus starts over."""
    offsets = getattr(passages, "offsets", None)
    if offsets is None:
        return None
    return hashlib.sha256(np.ascontiguousarray(offsets).tobytes()).hexdigest()


def _owners_path(chunk: Path) -> Path:
    return chunk.with_name(chunk.stem + ".owners.npy")


def _valid_chunk(path: Path, start: int, stop: int) -> bool:
    """A complete chunk of passages ``start:stop``: its vectors and their passages agree."""
    if not path.is_file() or not _owners_path(path).is_file():
        return False
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
        owners = np.load(_owners_path(path), allow_pickle=False)
    except (OSError, ValueError):
        return False
    return (
        array.ndim == 2 and array.dtype == np.float32 and owners.shape == (array.shape[0],)
        and owners.dtype == np.int64 and _covers(owners, start, stop)
    )


def _covers(owners: np.ndarray, start: int, stop: int) -> bool:
    """``owners`` runs through every passage ``start..stop-1`` in order."""
    if len(owners) == 0:
        return start == stop
    steps = np.diff(owners)
    ordered = np.all((steps == 0) | (steps == 1))
    return bool(owners[0] == start and owners[-1] == stop - 1 and ordered)


def _save_atomic(target: Path, array: np.ndarray) -> None:
    partial = target.with_name(target.stem + ".partial.npy")
    np.save(partial, array, allow_pickle=False)
    partial.replace(target)


@functools.lru_cache(maxsize=1)
def cached_encoder(options: DenseOptions) -> DualEncoder:
    """The passage/query encoder of ``options``, loaded once per process (a build's driver
    and each of its workers)."""
    from odqa.encoders import DualEncoder

    return DualEncoder.from_options(options)


def encode_range(
    store_folder: Path,
    start: int,
    stop: int,
    options: DenseOptions,
    target: Path,
    advance: Any = None,
) -> int:
    """Work unit: encode passages ``start:stop`` of the store at ``store_folder`` into the
    float32 ``.npy`` file ``target`` and each vector's passage into ``NNNNN.owners.npy`` (one
    vector per passage, or per window with ``long_passages="windows"``; both written
    atomically, the vectors last); return the number of passages."""
    from odqa.index.passages import PassageStore

    store = PassageStore(store_folder)
    try:
        batch = store.get_many(list(range(start, stop)))
        encoder = cached_encoder(options)
        if options.long_passages == "windows":
            vectors, owners = encoder.encode_passage_windows(batch, advance)
        else:
            vectors = encoder.encode_passages(batch, advance)
            owners = np.arange(len(batch), dtype=np.int64)
    finally:
        store.close()
    _save_atomic(_owners_path(target), owners + start)
    _save_atomic(target, vectors.astype(np.float32, copy=False))
    return stop - start


def encode_chunks(
    dense_dir: Path,
    passages: PassageStore,
    options: DenseOptions,
    progress: ProgressDisplay | None = None,
    executor: Executor | None = None,
) -> list[Path]:
    """Encode every passage into ``chunks/NNNNN.npy`` files (one work unit each, run by
    ``executor``), skipping chunks already on disk."""
    from odqa.index.executors import InProcess, WorkUnit, passage_ranges

    ranges = passage_ranges(len(passages), options.chunk_size)
    paths = [_chunk_path(dense_dir, number) for number in range(len(ranges))]
    for path, (start, stop) in zip(paths, ranges, strict=True):
        if path.exists() and not _valid_chunk(path, start, stop):
            path.unlink()
    units = [
        WorkUnit(encode_range, (passages.folder, start, stop, options, path), path,
                 stop - start, reports=True)
        for path, (start, stop) in zip(paths, ranges, strict=True)
    ]
    (executor or InProcess()).run(units, progress, "dense encoding")
    return paths


def _write_vectors(paths: list[Path], target: Path) -> None:
    """Concatenate the chunks into one ``.npy`` without holding them all in memory."""
    arrays = [np.load(p, mmap_mode="r", allow_pickle=False) for p in paths]
    count, dimension = sum(len(a) for a in arrays), arrays[0].shape[1]
    out = np.lib.format.open_memmap(target, mode="w+", dtype=np.float32, shape=(count, dimension))
    offset = 0
    for array in arrays:
        out[offset : offset + len(array)] = array
        offset += len(array)
    out.flush()
    del out


def build_dense(
    dense_dir: Path,
    passages: PassageStore,
    options: DenseOptions,
    resume: bool = False,
    progress: ProgressDisplay | None = None,
    executor: Executor | None = None,
    keep_vectors: bool = False,
) -> dict[str, Any]:
    """Encode ``passages`` and write the FAISS index into ``dense_dir``; return the manifest
    section that lets queries be encoded identically later.

    Args:
        dense_dir: an existing folder (may hold chunks of an interrupted build).
        passages: the passages of the index, in index order.
        options: encoder, batching, backend and FAISS settings.
        resume: reuse chunks encoded with the same settings by an interrupted build.
        progress: shows a "dense encoding" task (passages/s, time left) when given.
        executor: runs the encoding units (default: this process).
        keep_vectors: also keep the exact vectors in ``vectors.npy`` (a shard keeps them, so a
            merge can build any FAISS kind over all shards).

    Raises:
        OdqaError: no passages, or encoder / index settings that cannot work.
        ModelNotAvailableError: the encoder cannot be loaded.
    """
    from odqa.encoders.query_export import EXPORT_DIR, export_query_encoder

    if len(passages) == 0:
        raise OdqaError("no passages to encode for the dense index")
    encoder = cached_encoder(options)
    state = {
        "encoder": encoder.describe(),
        "options": options.encoding_dict(),
        "passages": len(passages),
        "passages_digest": _digest(passages),
        "chunk_size": options.chunk_size,
    }
    _prepare_chunks(dense_dir, state, resume)
    paths = encode_chunks(dense_dir, passages, options, progress, executor)
    dimension = int(np.load(paths[0], mmap_mode="r").shape[1])
    owners = np.concatenate([np.load(_owners_path(p), allow_pickle=False) for p in paths])
    count = len(owners)
    params = faiss_index.resolve_params(options.faiss, count, dimension, **options.to_dict())
    task = None
    if progress is not None:
        task = progress.add_task(f"faiss {options.faiss}", total=count, unit="vectors")
    advance = _advancer(progress, task)
    index = faiss_index.build_index(paths, options.faiss, params, advance)
    faiss_index.write_index(index, dense_dir / INDEX_FILE)
    refine = options.refine if options.faiss == "ivfpq" else 0
    if refine or keep_vectors:
        _write_vectors(paths, dense_dir / VECTORS_FILE)
    windows = _write_owners(dense_dir, owners, len(passages))
    shutil.rmtree(dense_dir / CHUNKS)
    (dense_dir / STATE_FILE).unlink()
    query_onnx = export_query_encoder(
        encoder.query, dense_dir / EXPORT_DIR, quantize=options.backend == "int8"
    )
    return {
        "format": WINDOWS_FORMAT if windows else DENSE_FORMAT,
        "encoder": encoder.describe(),
        "precision": encoder.passage.runtime_precision,
        "query_onnx": query_onnx,
        "dimension": dimension,
        "metric": "inner_product",
        "count": count,
        "long_passages": options.long_passages,
        **({"windows": windows} if windows else {}),
        "exact_vectors": bool(refine or keep_vectors),
        "faiss": {"kind": options.faiss, "file": INDEX_FILE, **params},
        "search": _search_defaults(options, refine),
        "build": {"batch_size": options.batch_size, "device": options.device,
                  "chunk_size": options.chunk_size,
                  "faiss_requested": _requested_faiss(options)},
    }


def _write_owners(dense_dir: Path, owners: np.ndarray, passages: int) -> dict[str, Any] | None:
    """Write ``owners.npy`` when some passage has several vectors; return the manifest's
    ``windows`` record (None when every passage has one vector)."""
    if len(owners) == passages:
        (dense_dir / OWNERS_FILE).unlink(missing_ok=True)
        return None
    _save_atomic(dense_dir / OWNERS_FILE, owners.astype(np.int64, copy=False))
    split = int(np.count_nonzero(np.bincount(owners, minlength=passages) > 1))
    return {"owners": OWNERS_FILE, "passages_split": split, "overlap": OVERLAP}


def load_owners(
    folder: Path, section: dict[str, Any], passages: int | None = None, full: bool = False
) -> np.ndarray | None:
    """Each vector's passage (memory-mapped), or None for an index of one vector per passage.

    ``passages`` (when given) is checked against the first and last owner; ``full`` reads the
    whole file to check that it runs through every passage in order (``odqa info --check``).

    Raises:
        IndexLoadError: the file or its manifest record is missing, unreadable or does not
            match the index.
    """
    windows = section.get("windows")
    if not windows:
        if section.get("format") == WINDOWS_FORMAT:
            raise IndexLoadError(f"{folder}: a dense index of format {WINDOWS_FORMAT} without its "
                                 "windows record in the manifest: rebuild the index")
        return None
    if not isinstance(windows, dict) or not isinstance(windows.get("owners"), str):
        raise IndexLoadError(f"{folder}: the manifest's dense windows record names no owners "
                             "file: rebuild the index")
    path = folder / windows["owners"]
    try:
        owners = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise IndexLoadError(f"cannot read {path} ({exc}): rebuild the index") from None
    if owners.shape != (section["count"],) or owners.dtype != np.int64:
        raise IndexLoadError(f"{path} holds {owners.shape} {owners.dtype}, expected "
                             f"{section['count']} int64 passage numbers: rebuild the index")
    if passages is not None:
        ends = len(owners) > 0 and owners[0] == 0 and owners[-1] == passages - 1
        if not ends or (full and not _covers(np.asarray(owners), 0, passages)):
            raise IndexLoadError(f"{path} does not run through passages 0..{passages - 1} in "
                                 "order: rebuild the index")
    return owners


FAISS_REQUESTED = {"hnsw": ("hnsw_m", "ef_construction"), "ivfpq": ("nlist", "pq_m", "pq_nbits")}
"""The FAISS build options of each index kind, as given (None: automatic for the count)."""


def _requested_faiss(options: DenseOptions) -> dict[str, Any]:
    """The FAISS options as the user gave them, so a merge resolves them for its own count."""
    return {name: getattr(options, name) for name in FAISS_REQUESTED.get(options.faiss, ())}


def merge_dense(folder: Path, parts: list[Any], progress: ProgressDisplay | None = None,
                ) -> dict[str, Any]:
    """The dense folder of a merged index from its shards' (``ShardPart``) exact vectors: the
    FAISS index is built anew over all of them in passage order, as one process would.

    Raises:
        OdqaError: shards encoded differently, or a shard without its exact vectors.
    """
    first = parts[0].section
    same = ("encoder", "build", "search", "long_passages")
    for part in parts:
        if any(part.section.get(key) != first.get(key) for key in same):
            raise OdqaError(f"{part.folder}: the shards' dense encoders or options differ: "
                            "rebuild the shards with one command line")
        if not part.section.get("exact_vectors") or not (part.folder / VECTORS_FILE).is_file():
            raise OdqaError(f"{part.folder}: no exact vectors ({VECTORS_FILE}) to merge: "
                            "rebuild this shard with `odqa index --shard`")
    kind, requested = first["faiss"]["kind"], first["build"].get("faiss_requested")
    if requested is None:
        raise OdqaError(f"{parts[0].folder}: the shard records no FAISS options: rebuild it")
    folder.mkdir(parents=True, exist_ok=True)
    paths = [part.folder / VECTORS_FILE for part in parts]
    owners, start = [], 0
    for part in parts:
        part_owners = load_owners(part.folder, part.section, part.passages, full=True)
        if part_owners is None:
            part_owners = np.arange(part.passages, dtype=np.int64)
        owners.append(np.asarray(part_owners) + start)
        start += part.passages
    count, dimension = sum(len(o) for o in owners), int(first["dimension"])
    params = faiss_index.resolve_params(kind, count, dimension, **requested)
    task = None
    if progress is not None:
        task = progress.add_task(f"faiss {kind}", total=count, unit="vectors")
    index = faiss_index.build_index(paths, kind, params, _advancer(progress, task))
    faiss_index.write_index(index, folder / INDEX_FILE)
    refine = int(first["search"].get("refine", 0))
    if refine:
        _write_vectors(paths, folder / VECTORS_FILE)
    windows = _write_owners(folder, np.concatenate(owners), start)
    from odqa.encoders.query_export import EXPORT_DIR

    if (parts[0].folder / EXPORT_DIR).is_dir():
        shutil.copytree(parts[0].folder / EXPORT_DIR, folder / EXPORT_DIR)
    merged = {key: value for key, value in first.items() if key != "windows"}
    return {
        **merged,
        "format": WINDOWS_FORMAT if windows else DENSE_FORMAT,
        **({"windows": windows} if windows else {}),
        "count": count,
        "exact_vectors": bool(refine),
        "faiss": {"kind": kind, "file": INDEX_FILE, **params},
    }


SEARCH_PARAMETERS = {"hnsw": ("ef_search",), "ivfpq": ("nprobe",)}
"""The query-time FAISS parameters each index kind has (a flat index has none)."""


def _search_defaults(options: DenseOptions, refine: int) -> dict[str, int]:
    """The query-time defaults recorded for this index kind, and nothing that does not apply."""
    recorded = {name: getattr(options, name) for name in SEARCH_PARAMETERS.get(options.faiss, ())}
    return {**recorded, "refine": refine}


class DenseRetriever:
    """Searches a dense index folder; the query encoder loads on the first search.

    Build with :meth:`load`; ``search_ids(queries, k)`` returns int64 passage indices and
    float32 inner products, best first, ties by index. With ``owners`` (each vector's passage,
    for passages split into windows) a passage scores its best window.
    """

    def __init__(
        self,
        index: Any,
        encoder: DualEncoder,
        vectors: np.ndarray | None = None,
        refine: int = 0,
        owners: np.ndarray | None = None,
    ) -> None:
        self.index = index
        self.encoder = encoder
        self.vectors = vectors
        self.refine = refine
        self.owners = owners
        self.passages = int(owners[-1]) + 1 if owners is not None and len(owners) else index.ntotal
        self._last: tuple[tuple[str, ...], np.ndarray] | None = None

    @classmethod
    def load(
        cls,
        folder: Path,
        section: dict[str, Any],
        ef_search: int | None = None,
        nprobe: int | None = None,
        device: str | None = None,
        batch_size: int | None = None,
        backend: str | None = None,
        refine: int | None = None,
        passages: int | None = None,
    ) -> DenseRetriever:
        """Open ``folder`` as described by the manifest ``section`` (index memory-mapped).

        Query-time options override the recorded defaults: ``ef_search`` (HNSW), ``nprobe`` and
        ``refine`` (IVF-PQ), ``device``, ``batch_size``, ``backend`` of the query encoder.
        ``passages``: the index's passage count, checked against ``owners.npy`` when it has one.
        Queries run on the index's ONNX export of the query encoder when it has one (no torch
        import) unless ``backend`` or ``device`` ask for something else.

        Raises:
            IndexLoadError: unknown format, missing file, or a count mismatch.
        """
        from odqa.encoders import DualEncoder
        from odqa.encoders.query_export import usable_export

        folder = Path(folder)
        if section.get("format") not in (DENSE_FORMAT, WINDOWS_FORMAT):
            raise IndexLoadError(
                f"dense index format {section.get('format')!r} in {folder} is not supported "
                f"(expected {DENSE_FORMAT} or {WINDOWS_FORMAT}): rebuild the index with this "
                "version of odqa"
            )
        index = faiss_index.read_index(folder / section["faiss"]["file"])
        if index.ntotal != section["count"] or index.d != section["dimension"]:
            raise IndexLoadError(
                f"dense index {folder} holds {index.ntotal} vectors of dimension {index.d}, the "
                f"manifest says {section['count']} of {section['dimension']}: rebuild the index"
            )
        recorded = section.get("search", {})
        faiss_index.set_search_params(
            index,
            ef_search if ef_search is not None else recorded.get("ef_search"),
            nprobe if nprobe is not None else recorded.get("nprobe"),
        )
        refine = recorded.get("refine", 0) if refine is None else refine
        vectors = None
        if refine and (folder / VECTORS_FILE).is_file():
            vectors = np.load(folder / VECTORS_FILE, mmap_mode="r", allow_pickle=False)
        export = usable_export(folder, section) if device in (None, "auto", "cpu") else None
        if export is not None and backend not in (None, export[2]):
            export = None
        encoder = DualEncoder.from_manifest(
            section["encoder"], export, device=device, batch_size=batch_size, backend=backend
        )
        return cls(index, encoder, vectors, refine, load_owners(folder, section, passages))

    def encode(self, queries: list[str]) -> np.ndarray:
        """Query vectors; the last batch is remembered (hybrid and dense share one encoding)."""
        key = tuple(queries)
        if self._last is None or self._last[0] != key:
            self._last = (key, self.encoder.encode_queries(list(queries)))
        return self._last[1]

    def search_ids(self, queries: list[str], k: int) -> list[RankedIds]:
        """Top ``k`` passage indices and inner-product scores per query, best first."""
        if not queries:
            return []
        return self.search_vectors(self.encode(queries), k)

    def search_vectors(self, vectors: np.ndarray, k: int) -> list[RankedIds]:
        """Top ``k`` for already encoded query vectors."""
        if self.owners is None:
            return faiss_index.search(self.index, vectors, k, self.vectors, self.refine)

        def windows(queries: np.ndarray, depth: int) -> list[RankedIds]:
            return faiss_index.search(self.index, queries, depth, self.vectors, self.refine)

        return best_window_per_passage(windows, vectors, self.owners, k, self.passages)
