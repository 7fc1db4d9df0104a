"""``manifest.json``: what an index holds and how it was built, as one typed, frozen
:class:`Manifest`, validated on load.

Format version 2 groups the file in four parts: ``kinds`` (the families stored), ``corpus``
(inputs, reading options, counts), ``build`` (odqa and library versions, time) and
``families`` (one section per family, written by that family's builder and read by that
family alone; its required fields come from :attr:`odqa.index.families.Family.schema`).
A version-1 manifest (the same content, flat) is converted on load. A manifest that breaks the
schema is refused with the field named.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from odqa.errors import IndexLoadError
from odqa.index.families import FAMILIES
from odqa.index.passages import OFFSETS, PASSAGES
from odqa.io.corpus import CorpusOptions

FORMAT = "odqa-index"
FORMAT_VERSION = 2
MANIFEST = "manifest.json"
CORE_SCHEMA: dict[str, dict[str, type]] = {
    "": {"format": str, "format_version": int, "kinds": list, "corpus": dict, "build": dict,
         "families": dict},
    "corpus": {"inputs": list, "options": dict, "documents": int, "passages": int,
               "empty_skipped": int},
    "build": {"odqa_version": str, "created": str, "seconds": float, "libraries": dict},
}
"""Required fields of the index's own parts ("" is the top level)."""
_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
               list: "a list", dict: "an object"}
REBUILD = "rebuild the index with this odqa (`odqa index ... --force`)"
_CORPUS_OPTIONS = frozenset(f.name for f in fields(CorpusOptions))
"""The CorpusOptions fields (what a version-1 manifest kept flat inside ``corpus``)."""
_BUILD_KEYS_V1 = {"odqa_version": "odqa_version", "created": "created",
                  "build_seconds": "seconds", "libraries": "libraries"}


@dataclass(frozen=True)
class CorpusRecord:
    """What was indexed: the inputs, how they were read and split, and the counts."""

    inputs: tuple[str, ...]
    options: CorpusOptions
    documents: int
    passages: int
    empty_skipped: int = 0
    whitespace_id: str | None = None
    """A passage id holding whitespace, if any (TREC runs cannot carry such ids)."""

    def to_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "inputs": list(self.inputs),
            "options": dict(self.options.__dict__),
            "documents": self.documents,
            "passages": self.passages,
            "empty_skipped": self.empty_skipped,
        }
        if self.whitespace_id is not None:
            record["whitespace_id"] = self.whitespace_id
        return record

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CorpusRecord:
        options = CorpusOptions(
            **{k: v for k, v in data["options"].items() if k in _CORPUS_OPTIONS}
        )
        return cls(tuple(data["inputs"]), options, data["documents"], data["passages"],
                   data["empty_skipped"], data.get("whitespace_id"))


@dataclass(frozen=True)
class BuildRecord:
    """How the index was built: odqa and library versions, when, and how long it took."""

    odqa_version: str
    created: str
    seconds: float
    libraries: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"odqa_version": self.odqa_version, "created": self.created,
                "seconds": self.seconds, "libraries": dict(self.libraries)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BuildRecord:
        return cls(data["odqa_version"], data["created"], float(data["seconds"]),
                   MappingProxyType(dict(data["libraries"])))


@dataclass(frozen=True)
class ShardRecord:
    """Which part of the corpus a shard index holds: passages ``start:stop`` of ``total``,
    shard ``index`` of ``count`` (from 0). A shard's corpus record counts the whole corpus's
    documents; its ``passages`` are the shard's own."""

    index: int
    count: int
    start: int
    stop: int
    total: int

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "count": self.count, "start": self.start,
                "stop": self.stop, "total": self.total}

    @classmethod
    def from_json(cls, data: Any, where: Path) -> ShardRecord:
        if not isinstance(data, dict):
            raise IndexLoadError(f"{where}: 'shard' must be an object; {REBUILD}")
        _check_fields(data, "shard", SHARD_SCHEMA, where)
        return cls(data["index"], data["count"], data["start"], data["stop"], data["total"])


SHARD_SCHEMA: dict[str, type] = {name: int for name in ("index", "count", "start", "stop",
                                                         "total")}


@dataclass(frozen=True)
class Manifest:
    """An index's manifest. Family sections are opaque here: each family reads its own."""

    kinds: tuple[str, ...]
    corpus: CorpusRecord
    build: BuildRecord
    families: Mapping[str, Mapping[str, Any]]
    shard: ShardRecord | None = None
    """Set on a shard of a sharded build (``odqa index --shard I/N``)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "families", MappingProxyType(dict(self.families)))

    def section(self, family: str) -> dict[str, Any]:
        """A copy of the section the family ``family`` wrote (KeyError when the index lacks
        it)."""
        return dict(self.families[family])

    def with_build_seconds(self, seconds: float) -> Manifest:
        """The same manifest with the build time set."""
        return replace(self, build=replace(self.build, seconds=seconds))

    def to_json(self) -> dict[str, Any]:
        """The ``manifest.json`` object (format version 2)."""
        data = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "kinds": list(self.kinds),
            "corpus": self.corpus.to_json(),
            "build": self.build.to_json(),
            "families": {name: self.families[name] for name in self.kinds},
        }
        if self.shard is not None:
            data["shard"] = self.shard.to_json()
        return data

    @classmethod
    def from_json(cls, data: Any, where: Path) -> Manifest:
        """Validate a parsed ``manifest.json`` (converting version 1) and type it.

        Raises:
            IndexLoadError: naming the first field that is missing or of the wrong type.
        """
        data = validate_manifest(data, where)
        families = {kind: data["families"][kind] for kind in data["kinds"]}
        shard = data.get("shard")
        return cls(tuple(data["kinds"]), CorpusRecord.from_json(data["corpus"]),
                   BuildRecord.from_json(data["build"]), families,
                   None if shard is None else ShardRecord.from_json(shard, where))


def upgrade_v1(manifest: dict[str, Any]) -> dict[str, Any]:
    """A version-1 manifest (corpus options, build fields and family sections all flat) in
    the version-2 layout; nothing is lost, nothing is guessed."""
    listed = manifest.get("kinds")
    kinds: list[Any] = listed if isinstance(listed, list) else []
    corpus = dict(manifest.get("corpus") or {})
    options = {k: corpus.pop(k) for k in list(corpus) if k in _CORPUS_OPTIONS}
    corpus["options"] = options
    corpus.setdefault("empty_skipped", 0)
    build = {new: manifest[old] for old, new in _BUILD_KEYS_V1.items() if old in manifest}
    build.setdefault("libraries", {})
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kinds": kinds,
        "corpus": corpus,
        "build": build,
        "families": {k: manifest[k] for k in kinds if isinstance(k, str) and k in manifest},
    }


def index_entries() -> frozenset[str]:
    """The top-level entries odqa writes into an index folder."""
    return frozenset({MANIFEST, PASSAGES, OFFSETS, *FAMILIES})


def _type_problem(value: Any, expected: type) -> str | None:
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return None
    if isinstance(value, expected) and not (expected is int and isinstance(value, bool)):
        return None
    return f"must be {_TYPE_NAMES[expected]}, got {json.dumps(value)[:40]}"


def validate_manifest(manifest: Any, where: Path) -> dict[str, Any]:
    """Check a parsed manifest against the format and the schemas; return it in the current
    layout (a version-1 manifest is converted first).

    Raises:
        IndexLoadError: naming the first field that is missing or of the wrong type.
    """
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise IndexLoadError(f"{where}: not an odqa index manifest; {REBUILD}")
    version = manifest.get("format_version")
    problem = _type_problem(version, int)
    if problem:
        raise IndexLoadError(f"{where}: 'format_version' {problem}; {REBUILD}")
    if version == 1:
        manifest = upgrade_v1(manifest)
    elif version != FORMAT_VERSION:
        raise IndexLoadError(
            f"{where.parent}: index format version {version}, this odqa reads versions 1 and "
            f"{FORMAT_VERSION}; {REBUILD}"
        )
    _check_fields(manifest, "", CORE_SCHEMA[""], where)
    kinds = manifest["kinds"]
    if not kinds or any(k not in FAMILIES for k in kinds):
        raise IndexLoadError(
            f"{where}: 'kinds' must list some of {', '.join(FAMILIES)}, got "
            f"{json.dumps(kinds)}; {REBUILD}"
        )
    for part in ("corpus", "build"):
        _check_fields(manifest[part], part, CORE_SCHEMA[part], where)
    for kind in kinds:
        data = manifest["families"].get(kind)
        if not isinstance(data, dict):
            raise IndexLoadError(f"{where}: section '{kind}' is missing; {REBUILD}")
        _check_fields(data, kind, FAMILIES[kind].schema, where)
    return manifest


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


def index_files(manifest: Manifest) -> list[str]:
    """Paths (relative to the index folder) of every file the manifest says the index has."""
    files = [PASSAGES, OFFSETS]
    for kind in manifest.kinds:
        files += [f"{kind}/{name}" for name in FAMILIES[kind].files(manifest.section(kind))]
    return files


def read_manifest(path: Path) -> Manifest:
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
    typed = Manifest.from_json(manifest, manifest_path)
    for name in index_files(typed):
        if not (path / name).is_file():
            raise IndexLoadError(f"{path}: '{name}' is missing; rebuild the index with --force")
    return typed


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
