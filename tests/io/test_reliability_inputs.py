"""Damaged or unusual input files give one-line errors (or are read right): corrupt gzip,
BEIR folders without a corpus, byte-order marks, ids and titles of the wrong type, repeated
query ids."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from odqa import load_index
from odqa.cli import app

from conftest import SAMPLE_QUESTIONS

BOM = "\ufeff"


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("ODQA_INDEX_DIR", str(tmp_path / "indexes"))
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def invoke(runner: CliRunner, *args: object, stdin: str | None = None) -> Result:
    argv = [str(a) for a in args]
    if argv[:1] == ["index"]:
        argv += ["--retrievers", "bm25", "-q"]
    return runner.invoke(app, argv, input=stdin)


def one_line_error(result: Result, *fragments: str) -> str:
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    message = result.stderr.strip()
    assert "\n" not in message and message.startswith("error: "), message
    for fragment in fragments:
        assert fragment in message, message
    return message


def jsonl(records: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


@pytest.fixture
def index_dir(runner: CliRunner, tmp_path: Path) -> Path:
    corpus = tmp_path / "c.jsonl"
    corpus.write_text(jsonl([
        {"id": "bell", "title": "Telephone", "text": "Bell patented the telephone in 1876."},
        {"id": "nile", "title": "Rivers", "text": "The Nile flows north into the sea."},
    ]), encoding="utf-8")  # fmt: skip
    out = tmp_path / "idx"
    assert invoke(runner, "index", corpus, "--out", out).exit_code == 0
    return out


# --- 6. corrupt gzip ----------------------------------------------------------------------------


def test_a_corrupt_gzip_body_is_one_line(runner: CliRunner, tmp_path: Path) -> None:
    lines = jsonl([{"id": str(i), "text": f"t {i}"} for i in range(400)])
    packed = bytearray(gzip.compress(lines.encode()))
    packed[40:60] = b"\x00" * 20
    corpus = tmp_path / "c.jsonl.gz"
    corpus.write_bytes(bytes(packed))
    result = invoke(runner, "index", corpus, "--out", tmp_path / "idx")
    one_line_error(result, f"{corpus}: cannot read file: damaged gzip data")
    assert not (tmp_path / "idx").exists()


def test_a_corrupt_gzip_squad_file_is_one_line(runner: CliRunner, tmp_path: Path) -> None:
    packed = bytearray(gzip.compress(json.dumps({"data": [{"title": "x" * 5000}]}).encode()))
    packed[30:50] = b"\xff" * 20
    corpus = tmp_path / "squad.json.gz"
    corpus.write_bytes(bytes(packed))
    result = invoke(runner, "index", corpus, "--out", tmp_path / "idx", "--format", "squad")
    one_line_error(result, "damaged gzip data")


# --- 7. --format beir without corpus.jsonl --------------------------------------------------------


def test_beir_format_on_a_folder_without_a_corpus(runner: CliRunner, tmp_path: Path) -> None:
    folder = tmp_path / "beir"
    folder.mkdir()
    (folder / "queries.jsonl").write_text("{}\n", encoding="utf-8")
    result = invoke(runner, "index", folder, "--out", tmp_path / "idx", "--format", "beir")
    one_line_error(result, f"{folder}: not a BEIR folder", "corpus.jsonl")


def test_beir_format_on_a_file(runner: CliRunner, tmp_path: Path) -> None:
    corpus = tmp_path / "c.jsonl"
    corpus.write_text(jsonl([{"_id": "a", "text": "x"}]), encoding="utf-8")
    result = invoke(runner, "index", corpus, "--out", tmp_path / "idx", "--format", "beir")
    one_line_error(result, "expects a BEIR folder")


# --- 11. byte-order marks are accepted everywhere ------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("c.jsonl", jsonl([{"id": "a", "text": "apples grow"}, {"id": "b", "text": "pears"}])),
        ("c.tsv", "id\ttext\ttitle\na\tapples grow\tA\nb\tpears\tB\n"),
        ("c.json", json.dumps({"data": [{"title": "a", "paragraphs": [
            {"context": "apples grow"}, {"context": "pears"}]}]})),
    ],
    ids=["jsonl", "tsv", "squad"],
)  # fmt: skip
def test_a_corpus_with_a_bom_is_read(
    runner: CliRunner, tmp_path: Path, name: str, content: str
) -> None:
    corpus = tmp_path / name
    corpus.write_text(BOM + content, encoding="utf-8")
    result = invoke(runner, "index", corpus, "--out", tmp_path / "idx")
    assert result.exit_code == 0, result.output
    passages = list(load_index(tmp_path / "idx").passages)
    assert len(passages) == 2 and not passages[0].id.startswith(BOM)
    assert passages[0].text == "apples grow"


def test_jsonl_queries_with_a_bom_are_read_as_json(index_dir: Path, runner: CliRunner) -> None:
    queries = index_dir.parent / "q.jsonl"
    queries.write_text(BOM + jsonl([{"id": "q7", "question": "telephone patent"}]), "utf-8")
    result = invoke(runner, "search", "--queries", queries, "-i", index_dir, "--format", "jsonl")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["query_id"] == "q7" and record["query"] == "telephone patent"
    stdin = invoke(runner, "search", "--queries", "-", "-i", index_dir, "--format", "jsonl",
                   stdin=BOM + jsonl([{"id": "q8", "question": "nile"}]))  # fmt: skip
    assert json.loads(stdin.stdout)["query_id"] == "q8"


def test_an_eval_dataset_with_a_bom_is_read(sample_index_dir: Path, tmp_path: Path) -> None:
    dataset = tmp_path / "questions.jsonl"
    dataset.write_text(BOM + SAMPLE_QUESTIONS.read_text(encoding="utf-8"), encoding="utf-8")
    args = ["eval", str(dataset), "--index", str(sample_index_dir), "--format", "json", "-q"]
    result = CliRunner().invoke(app, [*args, "--latency-sample", "0"])
    assert result.exit_code == 0, result.output
    lines = [line for line in SAMPLE_QUESTIONS.read_text().splitlines() if line.strip()]
    assert json.loads(result.stdout)["questions"] == len(lines)


# --- 15. ids and titles are strings or integers ---------------------------------------------------


@pytest.mark.parametrize(
    ("record", "fragment"),
    [
        ({"id": 1.5, "text": "x"}, "field 'id' must be a string or an integer, got float"),
        ({"id": True, "text": "x"}, "field 'id' must be a string or an integer, got bool"),
        ({"id": ["a"], "text": "x"}, "got list"),
        ({"id": "a", "title": {"t": 1}, "text": "x"}, "field 'title' must be a string or an"),
        ({"id": "a", "title": 2.0, "text": "x"}, "got float"),
        ({"_id": {"x": 1}, "text": "x"}, "field '_id' must be"),
    ],
)  # fmt: skip
def test_ids_and_titles_of_the_wrong_type(
    runner: CliRunner, tmp_path: Path, record: dict, fragment: str
) -> None:
    corpus = tmp_path / "c.jsonl"
    corpus.write_text(jsonl([{"id": "ok", "text": "fine"}, record]), encoding="utf-8")
    result = invoke(runner, "index", corpus, "--out", tmp_path / "idx")
    one_line_error(result, f"{corpus}:2: ", fragment)


def test_integer_ids_and_titles_are_accepted(runner: CliRunner, tmp_path: Path) -> None:
    corpus = tmp_path / "c.jsonl"
    corpus.write_text(jsonl([{"id": 7, "title": 1984, "text": "a novel"}]), encoding="utf-8")
    assert invoke(runner, "index", corpus, "--out", tmp_path / "idx").exit_code == 0
    (passage,) = load_index(tmp_path / "idx").passages
    assert (passage.id, passage.title) == ("7", "1984")


def test_query_ids_of_the_wrong_type(index_dir: Path, runner: CliRunner) -> None:
    queries = index_dir.parent / "q.jsonl"
    queries.write_text(jsonl([{"id": 2.5, "question": "nile"}]), encoding="utf-8")
    result = invoke(runner, "search", "--queries", queries, "-i", index_dir)
    one_line_error(result, f"{queries}:1: query id must be a string or an integer, got float")


# --- duplicate query ids --------------------------------------------------------------------------


def test_duplicate_query_ids_name_both_lines(index_dir: Path, runner: CliRunner) -> None:
    queries = index_dir.parent / "q.jsonl"
    queries.write_text(jsonl([{"id": "q1", "question": "nile"}, {"id": "q2", "question": "bell"},
                              {"id": "q1", "question": "sea"}]), encoding="utf-8")  # fmt: skip
    result = invoke(runner, "search", "--queries", queries, "-i", index_dir, "--format", "trec")
    one_line_error(result, f"{queries}:3: duplicate query id 'q1' (first at line 1)")
    assert result.stdout == ""


def test_an_explicit_id_clashing_with_a_line_number(index_dir: Path, runner: CliRunner) -> None:
    stdin = json.dumps({"id": 2, "question": "nile"}) + "\nbell telephone\n"
    result = invoke(runner, "search", "--queries", "-", "-i", index_dir, stdin=stdin)
    one_line_error(result, "-:2: duplicate query id '2' (first at line 1)")
