"""Damaged indexes give one-line errors on `search`, `ask` and `info`; `odqa info --check`
verifies every file against the manifest."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner, Result

from odqa.cli import app
from odqa.index.build import BuildOptions, build_index
from odqa.retrieval import sparse
from odqa.retrieval.dense_options import DenseOptions
from odqa.retrieval.sparse import BM25_FILES

from conftest import SAMPLE_CORPUS
from tiny_models import save_sentence_transformers

runner = CliRunner()


def invoke(*args: object) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def one_line_error(result: Result, *fragments: str) -> str:
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    message = result.stderr.strip()
    assert "\n" not in message and message.startswith("error: "), message
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in message, message
    return message


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pristine") / "idx"
    build_index([SAMPLE_CORPUS], out, BuildOptions())
    return out


@pytest.fixture
def index_dir(pristine: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "idx"
    shutil.copytree(pristine, copy)
    return copy


@pytest.fixture(scope="module")
def dense_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dense")
    encoder = save_sentence_transformers(root / "tiny-st")
    dense = DenseOptions(encoder=str(encoder), device="cpu", batch_size=16)
    out = root / "idx"
    build_index([SAMPLE_CORPUS], out, BuildOptions(retrievers=("bm25", "dense"), dense=dense))
    return out


def edit_manifest(folder: Path, change: Callable[[dict], object]) -> None:
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def truncate(path: Path, size: int) -> None:
    path.write_bytes(path.read_bytes()[:size])


DAMAGES: dict[str, tuple[Callable[[Path], object], str]] = {
    "offsets-truncated": (lambda d: truncate(d / "passages.offsets.npy", 200), "offsets.npy"),
    "vocab-missing": (lambda d: (d / "bm25" / "vocab.json").unlink(), "'bm25/vocab.json' is"),
    "vocab-invalid": (lambda d: (d / "bm25" / "vocab.json").write_text("[\"a\", "), "vocab"),
    "vocab-short": (lambda d: (d / "bm25" / "vocab.json").write_text("[\"a\"]"), "vocab.json"),
    "manifest-list": (lambda d: (d / "manifest.json").write_text("[]"), "not an odqa index"),
    "no-corpus": (lambda d: edit_manifest(d, lambda m: m.pop("corpus")), "'corpus' is missing"),
    "no-bm25": (lambda d: edit_manifest(d, lambda m: m["families"].pop("bm25")),
                "section 'bm25' is missing"),
    "no-kinds": (lambda d: edit_manifest(d, lambda m: m.pop("kinds")), "'kinds' is missing"),
    "version-string": (lambda d: edit_manifest(d, lambda m: m.update(format_version="1")),
                       "'format_version' must be an integer, got \"1\""),
    "passages-int": (lambda d: edit_manifest(d, lambda m: m["corpus"].update(passages="67")),
                     "'corpus.passages' must be an integer"),
    "bm25-params": (lambda d: edit_manifest(
                        d, lambda m: m["families"]["bm25"]["params"].update(zeta=1)),
                    "unreadable BM25 files"),
}  # fmt: skip
MANIFEST_DAMAGES = [name for name in DAMAGES if "vocab" not in name and "offsets" not in name
                    and name != "bm25-params"]  # fmt: skip


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_search_on_a_damaged_index_is_one_line(index_dir: Path, damage: str) -> None:
    apply, fragment = DAMAGES[damage]
    apply(index_dir)
    one_line_error(invoke("search", "telephone patent", "-i", index_dir), fragment)


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_ask_on_a_damaged_index_is_one_line(index_dir: Path, damage: str) -> None:
    apply, fragment = DAMAGES[damage]
    apply(index_dir)
    result = invoke("ask", "Who patented the telephone?", "-i", index_dir, "--reader", "absent/x")
    one_line_error(result, fragment)


@pytest.mark.parametrize("damage", MANIFEST_DAMAGES)
def test_info_on_a_damaged_manifest_is_one_line(index_dir: Path, damage: str) -> None:
    apply, fragment = DAMAGES[damage]
    apply(index_dir)
    one_line_error(invoke("info", index_dir), fragment)
    one_line_error(invoke("info", index_dir, "--json"), fragment)


# --- odqa info --check ---------------------------------------------------------------------------


def test_check_passes_on_a_sound_index(index_dir: Path, dense_index: Path) -> None:
    result = invoke("info", index_dir, "--check")
    assert result.exit_code == 0, result.output
    assert "67 passages" in result.stdout
    assert f"index {index_dir} matches its manifest" in result.stdout
    dense = invoke("info", dense_index, "--check")
    assert dense.exit_code == 0, dense.output
    count = json.loads((dense_index / "manifest.json").read_text())["families"]["dense"]["count"]
    assert f"{count:,} vectors of dimension" in dense.stdout
    assert f"dense/owners.npy: 67 passages in {count:,} windows" in dense.stdout


def test_the_bm25_file_list_is_the_retrievers(index_dir: Path) -> None:
    assert sorted(BM25_FILES) == sorted(f"{name}.npy" for name in sparse.ARRAYS)
    assert {*BM25_FILES, "vocab.json"} <= {p.name for p in (index_dir / "bm25").iterdir()}


def shift_a_line_break(folder: Path) -> None:
    data = bytearray((folder / "passages.jsonl").read_bytes())
    first = data.index(b"\n")
    data[first], data[first + 5] = ord(" "), ord("\n")
    (folder / "passages.jsonl").write_bytes(bytes(data))


def save(path: Path, array: np.ndarray) -> None:
    np.save(path, array, allow_pickle=False)


CHECK_DAMAGES: dict[str, tuple[Callable[[Path], object], str]] = {
    "line-moved": (shift_a_line_break, "does not start a line"),
    "passages-cut": (lambda d: truncate(d / "passages.jsonl", 100), "bytes, the offsets say"),
    "indices-out-of-range": (
        lambda d: save(d / "bm25" / "indices.npy",
                       np.load(d / "bm25" / "indices.npy") + np.int32(1000)),
        "passage index outside 0..66"),
    "indptr-shape": (lambda d: save(d / "bm25" / "indptr.npy", np.zeros(3, np.int64)), "indptr"),
    "doc-lengths-type": (
        lambda d: save(d / "bm25" / "doc_lengths.npy", np.zeros(67, np.float32)),
        "doc_lengths.npy: shape (67,) of float32"),
    "vocab-repeated": (
        lambda d: (d / "bm25" / "vocab.json").write_text(json.dumps(
            ["same"] * len(json.loads((d / "bm25" / "vocab.json").read_text())))),
        "distinct"),
}  # fmt: skip


@pytest.mark.parametrize("damage", list(CHECK_DAMAGES))
def test_check_names_the_first_problem(index_dir: Path, damage: str) -> None:
    apply, fragment = CHECK_DAMAGES[damage]
    apply(index_dir)
    one_line_error(invoke("info", index_dir, "--check"), fragment, "rebuild the index")


def test_check_compares_the_faiss_count(dense_index: Path, tmp_path: Path) -> None:
    copy = tmp_path / "idx"
    shutil.copytree(dense_index, copy)
    count = json.loads((copy / "manifest.json").read_text())["families"]["dense"]["count"]
    edit_manifest(copy, lambda m: m["families"]["dense"].update(count=count - 1))
    one_line_error(invoke("info", copy, "--check"), "index.faiss", f"{count} vectors",
                   str(count - 1))


def test_info_without_check_reads_only_the_manifest(index_dir: Path) -> None:
    (index_dir / "bm25" / "vocab.json").write_text("not json at all")
    assert invoke("info", index_dir).exit_code == 0
    one_line_error(invoke("info", index_dir, "--check"), "vocab.json")
