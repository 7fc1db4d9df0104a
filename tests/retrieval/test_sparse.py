"""BM25 scores against rank-bm25 (okapi, bm25l, bm25plus) and NumPy (lucene, robertson)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from rank_bm25 import BM25L, BM25Okapi, BM25Plus

from odqa import load_index
from odqa.index.build import BuildOptions, bm25_text, build_index
from odqa.io.corpus import CorpusOptions
from odqa.retrieval.bm25_formulas import BM25Params
from odqa.text import Analyzer

PLAIN = Analyzer(stopwords="none", stemmer="none")


def squad_questions(path: Path, n: int) -> list[str]:
    data = json.loads(path.read_text(encoding="utf-8"))
    questions = [
        qa["question"]
        for article in data["data"]
        for paragraph in article["paragraphs"]
        for qa in paragraph["qas"]
    ]
    return questions[:: len(questions) // n][:n]


def build(tmp: Path, source: Path, params: BM25Params, analyzer: Analyzer = PLAIN, **corpus):
    options = BuildOptions(
        corpus=CorpusOptions(passage_words=0, **corpus), bm25=params, analyzer=analyzer
    )
    out = tmp / f"idx-{params.variant}"
    build_index([source], out, options, force=True)
    return load_index(out)


@pytest.fixture(scope="module")
def squad_corpus(squad_dev: Path, tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("squad")
    index = build(tmp, squad_dev, BM25Params(variant="lucene"))
    passages = list(index.passages)
    tokens = [PLAIN.tokenize(bm25_text(p)) for p in passages]
    return {"tmp": tmp, "passages": passages, "tokens": tokens}


REFERENCES = {
    "okapi": (BM25Okapi, {"k1": 1.2, "b": 0.75, "epsilon": 0.25}),
    "bm25l": (BM25L, {"k1": 1.5, "b": 0.75, "delta": 0.5}),
    "bm25plus": (BM25Plus, {"k1": 1.5, "b": 0.75, "delta": 1.0}),
}


@pytest.mark.slow
@pytest.mark.parametrize("variant", sorted(REFERENCES))
def test_scores_equal_rank_bm25_on_squad_paragraphs(variant, squad_corpus, squad_dev):
    reference_class, settings = REFERENCES[variant]
    reference = reference_class(squad_corpus["tokens"], **settings)
    index = build(squad_corpus["tmp"], squad_dev, BM25Params(variant=variant, **settings))
    retriever = index.retriever("bm25")
    queries = [*squad_questions(squad_dev, 25), "zebra quantum xylophone"]
    ours = retriever.scores(queries)
    for row, query in zip(ours, queries):
        expected = reference.get_scores(PLAIN.tokenize(query))
        np.testing.assert_allclose(row, expected, rtol=1e-6, atol=1e-9)


@pytest.mark.slow
def test_okapi_epsilon_floor_is_applied(squad_corpus, squad_dev):
    """'the' occurs in most paragraphs: its raw idf is negative and must be floored."""
    settings = REFERENCES["okapi"][1]
    reference = BM25Okapi(squad_corpus["tokens"], **settings)
    assert reference.idf["the"] == pytest.approx(settings["epsilon"] * reference.average_idf)
    index = build(squad_corpus["tmp"], squad_dev, BM25Params(variant="okapi", **settings))
    ours = index.retriever("bm25").scores(["the"])[0]
    np.testing.assert_allclose(ours, reference.get_scores(["the"]), rtol=1e-6)
    assert (ours > 0).sum() > len(ours) // 2


def numpy_bm25(tokens: list[list[str]], query: list[str], variant: str, k1: float, b: float):
    vocab = sorted({t for doc in tokens for t in doc})
    col = {t: i for i, t in enumerate(vocab)}
    tf = np.zeros((len(tokens), len(vocab)))
    for d, doc in enumerate(tokens):
        for term, count in Counter(doc).items():
            tf[d, col[term]] = count
    n, df = len(tokens), (tf > 0).sum(0)
    dl = tf.sum(1, keepdims=True)
    norm = 1 - b + b * dl / dl.mean()
    if variant == "lucene":
        idf, w = np.log(1 + (n - df + 0.5) / (df + 0.5)), tf / (tf + k1 * norm)
    else:  # robertson
        idf, w = np.log((n - df + 0.5) / (df + 0.5)), tf * (k1 + 1) / (tf + k1 * norm)
    return sum((idf * w)[:, col[t]] for t in query if t in col)


@pytest.mark.parametrize("variant", ["lucene", "robertson"])
def test_scores_equal_numpy_formula(variant, squad_corpus, squad_dev, tmp_path):
    corpus = tmp_path / "small.jsonl"
    subset = squad_corpus["passages"][:300]
    corpus.write_text("".join(json.dumps({"id": p.id, "text": p.text}) + "\n" for p in subset))
    index = build(tmp_path, corpus, BM25Params(variant=variant, k1=0.9, b=0.4))
    tokens = [PLAIN.tokenize(p.text) for p in subset]
    queries = squad_questions(squad_dev, 10)
    ours = index.retriever("bm25").scores(queries)
    for row, query in zip(ours, queries):
        expected = numpy_bm25(tokens, PLAIN.tokenize(query), variant, 0.9, 0.4)
        # robertson idf can be negative: terms cancel, so compare at the scale of the row
        np.testing.assert_allclose(row, expected, rtol=1e-6, atol=1e-6 * np.abs(expected).max())


@pytest.mark.parametrize("variant", ["lucene", "bm25plus", "robertson"])
def test_search_is_the_top_of_the_full_scores(variant, squad_corpus, squad_dev):
    index = build(squad_corpus["tmp"], squad_dev, BM25Params(variant=variant))
    retriever = index.retriever("bm25")
    queries = squad_questions(squad_dev, 15)
    full = retriever.scores(queries)
    for query, row, (ids, scores) in zip(queries, full, retriever.search_ids(queries, 20)):
        terms, _ = retriever.query_terms(query)
        touched = np.unique(
            np.concatenate(
                [retriever.indices[retriever.indptr[t] : retriever.indptr[t + 1]] for t in terms]
            )
        )
        expected = touched[np.lexsort((touched, -row[touched]))][:20]
        assert ids.tolist() == expected.tolist()
        np.testing.assert_allclose(scores, row[ids], rtol=1e-5)


@pytest.mark.parametrize("variant", ["lucene", "bm25plus"])
def test_passage_scores_equal_the_full_scores(variant, squad_corpus, squad_dev):
    index = build(squad_corpus["tmp"], squad_dev, BM25Params(variant=variant))
    retriever = index.retriever("bm25")
    queries = [*squad_questions(squad_dev, 10), "zzzunknownword"]
    full = retriever.scores(queries)
    chosen = np.random.default_rng(0).permutation(retriever.n_passages)[:50]
    chosen = np.concatenate([chosen, chosen[:3], [0, retriever.n_passages - 1]])
    for query, row in zip(queries, full):
        np.testing.assert_allclose(retriever.passage_scores(query, chosen), row[chosen],
                                   rtol=1e-5, atol=1e-6)


def test_ties_are_broken_by_passage_order(tmp_path):
    corpus = tmp_path / "ties.jsonl"
    rows = [{"id": f"d{i}", "text": "alpha beta"} for i in range(6)]
    rows.insert(3, {"id": "odd", "text": "gamma delta"})
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows))
    index = build(tmp_path, corpus, BM25Params())
    hits = index.search(["alpha"], k=4)[0]
    assert [h.id for h in hits] == ["d0", "d1", "d2", "d3"]
    assert len({h.score for h in hits}) == 1
    assert [h.rank for h in hits] == [1, 2, 3, 4]


def test_unknown_terms_give_no_hits_and_repeated_terms_count_twice(tmp_path):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text(
        json.dumps({"id": "a", "text": "river nile river"})
        + "\n"
        + json.dumps({"id": "b", "text": "mountain everest"})
        + "\n"
    )
    index = build(tmp_path, corpus, BM25Params())
    assert index.search(["xylophone"], k=5) == [[]]
    once = index.search(["nile"], k=1)[0][0].score
    twice = index.search(["nile nile"], k=1)[0][0].score
    assert twice == pytest.approx(2 * once)


def test_stemming_and_stopwords_apply_to_queries_too(tmp_path):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text(
        json.dumps({"id": "a", "text": "The painters were painting"})
        + "\n"
        + json.dumps({"id": "b", "text": "A sculptor carved marble"})
        + "\n"
    )
    index = build(tmp_path, corpus, BM25Params(), analyzer=Analyzer())
    assert [h.id for h in index.search(["paints"], k=5)[0]] == ["a"]
    assert index.search(["the"], k=5) == [[]]


def test_spilled_chunks_give_the_same_arrays_as_one_chunk(tmp_path, monkeypatch, squad_dev):
    import odqa.retrieval.bm25_counts as bm25_counts
    import odqa.retrieval.sparse as sparse

    def arrays(out: Path) -> dict[str, np.ndarray]:
        names = ("data", "indices", "indptr", "term_base", "doc_lengths")
        return {n: np.load(out / "bm25" / f"{n}.npy") for n in names}

    options = BuildOptions(corpus=CorpusOptions(passage_words=40))
    build_index([squad_dev], tmp_path / "one", options)
    monkeypatch.setattr(sparse, "CHUNK_TOKENS", 5_000)
    monkeypatch.setattr(bm25_counts, "SCORE_SLICE", 3_000)
    build_index([squad_dev], tmp_path / "many", options)
    one, many = arrays(tmp_path / "one"), arrays(tmp_path / "many")
    for name, array in one.items():
        assert array.dtype == many[name].dtype and np.array_equal(array, many[name]), name
    assert len(one["data"]) > 100_000
    assert not (tmp_path / "many" / "bm25-chunks").exists()
    assert not list((tmp_path / "many").glob("**/*chunk*"))
