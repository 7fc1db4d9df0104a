"""The passage store of an index: ``passages.jsonl`` and its byte offsets.

``passages.offsets.npy`` holds ``passages + 1`` int64 byte offsets, so passage ``i`` is one
slice of the memory-mapped file and a hit reads only its own record.
"""

from __future__ import annotations

import json
import mmap
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from odqa.errors import IndexLoadError
from odqa.types import Passage

PASSAGES = "passages.jsonl"
OFFSETS = "passages.offsets.npy"


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
