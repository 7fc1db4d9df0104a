"""`odqa eval` end to end: retrieval, BEIR, predictions, failures, plots and the QA modes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from odqa import load_index
from odqa.cli import app
from odqa.evaluate import (
    beir_scores,
    documents_in_rank_order,
    first_hit_rank,
    has_answer,
    qa_scores,
)
from odqa.io.datasets import load_dataset

from conftest import SAMPLE_CORPUS, SAMPLE_QUESTIONS

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def eval_json(*args: str) -> dict:
    result = invoke("eval", *args, "--format", "json", "--quiet")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def sample_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("idx") / "sample"
    result = invoke("index", SAMPLE_CORPUS, "--out", out, "--retrievers", "bm25", "--quiet")
    assert result.exit_code == 0, result.output
    return out


def expected_ranks(index_path: Path, dataset: Path, k: int) -> list[int]:
    """First answer-bearing rank per question, computed through the public search API."""
    index = load_index(index_path)
    data = load_dataset(dataset)
    hits = index.search([q.question for q in data.questions], k=k, retriever="bm25")
    return [
        first_hit_rank(np.array([has_answer(q.answers, h.text) for h in hs]))
        for q, hs in zip(data.questions, hits)
    ]


def test_retrieval_metrics_match_the_search_api(sample_index, tmp_path):
    plot = tmp_path / "curves.png"
    out = tmp_path / "runs.jsonl"
    report = eval_json(
        SAMPLE_QUESTIONS, "--index", sample_index, "--k", "1,3,10",
        "--plot", plot, "--predictions-out", out,
    )  # fmt: skip
    ranks = np.array(expected_ranks(sample_index, SAMPLE_QUESTIONS, 10))
    (system,) = report["systems"]
    assert system["name"] == "bm25"
    assert report["questions"] == len(ranks) == 30
    for k in (1, 3, 10):
        assert system["metrics"][f"top-{k}"] == pytest.approx(np.mean((ranks > 0) & (ranks <= k)))
    mrr = np.mean([1 / r if r else 0.0 for r in ranks])
    assert system["metrics"]["mrr@10"] == pytest.approx(mrr)
    assert system["failed"] == 0
    assert system["latency"]["p95_ms"] >= system["latency"]["p50_ms"] > 0
    assert system["latency"]["questions_per_s"] > 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 30
    assert [r["first_hit"] or 0 for r in records] == ranks.tolist()
    assert all(1 <= len(r["passages"]) <= 10 for r in records)
    assert all(len(r["has_answer"]) == len(r["passages"]) for r in records)


def test_table_output_lists_every_cutoff(sample_index):
    result = invoke("eval", SAMPLE_QUESTIONS, "--index", sample_index, "--k", "2,7", "-q")
    assert result.exit_code == 0, result.output
    header = next(line for line in result.stdout.splitlines() if "top-2" in line)
    assert "top-7" in header and "mrr@7" in header and "failed" in header
    assert "bm25" in result.stdout


def test_limit_and_batch_size_do_not_change_scores(sample_index):
    small = eval_json(SAMPLE_QUESTIONS, "-i", sample_index, "--limit", "7", "--batch-size", "1")
    big = eval_json(SAMPLE_QUESTIONS, "-i", sample_index, "--limit", "7", "--batch-size", "64")
    assert small["questions"] == 7
    assert small["systems"][0]["metrics"] == big["systems"][0]["metrics"]


def test_a_failing_question_is_reported_and_counted(sample_index, tmp_path, monkeypatch):
    from odqa.retrieval.sparse import BM25Retriever

    original = BM25Retriever.search_ids

    def flaky(self, queries, k):
        if any("Neptune" in q for q in queries):
            raise RuntimeError("simulated failure")
        return original(self, queries, k)

    monkeypatch.setattr(BM25Retriever, "search_ids", flaky)
    result = invoke("eval", SAMPLE_QUESTIONS, "-i", sample_index, "--format", "json", "-q")
    assert result.exit_code == 0, result.output
    system = json.loads(result.stdout)["systems"][0]
    neptune = [q.id for q in load_dataset(SAMPLE_QUESTIONS).questions if "Neptune" in q.question]
    assert system["failed"] == len(neptune) >= 1
    assert [f["id"] for f in system["failures"]] == neptune
    assert "simulated failure" in system["failures"][0]["error"]
    assert f"question {neptune[0]} failed" in result.stderr
    # Failed questions stay in the denominator.
    assert system["metrics"]["top-100"] <= (30 - len(neptune)) / 30


def test_predictions_scoring_and_round_trip(tmp_path):
    dataset = tmp_path / "qa.jsonl"
    dataset.write_text(
        '{"id": "a", "question": "Capital of France?", "answers": ["Paris", "Paris, France"]}\n'
        '{"id": "b", "question": "Largest planet?", "answers": ["Jupiter"]}\n'
        '{"id": "c", "question": "Who wrote Hamlet?", "answers": ["William Shakespeare"]}\n'
        '{"id": "d", "question": "Which article?", "answers": ["The"]}\n'
    )
    predictions = tmp_path / "preds.json"
    predictions.write_text(json.dumps({"a": "paris.", "Largest planet?": "Saturn", "zzz": "x"}))
    out = tmp_path / "scored.jsonl"
    report = eval_json(dataset, "--predictions", predictions, "--predictions-out", out)
    (system,) = report["systems"]
    assert report["mode"] == "predictions"
    # A missing prediction scores 0 even against a gold that normalises to nothing ("The").
    assert system["metrics"]["em"] == pytest.approx(1 / 4)
    assert system["metrics"]["f1"] == pytest.approx(1 / 4)
    assert system["missing"] == 2 and system["unmatched"] == 1
    again = eval_json(dataset, "--predictions", out)
    assert again["systems"][0]["metrics"] == system["metrics"]


def test_regex_predictions_score_em_only(tmp_path):
    dataset = tmp_path / "curated.jsonl"
    dataset.write_text('{"question": "How tall?", "answer": ["20,?320\\\\s*f(ee|oo)t"]}\n')
    predictions = tmp_path / "p.jsonl"
    predictions.write_text('{"question": "How tall?", "prediction": "20320 feet"}\n')
    system = eval_json(dataset, "--predictions", predictions)["systems"][0]
    assert system["metrics"] == {"em": 1.0, "f1": None}
    no_regex = eval_json(dataset, "--predictions", predictions, "--no-regex")
    assert no_regex["systems"][0]["metrics"]["em"] == 0.0


def test_beir_folder_document_level(tmp_path):
    folder = tmp_path / "beir"
    (folder / "qrels").mkdir(parents=True)
    docs = [json.loads(line) for line in SAMPLE_CORPUS.read_text().splitlines()][:20]
    with (folder / "corpus.jsonl").open("w") as f:
        for d in docs:
            f.write(json.dumps({"_id": d["id"], "title": d["title"], "text": d["text"]}) + "\n")
    queries = [json.loads(line) for line in SAMPLE_QUESTIONS.read_text().splitlines()]
    queries = [q for q in queries if q["passage_id"] in {d["id"] for d in docs}]
    with (folder / "queries.jsonl").open("w") as f:
        for q in queries:
            f.write(json.dumps({"_id": q["id"], "text": q["question"]}) + "\n")
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n"
        + "".join(f"{q['id']}\t{q['passage_id']}\t1\n" for q in queries)
    )
    index_dir = tmp_path / "beir-idx"
    built = invoke(
        "index", folder, "--out", index_dir, "--passage-words", "20", "--retrievers", "bm25", "-q"
    )
    assert built.exit_code == 0, built.output
    system = eval_json(folder, "-i", index_dir)["systems"][0]
    index = load_index(index_dir)
    assert len(index.passages) > len(docs)  # documents were split into several passages
    hits = index.search([q["question"] for q in queries], k=len(index.passages))
    runs = {q["id"]: documents_in_rank_order(h.doc_id for h in hs) for q, hs in zip(queries, hits)}
    qrels = {q["id"]: {q["passage_id"]: 1} for q in queries}
    expected = beir_scores(runs, qrels)
    for name in ("ndcg@10", "recall@100", "mrr@10"):
        assert system["metrics"][name] == pytest.approx(expected[name])
    assert system["queries"] == len(queries)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--retriever", "dense"], "retriever 'dense' is not in index"),
        (["--index", "/nonexistent/idx"], "no index at"),
        (["--predictions", "p.json", "--mode", "retrieval"], "leave out --mode"),
        (["--mode", "open-book", "--plot", "x.png"], "--plot draws retrieval curves"),
        (["--k", "1,x"], "comma-separated integers"),
        (["--k", "0"], "positive integers"),
    ],
)
def test_bad_arguments_fail_cleanly(sample_index, args, message):
    if "--index" not in args:
        args = [*args, "--index", str(sample_index)]
    result = invoke("eval", SAMPLE_QUESTIONS, *args)
    assert result.exit_code in (1, 2)
    assert message in result.output
    assert "Traceback" not in result.output


def test_bad_dataset_line_exits_1_with_location(sample_index, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "ok?", "answer": "x"}\n{"question": "no answers"}\n')
    result = invoke("eval", bad, "--index", sample_index)
    assert result.exit_code == 1
    assert f"{bad}:2: missing 'answer' or 'answers'" in result.stderr


# --- QA modes with tiny random models ---------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_reader(tiny_qa_model: Path) -> Path:
    return tiny_qa_model


@pytest.fixture(scope="module")
def tiny_t5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tiny_models import save_tiny_t5

    return save_tiny_t5(tmp_path_factory.mktemp("t5"))


def check_qa_report(report: dict, out: Path, dataset: Path, mode: str) -> None:
    """Reported EM/F1 equal the per-question scores of the written predictions."""
    (system,) = report["systems"]
    assert report["mode"] == mode
    assert system["failed"] == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    data = load_dataset(dataset, limit=len(records))
    assert [r["id"] for r in records] == [q.id for q in data.questions]
    scores = [qa_scores(r["prediction"], q.answers) for r, q in zip(records, data.questions)]
    assert system["metrics"]["em"] == pytest.approx(np.mean([s["em"] for s in scores]))
    assert system["metrics"]["f1"] == pytest.approx(np.mean([s["f1"] for s in scores]))
    assert all(isinstance(r["prediction"], str) for r in records)
    rescored = eval_json(dataset, "--limit", str(len(records)), "--predictions", out)
    top_answer = {k: system["metrics"][k] for k in ("em", "f1")}
    assert rescored["systems"][0]["metrics"] == top_answer
    # Every answerer ranks several answers: EM@1 is the top answer's EM, EM@k grows with k.
    assert system["metrics"]["em@1"] == pytest.approx(system["metrics"]["em"])
    at_k = [system["metrics"][f"em@{k}"] for k in (1, 5, 20, 100)]
    assert at_k == sorted(at_k)


def test_open_book_with_a_tiny_reader(sample_index, tiny_reader, tmp_path):
    out = tmp_path / "open.jsonl"
    report = eval_json(
        SAMPLE_QUESTIONS, "-i", sample_index, "--mode", "open-book",
        "--reader", tiny_reader, "--passages", "3", "--limit", "6", "--predictions-out", out,
    )  # fmt: skip
    check_qa_report(report, out, SAMPLE_QUESTIONS, "open-book")
    assert report["systems"][0]["name"] == "bm25"
    # Extractive answers are spans of the retrieved passages.
    index = load_index(sample_index)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    hits = index.search([r["question"] for r in records], k=3)
    assert all(r["prediction"] in " ".join(h.text for h in hs) for r, hs in zip(records, hits))


def test_eval_and_ask_share_one_pipeline_and_its_options(sample_index, tiny_reader, tmp_path):
    """The same reader options give eval's top answers and ask's, question by question."""
    options = ("--reader", tiny_reader, "--passages", "3", "--max-answer-length", "5",
               "--backend", "torch", "--precision", "fp32", "--score", "combined")
    out = tmp_path / "eval.jsonl"
    eval_json(SAMPLE_QUESTIONS, "-i", sample_index, "--mode", "open-book", "--limit", "4",
              "--predictions-out", out, *options)
    evaluated = [json.loads(line) for line in out.read_text().splitlines()]
    asked = invoke("ask", "--questions", SAMPLE_QUESTIONS, "-i", sample_index, "--format",
                   "jsonl", "--top", "1", *options)
    assert asked.exit_code == 0, asked.output
    answers = [json.loads(line) for line in asked.stdout.splitlines()][:4]
    assert [a["answers"][0]["text"] for a in answers] == [r["prediction"] for r in evaluated]


def test_open_book_with_a_generative_reader(sample_index, tiny_t5, tmp_path):
    out = tmp_path / "generative.jsonl"
    report = eval_json(
        SAMPLE_QUESTIONS, "-i", sample_index, "--mode", "open-book", "--reader-kind",
        "generative", "--reader", tiny_t5, "--passages", "2", "--num-beams", "2",
        "--max-new-tokens", "4", "--limit", "3", "--predictions-out", out,
    )  # fmt: skip
    check_qa_report(report, out, SAMPLE_QUESTIONS, "open-book")
    assert report["systems"][0]["name"] == "bm25"


def test_closed_book_with_a_tiny_t5(tiny_t5, tmp_path):
    out = tmp_path / "closed.jsonl"
    report = eval_json(
        SAMPLE_QUESTIONS, "--mode", "closed-book", "--reader", tiny_t5,
        "--limit", "4", "--predictions-out", out,
    )  # fmt: skip
    check_qa_report(report, out, SAMPLE_QUESTIONS, "closed-book")
    assert report["systems"][0]["name"] == str(tiny_t5)


def test_missing_reader_is_a_run_error_not_a_question_failure(sample_index, tmp_path):
    result = invoke(
        "eval", SAMPLE_QUESTIONS, "-i", sample_index, "--mode", "open-book",
        "--reader", tmp_path / "no-such-model", "--limit", "2",
    )  # fmt: skip
    assert result.exit_code == 1
    assert "no-such-model" in result.stderr


# --- plot -------------------------------------------------------------------------------------


def test_plot_has_one_line_per_retriever(tmp_path):
    from odqa.evaluate import top_k_curve
    from odqa.plot import save_top_k_plot

    curves = {
        "bm25": top_k_curve([1, 3, 0, 7, 2], 100),
        "dense": top_k_curve([2, 1, 1, 50, 0], 100),
        "hybrid": top_k_curve([1, 1, 1, 4, 90], 100),
    }
    path = tmp_path / "sub" / "topk.png"
    figure = save_top_k_plot(path, curves, marks=[1, 5, 20, 100], title="t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (axes,) = figure.axes
    assert len(axes.lines) == 3
    assert [line.get_label() for line in axes.lines] == ["bm25", "dense", "hybrid"]
    assert axes.get_xscale() == "log"
    for line, curve in zip(axes.lines, curves.values()):
        assert np.allclose(line.get_ydata(), 100 * curve)
        assert line.get_xdata()[0] == 1 and line.get_xdata()[-1] == 100
    assert [t.get_text() for t in axes.get_xticklabels()] == ["1", "5", "20", "100"]


# --- several retrievers side by side ----------------------------------------------------------


@pytest.fixture(scope="module")
def hybrid_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample corpus with BM25 and a dense index from a tiny random BERT encoder."""
    from odqa.index.build import BuildOptions, build_index
    from odqa.io.corpus import CorpusOptions
    from odqa.retrieval.dense_options import DenseOptions

    from tiny_models import save_tiny_bert

    root = tmp_path_factory.mktemp("hybrid")
    encoder = save_tiny_bert(root / "encoder", "BertModel")
    options = BuildOptions(
        corpus=CorpusOptions(passage_words=0),
        retrievers=("bm25", "dense"),
        dense=DenseOptions(encoder=str(encoder), device="cpu", batch_size=16),
    )
    build_index([SAMPLE_CORPUS], root / "index", options)
    return root / "index"


def test_retrievers_side_by_side_with_plot(hybrid_index, tmp_path, monkeypatch):
    import odqa.plot

    figures = []
    original = odqa.plot.save_top_k_plot

    def keep(*args, **kwargs):
        figures.append(original(*args, **kwargs))
        return figures[-1]

    monkeypatch.setattr(odqa.plot, "save_top_k_plot", keep)
    plot = tmp_path / "topk.png"
    report = eval_json(
        SAMPLE_QUESTIONS, "-i", hybrid_index, "--retriever", "bm25,dense,hybrid",
        "--k", "1,5,20", "--plot", plot,
    )  # fmt: skip
    names = [s["name"] for s in report["systems"]]
    assert names == ["bm25", "dense", "hybrid"]
    data = load_dataset(SAMPLE_QUESTIONS)
    index = load_index(hybrid_index)
    for system in report["systems"]:
        hits = index.search([q.question for q in data.questions], k=20, retriever=system["name"])
        ranks = np.array(
            [
                first_hit_rank(np.array([has_answer(q.answers, h.text) for h in hs]))
                for q, hs in zip(data.questions, hits)
            ]
        )
        for k in (1, 5, 20):
            expected = np.mean((ranks > 0) & (ranks <= k))
            assert system["metrics"][f"top-{k}"] == pytest.approx(expected), system["name"]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (figure,) = figures
    assert [line.get_label() for line in figure.axes[0].lines] == names
    assert all(len(line.get_xdata()) == 20 for line in figure.axes[0].lines)


def test_latency_percentiles_come_from_single_question_timings():
    import time

    from odqa.evaluation.runner import timed_run
    from odqa.types import Query

    questions = [Query(str(i), "slow" if i % 10 == 9 else "fast") for i in range(40)]

    def call(batch):
        time.sleep(sum(0.02 if q.text == "slow" else 0.001 for q in batch))
        return [q.text for q in batch]

    amortised = timed_run(questions, call, batch_size=10, progress=None, label="x")[1]
    sampled = timed_run(
        questions, call, batch_size=10, progress=None, label="x", latency_sample=40
    )[1]
    # one slow question in ten: the amortised view hides it, single-question timing shows it
    assert amortised["p95_ms"] < 5
    assert sampled["p95_ms"] >= 15 and sampled["p50_ms"] < 5
    assert sampled["latency_questions"] == 40
    assert sampled["questions_per_s"] == pytest.approx(amortised["questions_per_s"], rel=0.5)
