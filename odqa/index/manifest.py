"""``manifest.json``: what an index holds and how it was built, validated on load.

The top level and ``corpus`` are the index's own; each family's section (named after it) is
written by that family's builder and its required fields come from the family
(:attr:`odqa.index.families.Family.schema`). An index whose manifest breaks the schema is
refused on load with the field named.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from odqa.errors import IndexLoadError
from odqa.index.families import FAMILIES
from odqa.index.passages import OFFSETS, PASSAGES

FORMAT = "odqa-index"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
CORE_SCHEMA: dict[str, dict[str, type]] = {
    "": {"format": str, "format_version": int, "kinds": list, "corpus": dict},
    "corpus": {"documents": int, "passages": int},
}
"""Required fields of the index's own sections ("" is the top level)."""
_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
               list: "a list", dict: "an object"}
REBUILD = "rebuild the index with this odqa (`odqa index ... --force`)"


def index_entries() -> frozenset[str]:
    """The top-level entries odqa writes into an index folder."""
    return frozenset({MANIFEST, PASSAGES, OFFSETS, *FAMILIES})


def _type_problem(value: Any, expected: type) -> str | None:
    if isinstance(value, expected) and not (expected is int and isinstance(value, bool)):
        return None
    return f"must be {_TYPE_NAMES[expected]}, got {json.dumps(value)[:40]}"


def validate_manifest(manifest: Any, where: Path) -> None:
    """Check a parsed manifest against this odqa's format version and the schemas.

    Raises:
        IndexLoadError: naming the first field that is missing or of the wrong type.
    """
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise IndexLoadError(f"{where}: not an odqa index manifest; {REBUILD}")
    version = manifest.get("format_version")
    problem = _type_problem(version, int)
    if problem:
        raise IndexLoadError(f"{where}: 'format_version' {problem}; {REBUILD}")
    if version != FORMAT_VERSION:
        raise IndexLoadError(
            f"{where.parent}: index format version {version}, this odqa reads version "
            f"{FORMAT_VERSION}; {REBUILD}"
        )
    _check_fields(manifest, "", CORE_SCHEMA[""], where)
    kinds = manifest["kinds"]
    if not kinds or any(k not in FAMILIES for k in kinds):
        raise IndexLoadError(
            f"{where}: 'kinds' must list some of {', '.join(FAMILIES)}, got "
            f"{json.dumps(kinds)}; {REBUILD}"
        )
    sections: list[tuple[str, Mapping[str, type]]] = [("corpus", CORE_SCHEMA["corpus"])]
    sections += [(kind, FAMILIES[kind].schema) for kind in kinds]
    for section, schema in sections:
        data = manifest.get(section)
        if not isinstance(data, dict):
            raise IndexLoadError(f"{where}: section '{section}' is missing; {REBUILD}")
        _check_fields(data, section, schema, where)


def _check_fields(data: dict[str, Any], section: str, schema: Mapping[str, type],
                  where: Path) -> None:
    for key, expected in schema.items():
        value: Any = data
        for part in key.split("."):
            value = value.get(part, _MISSING) if isinstance(value, dict) else _MISSING
        name = f"{section}.{key}" if section else key
        if value is _MISSING:
            raise IndexLoadError(f"{where}: '{name}' is missing; {REBUILD}")
        problem = _type_problem(value, expected)
        if problem:
            raise IndexLoadError(f"{where}: '{name}' {problem}; {REBUILD}")


_MISSING = object()


def index_files(manifest: dict[str, Any]) -> list[str]:
    """Paths (relative to the index folder) of every file the manifest says the index has."""
    files = [PASSAGES, OFFSETS]
    for kind in manifest["kinds"]:
        files += [f"{kind}/{name}" for name in FAMILIES[kind].files(manifest[kind])]
    return files


def read_manifest(path: Path) -> dict[str, Any]:
    """Read and validate ``manifest.json`` of the index at ``path``."""
    if not path.is_dir():
        raise IndexLoadError(
            f"no index at '{path}': build one with `odqa index CORPUS --out {path}`"
        )
    manifest_path = path / MANIFEST
    if not manifest_path.is_file():
        raise IndexLoadError(
            f"'{path}' is not an odqa index (no {MANIFEST}); build it with `odqa index`"
        )
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise IndexLoadError(
            f"{manifest_path}: unreadable manifest ({exc}); rebuild the index"
        ) from None
    validate_manifest(manifest, manifest_path)
    for name in index_files(manifest):
        if not (path / name).is_file():
            raise IndexLoadError(f"{path}: '{name}' is missing; rebuild the index with --force")
    return manifest


def is_odqa_index(path: Path) -> bool:
    """Whether the folder ``path`` is an odqa index that ``--force`` may replace: its manifest
    names the odqa format, or (a damaged index) it holds a manifest and only odqa's entries."""
    if not path.is_dir():
        return False
    names = {p.name for p in path.iterdir()}
    if MANIFEST in names and names <= index_entries():
        return True
    try:
        manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("format") == FORMAT
