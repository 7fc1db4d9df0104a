"""``odqa info --check``: verify every file of an index against its manifest.

Loading an index checks only what a search needs (cheap); this reads every file once: sizes,
counts, array shapes and types, that each passage offset starts a line, the BM25 matrix's
structure and vocabulary, and the FAISS index's vector count and dimension.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from odqa.errors import IndexLoadError
from odqa.index.families import FAMILIES
from odqa.index.manifest import read_manifest
from odqa.index.passages import OFFSETS, PASSAGES, load_offsets

BLOCK = 1 << 26
"""Bytes of ``passages.jsonl`` scanned at a time when counting lines."""


def check_index(path: Path) -> list[str]:
    """Verify the index at ``path`` file by file; return one line per check that passed.

    Raises:
        IndexLoadError: naming the first file that does not match the manifest.
    """
    manifest = read_manifest(path)
    count = manifest.corpus.passages
    done = [_check_passages(path, count)]
    for kind in manifest.kinds:
        done += FAMILIES[kind].check(path / kind, manifest.section(kind), count)
    return done


def _fail(path: Path, problem: str) -> IndexLoadError:
    return IndexLoadError(f"{path}: {problem}; rebuild the index with --force")


def _check_passages(folder: Path, count: int) -> str:
    offsets = load_offsets(folder)
    if len(offsets) != count + 1:
        raise _fail(folder / OFFSETS, f"{len(offsets) - 1} passages, the manifest says {count}")
    if count and not np.all(np.diff(offsets) > 0):
        raise _fail(folder / OFFSETS, "offsets do not increase")
    path = folder / PASSAGES
    size = path.stat().st_size
    if int(offsets[-1]) != size:
        raise _fail(path, f"{size} bytes, the offsets say {int(offsets[-1])}")
    if count:
        data = np.memmap(path, dtype=np.uint8, mode="r")
        if not np.all(data[np.asarray(offsets[1:]) - 1] == ord("\n")):
            raise _fail(path, "a passage offset does not start a line")
        lines = sum(
            int(np.count_nonzero(data[i : i + BLOCK] == ord("\n"))) for i in range(0, size, BLOCK)
        )
        if lines != count:
            raise _fail(path, f"{lines} lines for {count} passages")
        for i in {0, count - 1}:
            _check_record(path, bytes(data[int(offsets[i]) : int(offsets[i + 1])]), i)
        del data
    return f"{PASSAGES}: {count:,} passages, {size:,} bytes, offsets on line starts"


def _check_record(path: Path, line: bytes, number: int) -> None:
    try:
        record = json.loads(line)
    except ValueError as exc:
        raise _fail(path, f"passage {number} is not valid JSON ({exc})") from None
    fields = {"id", "doc_id", "title", "text"}
    if not isinstance(record, dict) or not fields <= set(record):
        raise _fail(path, f"passage {number} lacks the fields {', '.join(sorted(fields))}")


def _load(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise _fail(path, f"unreadable ({exc})") from None


def _expect(path: Path, array: np.ndarray, length: int, kind: str) -> None:
    if array.ndim != 1 or len(array) != length or array.dtype.kind != kind:
        raise _fail(
            path, f"shape {array.shape} of {array.dtype}, expected ({length},) of kind '{kind}'"
        )


def check_bm25(folder: Path, section: dict[str, Any], count: int) -> list[str]:
    """Every BM25 array's shape and type, the matrix's structure and the vocabulary."""
    from odqa.retrieval.sparse import BM25_FILES, BM25_VOCAB

    arrays = {name: _load(folder / name) for name in BM25_FILES}
    terms, nonzeros = section["vocabulary_size"], section["nonzeros"]
    expected = {
        "data.npy": (nonzeros, "f"),
        "indices.npy": (nonzeros, "i"),
        "indptr.npy": (terms + 1, "i"),
        "term_base.npy": (terms, "f"),
        "doc_lengths.npy": (count, "i"),
    }
    for name, (length, kind) in expected.items():
        _expect(folder / name, arrays[name], length, kind)
    indptr, indices = arrays["indptr.npy"], arrays["indices.npy"]
    if indptr[0] != 0 or indptr[-1] != nonzeros or np.any(np.diff(indptr) < 0):
        raise _fail(folder / "indptr.npy", "row pointers do not run from 0 to the non-zeros")
    if nonzeros and (int(indices.min()) < 0 or int(indices.max()) >= count):
        raise _fail(folder / "indices.npy", f"a passage index outside 0..{count - 1}")
    vocab_path = folder / BM25_VOCAB
    try:
        vocab = json.loads(vocab_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise _fail(vocab_path, f"unreadable ({exc})") from None
    if not isinstance(vocab, list) or not all(isinstance(t, str) for t in vocab):
        raise _fail(vocab_path, "not a JSON list of terms")
    distinct = len(set(vocab))
    if len(vocab) != terms or distinct != terms:
        raise _fail(vocab_path, f"{len(vocab)} entries ({distinct} distinct), expected {terms}")
    return [
        f"bm25/: {terms:,} terms x {count:,} passages, {nonzeros:,} non-zeros",
        f"bm25/{BM25_VOCAB}: {terms:,} distinct terms",
    ]


def check_dense(folder: Path, section: dict[str, Any], count: int) -> list[str]:
    """The FAISS index's vector count and dimension (and the refine vectors when kept)."""
    from odqa.retrieval import faiss_index
    from odqa.retrieval.dense import load_owners

    path = folder / section["faiss"]["file"]
    index = faiss_index.read_index(path)
    vectors_count = section["count"]
    if index.ntotal != vectors_count:
        raise _fail(path, f"{index.ntotal} vectors; the manifest says {vectors_count}")
    owners = load_owners(folder, section, count, full=True)  # its errors name the file
    if owners is None and vectors_count != count:
        raise _fail(path, f"{vectors_count} vectors for {count} passages and no "
                          "owners.npy saying whose they are")
    if index.d != section["dimension"]:
        raise _fail(path, f"dimension {index.d}, the manifest says {section['dimension']}")
    done = [f"dense/{path.name}: {index.ntotal:,} vectors of dimension {index.d}"]
    if owners is not None:
        done.append(f"dense/{section['windows']['owners']}: {count:,} passages in "
                    f"{vectors_count:,} windows")
    if section.get("search", {}).get("refine"):
        from odqa.retrieval.dense import VECTORS_FILE

        vectors = _load(folder / VECTORS_FILE)
        if vectors.shape != (vectors_count, index.d) or vectors.dtype != np.float32:
            raise _fail(folder / VECTORS_FILE, f"shape {vectors.shape} of {vectors.dtype}")
        done.append(f"dense/{VECTORS_FILE}: {vectors_count:,} x {index.d} float32")
    return done
