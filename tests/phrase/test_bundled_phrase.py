"""The phrase model odqa trained and ships: the default phrase encoder, fully offline, small,
and answering SQuAD dev questions from a phrase index with no reader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from odqa.cli import app
from odqa.phrase.model import TOKENIZER_FILES
from odqa.runtime.hub import packaged_model_path

from conftest import REPO, SAMPLE_CORPUS, SAMPLE_QUESTIONS

BUNDLED = REPO / "odqa" / "models" / "phrase-minilm"
NAME = "odqa/phrase-minilm"
MAX_BYTES = 25 * 1024 * 1024
DEV_ARTICLES = 2
"""The dev slice: every paragraph and question of the first articles of SQuAD v1.1 dev."""
MIN_EM_AT_1 = 0.22
MIN_EM_AT_20 = 0.65
"""Measured on the slice, dense only: EM@1 0.284, EM@20 0.767 (threshold -4, sq8)."""
MIN_SPARSE_EM_AT_1 = 0.33
"""Dense + BM25 (the default with a bm25 index): measured EM@1 0.379, EM@20 0.842."""

runner = CliRunner()


def test_the_default_phrase_encoder_is_the_bundled_one_and_small():
    from odqa.phrase.index import PhraseOptions

    assert PhraseOptions().encoder == NAME
    assert packaged_model_path(NAME) == str(BUNDLED)
    size = sum(f.stat().st_size for f in BUNDLED.rglob("*") if f.is_file())
    assert size <= MAX_BYTES
    assert not any((BUNDLED / name).exists() for name in TOKENIZER_FILES)  # the base's is used
    record = json.loads((BUNDLED / "odqa_training.json").read_text())
    assert record["kind"] == "phrase" and record["finished"] and record["save"] == "delta"
    assert record["params"]["base"] == "sentence-transformers/all-MiniLM-L6-v2"


@pytest.mark.slow
def test_phrase_mode_answers_offline_with_the_default_model(tmp_path: Path):
    out = tmp_path / "phrase"
    built = runner.invoke(app, ["index", str(SAMPLE_CORPUS), "--out", str(out), "-q",
                                "--retrievers", "bm25,phrase"])
    assert built.exit_code == 0, built.output
    assert json.loads((out / "manifest.json").read_text())["families"]["phrase"]["encoder"] == NAME
    asked = runner.invoke(app, ["ask", "Which planet takes just 88 days to orbit the Sun?",
                                "-i", str(out), "--mode", "phrase", "--format", "jsonl",
                                "--top", "3"])
    assert asked.exit_code == 0, asked.output
    record = json.loads(asked.stdout)
    assert record["mode"] == "phrase"
    for answer in record["answers"]:
        assert answer["context"][answer["start"] : answer["end"]] == answer["text"]
    assert record["answers"][0]["text"] == "Mercury", record["answers"]
    # The bundled sample questions: measured EM@1 0.467, EM@5 0.900.
    evaluated = runner.invoke(app, ["eval", str(SAMPLE_QUESTIONS), "-i", str(out), "--mode",
                                    "phrase", "--k", "1,5", "--format", "json", "--quiet",
                                    "--latency-sample", "0"])
    assert evaluated.exit_code == 0, evaluated.output
    metrics = json.loads(evaluated.stdout)["systems"][0]["metrics"]
    assert metrics["em@1"] >= 0.35 and metrics["em@5"] >= 0.8, metrics


def _dev_slice(squad_dev: Path, folder: Path) -> tuple[Path, Path]:
    """The first articles of SQuAD dev as a corpus (one passage per paragraph) and their
    questions as JSON lines (SQuAD-open style: answers only)."""
    articles = json.loads(squad_dev.read_text(encoding="utf-8"))["data"][:DEV_ARTICLES]
    corpus, questions = folder / "corpus.jsonl", folder / "questions.jsonl"
    with corpus.open("w") as c, questions.open("w") as q:
        for a, article in enumerate(articles):
            for p, paragraph in enumerate(article["paragraphs"]):
                c.write(json.dumps({"id": f"{a}-{p}", "title": article["title"],
                                    "text": paragraph["context"]}) + "\n")
                for qa in paragraph["qas"]:
                    q.write(json.dumps({"id": qa["id"], "question": qa["question"],
                                        "answers": [x["text"] for x in qa["answers"]]}) + "\n")
    return corpus, questions


@pytest.mark.slow
def test_bundled_phrase_model_em_on_a_fixed_squad_dev_slice(squad_dev, tmp_path: Path):
    corpus, questions = _dev_slice(squad_dev, tmp_path)
    out = tmp_path / "index"
    built = runner.invoke(app, ["index", str(corpus), "--out", str(out), "-q",
                                "--passage-words", "0", "--retrievers", "bm25,phrase"])
    assert built.exit_code == 0, built.output

    def metrics(*extra: str) -> dict:
        result = runner.invoke(app, ["eval", str(questions), "-i", str(out), "--mode", "phrase",
                                     "--k", "1,20", "--format", "json", "--quiet",
                                     "--latency-sample", "0", *extra])
        assert result.exit_code == 0, result.output
        (system,) = json.loads(result.stdout)["systems"]
        return system["metrics"]

    dense = metrics("--phrase-sparse-weight", "0")
    assert dense["em@1"] >= MIN_EM_AT_1, dense
    assert dense["em@20"] >= MIN_EM_AT_20, dense
    with_bm25 = metrics()
    assert with_bm25["em@1"] >= MIN_SPARSE_EM_AT_1, with_bm25
    assert with_bm25["em@1"] >= dense["em@1"] + 0.05, (with_bm25, dense)
