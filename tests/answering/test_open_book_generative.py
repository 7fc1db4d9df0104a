"""Open-book generation over retrieved passages with a tiny random T5."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from odqa import load_index
from odqa.answering.open_book_generative import (
    DEFAULT_GENERATIVE_READER,
    answer_open_book_generative,
    generative_input,
    locate,
    read_hits_generative,
)
from odqa.errors import ModelNotAvailableError
from odqa.readers.generative import GenerationParams, Seq2SeqReader
from odqa.types import Answer, Hit, Query

from tiny_models import save_tiny_t5

QUESTIONS = [
    Query("q1", "Which planet is the largest?"),
    Query("q2", "Who patented the telephone?"),
]
OPTIONS = dict(num_beams=4, max_new_tokens=5, device="cpu")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def t5_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_t5(tmp_path_factory.mktemp("tiny-t5-open"), seed=2)


@pytest.fixture(scope="module")
def index(sample_index_dir: Path):
    return load_index(str(sample_index_dir))


def hit(pid: str, text: str, rank: int = 1, title: str = "T") -> Hit:
    return Hit(pid, pid.split("-")[0], 1.0 / rank, rank, title, text)


def test_input_format_puts_passages_in_rank_order() -> None:
    hits = [hit("a-1", "Jupiter is big.", 1, "Planets"), hit("b-2", "Bell patented it.", 2, "")]
    assert generative_input("Which planet?", hits) == (
        "question: Which planet? context: Planets: Jupiter is big. Bell patented it."
    )


def test_locate_prefers_the_best_ranked_exact_match() -> None:
    hits = [hit("a-1", "The planet JUPITER is big.", 1), hit("b-2", "Jupiter again.", 2)]
    found = locate(Answer(1, "Jupiter", -1.0, 0.4), hits)
    assert (found.passage_id, found.start, found.end) == ("b-2", 0, 7)
    folded = locate(Answer(1, "jupiter", -1.0, 0.4), hits[:1])
    assert folded.passage_id == "a-1" and folded.text == "JUPITER"
    assert folded.context[folded.start : folded.end] == folded.text
    assert locate(Answer(1, "Saturn", -1.0, 0.4), hits).passage_id is None


def test_answers_are_the_readers_on_the_formatted_inputs(index, t5_dir: Path) -> None:
    results = answer_open_book_generative(
        index, QUESTIONS, passages=3, top=3, model=str(t5_dir), **OPTIONS
    )
    hits = index.search([q.text for q in QUESTIONS], 3, "bm25")
    params = GenerationParams(num_beams=4, max_new_tokens=5, top=3)
    reader = Seq2SeqReader(str(t5_dir), params, device="cpu")
    expected = reader.answer([generative_input(q.text, h) for q, h in zip(QUESTIONS, hits)])
    assert [r.question_id for r in results] == ["q1", "q2"]
    for result, want, passages in zip(results, expected, hits):
        assert result.mode == "generative"
        assert 0 < len(result.answers) <= 3
        np.testing.assert_allclose([a.score for a in result.answers], [a.score for a in want])
        for answer in result.answers:
            if answer.context is not None:
                assert answer.context[answer.start : answer.end] == answer.text
                assert answer.passage_id in {h.id for h in passages}


def test_batch_equals_one_by_one(index, t5_dir: Path) -> None:
    hits = index.search([q.text for q in QUESTIONS], 2, "bm25")
    together = read_hits_generative(QUESTIONS, hits, model=str(t5_dir), batch_size=2, **OPTIONS)
    for i, q in enumerate(QUESTIONS):
        alone = read_hits_generative([q], [hits[i]], model=str(t5_dir), batch_size=1, **OPTIONS)
        assert [a.text for a in alone[0].answers] == [a.text for a in together[i].answers]


def test_missing_default_reader_is_an_error(index) -> None:
    with pytest.raises(ModelNotAvailableError, match=DEFAULT_GENERATIVE_READER):
        answer_open_book_generative(index, QUESTIONS[:1], passages=2)


def test_cli_reader_kind_generative(index, t5_dir: Path) -> None:
    import json

    from typer.testing import CliRunner

    from odqa.cli import app

    args = ["ask", QUESTIONS[0].text, "--index", str(index.path), "--reader-kind", "generative"]
    args += ["--reader", str(t5_dir), "--passages", "2", "--top", "2", "--format", "jsonl"]
    args += ["--num-beams", "4", "--max-new-tokens", "5", "--device", "cpu"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    expected = answer_open_book_generative(
        index, [Query("1", QUESTIONS[0].text)], passages=2, top=2, model=str(t5_dir), **OPTIONS
    )[0].to_dict()
    assert record["mode"] == "generative"
    assert record == expected
