"""Open-book answering over a real index of the sample corpus: reader, fallback, batch mode."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from odqa import load_index
from odqa.answering import open_book
from odqa.answering.open_book import answer_open_book, read_hits, sentence_scorer
from odqa.errors import ModelNotAvailableError, OdqaError
from odqa.index.build import BuildOptions, build_index
from odqa.readers.sentence import (
    bm25_scorer,
    rank_sentences,
    sentence_around,
    split_sentences,
)
from odqa.text import Analyzer
from odqa.types import Hit, Passage, Query

from conftest import SAMPLE_CORPUS
from tiny_models import save_tiny_bert

QUESTIONS = [
    Query("q1", "Who received a patent for the telephone?"),
    Query("q2", "Which planet is the largest in the Solar System?"),
    Query("q3", "When did Cassini reach Saturn?"),
]


@pytest.fixture(autouse=True)
def fresh_fallback_notice(monkeypatch):
    """The fallback notice is printed once per process: give every test a fresh process state."""
    monkeypatch.setattr(open_book, "_NOTICES_GIVEN", set())


UNAVAILABLE_READER = "distilbert/distilbert-base-cased-distilled-squad"


@pytest.fixture
def unavailable_default_reader(monkeypatch):
    """A default reader that cannot be loaded offline (a hub id absent from the cache)."""
    monkeypatch.setattr(open_book, "DEFAULT_READER", UNAVAILABLE_READER)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def index(sample_index_dir):
    return load_index(str(sample_index_dir))


@pytest.fixture(scope="module")
def reader(tiny_qa_model) -> str:
    return str(tiny_qa_model)


def small(**overrides):
    settings = dict(max_seq_length=64, doc_stride=24, batch_size=8, device="cpu")
    settings.update(overrides)
    return settings


def check_answers(result, top: int):
    assert 0 < len(result.answers) <= top
    assert [a.rank for a in result.answers] == list(range(1, len(result.answers) + 1))
    for a in result.answers:
        assert a.context[a.start : a.end] == a.text
        assert 0.0 <= a.confidence <= 1.0
    scores = [a.score for a in result.answers]
    assert scores == sorted(scores, reverse=True)


def test_extractive_answers_come_from_retrieved_passages(index, reader):
    results = answer_open_book(index, QUESTIONS, passages=5, top=3, reader=reader, **small())
    hits = index.search([q.text for q in QUESTIONS], 5)
    assert [r.question_id for r in results] == ["q1", "q2", "q3"]
    for result, found in zip(results, hits):
        assert result.mode == "extractive"
        check_answers(result, 3)
        by_id = {h.id: h for h in found}
        for a in result.answers:
            assert a.passage_id in by_id
            assert a.context == by_id[a.passage_id].text
            assert a.title == by_id[a.passage_id].title


def test_batch_mode_equals_one_by_one(index, reader):
    together = answer_open_book(index, QUESTIONS, passages=4, top=3, reader=reader, **small())
    for question, batched in zip(QUESTIONS, together):
        (alone,) = answer_open_book(index, [question], passages=4, top=3, reader=reader, **small())
        assert [a.text for a in alone.answers] == [a.text for a in batched.answers]
        assert [a.passage_id for a in alone.answers] == [a.passage_id for a in batched.answers]
        np.testing.assert_allclose(
            [a.score for a in alone.answers], [a.score for a in batched.answers], atol=1e-4
        )


def test_combined_score_changes_only_scores_by_the_retriever_bonus(index, reader):
    (plain,) = answer_open_book(
        index, QUESTIONS[:1], passages=5, top=50, reader=reader, score="reader", **small()
    )
    (default,) = answer_open_book(
        index, QUESTIONS[:1], passages=5, top=50, reader=reader, retriever_weight=3.0, **small()
    )
    (mixed,) = answer_open_book(
        index,
        QUESTIONS[:1],
        passages=5,
        top=50,
        reader=reader,
        score="combined",
        retriever_weight=3.0,
        **small(),
    )
    hits = index.search([QUESTIONS[0].text], 5)[0]
    scores = np.array([h.score for h in hits])
    bonus = {h.id: 3.0 * (h.score - scores.min()) / np.ptp(scores) for h in hits}
    plain_by = {(a.passage_id, a.start, a.end): a.score for a in plain.answers}
    shared = [a for a in mixed.answers if (a.passage_id, a.start, a.end) in plain_by]
    assert shared
    for a in shared:
        expected = plain_by[(a.passage_id, a.start, a.end)] + bonus[a.passage_id]
        assert a.score == pytest.approx(expected, abs=1e-4)
    assert [a.score for a in default.answers] == [a.score for a in mixed.answers]  # the default


@pytest.mark.usefixtures("unavailable_default_reader")
def test_default_reader_missing_falls_back_to_sentences_with_one_notice(index, capsys):
    results = answer_open_book(index, QUESTIONS, passages=5, top=2)
    err = capsys.readouterr().err
    assert err.count("notice:") == 1
    again = answer_open_book(index, QUESTIONS[:1], passages=5, top=2)
    assert again[0].mode == "sentence"
    assert "notice:" not in capsys.readouterr().err
    assert "distilbert/distilbert-base-cased-distilled-squad" in err and "--reader PATH" in err
    for result in results:
        assert result.mode == "sentence"
        check_answers(result, 2)
        for a in result.answers:
            assert (a.start, a.end) in split_sentences(a.context)
    assert "telephone" in results[0].answers[0].text


def test_explicit_reader_that_cannot_load_is_an_error(index, tmp_path, capsys):
    with pytest.raises(ModelNotAvailableError, match="does not exist"):
        answer_open_book(index, QUESTIONS[:1], reader=str(tmp_path / "missing"))
    plain = save_tiny_bert(tmp_path / "plain", "BertModel")
    with pytest.raises(ModelNotAvailableError, match="not an extractive"):
        answer_open_book(index, QUESTIONS[:1], reader=str(plain))
    assert "notice:" not in capsys.readouterr().err


def test_bad_options_are_reported(index, reader):
    with pytest.raises(OdqaError, match="unknown reader option"):
        answer_open_book(index, QUESTIONS[:1], reader=reader, max_seq_len=64)
    with pytest.raises(OdqaError, match="reader, combined"):
        answer_open_book(index, QUESTIONS[:1], reader=reader, score="best")
    with pytest.raises(OdqaError, match="not available"):
        answer_open_book(index, QUESTIONS[:1], reader=reader, retriever="dense")
    with pytest.raises(OdqaError, match="at least 1"):
        answer_open_book(index, QUESTIONS[:1], reader=reader, passages=0)


def test_read_hits_without_answers_gives_empty_lists(index, reader):
    empty_hits = [[Hit("x", "x", 1.0, 1, "", "")]]
    (result,) = read_hits(index, QUESTIONS[:1], empty_hits, reader=reader, **small())
    assert result.mode == "extractive" and result.answers == []


# --- sentence selection -----------------------------------------------------------------------


def test_split_sentences():
    text = ' Paris is big.  It has the "Eiffel Tower." Built in 1889! Dr. smith\nNext line?  '
    pieces = [text[s:e] for s, e in split_sentences(text)]
    assert pieces == [
        "Paris is big.",
        'It has the "Eiffel Tower."',
        "Built in 1889!",
        "Dr. smith",
        "Next line?",
    ]
    start = text.index("Eiffel")
    assert text[slice(*sentence_around(text, start, start + 6))] == pieces[1]
    assert split_sentences("   ") == []


def hits_of(texts: list[str]) -> list[Hit]:
    return [Hit(f"p{i}", f"d{i}", 1.0, i + 1, "", t) for i, t in enumerate(texts)]


def test_bm25_sentence_ranking_merges_equal_sentences():
    texts = [
        "The violin has four strings. It is played with a bow.",
        "A piano has keys. The violin has four strings.",
    ]
    answers = rank_sentences(
        "How many strings does a violin have?", hits_of(texts), bm25_scorer(Analyzer()), top=5
    )
    assert answers[0].text == "The violin has four strings."
    assert answers[0].passage_id == "p0"
    assert len(answers) == 3  # the repeated sentence is one answer
    assert sum(a.confidence for a in answers) == pytest.approx(1.0)


class BagOfWords:
    """A stand-in dense encoder: word-count vectors over a fixed vocabulary."""

    vocab = "violin strings piano keys bow river".split()

    def _vectors(self, texts):
        return np.array([[t.lower().count(w) for w in self.vocab] for t in texts], dtype=np.float32)

    def encode_queries(self, queries):
        return self._vectors(queries)

    def encode_passages(self, passages):
        return self._vectors([p.text for p in passages])


class FakeDenseIndex:
    analyzer = None

    def retrievers(self):
        return ["bm25", "dense", "hybrid"]

    def retriever(self, name):
        assert name == "dense"
        return type("Dense", (), {"encoder": BagOfWords()})()


def test_dense_encoder_is_used_for_sentences_when_the_index_has_one():
    scorer = sentence_scorer(FakeDenseIndex())
    texts = ["The piano has keys. A violin has strings and a bow."]
    answers = rank_sentences("violin bow", hits_of(texts), scorer, top=2)
    assert answers[0].text == "A violin has strings and a bow."
    assert answers[0].score == pytest.approx((2 / np.sqrt(2) / np.sqrt(3)) / 0.05)


@pytest.mark.usefixtures("unavailable_default_reader")
def test_sentence_fallback_uses_the_index_dense_encoder(tmp_path, capsys):
    from odqa.retrieval.dense_options import DenseOptions

    encoder = save_tiny_bert(tmp_path / "encoder", "BertModel")
    options = BuildOptions(
        retrievers=("bm25", "dense"), dense=DenseOptions(encoder=str(encoder), device="cpu")
    )
    build_index([SAMPLE_CORPUS], tmp_path / "dense-index", options)
    dense_index = load_index(str(tmp_path / "dense-index"))
    (result,) = answer_open_book(dense_index, QUESTIONS[:1], passages=3, top=3)
    assert result.mode == "sentence" and "notice:" in capsys.readouterr().err
    check_answers(result, 3)
    encode = dense_index.retriever("dense").encoder
    query = encode.encode_queries([QUESTIONS[0].text])[0]
    for a in result.answers:
        (vector,) = encode.encode_passages([Passage("", "", "", a.text)])
        cosine = float(query @ vector / np.linalg.norm(query) / np.linalg.norm(vector))
        assert a.score == pytest.approx(cosine / 0.05, rel=1e-3, abs=1e-3)


def test_bm25_is_used_without_a_dense_encoder(index):
    scorer = sentence_scorer(index)
    scores = scorer("telephone patent", ["a patent for the telephone", "the moon"])
    assert scores[0] > 0 == scores[1]


@pytest.mark.usefixtures("unavailable_default_reader")
def test_sentence_fallback_on_empty_hits(index):
    assert rank_sentences("anything", [], sentence_scorer(index)) == []


def test_sample_corpus_is_present():
    assert Path(SAMPLE_CORPUS).is_file()


def test_sentence_bm25_is_the_index_lucene_formula_over_the_pool() -> None:
    from odqa.retrieval.bm25_formulas import BM25Params, idf, length_norm, weight

    analyzer = Analyzer(stopwords="none", stemmer="none")
    pool = ["the violin has four strings", "a cello has strings", "the piano has keys and keys"]
    got = bm25_scorer(analyzer, k1=1.2, b=0.75)("violin strings strings", pool)
    params = BM25Params(variant="lucene", k1=1.2, b=0.75)
    docs = [s.split() for s in pool]
    lengths = np.array([len(d) for d in docs], dtype=np.float64)
    norm = length_norm(params, lengths, lengths.mean())
    expected = np.zeros(len(pool))
    for term in ("violin", "strings"):  # each question term once
        tf = np.array([d.count(term) for d in docs], dtype=np.float64)
        expected += idf(params, np.array([np.count_nonzero(tf)]), len(pool))[0] * weight(
            params, tf, norm
        )
    assert np.allclose(got, expected) and got[2] == 0 and got[0] > got[1] > 0
