"""`odqa ask` through the CLI: table and jsonl output, index discovery, modes, failure paths."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from odqa.cli import app
from odqa.types import Answer, QuestionAnswers

QUESTION = "Who received a patent for the telephone?"
FAST = ["--max-seq-length", "64", "--doc-stride", "24", "--passages", "4", "--device", "cpu"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def built(sample_index_dir: Path) -> Path:
    return sample_index_dir


@pytest.fixture(scope="module")
def reader(tiny_qa_model: Path) -> str:
    return str(tiny_qa_model)


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory whose default index folder is ``indexes/``."""
    monkeypatch.delenv("ODQA_INDEX_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def ask(*args: object) -> Result:
    return CliRunner().invoke(app, ["ask", *(str(a) for a in args)])


def test_table_output(built, reader):
    result = ask(QUESTION, "--index", built, "--reader", reader, "--top", "3", *FAST)
    assert result.exit_code == 0, result.output
    assert QUESTION in result.stdout and "(extractive)" in result.stdout
    for column in ("rank", "answer", "confidence", "source", "evidence"):
        assert column in result.stdout


def test_jsonl_output_to_file(built, reader, tmp_path):
    questions = tmp_path / "questions.jsonl"
    questions.write_text(
        json.dumps({"id": "a", "question": QUESTION})
        + "\n"
        + json.dumps({"id": "b", "question": "When did Cassini reach Saturn?"})
        + "\n",
        encoding="utf-8",
    )
    out = tmp_path / "answers.jsonl"
    args = ["--index", built, "--reader", reader, "--questions", questions, "--top", "2"]
    result = ask(*args, "--format", "jsonl", "--output", out, *FAST)
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["question_id"] for r in records] == ["a", "b"]
    for record in records:
        assert list(record) == ["question_id", "question", "mode", "answers"]
        assert record["mode"] == "extractive"
        assert 1 <= len(record["answers"]) <= 2
        for a in record["answers"]:
            for key in ("rank", "text", "score", "passage_id", "doc_id", "title", "start", "end"):
                assert key in a
            assert a["context"][a["start"] : a["end"]] == a["text"]


def test_questions_from_stdin(built, reader):
    result = CliRunner().invoke(
        app,
        ["ask", "--index", str(built), "--reader", reader, "--questions", "-", *FAST],
        input="Which planet is the largest?\nWhat is the Moon?\n",
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.count("(extractive)") == 2
    jsonl = CliRunner().invoke(
        app,
        ["ask", "--index", str(built), "--reader", reader, "--questions", "-", "--format", "jsonl"],
        input="Which planet is the largest?\nWhat is the Moon?\n",
    )
    lines = jsonl.stdout.strip().splitlines()
    assert [json.loads(line)["question"] for line in lines] == [
        "Which planet is the largest?",
        "What is the Moon?",
    ]


def test_default_reader_falls_back_to_sentences(built, monkeypatch):
    from odqa.answering import open_book

    unavailable = "distilbert/distilbert-base-cased-distilled-squad"
    monkeypatch.setattr(open_book, "DEFAULT_READER", unavailable)
    monkeypatch.setattr(open_book, "_NOTICES_GIVEN", set())
    result = ask(QUESTION, "--index", built, "--format", "jsonl", "--top", "2")
    assert result.exit_code == 0, result.output
    assert result.stderr.count("notice:") == 1 and "--reader PATH" in result.stderr
    record = json.loads(result.stdout)
    assert record["mode"] == "sentence"
    assert "telephone" in record["answers"][0]["text"]
    table = ask(QUESTION, "--index", built)
    assert table.exit_code == 0 and "(sentence)" in table.stdout


def test_the_only_index_is_found(built, reader, root):
    (root / "indexes").mkdir()
    shutil.copytree(built, root / "indexes" / "only")
    result = ask(QUESTION, "--reader", reader, "--format", "jsonl", *FAST)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["answers"]


def test_no_index_or_several_is_a_clear_error(built, reader, root):
    result = ask(QUESTION, "--reader", reader)
    assert result.exit_code == 1 and "--index" in result.stderr
    (root / "indexes").mkdir()
    for name in ("one", "two"):
        shutil.copytree(built, root / "indexes" / name)
    result = ask(QUESTION, "--reader", reader)
    assert result.exit_code == 1
    assert "one, two" in result.stderr and "--index" in result.stderr


def test_failure_paths(built, reader, tmp_path):
    missing = ask(QUESTION, "--index", built, "--reader", tmp_path / "nope")
    assert missing.exit_code == 1 and "does not exist" in missing.stderr
    assert "Traceback" not in missing.output
    no_index = ask(QUESTION, "--index", tmp_path / "absent", "--reader", reader)
    assert no_index.exit_code == 1 and "no index" in no_index.stderr
    no_question = ask("--index", built, "--reader", reader)
    assert no_question.exit_code == 1 and "no query" in no_question.stderr
    dense = ask(QUESTION, "--index", built, "--reader", reader, "--retriever", "dense")
    assert dense.exit_code == 1 and "not available" in dense.stderr
    bad_score = ask(QUESTION, "--index", built, "--score", "best")
    assert bad_score.exit_code == 2


def test_closed_book_needs_no_index_and_passes_options(monkeypatch, root):
    import odqa.answering.closed_book as closed_book

    seen = {}

    def fake(questions, **options):
        seen.update(options, questions=questions)
        return [
            QuestionAnswers(q.id, q.text, "closed-book", [Answer(1, "Bell", -0.5, 0.6)])
            for q in questions
        ]

    monkeypatch.setattr(closed_book, "answer_closed_book", fake)
    args = ["--mode", "closed-book", "--reader", "my/t5", "--num-beams", "2", "--top", "1"]
    result = ask(QUESTION, *args, "--max-new-tokens", "5", "--prefix", "q: ", "--format", "jsonl")
    assert result.exit_code == 0, result.output
    assert seen["model"] == "my/t5" and seen["num_beams"] == 2 and seen["top"] == 1
    assert seen["max_new_tokens"] == 5 and seen["prefix"] == "q: "
    record = json.loads(result.stdout)
    assert record["mode"] == "closed-book" and record["answers"][0]["text"] == "Bell"
    table = ask(QUESTION, *args)
    assert table.exit_code == 0 and "Bell" in table.stdout


def test_no_answer_table(built, reader):
    result = ask(
        QUESTION, "--index", built, "--reader", reader, "--no-answer-threshold", "1e9", *FAST
    )
    assert result.exit_code == 0, result.output
    assert "no answer" in result.stdout


def test_onnx_backend_gives_the_torch_answers(built, reader, tmp_path, monkeypatch):
    monkeypatch.setenv("ODQA_CACHE", str(tmp_path))
    runs = [
        ask(QUESTION, "--index", built, "--reader", reader, "--format", "jsonl", *extra, *FAST)
        for extra in ([], ["--backend", "onnx"])
    ]
    assert all(r.exit_code == 0 for r in runs), runs[-1].output
    torch_answers, onnx_answers = (json.loads(r.stdout)["answers"] for r in runs)
    assert [a["text"] for a in torch_answers] == [a["text"] for a in onnx_answers]
    cuda = ask(
        QUESTION, "--index", built, "--reader", reader, "--backend", "int8", "--device", "cuda"
    )
    assert cuda.exit_code == 1 and "error:" in cuda.stderr
