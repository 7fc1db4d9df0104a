"""Query-side dense training (`odqa train dense --passage-encoder`), on tiny random models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from odqa.cli import app
from odqa.training.data import load_qa_examples
from odqa.training.dense import DenseTrainParams
from odqa.training.dense_query import QuerySideTrainTask, paragraph_vectors
from odqa.training.negatives import paragraph_table

pytestmark = pytest.mark.usefixtures("one_thread")

# The fourth paragraph also holds "paris": an answer-holder that is not the gold paragraph.
FACTS = [
    ("capitals", "paris is the capital of france .", "what is the capital of france ?", "paris"),
    ("capitals", "rome is the capital of italy .", "what is the capital of italy ?", "rome"),
    ("buildings", "the tower was built in 1889 .", "when was the tower built ?", "1889"),
    ("travel", "the train from paris to lyon is fast .", "where does the fast train go ?",
     "lyon"),
    ("buildings", "the museum was founded in 1990 .", "when was the museum founded ?", "1990"),
    ("capitals", "berlin is the capital of germany .", "what is the capital of germany ?",
     "berlin"),
]


def squad_json(path: Path) -> Path:
    articles: dict[str, list] = {}
    for i, (title, context, question, answer) in enumerate(FACTS):
        articles.setdefault(title, []).append({"context": context, "qas": [
            {"id": str(i), "question": question,
             "answers": [{"text": answer, "answer_start": context.index(answer)}]}]})
    data = {"data": [{"title": t, "paragraphs": ps} for t, ps in articles.items()]}
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory) -> Path:
    from tiny_models import save_tiny_bert

    return save_tiny_bert(tmp_path_factory.mktemp("tiny-base"), "BertModel")


def run_cli(*args) -> object:
    return CliRunner().invoke(app, [str(a) for a in args])


def make_task(base: Path, train: Path, scratch: Path) -> QuerySideTrainTask:
    from transformers import AutoTokenizer

    from odqa.encoders.spec import inspect_encoder

    examples, _ = load_qa_examples([train])
    paragraphs, ids = paragraph_table(examples)
    positive = np.array([ids[(e.title, e.context)] for e in examples])
    vectors, _ = paragraph_vectors(paragraphs, str(base), scratch, progress=False)
    return QuerySideTrainTask(examples, DenseTrainParams(base=str(base)),
                              inspect_encoder(str(base)),
                              AutoTokenizer.from_pretrained(str(base)),
                              paragraphs=paragraphs, positive=positive, vectors=vectors)


def test_answer_holders_are_masked_but_never_the_gold_paragraph(tiny_base, tmp_path):
    train = squad_json(tmp_path / "train.json")
    task = make_task(tiny_base, train, tmp_path / "scratch")
    examples, _ = load_qa_examples([train])
    paragraphs, ids = paragraph_table(examples)
    items = np.arange(len(examples))
    rows, cols = task.answer_mask(np.zeros((len(items), len(paragraphs)), dtype=np.float32), items)
    masked = set(zip(rows.tolist(), cols.tolist()))
    # The "paris" question: the travel paragraph holds "paris" too; nothing else is masked.
    paris = next(i for i, e in enumerate(examples) if e.answer_text == "paris")
    assert masked == {(paris, ids[("travel", FACTS[3][1])])}
    assert all(task.positive[r] != c for r, c in masked)


def test_paragraph_vectors_match_the_index_and_are_cached(tiny_base, tmp_path):
    train = squad_json(tmp_path / "train.json")
    examples, _ = load_qa_examples([train])
    paragraphs, _ = paragraph_table(examples)
    scratch = tmp_path / "scratch"
    vectors, info = paragraph_vectors(paragraphs, str(tiny_base), scratch, progress=False)
    assert info["precision"] == "fp32" and info["passage_encoder"] == str(tiny_base)
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": str(i), "title": t, "text": x}) + "\n"
                              for i, (t, x) in enumerate(paragraphs)), encoding="utf-8")
    built = run_cli("index", corpus, "--out", tmp_path / "index", "--retrievers", "dense",
                    "--encoder", tiny_base, "--passage-words", "0", "--precision", "fp32", "-q")
    assert built.exit_code == 0, built.output
    import faiss

    stored = faiss.read_index(str(tmp_path / "index" / "dense" / "index.faiss"))
    assert np.allclose(stored.reconstruct_n(0, stored.ntotal), vectors, atol=1e-5)
    stamp = (scratch / "vectors.npy").stat().st_mtime_ns
    again, _ = paragraph_vectors(paragraphs, str(tiny_base), scratch, progress=False)
    assert np.array_equal(again, vectors) and (scratch / "vectors.npy").stat().st_mtime_ns == stamp
    fewer, _ = paragraph_vectors(paragraphs[:3], str(tiny_base), scratch, progress=False)
    assert fewer.shape[0] == 3 and np.allclose(fewer, vectors[:3], atol=1e-5)


def test_paragraph_vectors_are_encoded_again_when_the_encoder_files_change(tiny_base, tmp_path):
    import shutil

    encoder = tmp_path / "encoder"
    shutil.copytree(tiny_base, encoder)
    train = squad_json(tmp_path / "train.json")
    examples, _ = load_qa_examples([train])
    paragraphs, _ = paragraph_table(examples)
    scratch = tmp_path / "scratch"
    first, _ = paragraph_vectors(paragraphs, str(encoder), scratch, progress=False)
    stamp = (scratch / "vectors.npy").stat().st_mtime_ns
    from tiny_models import save_tiny_bert

    save_tiny_bert(encoder, "BertModel", seed=11)  # retrained in place: same path, new weights
    second, _ = paragraph_vectors(paragraphs, str(encoder), scratch, progress=False)
    assert (scratch / "vectors.npy").stat().st_mtime_ns != stamp
    assert not np.allclose(first, second, atol=1e-4)


def gold_ranks(task: QuerySideTrainTask, model) -> np.ndarray:
    import torch

    from odqa.training.dense import QUERY_MAX_LENGTH, encode_texts

    with torch.no_grad():
        q = encode_texts(model, task.tokenizer, task.spec, task.questions, QUERY_MAX_LENGTH, "cpu")
    scores = q.numpy() @ task.vectors.T
    gold = scores[np.arange(len(scores)), task.positive]
    return (scores > gold[:, None]).sum(axis=1) + 1


def test_cli_query_side_training_ranks_gold_higher_and_indexes_as_a_pair(tiny_base, tmp_path):
    from transformers import AutoModel

    from odqa import load_index

    train = squad_json(tmp_path / "train.json")
    out = tmp_path / "question-encoder"
    result = run_cli("train", "dense", train, "--out", out,  # --base: the passage encoder
                     "--passage-encoder", tiny_base, "--epochs", "8", "--batch-size", "3",
                     "--lr", "3e-3", "--warmup", "0", "--precision", "fp32", "--device", "cpu")
    assert result.exit_code == 0, result.output
    record = json.loads((out / "odqa_training.json").read_text())
    assert record["mode"] == "query-side" and record["finished"]
    assert record["params"]["passage_encoder"] == record["params"]["base"] == str(tiny_base)
    assert record["params"]["hard_negatives"] is False and record["hard_negatives"] is None
    assert record["passage_vectors"]["precision"] == "fp32"
    assert not (tmp_path / "question-encoder.train-state-passages").exists()

    task = make_task(tiny_base, train, tmp_path / "scratch")
    before = gold_ranks(task, AutoModel.from_pretrained(str(tiny_base)).eval())
    after = gold_ranks(task, AutoModel.from_pretrained(str(out)).eval())
    assert after.mean() < before.mean() and (after == 1).sum() > (before == 1).sum()

    index_out = tmp_path / "index"
    built = run_cli("index", train, "--out", index_out, "--retrievers", "dense",
                    "--encoder", tiny_base, "--query-encoder", out, "--passage-words", "0", "-q")
    assert built.exit_code == 0, built.output
    manifest = json.loads((index_out / "manifest.json").read_text())
    encoders = manifest["families"]["dense"]["encoder"]
    assert encoders["shared"] is False
    hits = load_index(str(index_out)).search([FACTS[0][2]], k=2, retriever="dense")[0]
    assert len(hits) == 2


def test_a_base_of_another_width_is_refused_in_one_line(tiny_base, tmp_path):
    from tiny_models import save_tiny_bert

    wide = save_tiny_bert(tmp_path / "wide", "BertModel", hidden_size=48, intermediate_size=96)
    train = squad_json(tmp_path / "train.json")
    result = run_cli("train", "dense", train, "--out", tmp_path / "q", "--base", wide,
                     "--passage-encoder", tiny_base, "--precision", "fp32", "--device", "cpu")
    assert result.exit_code == 1
    assert "48-dimensional" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "q").exists()
    assert not (tmp_path / "q.train-state-passages").exists()  # refused before encoding
