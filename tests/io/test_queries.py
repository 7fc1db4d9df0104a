"""Reading query files: JSON lines, TSV, plain lines, stdin, and their errors."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from odqa.errors import InputError
from odqa.io.queries import read_queries
from odqa.types import Query


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_jsonl_with_ids_and_each_question_field(tmp_path: Path) -> None:
    records = [
        {"id": "q-a", "question": "Who wrote Hamlet?", "answer": ["Shakespeare"]},
        {"id": 17, "query": "capital of France"},
        {"_id": "beir-3", "text": "what is BM25"},
        {"query_id": "qid-4", "question": "when did it rain"},
    ]
    path = write(tmp_path / "q.jsonl", "\n".join(json.dumps(r) for r in records) + "\n")
    assert read_queries(path) == [
        Query("q-a", "Who wrote Hamlet?"),
        Query("17", "capital of France"),
        Query("beir-3", "what is BM25"),
        Query("qid-4", "when did it rain"),
    ]


def test_jsonl_without_ids_uses_line_numbers(tmp_path: Path) -> None:
    path = write(tmp_path / "q.jsonl", '{"question": "first?"}\n\n{"question": "third?"}\n')
    assert read_queries(path) == [Query("1", "first?"), Query("3", "third?")]


def test_question_field_preferred_over_text(tmp_path: Path) -> None:
    path = write(tmp_path / "q.jsonl", '{"text": "context", "question": "the question"}\n')
    assert read_queries(path)[0].text == "the question"


def test_tsv_first_column_is_the_query(tmp_path: Path) -> None:
    path = tmp_path / "q.tsv"
    path.write_bytes(b"who is it\t['Someone']\r\nwhen was it\t['1999', 'then']\r\n")
    assert read_queries(path) == [Query("1", "who is it"), Query("2", "when was it")]


def test_plain_lines_skip_blanks_and_strip(tmp_path: Path) -> None:
    path = write(tmp_path / "q.txt", "  first query  \n\n   \nsecond query\nthird")
    assert read_queries(path) == [
        Query("1", "first query"),
        Query("4", "second query"),
        Query("5", "third"),
    ]


def test_mixed_lines_and_unicode(tmp_path: Path) -> None:
    path = write(tmp_path / "q.txt", 'plain café\n{"id": "j", "question": "東京?"}\ntab\tx\n')
    assert read_queries(str(path)) == [
        Query("1", "plain café"),
        Query("j", "東京?"),
        Query("3", "tab"),
    ]


def test_stdin_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO('{"id": "s", "query": "from stdin"}\nnext one\n'))
    assert read_queries("-") == [Query("s", "from stdin"), Query("2", "next one")]


def test_empty_stdin_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("\n\n"))
    with pytest.raises(InputError, match="no queries found"):
        read_queries("-")


@pytest.mark.parametrize("content", ["", "\n  \n\t\n"])
def test_empty_file_is_an_error(tmp_path: Path, content: str) -> None:
    path = write(tmp_path / "q.txt", content)
    with pytest.raises(InputError) as info:
        read_queries(path)
    assert str(info.value) == f"{path}: no queries found"


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such queries file"):
        read_queries(tmp_path / "absent.jsonl")
    with pytest.raises(InputError, match="no such queries file"):
        read_queries(tmp_path)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ('{"question": "unterminated', "invalid JSON"),
        ('{"id": "x", "answer": ["y"]}', "no question/query/text field"),
        ('{"id": "x", "question": 5}', "no question/query/text field"),
        ('{"id": "x", "question": "   "}', "empty query text"),
        ("\tonly an answer column", "empty query text"),
    ],
)
def test_bad_line_names_file_and_line(tmp_path: Path, line: str, reason: str) -> None:
    path = write(tmp_path / "q.jsonl", f"good one\n\n{line}\nlast\n")
    with pytest.raises(InputError) as info:
        read_queries(path)
    assert str(info.value).startswith(f"{path}:3: ")
    assert reason in info.value.reason


def test_invalid_utf8_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "q.txt"
    path.write_bytes(b"fine\ncaf\xe9\n")
    with pytest.raises(InputError, match="invalid UTF-8"):
        read_queries(path)


def test_real_question_files(shared_data: Path) -> None:
    squad = shared_data / "squad-open" / "topics.dpr.squad.test.txt"
    expected = [json.loads(x)["question"] for x in squad.read_text(encoding="utf-8").splitlines()]
    queries = read_queries(squad)
    assert [q.text for q in queries] == expected
    assert len(queries) == 10570

    nq_path = shared_data / "nq-open" / "topics.dpr.nq.test.txt"
    raw = nq_path.read_bytes().decode("utf-8").split("\r\n")
    nq = read_queries(nq_path)
    assert len(nq) == 3610
    assert [q.text for q in nq] == [line.split("\t")[0].strip() for line in raw if line]
    assert all(q.text and "\r" not in q.text for q in nq)
