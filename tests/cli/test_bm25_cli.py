"""`odqa search` with the compiled BM25 search: --threads, TREC runs that never parse passage
text, lazy hits, cached kernels and lazy imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from odqa import load_index
from odqa.cli import app
from odqa.index.build import BuildOptions, build_index
from odqa.index.passages import PassageStore
from odqa.io.corpus import CorpusOptions
from odqa.lazy_hits import StoredHit, parse_head
from odqa.types import Hit

from conftest import REPO

SAMPLE = REPO / "data" / "sample_corpus.jsonl"
runner = CliRunner()


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "sample"
    options = BuildOptions(corpus=CorpusOptions(passage_words=0), retrievers=("bm25",))
    build_index([SAMPLE], out, options)
    return out


@pytest.fixture(scope="module")
def queries_file(tmp_path_factory) -> Path:
    words = ["piano keys", "telephone patent", "mountain africa", "river", "music", "zzz"]
    path = tmp_path_factory.mktemp("queries") / "q.jsonl"
    lines = [
        json.dumps({"id": f"q{i}", "text": f"{w} {'highest' if i % 2 else ''}"})
        for i, w in enumerate(words * 40)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_threads_give_the_same_run(index_dir, queries_file):
    runs = []
    for threads in ("1", "3"):
        result = runner.invoke(
            app,
            ["search", "--queries", str(queries_file), "-i", str(index_dir), "--format", "trec",
             "-k", "5", "--threads", threads],
        )
        assert result.exit_code == 0, result.output
        runs.append(result.stdout)
    assert runs[0] == runs[1] and runs[0].count("\n") > 100


def test_threads_with_another_retriever_is_a_usage_error(index_dir):
    result = runner.invoke(
        app, ["search", "x", "-i", str(index_dir), "--retriever", "dense", "--threads", "2"]
    )
    assert result.exit_code == 2
    assert "only --retriever bm25 uses it" in result.output


def test_trec_run_never_parses_passage_text(index_dir, queries_file, monkeypatch):
    def refuse(self, i):
        raise AssertionError("passage text was read")

    monkeypatch.setattr(PassageStore, "__getitem__", refuse)
    result = runner.invoke(
        app, ["search", "--queries", str(queries_file), "-i", str(index_dir), "--format", "trec"]
    )
    assert result.exit_code == 0, result.output
    assert " Q0 " in result.stdout


def test_lazy_hits_equal_eager_hits(index_dir):
    index = load_index(index_dir)
    ranked = index.retriever("bm25").search_ids(["piano keys", "telephone"], 5)
    lazy = index.search(["piano keys", "telephone"], k=5)
    for hits, (ids, scores) in zip(lazy, ranked):
        assert hits and all(isinstance(h, StoredHit) for h in hits)
        eager = [
            Hit(p.id, p.doc_id, float(s), rank, p.title, p.text)
            for rank, (p, s) in enumerate(zip(index.passages.get_many(ids), scores), 1)
        ]
        assert hits == eager
        assert [h.to_dict() for h in hits] == [h.to_dict() for h in eager]


def test_stored_hits_are_frozen_and_read_their_passage_once(index_dir):
    import dataclasses

    index = load_index(index_dir)
    [hits] = index.search(["piano keys"], k=3)
    direct = StoredHit(index.passages, hits[0]._index, hits[0].score, 1)
    assert direct == hits[0] and direct.text == index.passages[hits[0]._index].text
    assert hits[0].text is hits[0].text  # parsed once, then kept
    with pytest.raises(dataclasses.FrozenInstanceError):
        hits[0].score = 0.0  # type: ignore[misc]


def test_record_head_gives_ids_or_none():
    assert parse_head(b'{"id": "a \\"b\\"", "doc_id": "d\xc3\xa9", "title": "t') == ('a "b"', "dé")
    assert parse_head(b'{"id": "abc", "doc') is None
    assert parse_head(b'{"text": "x", "id": "a"}') is None


def test_long_ids_fall_back_to_the_whole_record(tmp_path):
    corpus = tmp_path / "c.jsonl"
    long_id = "x" * 900
    corpus.write_text(json.dumps({"id": long_id, "text": "alpha beta"}) + "\n")
    build_index([corpus], tmp_path / "i", BuildOptions(retrievers=("bm25",)))
    hit = load_index(tmp_path / "i").search(["alpha"], k=1)[0][0]
    assert hit.id == long_id and hit.text == "alpha beta"


def test_cli_and_a_one_query_search_import_neither_numba_nor_scipy(index_dir):
    code = (
        "import sys, odqa.cli\n"
        "from typer.testing import CliRunner\n"
        "print('numba' in sys.modules, 'torch' in sys.modules)\n"
        f"r = CliRunner().invoke(odqa.cli.app, ['search', 'piano', '-i', {str(index_dir)!r}])\n"
        "assert r.exit_code == 0, r.output\n"
        "print('numba' in sys.modules, 'scipy' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False", "False", "False"]


def test_small_batches_equal_compiled_batches(index_dir):
    queries = ["piano keys", "telephone", "zzz", "music highest"]
    small = load_index(index_dir).retriever("bm25").search_ids(queries, 7)
    compiled = load_index(index_dir).retriever("bm25")
    compiled.warm_up()
    for (ids, scores), (ref_ids, ref_scores) in zip(compiled.search_ids(queries, 7), small):
        assert ids.tolist() == ref_ids.tolist() and scores.tolist() == ref_scores.tolist()


@pytest.mark.slow
def test_a_second_process_loads_the_compiled_kernels_from_the_cache(index_dir):
    code = (
        "from odqa import load_index\n"
        "from odqa.retrieval import bm25_kernels as kernels\n"
        f"load_index({str(index_dir)!r}).search(['piano', 'music'] * 10, k=3)\n"
        "stats = kernels.exhaustive_batch.stats\n"
        "print(sum(stats.cache_hits.values()), sum(stats.cache_misses.values()))\n"
    )
    for _ in range(2):
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
    hits, misses = map(int, result.stdout.split())
    assert hits >= 1 and misses == 0
