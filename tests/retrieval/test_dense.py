"""Dense indexes end to end with a tiny sentence-transformers encoder: build, resume, manifest
round trip, search through the index API and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from odqa import load_index
from odqa.cli import app
from odqa.encoders import DualEncoder
from odqa.errors import IndexLoadError
from odqa.index.build import BuildOptions, build_index, temporary_path
from odqa.index.passages import PassageStore, PassageWriter
from odqa.retrieval import dense as dense_module
from odqa.retrieval.dense import DenseRetriever, build_dense
from odqa.retrieval.dense_options import DenseOptions
from odqa.types import Passage

from conftest import SAMPLE_CORPUS
from tiny_models import save_sentence_transformers

runner = CliRunner()
WORDS = "paris france river music piano tower bridge king queen water light sun moon".split()


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_sentence_transformers(tmp_path_factory.mktemp("st") / "tiny-st")


@pytest.fixture(scope="module")
def passages(tmp_path_factory: pytest.TempPathFactory) -> PassageStore:
    folder = tmp_path_factory.mktemp("passages")
    rng = np.random.default_rng(0)
    writer = PassageWriter(folder)
    for i in range(23):
        words = " ".join(rng.choice(WORDS, size=int(rng.integers(3, 15))))
        writer.add(Passage(f"p{i}", f"d{i // 2}", f"title {WORDS[i % len(WORDS)]}", words))
    writer.close()
    return PassageStore(folder)


def dense_options(encoder_dir: Path, **changes) -> DenseOptions:
    settings = dict(encoder=str(encoder_dir), device="cpu", batch_size=4, chunk_size=5)
    return DenseOptions(**(settings | changes))


def build(folder: Path, passages: PassageStore, opts: DenseOptions, resume: bool = False) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    return build_dense(folder, passages, opts, resume=resume, progress=None)


def test_flat_dense_search_equals_brute_force(
    encoder_dir: Path, passages: PassageStore, tmp_path: Path
) -> None:
    opts = dense_options(encoder_dir)
    section = build(tmp_path / "dense", passages, opts)
    assert section["count"] == len(passages) and section["dimension"] == 32
    assert not (tmp_path / "dense" / "chunks").exists()
    retriever = DenseRetriever.load(tmp_path / "dense", json.loads(json.dumps(section)))
    encoder = DualEncoder.from_options(opts)
    vectors = encoder.encode_passages(list(passages))
    questions = ["paris tower", "piano music by the king"]
    scores = encoder.encode_queries(questions) @ vectors.T
    for (ids, found), row in zip(retriever.search_ids(questions, 5), scores, strict=True):
        expected = np.lexsort((np.arange(len(row)), -row))[:5]
        np.testing.assert_array_equal(ids, expected)
        np.testing.assert_allclose(found, row[expected], rtol=1e-5)


def test_resume_after_interruption_equals_one_uninterrupted_build(
    encoder_dir: Path, passages: PassageStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opts = dense_options(encoder_dir)
    whole = build(tmp_path / "whole", passages, opts)
    calls: list[int] = []
    original = DualEncoder.encode_passages

    def interrupted(self, batch, on_batch=None):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(len(batch))
        return original(self, batch, on_batch)

    monkeypatch.setattr(DualEncoder, "encode_passages", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build(tmp_path / "resumed", passages, opts)
    assert sorted(p.name for p in (tmp_path / "resumed" / "chunks").iterdir()) == [
        "00000.npy",
        "00000.owners.npy",
        "00001.npy",
        "00001.owners.npy",
    ]
    calls.clear()

    def counting(self, batch, on_batch=None):
        calls.append(len(batch))
        return original(self, batch, on_batch)

    monkeypatch.setattr(DualEncoder, "encode_passages", counting)
    resumed = build(tmp_path / "resumed", passages, opts, resume=True)
    assert calls == [5, 5, 3]
    assert resumed == whole
    resumed_bytes = (tmp_path / "resumed" / "index.faiss").read_bytes()
    assert resumed_bytes == (tmp_path / "whole" / "index.faiss").read_bytes()


def test_resume_with_other_settings_starts_over(
    encoder_dir: Path, passages: PassageStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "dense"
    original = DualEncoder.encode_passages
    state = {"calls": 0}

    def failing(self, batch, on_batch=None):
        state["calls"] += 1
        if state["calls"] == 2:
            raise RuntimeError("power cut")
        return original(self, batch, on_batch)

    monkeypatch.setattr(DualEncoder, "encode_passages", failing)
    with pytest.raises(RuntimeError):
        build(folder, passages, dense_options(encoder_dir))
    encoded: list[int] = []

    def counting(self, batch, on_batch=None):
        encoded.append(len(batch))
        return original(self, batch, on_batch)

    monkeypatch.setattr(DualEncoder, "encode_passages", counting)
    build(folder, passages, dense_options(encoder_dir, passage_prefix="passage: "), resume=True)
    assert sum(encoded) == len(passages)


@pytest.mark.parametrize("kind", ["hnsw", "ivfpq"])
def test_approximate_kinds_record_their_parameters(
    kind: str, encoder_dir: Path, passages: PassageStore, tmp_path: Path
) -> None:
    section = build(tmp_path / kind, passages, dense_options(encoder_dir, faiss=kind, nlist=2))
    assert section["faiss"]["kind"] == kind
    expected_keys = {"hnsw": {"m", "ef_construction"}, "ivfpq": {"nlist", "m", "nbits"}}[kind]
    assert expected_keys <= set(section["faiss"])
    assert (tmp_path / kind / "vectors.npy").exists() == (kind == "ivfpq")
    retriever = DenseRetriever.load(tmp_path / kind, section, ef_search=16, nprobe=2)
    ids, scores = retriever.search_ids(["paris tower"], 5)[0]
    assert len(ids) == 5 and np.all(np.diff(scores) <= 1e-6)


@pytest.fixture(scope="module")
def index_dir(encoder_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "sample"
    result = runner.invoke(
        app,
        [
            *("index", str(SAMPLE_CORPUS), "--out", str(out), "--quiet"),
            *("--encoder", str(encoder_dir), "--query-prefix", "query: "),
            *("--batch-size", "8", "--device", "cpu"),
        ],
    )
    assert result.exit_code == 0, result.output
    return out


def test_manifest_records_how_to_encode_queries(index_dir: Path, encoder_dir: Path) -> None:
    manifest = json.loads((index_dir / "manifest.json").read_text())
    dense = manifest["families"]["dense"]
    assert manifest["kinds"] == ["bm25", "dense"]
    query = dense["encoder"]["query"]
    assert query["model"] == str(encoder_dir) and query["prefix"] == "query: "
    assert (query["pooling"], query["normalize"], query["max_length"]) == ("mean", True, 48)
    assert dense["metric"] == "inner_product" and dense["faiss"]["kind"] == "flat"
    # One record per fact: the flat index records no HNSW/IVF parameters, the query runtime
    # is the encoder's, and build-time settings sit apart from what search reads.
    assert dense["faiss"] == {"kind": "flat", "file": "index.faiss"}
    assert "options" not in dense and "backend" not in dense
    assert dense["encoder"]["backend"] == "torch" and dense["search"]["refine"] == 0
    assert set(dense["build"]) == {"batch_size", "device", "chunk_size", "faiss_requested"}
    assert dense["build"]["faiss_requested"] == {}
    index = load_index(str(index_dir))
    assert index.retrievers() == ["bm25", "dense", "hybrid"]
    hits = index.search(["paris tower"], k=3, retriever="dense")[0]
    assert [h.rank for h in hits] == [1, 2, 3]


def test_cli_search_dense_and_hybrid(index_dir: Path) -> None:
    for args in (
        ["--retriever", "dense"],
        ["--retriever", "hybrid"],
        ["--retriever", "hybrid", "--fusion", "linear", "--alpha", "0.3"],
        ["--retriever", "hybrid", "--rrf-k", "10", "--depth", "8"],
    ):
        result = runner.invoke(
            app,
            [
                "search",
                "telephone patent",
                "-i",
                str(index_dir),
                "--format",
                "jsonl",
                "-k",
                "4",
                *args,
            ],
        )
        assert result.exit_code == 0, result.output
        hits = json.loads(result.output)["hits"]
        assert len(hits) == 4 and [h["rank"] for h in hits] == [1, 2, 3, 4]
    result = runner.invoke(app, ["search", "x", "-i", str(index_dir), "--alpha", "0.5"])
    assert result.exit_code == 2 and "--alpha" in result.output


def test_cli_rrf_constant_reaches_the_fusion(index_dir: Path) -> None:
    def top_score(*args: str) -> float:
        argv = ["search", "telephone patent", "-i", str(index_dir), "--format", "jsonl"]
        result = runner.invoke(app, [*argv, "--retriever", "hybrid", *args])
        assert result.exit_code == 0, result.output
        return json.loads(result.output)["hits"][0]["score"]

    # RRF scores are sums of 1 / (k + rank): at most 2 / 61 with k = 60, at least 1 / 11 with 10
    assert top_score() <= 2 / 61
    assert top_score("--rrf-k", "10") >= 1 / 11


def test_damaged_dense_index_gives_a_clear_error(index_dir: Path, tmp_path: Path) -> None:
    section = json.loads((index_dir / "manifest.json").read_text())["families"]["dense"]
    with pytest.raises(IndexLoadError, match="format"):
        DenseRetriever.load(index_dir / "dense", section | {"format": 99})
    with pytest.raises(IndexLoadError, match="manifest says"):
        DenseRetriever.load(index_dir / "dense", section | {"count": 3})
    with pytest.raises(IndexLoadError, match="missing"):
        DenseRetriever.load(tmp_path, section)


def test_interrupted_cli_build_resumes(
    encoder_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "idx"
    opts = BuildOptions(retrievers=("dense",), dense=dense_options(encoder_dir, chunk_size=16))
    original = dense_module.encode_chunks

    def interrupted(dense_dir, passages, encoder, chunk_size, progress=None):
        original(dense_dir, passages, encoder, chunk_size, progress)
        raise KeyboardInterrupt

    monkeypatch.setattr(dense_module, "encode_chunks", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build_index([SAMPLE_CORPUS], out, opts)
    assert (temporary_path(out) / "dense" / "chunks" / "00000.npy").exists()
    monkeypatch.setattr(dense_module, "encode_chunks", original)
    manifest = build_index([SAMPLE_CORPUS], out, opts, resume=True)
    section = manifest.section("dense")
    owners = np.load(out / "dense" / section["windows"]["owners"])  # the tiny model cuts at 48
    assert manifest.kinds == ("dense",) and manifest.corpus.passages == 67
    assert section["count"] == len(owners) > 67 and set(owners.tolist()) == set(range(67))
    assert load_index(str(out)).retrievers() == ["dense"]


def test_progress_shows_encoding_and_indexing(
    encoder_dir: Path, passages: PassageStore, tmp_path: Path
) -> None:
    from rich.progress import Progress

    (tmp_path / "dense").mkdir()
    with Progress(disable=True) as progress:
        build_dense(tmp_path / "dense", passages, dense_options(encoder_dir), False, progress)
    tasks = {task.description: task for task in progress.tasks}
    assert set(tasks) == {"dense encoding", "faiss flat"}
    assert all(t.total == t.completed == len(passages) for t in tasks.values())
    assert tasks["dense encoding"].fields["unit"] == "passages"


def test_the_dense_family_declares_every_query_option_the_retriever_takes() -> None:
    import inspect

    from odqa.index.families import FAMILIES

    load = inspect.signature(DenseRetriever.load).parameters
    from_index = {"cls", "folder", "section", "passages"}  # given by the index, not the user
    assert set(load) - from_index == set(FAMILIES["dense"].search_options)
