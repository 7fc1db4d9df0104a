"""The shared input edge (odqa.io): line reading, JSON lines, TSV rows, SQuAD and BEIR files."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from odqa.errors import InputError
from odqa.io.beir import beir_corpus_file, pick_qrels, read_beir_queries, read_qrels
from odqa.io.lines import json_records, tsv_rows
from odqa.io.squad import is_squad_name, load_squad_articles, sniff_squad


def test_json_records_skip_blank_lines_and_name_bad_ones(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\n\n{"a": 2}\n[3]\n')
    with pytest.raises(InputError) as info:
        for _ in json_records(path):
            pass
    assert info.value.line == 4 and "JSON object" in info.value.reason
    path.write_text('{"a": 1}\n\n{"a": 2}\n', encoding="utf-8")
    records = list(json_records(path))
    assert [(n, r["a"]) for n, r, _ in records] == [(1, 1), (3, 2)]
    assert records[-1][2] == path.stat().st_size


def test_tsv_rows_count_lines_across_quoted_newlines(tmp_path: Path) -> None:
    path = tmp_path / "a.tsv.gz"
    with gzip.open(path, "wt", encoding="utf-8", newline="") as handle:
        handle.write('q1\t"two\nlines"\r\n\t\nq2\tx\n')
    assert list(tsv_rows(path)) == [(2, ["q1", "two\nlines"]), (4, ["q2", "x"])]


def test_squad_loader_reads_gzip_and_rejects_other_json(tmp_path: Path) -> None:
    good = tmp_path / "s.json.gz"
    with gzip.open(good, "wt", encoding="utf-8") as handle:
        json.dump({"data": [{"title": "T", "paragraphs": []}]}, handle)
    assert is_squad_name(good) and sniff_squad(good)
    assert load_squad_articles(good) == [{"title": "T", "paragraphs": []}]
    other = tmp_path / "o.json"
    other.write_text(json.dumps({"data": [1]}))
    with pytest.raises(InputError, match=r"data\[0\] is not an object"):
        load_squad_articles(other)
    assert not is_squad_name(tmp_path / "x.jsonl")


def test_beir_folder_parts(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"no corpus\.jsonl"):
        beir_corpus_file(tmp_path)
    (tmp_path / "corpus.jsonl.gz").write_bytes(gzip.compress(b'{"_id": "d1", "text": "x"}\n'))
    assert beir_corpus_file(tmp_path).name == "corpus.jsonl.gz"
    (tmp_path / "queries.jsonl").write_text('{"_id": 7, "text": "q"}\n')
    assert read_beir_queries(tmp_path) == {"7": "q"}
    qrels = tmp_path / "qrels"
    qrels.mkdir()
    (qrels / "train.tsv").write_text("query-id\tcorpus-id\tscore\n7\td1\t1\n")
    (qrels / "dev.tsv").write_text("7\t0\td1\t2\n")
    assert pick_qrels(tmp_path).name == "dev.tsv"
    assert read_qrels(pick_qrels(tmp_path)) == {"7": {"d1": 2}}
    assert read_qrels(qrels / "train.tsv") == {"7": {"d1": 1}}
