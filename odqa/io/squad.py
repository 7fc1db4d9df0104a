"""SQuAD JSON (``data[].paragraphs[].qas[]``): the one loader behind the SQuAD corpus reader, the
SQuAD evaluation set and SQuAD training data. Gzip and a byte-order mark are handled; problems are
InputErrors naming the file (and the line, for bad JSON)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from odqa.errors import InputError
from odqa.io.lines import BOM, READ_ERRORS, open_binary, read_bytes, read_failure


def is_squad_name(path: Path) -> bool:
    """True for a ``.json`` or ``.json.gz`` file name (how SQuAD files are named)."""
    return path.name.lower().removesuffix(".gz").endswith(".json")


def sniff_squad(path: Path) -> bool:
    """True when the file starts like a SQuAD JSON object: ``{`` with a ``"data"`` key early."""
    try:
        with open_binary(path) as handle:
            head = handle.read(4096).removeprefix(BOM).lstrip()
    except READ_ERRORS as exc:
        raise read_failure(path, exc) from None
    return head.startswith(b"{") and b'"data"' in head


def load_squad_articles(path: Path) -> list[dict[str, Any]]:
    """The ``data`` list of a SQuAD JSON file, each entry checked to be an object.

    Raises:
        InputError: unreadable or damaged file, bad UTF-8 or JSON (with its line), no ``data``.
    """
    raw = read_bytes(path).removeprefix(BOM)
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError(path, line, f"invalid UTF-8 at byte {exc.start}") from None
    except json.JSONDecodeError as exc:
        raise InputError(path, exc.lineno, f"invalid JSON ({exc.msg})") from None
    articles = data.get("data") if isinstance(data, dict) else None
    if not isinstance(articles, list):
        raise InputError(path, None, "not a SQuAD file: expected an object with a 'data' list")
    for number, article in enumerate(articles):
        if not isinstance(article, dict):
            raise InputError(path, None, f"not a SQuAD file: data[{number}] is not an object")
    return articles


def squad_items(parent: Any, key: str, path: Path, where: str) -> list:
    """``parent[key]`` as a list (``paragraphs`` of an article, ``qas`` of a paragraph)."""
    value = parent.get(key) if isinstance(parent, dict) else None
    if not isinstance(value, list):
        raise InputError(path, None, f"{where}: missing '{key}' list")
    return value
