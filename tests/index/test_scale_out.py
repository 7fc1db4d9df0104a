"""Scale-out builds: Dask work units and shard + merge give the one-process index exactly."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from odqa import load_index
from odqa.cli import app
from odqa.errors import OdqaError
from odqa.index import families as families_module
from odqa.index.build import BuildOptions, ShardSpec, build_index, temporary_path
from odqa.index.executors import DaskExecutor, InProcess, make_executor
from odqa.index.merge import merge_shards
from odqa.io.corpus import CorpusOptions
from odqa.retrieval import dense as dense_module
from odqa.retrieval.dense_options import DenseOptions

from conftest import SAMPLE_CORPUS
from tiny_models import save_sentence_transformers

BM25_ARRAYS = ("data", "indices", "indptr", "term_base", "doc_lengths", "term_max", "block_max")
QUERIES = ["Which NFL team represented the AFC at Super Bowl 50?",
           "What is the name of the Mongol dynasty founded by Kublai Khan?",
           "Where did the Normans settle?", "who invented the steam engine"]
CHUNK = 64
"""Passages per dense chunk (work unit): the 2,067 SQuAD dev paragraphs make 33."""
TRUNCATE = "truncate"
"""The tiny encoder reads 48 tokens: every paragraph is cut to exactly that many, so batches
pad alike whatever their make-up and vectors match bit for bit (windows of varied lengths
would differ in float rounding between batchings; their merge is tested in
tests/retrieval/test_dense_windows.py)."""


@pytest.fixture(scope="module")
def encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_sentence_transformers(tmp_path_factory.mktemp("encoder") / "st")


def options(encoder: Path) -> BuildOptions:
    return BuildOptions(
        retrievers=("bm25", "dense"), corpus=CorpusOptions(passage_words=0),
        dense=DenseOptions(encoder=str(encoder), device="cpu", batch_size=16, chunk_size=CHUNK,
                           long_passages=TRUNCATE),
    )


@pytest.fixture(scope="module")
def one_process(tmp_path_factory: pytest.TempPathFactory, squad_dev: Path, encoder: Path) -> Path:
    out = tmp_path_factory.mktemp("one") / "index"
    build_index([squad_dev], out, options(encoder))
    return out


@pytest.fixture(scope="module")
def cluster():
    executor = DaskExecutor("local:2")
    executor.client()
    yield executor
    executor.close()


@pytest.fixture
def small_bm25_units(monkeypatch: pytest.MonkeyPatch) -> None:
    """BM25 counting units of 300 passages, so the dev paragraphs make 7 parts to merge."""
    monkeypatch.setattr(families_module, "BM25_UNIT", 300)


def assert_same_index(expected: Path, got: Path) -> None:
    """Identical BM25 arrays and passage store, dense vectors to 1e-6, same search results."""
    import faiss

    for name in BM25_ARRAYS:
        a, b = np.load(expected / "bm25" / f"{name}.npy"), np.load(got / "bm25" / f"{name}.npy")
        assert a.dtype == b.dtype and np.array_equal(a, b), name
    for name in ("bm25/vocab.json", "passages.jsonl", "passages.offsets.npy"):
        assert (expected / name).read_bytes() == (got / name).read_bytes(), name
    a, b = (faiss.read_index(str(p / "dense" / "index.faiss")) for p in (expected, got))
    assert a.ntotal == b.ntotal == 2067
    assert np.abs(a.reconstruct_n(0, a.ntotal) - b.reconstruct_n(0, b.ntotal)).max() <= 1e-6
    manifests = [json.loads((p / "manifest.json").read_text()) for p in (expected, got)]
    assert manifests[0]["corpus"] == manifests[1]["corpus"]
    assert manifests[0]["families"] == manifests[1]["families"]
    assert "shard" not in manifests[1]
    for retriever in ("bm25", "dense", "hybrid"):
        hits = [load_index(p).search(QUERIES, k=10, retriever=retriever) for p in (expected, got)]
        assert [[(h.id, h.score) for h in q] for q in hits[0]] == [
            [(h.id, h.score) for h in q] for q in hits[1]], retriever


def test_local_cluster_build_equals_one_process(
    one_process: Path, squad_dev: Path, encoder: Path, cluster: DaskExecutor, tmp_path: Path,
    small_bm25_units: None,
) -> None:
    manifest = build_index([squad_dev], tmp_path / "dask", options(encoder), executor=cluster)
    assert manifest.corpus.passages == 2067 and manifest.shard is None
    assert_same_index(one_process, tmp_path / "dask")
    assert not temporary_path(tmp_path / "dask").exists()


def test_process_pool_build_equals_one_process(
    one_process: Path, squad_dev: Path, encoder: Path, tmp_path: Path, small_bm25_units: None,
) -> None:
    """Worker processes on this machine (no Dask) build the identical index; the pool serves
    BM25 counting and dense encoding, and records each unit."""
    pool = make_executor("pool", "local:2")
    try:
        build_index([squad_dev], tmp_path / "pool", options(encoder), executor=pool)
    finally:
        pool.close()
    assert_same_index(one_process, tmp_path / "pool")
    ran = {r.label: (r.ran, len(r.unit_seconds)) for r in pool.history}
    assert ran["bm25 counting"] == (7, 7) and ran["dense encoding"] == (33, 33)


def test_process_pool_failure_is_one_line_and_keeps_finished_units(tmp_path: Path) -> None:
    import os

    from odqa.index.executors import WorkUnit

    done = tmp_path / "done"
    units = [WorkUnit(os.mkdir, (str(done),), done, 1),
             WorkUnit(os.remove, (str(tmp_path / "missing"),), tmp_path / "never", 1)]
    pool = make_executor("pool", "local:2")
    with pytest.raises(OdqaError, match="work unit for never failed in a worker process: "
                                         "FileNotFoundError"):
        pool.run(units)
    pool.close()
    assert done.is_dir()  # the unit that finished stays finished
    with pytest.raises(OdqaError, match="must be local:N"):
        make_executor("pool", "local:00")


def test_pool_workers_run_every_runtime_on_one_thread(
    monkeypatch: pytest.MonkeyPatch, one_process: Path
) -> None:
    import onnxruntime

    from odqa.index import executors
    from odqa.runtime import onnx

    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                 "RAYON_NUM_THREADS"):
        monkeypatch.setenv(name, "4")
    monkeypatch.setattr(onnx, "DEFAULT_THREADS", None)
    executors.single_threaded()
    assert os.environ["OMP_NUM_THREADS"] == os.environ["RAYON_NUM_THREADS"] == "1"
    model = next((one_process / "dense").rglob("model.onnx"))
    session = onnx.OnnxModel(model).session  # no thread count given, as workers open them
    assert session.get_session_options().intra_op_num_threads == 1
    assert isinstance(session, onnxruntime.InferenceSession)


def test_shards_merged_equal_one_process(
    one_process: Path, squad_dev: Path, encoder: Path, tmp_path: Path
) -> None:
    shards = []
    for number in range(3):
        shard = tmp_path / f"shard{number}"
        manifest = build_index([squad_dev], shard, options(encoder), shard=ShardSpec(number, 3))
        assert manifest.shard is not None and manifest.shard.total == 2067
        assert manifest.corpus.passages == manifest.shard.stop - manifest.shard.start
        shards.append(shard)
    assert [load_index(s).manifest.shard.start for s in shards] == [0, 689, 1378]
    # a shard is an index in its own right
    assert load_index(shards[1]).search(["Normans"], k=1)[0]
    merged = merge_shards(list(reversed(shards)), tmp_path / "merged")
    assert merged.corpus.passages == 2067 and merged.shard is None
    assert_same_index(one_process, tmp_path / "merged")


def test_killed_worker_still_yields_the_identical_index(
    one_process: Path, squad_dev: Path, encoder: Path, tmp_path: Path
) -> None:
    executor = DaskExecutor("local:2")
    try:
        pids = list(executor.client().run(os.getpid).values())
        out = tmp_path / "killed"
        chunks = temporary_path(out) / "dense" / "chunks"
        errors: list[BaseException] = []

        def build() -> None:
            try:
                build_index([squad_dev], out, options(encoder), executor=executor)
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=build)
        thread.start()
        deadline = time.monotonic() + 120
        while not list(chunks.glob("0*[0-9].npy")) and time.monotonic() < deadline:
            time.sleep(0.005)
        done_when_killed = len(list(chunks.glob("0*[0-9].npy")))
        os.kill(pids[0], signal.SIGKILL)
        thread.join(300)
        assert not errors, errors
        assert 0 < done_when_killed < 33, "the worker was not killed mid-build"
        assert_same_index(one_process, out)
    finally:
        executor.close()


def test_resume_continues_across_executors(
    one_process: Path, squad_dev: Path, encoder: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, cluster: DaskExecutor,
) -> None:
    out = tmp_path / "resumed"
    original = dense_module.encode_range
    done: list[int] = []

    def interrupted(*args, **kwargs):
        if len(done) == 10:
            raise KeyboardInterrupt
        done.append(original(*args, **kwargs))
        return done[-1]

    monkeypatch.setattr(dense_module, "encode_range", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build_index([squad_dev], out, options(encoder), executor=InProcess())
    monkeypatch.setattr(dense_module, "encode_range", original)
    kept = sorted(p.name for p in (temporary_path(out) / "dense" / "chunks").iterdir())
    assert kept == sorted([f"{n:05d}.npy" for n in range(10)]
                          + [f"{n:05d}.owners.npy" for n in range(10)])
    notices: list[str] = []
    runs = len(cluster.history)
    build_index([squad_dev], out, options(encoder), resume=True, executor=cluster,
                notify=notices.append)
    assert any("resuming" in notice for notice in notices)
    # the ten chunks of the first run were reused; the cluster encoded the other 23
    [record] = [r for r in cluster.history[runs:] if r.label == "dense encoding"]
    assert (record.reused, record.ran) == (10, 23)
    # each unit's seconds as measured on the worker that ran it
    assert len(record.unit_seconds) == 23 and all(0 < t < record.seconds
                                                  for t in record.unit_seconds)
    assert_same_index(one_process, out)


def test_cli_shard_and_merge(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    base = ["index", str(SAMPLE_CORPUS), "--retrievers", "bm25", "--passage-words", "30", "-q"]
    assert runner.invoke(app, [*base, "--out", "whole"]).exit_code == 0
    for number in range(2):
        result = runner.invoke(app, [*base, "--out", f"s{number}", "--shard", f"{number}/2"])
        assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["merge", "s0", "s1", "--out", "merged"])
    assert result.exit_code == 0, result.output
    assert "passages" in result.output
    for name in ("bm25/data.npy", "bm25/indices.npy", "bm25/vocab.json", "passages.jsonl"):
        assert (tmp_path / "whole" / name).read_bytes() == (tmp_path / "merged" / name).read_bytes()
    search = ["search", "Who received a patent for the telephone?", "-k", "3", "--format", "jsonl"]
    a = runner.invoke(app, [*search, "--index", "whole"])
    b = runner.invoke(app, [*search, "--index", "merged"])
    assert a.exit_code == b.exit_code == 0 and a.output == b.output and a.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--shard", "2/2"], "must be 0 to 1"),
        (["--shard", "one/2"], "is not I/N"),
        (["--shard", "0/0"], "is not I/N"),
        (["--scheduler", "local:2"], "--scheduler needs --executor pool or dask"),
        (["--executor", "pool", "--scheduler", "tcp://h:1"], "must be local:N"),
        (["--executor", "dask", "--scheduler", "local:x"], "neither local:N"),
    ],
)
def test_cli_scale_out_options_fail_in_one_line(
    tmp_path: Path, args: list[str], message: str
) -> None:
    result = CliRunner().invoke(app, ["index", str(SAMPLE_CORPUS), "--retrievers", "bm25",
                                      "--out", str(tmp_path / "x"), *args])
    assert result.exit_code == 1 and message in result.output, result.output
    assert "Traceback" not in result.output and not (tmp_path / "x").exists()


def test_merge_refuses_incomplete_or_mixed_shards(tmp_path: Path) -> None:
    bm25 = BuildOptions(corpus=CorpusOptions(passage_words=30))
    other = BuildOptions(corpus=CorpusOptions(passage_words=20))
    for number in range(3):
        build_index([SAMPLE_CORPUS], tmp_path / f"s{number}", bm25, shard=ShardSpec(number, 3))
    build_index([SAMPLE_CORPUS], tmp_path / "odd", other, shard=ShardSpec(2, 3))
    build_index([SAMPLE_CORPUS], tmp_path / "whole", bm25)
    cases = [
        (["s0", "s1"], "shard 2 missing"),
        (["s0", "s1", "s1"], "shard 1 given twice"),
        (["s0", "s1", "odd"], "differ in corpus options"),
        (["s0", "s1", "whole"], "is a whole index, not a shard"),
    ]
    for names, message in cases:
        with pytest.raises(OdqaError, match=message):
            merge_shards([tmp_path / n for n in names], tmp_path / "merged")
        assert not (tmp_path / "merged").exists()
    result = CliRunner().invoke(app, ["merge", str(tmp_path / "s0"), "--out",
                                      str(tmp_path / "merged")])
    assert result.exit_code == 1 and "missing" in result.output


def test_executor_registry() -> None:
    assert make_executor("process").name == "process" and make_executor("process").streams
    pool = make_executor("pool", "local:3")
    assert pool.name == "pool" and not pool.streams and pool.workers == 3  # type: ignore[attr-defined]
    assert make_executor("pool").workers >= 1  # type: ignore[attr-defined]
    dask = make_executor("dask", "tcp://127.0.0.1:1")
    assert dask.name == "dask" and not dask.streams
    with pytest.raises(OdqaError, match="unknown --executor 'ray'"):
        make_executor("ray")


def test_search_over_unmerged_shards_equals_the_merged_index(
    one_process: Path, squad_dev: Path, encoder: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "shards"
    for number in range(3):
        build_index([squad_dev], folder / f"shard-{number}", options(encoder),
                    shard=ShardSpec(number, 3))
    sharded, whole = load_index(folder), load_index(one_process)
    assert len(sharded.passages) == 2067 and sharded.retrievers() == ["bm25", "dense", "hybrid"]
    questions = [*QUERIES, "the the", "Super Bowl Super Bowl champions Denver"]
    for retriever in ("bm25", "dense", "hybrid"):
        got = sharded.search(questions, k=20, retriever=retriever)
        expected = whole.search(questions, k=20, retriever=retriever)
        assert [[h.id for h in q] for q in got] == [[h.id for h in q] for q in expected]
        for a, b in zip(got, expected, strict=True):
            assert np.allclose([h.score for h in a], [h.score for h in b], rtol=1e-6, atol=1e-6)
    assert sharded.search(["Normans"], k=1)[0][0].text == whole.search(["Normans"], k=1)[0][0].text
    result = CliRunner().invoke(app, ["search", "Where did the Normans settle?", "--index",
                                      str(folder), "-k", "5", "--format", "trec"])
    expected_run = CliRunner().invoke(app, ["search", "Where did the Normans settle?", "--index",
                                            str(one_process), "-k", "5", "--format", "trec"])
    assert result.exit_code == 0, result.output
    assert [line.split()[2] for line in result.output.splitlines()] == [
        line.split()[2] for line in expected_run.output.splitlines()]
    (folder / "shard-2" / "manifest.json").rename(folder / "shard-2" / "manifest.moved")
    with pytest.raises(OdqaError, match="shard 2 missing"):
        load_index(folder)


def test_bm25_work_units_in_this_process_equal_the_streaming_build(
    tmp_path: Path, small_bm25_units: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(families_module, "BM25_UNIT", 7)
    bm25 = BuildOptions(corpus=CorpusOptions(passage_words=20))
    build_index([SAMPLE_CORPUS], tmp_path / "stream", bm25)
    units = InProcess(streams=False)
    build_index([SAMPLE_CORPUS], tmp_path / "units", bm25, executor=units)
    [record] = [r for r in units.history if r.label == "bm25 counting"]
    assert record.ran > 10 and len(record.unit_seconds) == record.ran and record.reused == 0
    for name in (*(f"bm25/{a}.npy" for a in BM25_ARRAYS), "bm25/vocab.json"):
        assert (tmp_path / "stream" / name).read_bytes() == (tmp_path / "units" / name).read_bytes()


def test_ivfpq_shards_merge_into_the_one_process_index(
    squad_dev: Path, encoder: Path, tmp_path: Path
) -> None:
    ivf = BuildOptions(
        retrievers=("dense",), corpus=CorpusOptions(passage_words=0),
        dense=DenseOptions(encoder=str(encoder), device="cpu", batch_size=16, chunk_size=256,
                           faiss="ivfpq", nprobe=8, long_passages=TRUNCATE),
    )
    whole = build_index([squad_dev], tmp_path / "whole", ivf)
    shards = [tmp_path / f"s{n}" for n in range(2)]
    for number, shard in enumerate(shards):
        section = build_index([squad_dev], shard, ivf, shard=ShardSpec(number, 2)).section("dense")
        assert section["exact_vectors"] and (shard / "dense" / "vectors.npy").is_file()
    merged = merge_shards(shards, tmp_path / "merged")
    # nlist is resolved for the whole corpus, not copied from a shard
    assert merged.section("dense")["faiss"] == whole.section("dense")["faiss"]
    assert merged.section("dense")["faiss"]["nlist"] == 53
    # the exact vectors stay for IVF-PQ re-ranking (refine 4), as in a one-process build
    assert (tmp_path / "merged" / "dense" / "vectors.npy").read_bytes() == (
        tmp_path / "whole" / "dense" / "vectors.npy").read_bytes()
    hits = [load_index(p).search(QUERIES, k=10, retriever="dense")
            for p in (tmp_path / "whole", tmp_path / "merged")]
    assert [[(h.id, h.score) for h in q] for q in hits[0]] == [
        [(h.id, h.score) for h in q] for q in hits[1]]
