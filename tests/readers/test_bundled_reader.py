"""The reader odqa trained and ships: the default, fully offline, and accurate on SQuAD dev."""

from __future__ import annotations

import json

import pytest

from odqa.readers.extractive import DEFAULT_READER
from odqa.runtime.hub import packaged_model_path

from conftest import REPO

BUNDLED = REPO / "odqa" / "models" / "reader-minilm"
MAX_BYTES = 25 * 1024 * 1024
DEV_SLICE = 300


def test_the_default_reader_is_the_bundled_one_and_small():
    assert DEFAULT_READER == "odqa/reader-minilm"
    assert packaged_model_path(DEFAULT_READER) == str(BUNDLED)
    size = sum(f.stat().st_size for f in BUNDLED.rglob("*") if f.is_file())
    assert size <= MAX_BYTES
    record = json.loads((BUNDLED / "odqa_training.json").read_text())
    assert record["kind"] == "reader" and record["finished"]
    assert record["params"]["base"] == "sentence-transformers/all-MiniLM-L6-v2"


@pytest.mark.slow
def test_bundled_reader_f1_on_a_fixed_squad_dev_slice(squad_dev):
    from odqa.evaluation.reading import evaluate_reading
    from odqa.readers.extractive import ExtractiveReader
    from odqa.training.data import load_qa_examples

    examples, _ = load_qa_examples([squad_dev])
    result = evaluate_reading(ExtractiveReader(), examples[:DEV_SLICE], progress=False)
    assert result.questions == DEV_SLICE
    assert result.f1 >= 80.0, result.to_dict()  # 84.42 measured; the issue asks >= 70


@pytest.mark.slow
def test_odqa_ask_with_no_reader_flag_returns_answer_spans(sample_index_dir):
    from typer.testing import CliRunner

    from odqa.cli import app

    result = CliRunner().invoke(app, [
        "ask", "Who received a patent for the telephone?", "--index", str(sample_index_dir),
        "--format", "jsonl", "--top", "3",
    ])
    assert result.exit_code == 0, result.output
    assert "notice:" not in result.stderr
    record = json.loads(result.stdout)
    assert record["mode"] == "extractive"
    best = record["answers"][0]
    assert best["context"][best["start"] : best["end"]] == best["text"]
    assert "Bell" in best["text"]
