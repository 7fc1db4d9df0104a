"""`odqa search` and `odqa info` through the real CLI: formats, query sources, errors, imports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from odqa.cli import app

from conftest import SAMPLE_CORPUS

runner = CliRunner()


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "sample"
    args = ["index", str(SAMPLE_CORPUS), "--out", str(out), "--quiet", "--retrievers", "bm25"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return out


def test_table_output_lists_ranked_hits(index_dir: Path):
    result = runner.invoke(app, ["search", "highest mountain in Africa", "-i", str(index_dir)])
    assert result.exit_code == 0, result.output
    assert "geo-09" in result.output and "Mountains" in result.output
    assert "rank" in result.output and "snippet" in result.output


def test_jsonl_output_has_the_documented_fields(index_dir: Path):
    result = runner.invoke(
        app, ["search", "telephone patent", "-i", str(index_dir), "-k", "3", "--format", "jsonl"]
    )
    assert result.exit_code == 0, result.output
    record = json.loads(result.output.strip())
    assert set(record) == {"query_id", "query", "hits"}
    assert record["query"] == "telephone patent" and len(record["hits"]) == 3
    assert set(record["hits"][0]) == {"rank", "id", "doc_id", "score", "title", "text"}
    assert [h["rank"] for h in record["hits"]] == [1, 2, 3]
    scores = [h["score"] for h in record["hits"]]
    assert scores == sorted(scores, reverse=True)


def test_trec_run_from_a_queries_file(index_dir: Path, tmp_path: Path):
    queries = tmp_path / "q.jsonl"
    queries.write_text(
        json.dumps({"id": "q7", "question": "telephone patent"})
        + "\n"
        + json.dumps({"id": "q8", "question": "highest mountain"})
        + "\n"
    )
    out = tmp_path / "run.trec"
    result = runner.invoke(
        app,
        [
            "search",
            "--queries",
            str(queries),
            "-i",
            str(index_dir),
            "-k",
            "3",
            "--format",
            "trec",
            "--output",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    lines = [line.split() for line in out.read_text().splitlines()]
    assert len(lines) == 6
    assert {row[0] for row in lines} == {"q7", "q8"}
    assert all(row[1] == "Q0" and row[5] == "odqa" for row in lines)
    assert [int(row[3]) for row in lines[:3]] == [1, 2, 3]


def test_queries_from_stdin(index_dir: Path):
    result = runner.invoke(
        app,
        ["search", "--queries", "-", "-i", str(index_dir), "--format", "jsonl", "-k", "1"],
        input="telephone patent\nhighest mountain\n",
    )
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.output.splitlines()]
    assert [r["query_id"] for r in records] == ["1", "2"]


def test_single_index_under_the_default_folder_is_used(index_dir: Path, monkeypatch):
    monkeypatch.setenv("ODQA_INDEX_DIR", str(index_dir.parent))
    result = runner.invoke(app, ["search", "piano", "--format", "jsonl"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["hits"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["search", "x", "-i", "/nonexistent/index"], "no index at"),
        (["search", "-i", "IDX"], "no query"),
        (["search", "--queries", "/nonexistent.txt", "-i", "IDX"], "no such queries file"),
        (["search", "x", "--queries", "-", "-i", "IDX"], "not both"),
        (["search", "x", "-i", "IDX", "--retriever", "dense"], "not available"),
        (["info", "/nonexistent/index"], "no index at"),
    ],
)
def test_errors_are_one_line_with_exit_1(index_dir: Path, args, message):
    args = [str(index_dir) if a == "IDX" else a for a in args]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output


def test_usage_errors_exit_2(index_dir: Path):
    result = runner.invoke(app, ["search", "x", "-i", str(index_dir), "--format", "xml"])
    assert result.exit_code == 2


def test_info_table_and_json(index_dir: Path):
    table = runner.invoke(app, ["info", str(index_dir)])
    assert table.exit_code == 0 and "bm25.params.variant" in table.output
    as_json = runner.invoke(app, ["info", str(index_dir), "--json"])
    manifest = json.loads(as_json.output)
    assert manifest["corpus"]["passages"] == 67


def test_cli_and_bm25_search_import_no_heavy_libraries(index_dir: Path):
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "import odqa.cli\n"
        f"r = CliRunner().invoke(odqa.cli.app, ['search', 'piano', '-i', {str(index_dir)!r}])\n"
        "assert r.exit_code == 0, r.output\n"
        "heavy = [m for m in ('torch', 'transformers', 'faiss') if m in sys.modules]\n"
        "print(','.join(heavy) or 'none')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "none"
