"""Metric functions against hand-computed cases and brute-force reference implementations."""

from __future__ import annotations

import itertools
import json
import math
import unicodedata

import numpy as np
import pytest
import regex

from odqa.evaluate import (
    AnswerMatcher,
    beir_scores,
    best_over_golds,
    documents_in_rank_order,
    dpr_tokenize,
    exact_match,
    f1,
    first_hit_rank,
    has_answer,
    latency_summary,
    mean_reciprocal_rank,
    ndcg_at_k,
    qa_scores,
    recall_at_k,
    reciprocal_rank_at_k,
    regex_match,
    top_k_accuracy,
    top_k_curve,
)

# --- DPR has_answer -------------------------------------------------------------------------


def reference_has_answer(answers: list[str], text: str) -> bool:
    """DPR's qa_validation.has_answer (string match) written out literally."""
    pattern = regex.compile(r"([\p{L}\p{N}\p{M}]+)|([^\p{Z}\p{C}])", regex.I | regex.U | regex.M)

    def words(s: str) -> list[str]:
        return [m.group().lower() for m in pattern.finditer(unicodedata.normalize("NFD", s))]

    tokens = words(text)
    for answer in answers:
        ans = words(answer)
        if not ans:
            continue
        for i in range(len(tokens) - len(ans) + 1):
            if ans == tokens[i : i + len(ans)]:
                return True
    return False


@pytest.mark.parametrize(
    ("answers", "text", "expected"),
    [
        (["Denver Broncos"], "The Denver Broncos won.", True),
        (["denver BRONCOS"], "the DENVER broncos won", True),  # uncased
        (["Bronco"], "The Denver Broncos won.", False),  # token, not substring
        (["1990"], "in the 1990s", False),
        (["May 18, 2018"], "released on May 18 , 2018 in", True),  # punctuation is a token
        (["May 18, 2018"], "released on May 18 2018 in", False),
        (["U.S."], "the U.S. army", True),
        (["U.S."], "the US army", False),
        (["Röntgen"], "Wilhelm Conrad Ro\u0308ntgen", True),  # NFD on both sides
        (["Rontgen"], "Wilhelm Conrad Röntgen", False),  # accents are kept, not stripped
        (["$5"], "cost $5 each", True),
        (["5"], "cost $5 each", True),  # '$' and '5' are separate tokens
        (["don't"], "I don't know", True),
        (["New York"], "New\nYork city", True),  # whitespace of any kind separates
        (["", "   "], "anything at all", False),  # empty answers never match
        (["x", "Broncos"], "Denver Broncos", True),  # any of several golds
        (["a b"], "a  b", True),
        (["b a"], "a b", False),  # order matters
    ],
)
def test_has_answer_tokenisation_cases(answers, text, expected):
    assert has_answer(answers, text) is expected
    assert reference_has_answer(answers, text) is expected


def test_dpr_tokenize_splits_punctuation_and_keeps_marks():
    assert dpr_tokenize("U.S.-born, 42!") == ["u", ".", "s", ".", "-", "born", ",", "42", "!"]
    tokens = dpr_tokenize("Café")
    assert tokens == [unicodedata.normalize("NFD", "café")]
    assert len(tokens[0]) == 5  # 'e' + combining acute stay one token


def test_has_answer_agrees_with_reference_on_random_strings():
    rng = np.random.default_rng(0)
    alphabet = [*"ab .,-'", "é", "e\u0301", "1"]
    for _ in range(400):
        text = "".join(rng.choice(alphabet, size=rng.integers(0, 25)))
        answers = ["".join(rng.choice(alphabet, size=rng.integers(0, 5))) for _ in range(2)]
        assert has_answer(answers, text) == reference_has_answer(answers, text), (answers, text)


def test_answer_matcher_matches_has_answer_and_caches():
    texts = ["The Eiffel Tower is in Paris.", "Berlin is in Germany.", "paris, france"]
    calls: list[int] = []

    def text_of(i: int) -> str:
        calls.append(i)
        return texts[i]

    matcher = AnswerMatcher(text_of)
    got = matcher.matches(["Paris"], [1, 0, 2])
    assert got.tolist() == [False, True, True]
    assert got.tolist() == [has_answer(["Paris"], texts[i]) for i in (1, 0, 2)]
    matcher.matches(["Germany"], [0, 1, 2])
    assert sorted(calls) == [0, 1, 2]  # each passage tokenised once


def test_regex_answers():
    assert has_answer(
        [r"20,?320\s*f(ee|oo)t"], "Mount McKinley is 20,320 feet tall", regex_answers=True
    )
    assert has_answer([r"after the fall"], "AFTER THE FALL (1964)", regex_answers=True)
    assert not has_answer([r"^China$"], "Chinatown", regex_answers=True)
    assert has_answer([r"^China$"], "India\nChina\n", regex_answers=True)  # multiline
    assert not has_answer(["(unclosed"], "(unclosed", regex_answers=True)  # invalid -> no match
    matcher = AnswerMatcher(["Liverpool FC", "Everton"].__getitem__, regex_answers=True)
    assert matcher.matches(["liver(pool)?"], [1, 0]).tolist() == [False, True]
    # Regex answers are scored against predictions with DrQA's anchored match.
    assert regex_match("Beijing, China", "beijing") == 1.0
    assert regex_match("in Beijing", "beijing") == 0.0
    assert regex_match("x", "(bad") == 0.0
    assert qa_scores("China", ["Chin(a|ese)"], regex_answers=True) == {"em": 1.0, "f1": None}


# --- ranks, top-k, MRR ----------------------------------------------------------------------


def test_first_hit_rank():
    assert first_hit_rank(np.array([False, False, True, True])) == 3
    assert first_hit_rank(np.array([True])) == 1
    assert first_hit_rank(np.array([False, False])) == 0
    assert first_hit_rank(np.array([], dtype=bool)) == 0


def test_top_k_accuracy_and_curve_hand_computed():
    ranks = [1, 3, 0, 20, 2]
    assert top_k_accuracy(ranks, [1, 2, 5, 20, 100]) == {
        1: 0.2,
        2: 0.4,
        5: 0.6,
        20: 0.8,
        100: 0.8,
    }
    curve = top_k_curve(ranks, 25)
    assert curve.shape == (25,)
    assert curve[0] == pytest.approx(0.2)
    assert curve[2] == pytest.approx(0.6)
    assert curve[18] == pytest.approx(0.6)
    assert curve[19] == pytest.approx(0.8)
    assert np.all(np.diff(curve) >= 0)
    for k in (1, 2, 5, 20):
        assert curve[k - 1] == pytest.approx(top_k_accuracy(ranks, [k])[k])
    assert top_k_accuracy([], [1]) == {1: 0.0}


def test_mean_reciprocal_rank():
    assert mean_reciprocal_rank([1, 2, 0, 4]) == pytest.approx((1 + 0.5 + 0 + 0.25) / 4)
    assert mean_reciprocal_rank([1, 2, 0, 4], cutoff=2) == pytest.approx(1.5 / 4)
    assert mean_reciprocal_rank([]) == 0.0


# --- BEIR document-level metrics ------------------------------------------------------------


def brute_force_ndcg(ranked: list[str], qrels: dict[str, int], k: int) -> float:
    dcg = sum(qrels.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    best = 0.0
    relevant = [d for d, r in qrels.items() if r > 0]
    # The ideal ranking, found by trying every ordering of the judged documents.
    for order in itertools.permutations(relevant, min(len(relevant), k)):
        best = max(best, sum(qrels[d] / math.log2(i + 2) for i, d in enumerate(order)))
    return dcg / best if best else 0.0


def test_ndcg_against_brute_force():
    rng = np.random.default_rng(1)
    docs = [f"d{i}" for i in range(12)]
    for _ in range(60):
        judged = rng.choice(docs, size=rng.integers(1, 6), replace=False)
        qrels = {str(d): int(rng.integers(0, 4)) for d in judged}
        ranked = [str(d) for d in rng.permutation(docs)[: rng.integers(0, 12)]]
        for k in (1, 3, 10):
            assert ndcg_at_k(ranked, qrels, k) == pytest.approx(brute_force_ndcg(ranked, qrels, k))


def test_ndcg_recall_mrr_hand_computed():
    qrels = {"a": 2, "b": 1, "c": 0}
    ranked = ["x", "a", "c", "b"]
    dcg = 2 / math.log2(3) + 1 / math.log2(5)
    idcg = 2 / math.log2(2) + 1 / math.log2(3)
    assert ndcg_at_k(ranked, qrels, 10) == pytest.approx(dcg / idcg)
    assert ndcg_at_k(["a", "b"], qrels, 10) == pytest.approx(1.0)
    assert recall_at_k(ranked, qrels, 2) == pytest.approx(0.5)
    assert recall_at_k(ranked, qrels, 100) == pytest.approx(1.0)
    assert reciprocal_rank_at_k(ranked, qrels, 10) == pytest.approx(0.5)
    assert reciprocal_rank_at_k(ranked, qrels, 1) == 0.0
    assert ndcg_at_k(ranked, {"c": 0}, 10) == 0.0


def test_documents_rank_by_best_passage_and_beir_means():
    passages_docs = ["d2", "d1", "d2", "d3", "d1"]
    assert documents_in_rank_order(passages_docs) == ["d2", "d1", "d3"]
    qrels = {"q1": {"d1": 1}, "q2": {"d9": 1}, "q3": {"d1": 0}}
    scores = beir_scores({"q1": ["d2", "d1"], "q2": ["d1"]}, qrels)
    assert scores["queries"] == 2  # q3 has no relevant document
    assert scores["mrr@10"] == pytest.approx((0.5 + 0.0) / 2)
    assert scores["recall@100"] == pytest.approx(0.5)
    assert scores["ndcg@10"] == pytest.approx((1 / math.log2(3)) / 2)


# --- SQuAD EM / F1 --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prediction", "gold", "em"),
    [
        ("the Denver Broncos", "Denver Broncos", 1.0),  # article
        ("An apple", "apple", 1.0),
        ("Denver Broncos.", "denver broncos", 1.0),  # punctuation, case
        ("  Denver \n\t Broncos ", "Denver Broncos", 1.0),  # whitespace
        ("Broncos, Denver", "Denver Broncos", 0.0),
        ("theater", "ater", 0.0),  # 'the' inside a word is kept
        ("U.S.", "US", 1.0),
        ("1,000", "1000", 1.0),
        ("", "", 1.0),
        ("", "x", 0.0),
    ],
)
def test_exact_match_normalisation(prediction, gold, em):
    assert exact_match(prediction, gold) == em


def test_f1_hand_computed():
    # pred tokens: denver broncos team; gold: denver broncos -> P 2/3, R 1 -> F1 0.8
    assert f1("the Denver Broncos team", "Denver Broncos") == pytest.approx(0.8)
    # repeated tokens count with multiplicity: common = 1 ('a' is an article, 'b' twice vs once)
    assert f1("b b", "b c") == pytest.approx(0.5)
    assert f1("Carolina", "Denver Broncos") == 0.0
    assert f1("", "Denver") == 0.0
    assert f1("the", "a") == 0.0  # both normalise to nothing


def test_multiple_golds_take_the_maximum():
    golds = ["Santa Clara, California", "Levi's Stadium", "Levi's Stadium in the Bay Area"]
    assert best_over_golds(exact_match, "Levi's Stadium", golds) == 1.0
    scores = qa_scores("Santa Clara", golds)
    assert scores["em"] == 0.0
    assert scores["f1"] == pytest.approx(max(f1("Santa Clara", g) for g in golds))
    assert scores["f1"] == pytest.approx(0.8)
    assert qa_scores("x", []) == {"em": 0.0, "f1": 0.0}


def test_latency_summary():
    out = latency_summary([0.01, 0.02, 0.03, 0.04, 0.10])
    assert out["p50_ms"] == pytest.approx(30.0)
    assert out["p95_ms"] == pytest.approx(88.0)  # linear interpolation between 40 and 100
    assert out["questions_per_s"] == pytest.approx(5 / 0.2)
    assert latency_summary([0.1, 0.1], wall_seconds=1.0)["questions_per_s"] == pytest.approx(2.0)
    assert latency_summary([])["p95_ms"] == 0.0


# --- real data ------------------------------------------------------------------------------


@pytest.mark.slow
def test_squad_answers_are_found_in_their_own_paragraph(squad_dev):
    """SQuAD answers are spans of their paragraph: DPR matching must find almost all of them."""
    data = json.loads(squad_dev.read_text(encoding="utf-8"))["data"]
    found = total = 0
    for article in data[:12]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                answers = [a["text"] for a in qa["answers"]]
                got = has_answer(answers, paragraph["context"])
                assert got == reference_has_answer(answers, paragraph["context"])
                found += got
                total += 1
    assert total > 1000
    assert found / total > 0.97
