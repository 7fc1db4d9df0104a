"""`odqa ask --mode closed-book` through the real CLI: table, JSON lines, options, missing model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from odqa.answering.closed_book import DEFAULT_CLOSED_BOOK_MODEL, answer_closed_book
from odqa.cli import app
from odqa.types import Query

from tiny_models import save_tiny_t5

runner = CliRunner()
QUESTIONS = ["who built the tower in paris", "When was the first university founded?"]
FAST = ["--max-new-tokens", "4", "--num-beams", "4", "--device", "cpu"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def t5_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_t5(tmp_path_factory.mktemp("tiny-t5-cli"), seed=1)


@pytest.fixture(autouse=True)
def no_index_anywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Closed-book needs no index: run where none can be found."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ODQA_INDEX_DIR", str(tmp_path / "none"))


def ask(*args: str):
    return runner.invoke(app, ["ask", "--mode", "closed-book", *args])


def library_answers(t5_dir: Path, questions: list[Query], **options) -> list[dict]:
    options = {"num_beams": 4, "max_new_tokens": 4, "device": "cpu", **options}
    return [r.to_dict() for r in answer_closed_book(questions, model=str(t5_dir), **options)]


def test_table_lists_ranked_answers(t5_dir: Path) -> None:
    result = ask(QUESTIONS[0], "--reader", str(t5_dir), "--top", "3", *FAST)
    assert result.exit_code == 0, result.output
    expected = library_answers(t5_dir, [Query("1", QUESTIONS[0])], top=3)[0]["answers"]
    assert expected
    assert QUESTIONS[0] in result.stdout and "closed-book" in result.stdout
    assert "rank" in result.stdout and "confidence" in result.stdout
    for answer in expected:
        assert answer["text"] in result.stdout
    rows = [line for line in result.stdout.splitlines() if line.startswith("│")]
    assert len(rows) == len(expected)


def test_jsonl_matches_the_library(t5_dir: Path, tmp_path: Path) -> None:
    questions = tmp_path / "q.jsonl"
    records = [{"id": f"q{i}", "question": q} for i, q in enumerate(QUESTIONS)]
    questions.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    result = ask("--questions", str(questions), "--reader", str(t5_dir), "--format", "jsonl", *FAST)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    expected = library_answers(t5_dir, [Query(f"q{i}", q) for i, q in enumerate(QUESTIONS)])
    assert [r["question_id"] for r in lines] == ["q0", "q1"]
    assert lines == expected
    for record in lines:
        assert record["mode"] == "closed-book"
        assert 0 < len(record["answers"]) <= 5
        for answer in record["answers"]:
            assert answer["passage_id"] is None and answer["context"] is None
            assert set(answer) >= {"rank", "text", "score", "confidence"}


def test_options_reach_the_generator(t5_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "answers.jsonl"
    prefix = "nq question: "
    args = ["--reader", str(t5_dir), "--format", "jsonl", "--output", str(out), "--top", "2"]
    result = ask(QUESTIONS[1], "--prefix", prefix, "--batch-size", "1", *args, *FAST)
    assert result.exit_code == 0, result.output
    record = json.loads(out.read_text(encoding="utf-8"))
    expected = library_answers(t5_dir, [Query("1", QUESTIONS[1])], top=2, prefix=prefix)[0]
    assert record == expected
    assert len(record["answers"]) == 2
    assert record["question"] == QUESTIONS[1]


def test_questions_from_stdin(t5_dir: Path) -> None:
    stdin = "\n".join(QUESTIONS) + "\n"
    args = ["ask", "--mode", "closed-book", "--questions", "-", "--format", "jsonl"]
    result = runner.invoke(app, [*args, "--reader", str(t5_dir), *FAST], input=stdin)
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["question"] for line in result.stdout.splitlines()] == QUESTIONS


def test_missing_default_model_exits_1_with_the_fix() -> None:
    result = ask("who wrote hamlet")
    assert result.exit_code == 1
    assert DEFAULT_CLOSED_BOOK_MODEL in result.stderr
    assert "--reader PATH" in result.stderr
    assert "Traceback" not in result.output
    assert result.stdout == ""


def test_missing_local_model_exits_1(tmp_path: Path) -> None:
    result = ask("who wrote hamlet", "--reader", str(tmp_path / "no-model"))
    assert result.exit_code == 1
    assert "no-model" in result.stderr and "does not exist" in result.stderr
