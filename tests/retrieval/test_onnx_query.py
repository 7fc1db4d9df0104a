"""Dense indexes carry their query encoder as ONNX + tokenizer.json: queries are encoded without
torch or transformers, to the torch encoder's vectors; indexes without the export use torch."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from odqa import load_index
from odqa.encoders import DualEncoder, TextEncoder, inspect_encoder
from odqa.encoders.query_export import EXPORT_DIR, MIN_COSINE, PROBES, export_query_encoder
from odqa.index.build import BuildOptions, build_index
from odqa.retrieval.dense import DenseRetriever, build_dense
from odqa.retrieval.dense_options import DenseOptions
from odqa.runtime.fast_tokenizer import FastTokenizer

from conftest import SAMPLE_CORPUS, run_odqa
from tiny_models import save_dpr_pair, save_sentence_transformers

QUERIES = ["who patented the telephone?", "highest mountain in Africa", "when did Cassini launch"]
def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_sentence_transformers(tmp_path_factory.mktemp("st") / "tiny-st")


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory, encoder_dir: Path) -> Path:
    out = tmp_path_factory.mktemp("onnx-query") / "sample"
    dense = DenseOptions(encoder=str(encoder_dir), device="cpu", batch_size=8)
    build_index([SAMPLE_CORPUS], out, BuildOptions(retrievers=("bm25", "dense"), dense=dense))
    return out


@pytest.fixture(scope="module")
def old_index_dir(tmp_path_factory: pytest.TempPathFactory, index_dir: Path) -> Path:
    """The same index as an older odqa wrote it: no query export."""
    old = tmp_path_factory.mktemp("old") / "sample"
    shutil.copytree(index_dir, old)
    shutil.rmtree(old / "dense" / EXPORT_DIR)
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["families"]["dense"]["query_onnx"]
    (old / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return old


def torch_queries(section: dict, queries: list[str]) -> np.ndarray:
    return DualEncoder.from_manifest(section["encoder"], device="cpu").encode_queries(queries)


def test_index_records_a_checked_query_export(index_dir: Path) -> None:
    record = load_index(index_dir).manifest.section("dense")["query_onnx"]
    assert record["backend"] == "onnx" and record["model"] == "model.onnx"
    assert record["probe_min_cosine"] >= MIN_COSINE
    folder = index_dir / "dense" / record["folder"]
    assert {"model.onnx", "tokenizer.json"} <= {p.name for p in folder.iterdir()}
    assert record["optimized"] == "model.opt.onnx" and (folder / "model.opt.onnx").is_file()


def _batch(rows: int = 3, width: int = 11) -> dict[str, np.ndarray]:
    ids = np.random.default_rng(0).integers(5, 90, size=(rows, width))
    mask = np.ones((rows, width), dtype=np.int64)
    mask[1, 7:] = 0
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}


def test_optimised_graph_opens_with_the_same_outputs_and_a_bad_one_is_passed_over(
    index_dir: Path, tmp_path: Path
) -> None:
    """The pre-optimised graph gives exactly the outputs of optimising the model at load time;
    a damaged one is ignored (the model is optimised as before), never an error."""
    import onnxruntime

    from odqa.runtime import onnx

    source = index_dir / "dense" / EXPORT_DIR
    folder = tmp_path / "export"
    shutil.copytree(source, folder)
    model = folder / "model.onnx"
    level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    plain = onnx._session(onnxruntime, model, level, 1)  # what sessions did before
    feed = {i.name: _batch()[i.name] for i in plain.get_inputs()}
    expected = plain.run(None, feed)[0]
    optimized = folder / "model.opt.onnx"
    off = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    np.testing.assert_array_equal(onnx._session(onnxruntime, optimized, off, 1).run(None, feed)[0],
                                  expected)  # the file itself opens, unoptimised, same outputs
    np.testing.assert_array_equal(onnx.OnnxModel(model, 1)(feed)[0], expected)
    optimized.write_bytes(b"not a model")
    np.testing.assert_array_equal(onnx.OnnxModel(model, 1)(feed)[0], expected)
    optimized.unlink()
    assert onnx.write_optimized(model) == optimized
    assert not (folder / "model.opt.lock").exists()
    np.testing.assert_array_equal(onnx._session(onnxruntime, optimized, off, 1).run(None, feed)[0],
                                  expected)
    # int8: the optimised graph equals optimising the quantised model at load time
    int8 = onnx.quantize_int8(model, folder / "model.int8.onnx")
    assert onnx.write_optimized(int8) == folder / "model.int8.opt.onnx"
    np.testing.assert_array_equal(
        onnx._session(onnxruntime, folder / "model.int8.opt.onnx", off, 1).run(None, feed)[0],
        onnx._session(onnxruntime, int8, level, 1).run(None, feed)[0])


def test_optimising_is_skipped_while_locked_and_not_retried_after_a_failure(
    index_dir: Path, tmp_path: Path
) -> None:
    from odqa.runtime import onnx

    folder = tmp_path / "export"
    shutil.copytree(index_dir / "dense" / EXPORT_DIR, folder)
    (folder / "model.opt.onnx").unlink()
    model = folder / "model.onnx"
    (folder / "model.opt.lock").touch()  # another process is writing it
    assert onnx.write_optimized(model) is None and not (folder / "model.opt.onnx").exists()
    (folder / "model.opt.lock").unlink()
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    assert onnx.write_optimized(broken) is None
    assert (tmp_path / "broken.opt.failed").is_file()
    assert not (tmp_path / "broken.opt.lock").exists()
    assert onnx.write_optimized(model) == folder / "model.opt.onnx"


def test_cached_exports_are_optimised_once_on_first_use(
    encoder_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exports in the cache (the reader's, passage encoders') gain an optimised graph, also
    when an older odqa left the cache without one; fp32 and int8."""
    monkeypatch.setenv("ODQA_CACHE", str(tmp_path / "cache"))
    for backend in ("onnx", "int8"):
        encoder = TextEncoder(inspect_encoder(str(encoder_dir)), backend=backend, device="cpu")
        first = encoder.encode(QUERIES)
        [optimised] = (tmp_path / "cache").rglob("model.int8.opt.onnx" if backend == "int8"
                                                  else "model.opt.onnx")
        optimised.unlink()  # a cache written before optimised graphs existed
        again = TextEncoder(inspect_encoder(str(encoder_dir)), backend=backend, device="cpu")
        np.testing.assert_array_equal(again.encode(QUERIES), first)
        assert optimised.is_file()


def test_dense_queries_run_on_the_export_with_the_torch_vectors(index_dir: Path) -> None:
    index = load_index(index_dir)
    retriever = index.retriever("dense")
    query = retriever.encoder.query
    got = retriever.encode(QUERIES + list(PROBES))
    assert query.torch_free and query.backend == "onnx"
    assert isinstance(query._runtime.tokenizer, FastTokenizer)
    expected = torch_queries(index.manifest.section("dense"), QUERIES + list(PROBES))
    assert cosine(got, expected).min() >= MIN_COSINE
    by_torch = index.retriever("dense", backend="torch")
    assert not by_torch.encoder.query.torch_free
    for (ids, scores), (torch_ids, torch_scores) in zip(
        retriever.search_ids(QUERIES, 10), by_torch.search_ids(QUERIES, 10), strict=True
    ):
        np.testing.assert_array_equal(ids, torch_ids)
        np.testing.assert_allclose(scores, torch_scores, atol=1e-4)


def test_older_index_without_export_searches_through_torch(
    index_dir: Path, old_index_dir: Path
) -> None:
    new, old = load_index(index_dir), load_index(old_index_dir)
    assert not old.retriever("dense").encoder.query.torch_free
    for kind in ("dense", "hybrid"):
        expected = [[h.id for h in hits] for hits in new.search(QUERIES, 5, kind)]
        assert [[h.id for h in hits] for hits in old.search(QUERIES, 5, kind)] == expected


def test_cli_dense_and_hybrid_search_import_neither_torch_nor_transformers(
    index_dir: Path, old_index_dir: Path
) -> None:
    for kind in ("dense", "hybrid"):
        done, heavy = run_odqa(
            "search", QUERIES[0], "-i", index_dir, "--retriever", kind, "--format", "jsonl"
        )
        assert done.returncode == 0, done.stderr
        assert len(json.loads(done.stdout)["hits"]) == 10
        assert heavy == [], f"--retriever {kind} imported {heavy}"
    done, heavy = run_odqa("search", QUERIES[0], "-i", old_index_dir, "--retriever", "dense")
    assert done.returncode == 0, done.stderr
    assert "torch" in heavy  # an index without the export still works, through torch


def test_dpr_pair_and_int8_indexes_export_their_query_encoder(
    tmp_path: Path, index_dir: Path, encoder_dir: Path
) -> None:
    question, context = save_dpr_pair(tmp_path)
    passages = load_index(index_dir).passages
    settings = dict(device="cpu", batch_size=8)
    cases = [
        ("dpr", DenseOptions(encoder=str(context), query_encoder=str(question), **settings)),
        ("int8", DenseOptions(encoder=str(encoder_dir), backend="int8", **settings)),
    ]
    for name, options in cases:
        folder = tmp_path / name
        folder.mkdir()
        section = json.loads(json.dumps(build_dense(folder, passages, options)))
        record = section["query_onnx"]
        retriever = DenseRetriever.load(folder, section)
        got, expected = retriever.encode(QUERIES), torch_queries(section, QUERIES)
        assert isinstance(retriever.encoder.query._runtime.tokenizer, FastTokenizer)
        if name == "int8":
            assert record["model"] == "model.int8.onnx" and record["backend"] == "int8"
            assert not (folder / EXPORT_DIR / "model.onnx").exists()
            assert cosine(got, expected).min() > 0.95
        else:
            assert record["backend"] == "onnx"
            assert cosine(got, expected).min() >= MIN_COSINE


def test_export_is_skipped_cleanly_without_onnx(
    tmp_path: Path, index_dir: Path, encoder_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from odqa.runtime import onnx

    monkeypatch.setattr(onnx, "export_available", lambda: False)
    options = DenseOptions(encoder=str(encoder_dir), device="cpu")
    section = build_dense(tmp_path, load_index(index_dir).passages, options)
    assert "onnx" in section["query_onnx"]["skipped"]
    assert not (tmp_path / EXPORT_DIR).exists()
    retriever = DenseRetriever.load(tmp_path, section)
    assert not retriever.encoder.query.torch_free
    assert len(retriever.search_ids(QUERIES, 3)) == 3


def test_cli_index_precision_is_recorded_and_checked(tmp_path: Path, encoder_dir: Path) -> None:
    from typer.testing import CliRunner

    from odqa.cli import app

    base = ["index", str(SAMPLE_CORPUS), "--encoder", str(encoder_dir), "-q", "--device", "cpu"]
    done = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "bf16"), "--precision", "bf16"])
    assert done.exit_code == 0, done.output
    section = load_index(tmp_path / "bf16").manifest.section("dense")
    assert section["precision"] == "bf16"
    assert section["query_onnx"]["probe_min_cosine"] >= MIN_COSINE  # queries stay fp32
    bad = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "fp16"), "--precision", "fp16"])
    assert bad.exit_code == 1 and "fp16 needs CUDA" in bad.output
    assert "Traceback" not in bad.output


def test_cli_index_with_the_openvino_backend(tmp_path: Path, encoder_dir: Path) -> None:
    from typer.testing import CliRunner

    from odqa.cli import app

    base = ["index", str(SAMPLE_CORPUS), "--encoder", str(encoder_dir), "-q", "--device", "cpu"]
    done = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "ov"), "--backend",
                                    "openvino", "--precision", "bf16"])
    assert done.exit_code == 0, done.output
    index = load_index(tmp_path / "ov")
    section = index.manifest.section("dense")
    # What OpenVINO runs: bf16 on CPUs with it (the plugin drops the request elsewhere).
    assert section["precision"] in ("bf16", "fp32") and section["encoder"]["backend"] == "openvino"
    assert section["query_onnx"]["backend"] == "onnx"  # queries run on ONNX Runtime, fp32
    reference = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "fp32"),
                                         "--precision", "fp32"])
    assert reference.exit_code == 0, reference.output
    got = index.search(QUERIES, k=3, retriever="dense")
    expected = load_index(tmp_path / "fp32").search(QUERIES, k=3, retriever="dense")
    assert [h.id for h in got[0]][:1] == [h.id for h in expected[0]][:1]
    bad = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "bad"), "--backend",
                                   "openvino", "--precision", "fp16"])
    assert bad.exit_code == 1 and "fp32 or bf16" in bad.output
    assert not (tmp_path / "bad" / "manifest.json").exists()


def test_openvino_index_without_its_query_export_searches_without_openvino(
    tmp_path: Path, index_dir: Path, encoder_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from odqa.runtime import openvino

    options = DenseOptions(encoder=str(encoder_dir), device="cpu", backend="openvino")
    section = json.loads(json.dumps(build_dense(tmp_path, load_index(index_dir).passages,
                                                options)))
    expected = DenseRetriever.load(tmp_path, section).search_ids(QUERIES, 3)
    shutil.rmtree(tmp_path / EXPORT_DIR)
    monkeypatch.setattr(openvino, "available", lambda: False)
    retriever = DenseRetriever.load(tmp_path, section)
    assert retriever.encoder.query.backend == "torch"
    got = retriever.search_ids(QUERIES, 3)
    assert [ids.tolist() for ids, _ in got] == [ids.tolist() for ids, _ in expected]


@pytest.mark.slow
def test_packaged_minilm_export_reproduces_torch_vectors(tmp_path: Path) -> None:
    from odqa.runtime.hub import DEFAULT_DENSE_ENCODER

    encoder = TextEncoder(inspect_encoder(DEFAULT_DENSE_ENCODER), device="cpu")
    record = export_query_encoder(encoder, tmp_path / EXPORT_DIR, quantize=False)
    assert record["probe_min_cosine"] >= MIN_COSINE
    exported = TextEncoder.from_export(encoder.spec, tmp_path / EXPORT_DIR, "model.onnx", "onnx")
    texts = QUERIES + [f"{q} {q.upper()} in 1889?" for q in QUERIES]
    reference = TextEncoder(encoder.spec, device="cpu", precision="fp32").encode(texts)
    assert cosine(exported.encode(texts), reference).min() >= MIN_COSINE
