"""Index directory: round trip, memory mapping, validation on load, atomic replacement."""

from __future__ import annotations

import json
import mmap
import shutil
from pathlib import Path

import numpy as np
import pytest

from odqa import load_index
from odqa.errors import IndexLoadError, OdqaError
from odqa.index.build import BuildOptions, build_index, temporary_path
from odqa.index.manifest import MANIFEST
from odqa.index.passages import PassageStore

from conftest import SAMPLE_CORPUS

QUERIES = ["Who received a patent for the telephone?", "highest mountain in Africa", "piano"]


def is_memory_mapped(array: np.ndarray) -> bool:
    """True when ``array`` (or an array it views) is backed by a file mapping."""
    while array is not None:
        if isinstance(array, (np.memmap, mmap.mmap)):
            return True
        array = getattr(array, "base", None)
    return False


@pytest.fixture()
def index_dir(tmp_path: Path) -> Path:
    out = tmp_path / "sample"
    build_index([SAMPLE_CORPUS], out, BuildOptions())
    return out


def test_round_trip_memory_mapped_and_same_results(index_dir: Path, tmp_path: Path):
    first = load_index(index_dir)
    before = first.search(QUERIES, k=5)
    moved = tmp_path / "moved"
    shutil.copytree(index_dir, moved)
    second = load_index(moved)
    assert second.search(QUERIES, k=5) == before
    retriever = second.retriever("bm25")
    assert is_memory_mapped(retriever.data) and is_memory_mapped(retriever.indices)
    assert is_memory_mapped(second.passages.offsets)
    assert len(before[0]) == 5 and all(before)


def test_passages_read_one_at_a_time_match_the_corpus(index_dir: Path):
    store = PassageStore(index_dir)
    records = [json.loads(line) for line in SAMPLE_CORPUS.read_text().splitlines()]
    assert len(store) == len(records)
    for i in (0, len(records) // 2, len(records) - 1):
        assert store[i].id == records[i]["id"]
        assert store[i].text == records[i]["text"]
    assert [p.id for p in store.get_many([3, 1])] == [records[3]["id"], records[1]["id"]]
    assert [p.id for p in store] == [r["id"] for r in records]


def test_manifest_records_how_the_index_was_built(index_dir: Path):
    manifest = json.loads((index_dir / MANIFEST).read_text())
    assert manifest["format_version"] == 2
    assert manifest["kinds"] == ["bm25"]
    assert manifest["corpus"]["passages"] == manifest["corpus"]["documents"] == 67
    bm25 = manifest["families"]["bm25"]
    assert bm25["params"]["variant"] == "lucene"
    assert bm25["analyzer"]["stemmer"] == "english"
    assert bm25["vocabulary_size"] > 500
    assert bm25["nonzeros"] > bm25["vocabulary_size"]
    assert "numpy" in manifest["build"]["libraries"]
    assert manifest["build"]["seconds"] >= 0


def test_hits_carry_every_field(index_dir: Path):
    hit = load_index(index_dir).search(["telephone patent"], k=1)[0][0]
    assert hit.rank == 1 and hit.score > 0
    assert hit.id == hit.doc_id
    assert "telephone" in hit.text.lower() and hit.title



def _as_version_1(manifest: dict) -> dict:
    """The same manifest in the flat version-1 layout older odqa wrote."""
    corpus = manifest["corpus"]
    build = manifest["build"]
    flat = {
        "format": manifest["format"], "format_version": 1,
        "odqa_version": build["odqa_version"], "kinds": manifest["kinds"],
        "created": build["created"],
        "corpus": {"inputs": corpus["inputs"], **corpus["options"],
                   **{k: v for k, v in corpus.items() if k not in ("inputs", "options")}},
        "libraries": build["libraries"], **manifest["families"],
        "build_seconds": build["seconds"],
    }
    return flat


def test_a_version_1_index_loads_through_the_converter(index_dir: Path):
    current = json.loads((index_dir / MANIFEST).read_text())
    before = load_index(index_dir).search(QUERIES, k=5)
    (index_dir / MANIFEST).write_text(json.dumps(_as_version_1(current)))
    old = load_index(index_dir)
    assert old.manifest.to_json() == current
    assert old.search(QUERIES, k=5) == before


def test_the_manifest_is_typed_and_frozen(index_dir: Path):
    import dataclasses

    manifest = load_index(index_dir).manifest
    assert manifest.kinds == ("bm25",) and manifest.corpus.passages == 67
    assert manifest.corpus.options.passage_words == 100 and manifest.build.seconds >= 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        manifest.kinds = ("dense",)  # type: ignore[misc]
    with pytest.raises(TypeError):
        manifest.families["bm25"] = {}  # type: ignore[index]
    section = manifest.section("bm25")
    section["k1"] = 0.0
    assert "k1" not in manifest.section("bm25")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / MANIFEST).unlink(), "not an odqa index"),
        (lambda d: (d / "passages.offsets.npy").unlink(), "missing"),
        (lambda d: shutil.rmtree(d / "bm25"), "missing"),
        (lambda d: _edit_manifest(d, format_version=99), "format version 99"),
        (lambda d: _edit_manifest(d, corpus={"passages": 5}), "manifest says 5"),
        (lambda d: _edit_manifest(d, build={"seconds": "long"}), "'build.seconds' must be a num"),
        (lambda d: _edit_manifest(d, families={"bm25": None}), "section 'bm25' is missing"),
        (lambda d: (d / "passages.jsonl").write_text("{}\n"), "damaged"),
        (lambda d: (d / MANIFEST).write_text("{not json"), "unreadable manifest"),
    ],
)
def test_damaged_index_gives_a_clear_error(index_dir: Path, damage, message: str):
    damage(index_dir)
    with pytest.raises(IndexLoadError, match=message):
        load_index(index_dir).search(["x"], k=1)


def _edit_manifest(folder: Path, **changes) -> None:
    manifest = json.loads((folder / MANIFEST).read_text())
    for key, value in changes.items():
        if isinstance(value, dict):
            manifest[key].update(value)
        else:
            manifest[key] = value
    (folder / MANIFEST).write_text(json.dumps(manifest))


def test_missing_index_names_the_fix(tmp_path: Path):
    with pytest.raises(IndexLoadError, match="odqa index"):
        load_index(tmp_path / "nowhere")


def test_existing_index_needs_force_and_failed_rebuild_keeps_it(index_dir: Path, tmp_path: Path):
    with pytest.raises(OdqaError, match="--force"):
        build_index([SAMPLE_CORPUS], index_dir, BuildOptions())
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "text": "fine"}\n{"id": "b", "text": \n')
    before = (index_dir / "passages.jsonl").read_bytes()
    with pytest.raises(OdqaError, match=r"bad.jsonl:2"):
        build_index([bad], index_dir, BuildOptions(), force=True)
    assert (index_dir / "passages.jsonl").read_bytes() == before
    assert not temporary_path(index_dir).exists()
    assert len(load_index(index_dir).passages) == 67


def test_unknown_retriever_names_the_available_ones(index_dir: Path):
    with pytest.raises(OdqaError, match="built with: bm25"):
        load_index(index_dir).search(["x"], k=1, retriever="dense")


def test_reading_progress_measures_input_bytes_and_counts_passages(tmp_path: Path):
    from rich.progress import Progress

    with Progress(disable=True) as progress:
        build_index([SAMPLE_CORPUS], tmp_path / "idx", BuildOptions(), progress=progress)
    (task,) = [t for t in progress.tasks if t.description == "reading corpus"]
    assert task.total == task.completed == SAMPLE_CORPUS.stat().st_size
    assert task.fields["count"] == 67 and task.fields["unit"] == "passages"
