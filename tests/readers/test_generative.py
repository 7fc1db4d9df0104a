"""Seq2seq generation: ranked distinct answers checked against transformers' own beam search."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from odqa.answering.closed_book import (
    DEFAULT_CLOSED_BOOK_MODEL,
    answer_closed_book,
    closed_book_inputs,
)
from odqa.errors import ModelNotAvailableError, OdqaError
from odqa.readers.generative import (
    Generated,
    GenerationParams,
    Seq2SeqReader,
    distinct_answers,
)
from odqa.runtime.batching import length_sorted_batches, pad_ids
from odqa.text import normalize_answer
from odqa.types import Query

from tiny_models import save_tiny_bert, save_tiny_t5

QUESTIONS = [
    "who built the tower in paris",
    "when was the first university in england founded ?",
    "What is the capital of Italy?",
    "how many planets",
    "which composer was born in 1889 in the north of germany and died in london in 1990",
    "who",
    "where is the largest lake of japan",
]
MAX_NEW_TOKENS = 6
NUM_BEAMS = 6
TOP = 4


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def t5_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_t5(tmp_path_factory.mktemp("tiny-t5"))


@pytest.fixture(scope="module")
def hf(t5_dir: Path):
    """The same checkpoint loaded directly with transformers, for reference runs."""
    return AutoModelForSeq2SeqLM.from_pretrained(t5_dir).eval(), AutoTokenizer.from_pretrained(
        t5_dir
    )


@pytest.fixture(scope="module")
def reader(t5_dir: Path) -> Seq2SeqReader:
    params = GenerationParams(
        num_beams=NUM_BEAMS, max_new_tokens=MAX_NEW_TOKENS, top=TOP, batch_size=3
    )
    return Seq2SeqReader(str(t5_dir), params, device="cpu")


@pytest.fixture(scope="module")
def produced(reader: Seq2SeqReader) -> list[list[Generated]]:
    return reader.generate(QUESTIONS)


@pytest.fixture(scope="module")
def reference(hf) -> dict[str, tuple[torch.Tensor, list[Generated]]]:
    return {text: reference_beams(hf, text, NUM_BEAMS) for text in QUESTIONS}


def reference_beams(hf, text: str, num_beams: int) -> tuple[torch.Tensor, list[Generated]]:
    """One question at a time through plain ``generate`` with the same beam settings."""
    model, tokenizer = hf
    enc = tokenizer(text, return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(
            **enc,
            num_beams=num_beams,
            num_return_sequences=num_beams,
            max_new_tokens=MAX_NEW_TOKENS,
            length_penalty=0.0,
            do_sample=False,
            output_scores=True,
            return_dict_in_generate=True,
        )
    texts = tokenizer.batch_decode(out.sequences, skip_special_tokens=True)
    beams = [Generated(t.strip(), float(s)) for t, s in zip(texts, out.sequences_scores)]
    return out.sequences, beams


def teacher_forced_log_prob(hf, text: str, sequence: torch.Tensor) -> float:
    """log p(sequence | text) from one forward pass, summed up to the first end-of-sequence."""
    model, tokenizer = hf
    enc = tokenizer(text, return_tensors="pt")
    with torch.inference_mode():
        logits = model(**enc, decoder_input_ids=sequence[None, :-1]).logits[0]
    targets = sequence[1:]
    log_probs = torch.log_softmax(logits, dim=-1).gather(1, targets[:, None])[:, 0]
    eos = (targets == model.config.eos_token_id).nonzero()
    end = int(eos[0, 0]) + 1 if len(eos) else len(targets)
    return float(log_probs[:end].sum())


def reference_distinct(beams: list[Generated], top: int) -> list[tuple[str, float, float]]:
    """Best-first beams, first of each non-empty normalised answer, cut at ``top``, with the
    summed probability of the beams that normalise to it."""
    kept: dict[str, tuple[str, float]] = {}
    for beam in sorted(beams, key=lambda b: -b.score):
        kept.setdefault(normalize_answer(beam.text), (beam.text, beam.score))
    kept.pop("", None)
    mass = {
        key: sum(math.exp(b.score) for b in beams if normalize_answer(b.text) == key)
        for key in kept
    }
    return [(text, score, mass[key]) for key, (text, score) in kept.items()][:top]


def test_beams_equal_transformers_generate(produced, reference) -> None:
    assert len(produced) == len(QUESTIONS)
    for text, beams in zip(QUESTIONS, produced):
        _, expected = reference[text]
        assert len(beams) == NUM_BEAMS
        assert [b.text for b in beams] == [b.text for b in expected]
        np.testing.assert_allclose(
            [b.score for b in beams], [b.score for b in expected], rtol=0, atol=1e-4
        )


def test_ranked_answers_equal_generate_distinct(reader: Seq2SeqReader, reference) -> None:
    merged = 0
    for text, answers in zip(QUESTIONS, reader.answer(QUESTIONS)):
        _, beams = reference[text]
        expected = reference_distinct(beams, TOP)
        assert [a.text for a in answers] == [t for t, _, _ in expected]
        np.testing.assert_allclose(
            [a.score for a in answers], [s for _, s, _ in expected], atol=1e-4
        )
        np.testing.assert_allclose(
            [a.confidence for a in answers], [m for _, _, m in expected], rtol=1e-3
        )
        merged += len({normalize_answer(b.text) for b in beams}) < len(beams)
    assert merged > 0, "the fixture questions should exercise merging of equal answers"


def test_scores_are_sequence_log_probabilities(produced, reference, hf) -> None:
    for text, ours in list(zip(QUESTIONS, produced))[:4]:
        sequences, beams = reference[text]
        forced = [teacher_forced_log_prob(hf, text, s) for s in sequences]
        np.testing.assert_allclose([b.score for b in beams], forced, atol=1e-4)
        np.testing.assert_allclose([b.score for b in ours], forced, atol=1e-4)


def test_greedy_score_is_sequence_log_probability(t5_dir: Path, hf) -> None:
    params = GenerationParams(num_beams=1, max_new_tokens=MAX_NEW_TOKENS, top=1)
    greedy = Seq2SeqReader(str(t5_dir), params, device="cpu")
    model, tokenizer = hf
    for text, beams in zip(QUESTIONS, greedy.generate(QUESTIONS)):
        with torch.inference_mode():
            sequence = model.generate(
                **tokenizer(text, return_tensors="pt"),
                do_sample=False,
                num_beams=1,
                max_new_tokens=MAX_NEW_TOKENS,
            )[0]
        assert len(beams) == 1
        assert beams[0].text == tokenizer.decode(sequence, skip_special_tokens=True).strip()
        assert beams[0].score == pytest.approx(
            teacher_forced_log_prob(hf, text, sequence), abs=1e-4
        )


def test_answers_distinct_ranked_with_confidence(t5_dir: Path) -> None:
    results = answer_closed_book(
        [Query(str(i), q) for i, q in enumerate(QUESTIONS)],
        model=str(t5_dir),
        top=TOP,
        num_beams=NUM_BEAMS,
        max_new_tokens=MAX_NEW_TOKENS,
        device="cpu",
    )
    assert [r.question_id for r in results] == [str(i) for i in range(len(QUESTIONS))]
    assert sum(len(r.answers) for r in results) > len(QUESTIONS)
    for result in results:
        assert result.mode == "closed-book"
        keys = [normalize_answer(a.text) for a in result.answers]
        assert len(keys) == len(set(keys)) <= TOP
        assert all(keys)
        assert sum(a.confidence for a in result.answers) <= 1.0 + 1e-6
        assert [a.rank for a in result.answers] == list(range(1, len(keys) + 1))
        scores = [a.score for a in result.answers]
        assert scores == sorted(scores, reverse=True)
        for answer in result.answers:
            assert math.exp(answer.score) * (1 - 1e-6) <= answer.confidence <= 1.0
            assert answer.passage_id is answer.doc_id is answer.context is answer.start is None
            assert set(answer.to_dict()) >= {"rank", "text", "score", "confidence"}


def test_batch_equals_one_by_one(t5_dir: Path) -> None:
    queries = [Query(str(i), q) for i, q in enumerate(QUESTIONS)]
    options = dict(model=str(t5_dir), top=TOP, num_beams=NUM_BEAMS, max_new_tokens=MAX_NEW_TOKENS)
    batched = answer_closed_book(queries, batch_size=4, device="cpu", **options)
    single = [answer_closed_book([q], batch_size=1, device="cpu", **options)[0] for q in queries]
    for a, b in zip(batched, single):
        assert a.question_id == b.question_id
        assert [x.text for x in a.answers] == [x.text for x in b.answers]
        np.testing.assert_allclose(
            [x.score for x in a.answers], [x.score for x in b.answers], atol=1e-4
        )


def test_prefix_applied(t5_dir: Path) -> None:
    prefix = "nq question: "
    queries = [Query("a", QUESTIONS[0]), Query("b", QUESTIONS[2])]
    assert closed_book_inputs(queries, prefix) == [prefix + QUESTIONS[0], prefix + QUESTIONS[2]]
    options = dict(model=str(t5_dir), num_beams=NUM_BEAMS, max_new_tokens=MAX_NEW_TOKENS)
    with_prefix = answer_closed_book(queries, prefix=prefix, **options)
    prefixed_text = answer_closed_book([Query(q.id, prefix + q.text) for q in queries], **options)
    plain = answer_closed_book(queries, **options)
    assert [r.question for r in with_prefix] == [q.text for q in queries]
    for a, b in zip(with_prefix, prefixed_text):
        assert [(x.text, round(x.score, 4)) for x in a.answers] == [
            (x.text, round(x.score, 4)) for x in b.answers
        ]
    assert [[x.score for x in r.answers] for r in with_prefix] != [
        [x.score for x in r.answers] for r in plain
    ]


def test_missing_default_model_names_it_and_the_fix() -> None:
    with pytest.raises(ModelNotAvailableError) as caught:
        answer_closed_book([Query("1", "who wrote hamlet")])
    message = str(caught.value)
    assert DEFAULT_CLOSED_BOOK_MODEL in message
    assert "--reader PATH" in message


def test_missing_local_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelNotAvailableError, match="does not exist"):
        answer_closed_book([Query("1", "who")], model=str(tmp_path / "no-such-model"))


def test_non_seq2seq_model_is_rejected(tmp_path: Path) -> None:
    bert = save_tiny_bert(tmp_path / "bert")
    with pytest.raises(ModelNotAvailableError, match=r"not a seq2seq.*--reader"):
        answer_closed_book([Query("1", "who")], model=str(bert))


def test_no_questions_loads_nothing() -> None:
    assert answer_closed_book([], model="no-such/model") == []


@pytest.mark.parametrize("field", ["num_beams", "max_new_tokens", "top", "batch_size"])
def test_invalid_settings(field: str) -> None:
    with pytest.raises(OdqaError, match=field):
        GenerationParams(**{field: 0})


def test_length_sorted_batches_cover_every_index_once() -> None:
    lengths = [3, 9, 1, 9, 4, 7, 2]
    batches = length_sorted_batches(lengths, 3, max_padding=1.0)
    assert [len(b) for b in batches] == [3, 3, 1]
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(len(lengths)))
    assert [lengths[i] for i in flat] == sorted(lengths, reverse=True)
    # by default no batch mixes an input with one more than 10% longer
    assert [[lengths[i] for i in b] for b in length_sorted_batches(lengths, 3)] == [
        [9, 9], [7], [4], [3], [2], [1]]


def test_pad_ids() -> None:
    ids, mask = pad_ids([[5, 6, 1], [7, 1], [1]], pad_id=0)
    assert ids.tolist() == [[5, 6, 1], [7, 1, 0], [1, 0, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 1, 0], [1, 0, 0]]
    assert pad_ids([[5, 6, 1]], pad_id=9, multiple=4)[0].tolist() == [[5, 6, 1, 9]]


def test_distinct_answers_merges_normalised_duplicates() -> None:
    beams = [
        Generated("the Eiffel Tower", -1.5),
        Generated("Eiffel tower.", -0.5),
        Generated("", -0.1),
        Generated("Gustave Eiffel", -2.0),
        Generated("a", -0.2),
        Generated("Paris", -2.0),
    ]
    answers = distinct_answers(beams, top=5)
    assert [a.text for a in answers] == ["Eiffel tower.", "Gustave Eiffel", "Paris"]
    assert [a.rank for a in answers] == [1, 2, 3]
    assert answers[0].confidence == pytest.approx(math.exp(-0.5) + math.exp(-1.5))
    assert answers[1].confidence == pytest.approx(math.exp(-2.0))
    assert [a.text for a in distinct_answers(beams, top=1)] == ["Eiffel tower."]
