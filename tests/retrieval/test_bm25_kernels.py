"""The compiled BM25 search equals the NumPy path exactly (ids, scores, ties), every variant."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from odqa import load_index
from odqa.errors import IndexLoadError, OdqaError
from odqa.index.build import BuildOptions, build_index
from odqa.io.corpus import CorpusOptions
from odqa.retrieval import bm25_bounds
from odqa.retrieval.bm25_formulas import VARIANTS, BM25Params
from odqa.retrieval.sparse import BM25Retriever
from odqa.text import Analyzer

PLAIN = Analyzer(stopwords="none", stemmer="none")
SETTINGS = [(strategy, threads) for strategy in ("exhaustive", "maxscore") for threads in (1, 3)]


def synthetic_corpus(path: Path, passages: int = 3000, seed: int = 0) -> list[str]:
    """Zipf-distributed words, repeated passages (exact score ties); returns some queries."""
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(400)]
    weights = [1 / (rank + 1) for rank in range(len(words))]
    records = []
    for i in range(passages):
        if i % 7 == 3:
            text = records[rng.randrange(len(records))]["text"]
        else:
            text = " ".join(rng.choices(words, weights, k=rng.randint(3, 80)))
        records.append({"id": f"p{i}", "text": text})
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    queries = [" ".join(rng.choices(words, weights, k=rng.randint(1, 9))) for _ in range(150)]
    return [*queries, "w0", "w399 w398", "w5 w5 w5 w1", "unknown words only", ""]


def build(tmp: Path, corpus: Path, variant: str, analyzer: Analyzer = PLAIN) -> Path:
    out = tmp / f"index-{variant}"
    options = BuildOptions(
        corpus=CorpusOptions(passage_words=0), bm25=BM25Params(variant=variant), analyzer=analyzer
    )
    build_index([corpus], out, options, force=True)
    return out


def reopen(index_path: Path, **options) -> BM25Retriever:
    """The index's BM25 retriever with its compiled kernels loaded (small batches use them)."""
    index = load_index(index_path)
    retriever = BM25Retriever(
        index.path / "bm25", index.manifest.section("bm25"), len(index.passages), **options
    )
    retriever.warm_up()
    return retriever


def assert_same(found, expected) -> None:
    assert len(found) == len(expected)
    for (ids, scores), (ref_ids, ref_scores) in zip(found, expected):
        assert ids.dtype == ref_ids.dtype == np.int64
        assert scores.dtype == ref_scores.dtype == np.float32
        assert np.array_equal(ids, ref_ids)
        assert np.array_equal(scores, ref_scores)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> tuple[Path, list[str]]:
    tmp = tmp_path_factory.mktemp("synthetic")
    corpus = tmp / "corpus.jsonl"
    return corpus, synthetic_corpus(corpus)


@pytest.mark.parametrize("variant", VARIANTS)
def test_kernels_equal_numpy_on_a_synthetic_corpus(variant, synthetic, tmp_path):
    corpus, queries = synthetic
    path = build(tmp_path, corpus, variant)
    reference = reopen(path)
    for k in (1, 10, 100, 5000):
        expected = reference.search_ids_numpy(queries, k)
        for strategy, threads in SETTINGS:
            retriever = reopen(path, strategy=strategy, threads=threads)
            assert_same(retriever.search_ids(queries, k), expected)
    ties = [len(scores) - len(np.unique(scores)) for _, scores in expected]
    assert sum(ties) > 100, "the corpus must exercise ties"


@pytest.mark.parametrize("block_size", [1, 3])
def test_maxscore_skips_with_small_blocks_and_stays_exact(block_size, synthetic, tmp_path,
                                                          monkeypatch):
    corpus, queries = synthetic
    monkeypatch.setattr(bm25_bounds, "BLOCK_SIZE", block_size)
    path = build(tmp_path, corpus, "lucene")
    assert load_index(path).manifest.section("bm25")["block_size"] == block_size
    retriever = reopen(path, strategy="maxscore", threads=1)
    assert retriever.pruned
    assert_same(retriever.search_ids(queries, 10), retriever.search_ids_numpy(queries, 10))


def test_bm25plus_base_score_is_added_after_ranking(synthetic, tmp_path):
    corpus, queries = synthetic
    path = build(tmp_path, corpus, "bm25plus")
    retriever = reopen(path, strategy="maxscore")
    full = retriever.scores(queries[:20])
    for row, (ids, scores) in zip(full, retriever.search_ids(queries[:20], 30)):
        if len(ids):
            np.testing.assert_allclose(scores, row[ids], rtol=1e-5)
            assert row.min() > 0  # every passage gets delta * idf for the terms it lacks


def test_non_positive_scores_rank_every_touched_passage(tmp_path):
    """robertson's idf is negative for a term in most passages: the pruned strategy must fall
    back to exhaustive scoring, and passages scoring <= 0 are still ranked."""
    corpus = tmp_path / "c.jsonl"
    rows = [{"id": f"d{i}", "text": "common " + ("rare" if i == 0 else f"x{i}")} for i in range(9)]
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows))
    path = build(tmp_path, corpus, "robertson")
    retriever = reopen(path, strategy="maxscore")
    assert not retriever.pruned
    ids, scores = retriever.search_ids(["common"], 5)[0]
    assert ids.tolist() == [0, 1, 2, 3, 4] and (scores < 0).all()
    queries = ["common", "common rare", "rare", "x3 common"]
    assert_same(retriever.search_ids(queries, 4), retriever.search_ids_numpy(queries, 4))


def test_bounds_are_the_row_and_block_maxima(synthetic, tmp_path, monkeypatch):
    corpus, _ = synthetic
    monkeypatch.setattr(bm25_bounds, "READ_POSTINGS", 1000)
    path = build(tmp_path, corpus, "lucene")
    folder = path / "bm25"
    data, indptr = np.load(folder / "data.npy"), np.load(folder / "indptr.npy")
    term_max, block_max = np.load(folder / "term_max.npy"), np.load(folder / "block_max.npy")
    size = load_index(path).manifest.section("bm25")["block_size"]
    expected_blocks = []
    for row in range(len(indptr) - 1):
        values = data[indptr[row] : indptr[row + 1]]
        assert term_max[row] == values.max()
        expected_blocks += [values[b : b + size].max() for b in range(0, len(values), size)]
    assert np.array_equal(block_max, np.asarray(expected_blocks, dtype=np.float32))
    section = load_index(path).manifest.section("bm25")
    assert section["min_score"] == pytest.approx(float(data.min()))


def test_index_without_bounds_loads_and_searches_exhaustively(synthetic, tmp_path):
    corpus, queries = synthetic
    path = build(tmp_path, corpus, "lucene")
    manifest = json.loads((path / "manifest.json").read_text())
    for key in ("block_size", "min_score"):
        del manifest["families"]["bm25"][key]
    (path / "manifest.json").write_text(json.dumps(manifest))
    for name in bm25_bounds.FILES:
        (path / "bm25" / f"{name}.npy").unlink()
    retriever = load_index(path).retriever("bm25", strategy="maxscore")
    retriever.warm_up()
    assert not retriever.pruned
    assert_same(retriever.search_ids(queries, 10), retriever.search_ids_numpy(queries, 10))


def test_damaged_bounds_are_refused(synthetic, tmp_path):
    corpus, _ = synthetic
    path = build(tmp_path, corpus, "lucene")
    np.save(path / "bm25" / "block_max.npy", np.zeros(3, dtype=np.float32))
    with pytest.raises(IndexLoadError, match=r"block_max\.npy"):
        load_index(path).retriever("bm25")


def test_bad_options_are_refused(synthetic, tmp_path):
    corpus, _ = synthetic
    path = build(tmp_path, corpus, "lucene")
    index = load_index(path)
    with pytest.raises(OdqaError, match="strategy"):
        index.retriever("bm25", strategy="wand")
    with pytest.raises(OdqaError, match="threads"):
        index.retriever("bm25", threads=0)
    with pytest.raises(OdqaError, match="bm25 search options"):
        index.retriever("bm25", nprobe=3)


def test_search_ids_with_k_zero_and_no_queries(synthetic, tmp_path):
    corpus, queries = synthetic
    retriever = reopen(build(tmp_path, corpus, "lucene"))
    assert retriever.search_ids([], 10) == []
    assert all(len(ids) == 0 for ids, _ in retriever.search_ids(queries[:3], 0))


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_kernels_equal_numpy_on_squad_paragraphs(variant, squad_dev, tmp_path):
    path = build(tmp_path, squad_dev, variant, analyzer=Analyzer())
    data = json.loads(squad_dev.read_text(encoding="utf-8"))["data"]
    questions = [qa["question"] for a in data for p in a["paragraphs"] for qa in p["qas"]]
    questions = questions[::7]
    reference = reopen(path)
    for k in (10, 100):
        expected = reference.search_ids_numpy(questions, k)
        for strategy, threads in SETTINGS:
            assert_same(reopen(path, strategy=strategy, threads=threads).search_ids(questions, k),
                        expected)


RANK_BM25 = {
    "okapi": ("BM25Okapi", {"k1": 1.2, "b": 0.75, "epsilon": 0.25}),
    "bm25l": ("BM25L", {"k1": 1.5, "b": 0.75, "delta": 0.5}),
    "bm25plus": ("BM25Plus", {"k1": 1.5, "b": 0.75, "delta": 1.0}),
}


@pytest.mark.slow
@pytest.mark.parametrize("variant", sorted(RANK_BM25))
def test_top_100_equals_rank_bm25_on_squad_paragraphs(variant, squad_dev, tmp_path):
    import rank_bm25

    from odqa.index.build import bm25_text

    name, settings = RANK_BM25[variant]
    out = tmp_path / "index"
    options = BuildOptions(
        corpus=CorpusOptions(passage_words=0), bm25=BM25Params(variant=variant, **settings),
        analyzer=PLAIN,
    )
    build_index([squad_dev], out, options)
    index = load_index(out)
    reference = getattr(rank_bm25, name)(
        [PLAIN.tokenize(bm25_text(p)) for p in index.passages], **settings
    )
    data = json.loads(squad_dev.read_text(encoding="utf-8"))["data"]
    questions = [qa["question"] for a in data for p in a["paragraphs"] for qa in p["qas"]][::211]
    retriever = index.retriever("bm25", strategy="maxscore", threads=2)
    retriever.warm_up()
    for question, (ids, scores) in zip(questions, retriever.search_ids(questions, 100)):
        expected = reference.get_scores(PLAIN.tokenize(question))
        rows, _ = retriever.query_terms(question)
        touched = np.unique(np.concatenate(
            [retriever.indices[retriever.indptr[r] : retriever.indptr[r + 1]] for r in rows]
        ))
        best = touched[np.lexsort((touched, -expected[touched]))][:100]
        np.testing.assert_allclose(scores, expected[ids], rtol=1e-5)
        np.testing.assert_allclose(np.sort(expected[ids]), np.sort(expected[best]), rtol=1e-5)
        # the same passages, except where float32 rounding swaps near-equal scores at the cut
        assert len(set(ids.tolist()) & set(best.tolist())) >= len(best) - 2


@pytest.mark.parametrize("n", [1, 127, 128, 129, 5000, 40_000])
@pytest.mark.parametrize("k", [1, 10, 100, 1000])
def test_positive_scan_keeps_the_k_best_touched_passages(n, k):
    """The chunk-maxima scan (bound from the k-th largest chunk maximum) gives the exact top k
    by (-score, passage), with ties across chunks, untouched (zero) passages and tails."""
    from odqa.retrieval import bm25_kernels as kernels

    rng = np.random.default_rng(n * 7 + k)
    acc = rng.choice(np.float32([0.0, 0.5, 1.25, 2.0, 3.0]), size=n).astype(np.float32)
    acc[rng.random(n) < 0.2] = 0.0
    acc[rng.integers(0, n, size=max(1, n // 50))] = rng.random(max(1, n // 50), dtype=np.float32)
    scores, docs = np.zeros(k, np.float32), np.zeros(k, np.int64)
    maxima = np.zeros(n, np.int32)
    size = kernels._scan_top_positive(acc, maxima, k, scores, docs)
    kernels._sort_heap(scores, docs, size)
    touched = np.flatnonzero(acc > 0)
    order = touched[np.lexsort((touched, -acc[touched]))][:k]
    assert size == len(order)
    assert np.array_equal(docs[:size], order)
    assert np.array_equal(scores[:size], acc[order])
