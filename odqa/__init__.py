"""odqa: open-domain question answering from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from odqa.index.store import Index


def load_index(path: str | Path) -> Index:
    """Open the index directory at ``path`` (arrays memory-mapped) and return an :class:`Index`."""
    from odqa.index.store import Index

    return Index.load(path)


__all__ = ["__version__", "load_index"]
