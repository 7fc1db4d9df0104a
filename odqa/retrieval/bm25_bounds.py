"""Per-term and per-block maximum scores of a BM25 matrix, for dynamic pruning at search time.

A term's row of postings (sorted by passage) is cut into runs of ``block_size`` postings; block
``b`` of row ``r`` is ``data[indptr[r] + b * block_size : ...]`` and its maximum is
``block_max[block_ptr[r] + b]``. ``term_max[r]`` is the maximum of the whole row. Written at
build time as ``bm25/term_max.npy`` and ``bm25/block_max.npy`` (float32, the stored scores'
own values, so the bounds are exact).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

BLOCK_SIZE = 64
READ_POSTINGS = 8_000_000
FILES = ("term_max", "block_max")
HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}


def block_pointers(indptr: np.ndarray, block_size: int) -> np.ndarray:
    """Start of each row's blocks in ``block_max`` (int64, one more entry than rows)."""
    lengths = np.diff(np.asarray(indptr, dtype=np.int64))
    pointers = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum((lengths + block_size - 1) // block_size, out=pointers[1:])
    return pointers


def block_starts(indptr: np.ndarray, block_size: int) -> np.ndarray:
    """Position in ``data`` of the first posting of every block, rows in order (int64)."""
    indptr = np.asarray(indptr, dtype=np.int64)
    pointers = block_pointers(indptr, block_size)
    row_of_block = np.repeat(np.arange(len(indptr) - 1), np.diff(pointers))
    within = np.arange(int(pointers[-1]), dtype=np.int64) - pointers[row_of_block]
    return indptr[row_of_block] + within * block_size


def compute_maxima(
    data_file: Path, indptr: np.ndarray, block_size: int = BLOCK_SIZE
) -> tuple[np.ndarray, np.ndarray, float]:
    """``(term_max, block_max, smallest score)`` of the ``data.npy`` at ``data_file``.

    The file is read in slices of whole blocks with plain reads (not a memory map), so memory
    stays bounded by the slice size.
    """
    starts = block_starts(indptr, block_size)
    ends = np.append(starts[1:], np.int64(indptr[-1]))
    block_max = np.empty(len(starts), dtype=np.float32)
    smallest = np.inf
    with open(data_file, "rb") as handle:
        version = np.lib.format.read_magic(handle)
        if version not in HEADER_READERS:
            raise ValueError(f"{data_file}: unsupported .npy format version {version}")
        shape, _, dtype = HEADER_READERS[version](handle)
        header = handle.tell()
        first = 0
        while first < len(starts):
            lo = int(starts[first])
            last = int(np.searchsorted(ends, lo + READ_POSTINGS, side="right"))
            last = max(last, first + 1)
            hi = int(ends[last - 1])
            handle.seek(header + lo * dtype.itemsize)
            values = np.fromfile(handle, dtype=dtype, count=hi - lo).astype(np.float32, copy=False)
            block_max[first:last] = np.maximum.reduceat(values, starts[first:last] - lo)
            smallest = min(smallest, float(values.min()))
            first = last
    if len(starts) != 0 and shape != (int(indptr[-1]),):
        raise ValueError(f"{data_file}: shape {shape} does not match the row offsets")
    pointers = block_pointers(indptr, block_size)
    term_max = np.zeros(len(indptr) - 1, dtype=np.float32)
    filled = np.diff(pointers) > 0
    if len(block_max):
        term_max[filled] = np.maximum.reduceat(block_max, pointers[:-1][filled])
    return term_max, block_max, (smallest if np.isfinite(smallest) else 0.0)


def write_maxima(folder: Path, indptr: np.ndarray, block_size: int = BLOCK_SIZE) -> float:
    """Compute and save ``term_max.npy`` and ``block_max.npy`` in ``folder``; return the
    smallest stored score (recorded in the manifest: pruning needs every score > 0)."""
    term_max, block_max, smallest = compute_maxima(folder / "data.npy", indptr, block_size)
    np.save(folder / "term_max.npy", term_max, allow_pickle=False)
    np.save(folder / "block_max.npy", block_max, allow_pickle=False)
    return smallest
