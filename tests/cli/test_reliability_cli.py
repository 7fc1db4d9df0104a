"""`search`, `ask` and `eval` check their arguments and outputs before working, refuse what they
cannot write correctly, and stream long runs with a progress bar."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from odqa.cli import app
from odqa.index.build import BuildOptions, build_index
from odqa.index.store import Index
from odqa.retrieval.dense_options import DenseOptions
from odqa.types import Answer, QuestionAnswers

from conftest import SAMPLE_CORPUS, SAMPLE_QUESTIONS
from tiny_models import save_sentence_transformers

runner = CliRunner()
QUESTION = "Who received a patent for the telephone?"


def invoke(*args: object, stdin: str | None = None) -> Result:
    return runner.invoke(app, [str(a) for a in args], input=stdin)


def one_line_error(result: Result, *fragments: str) -> str:
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    message = result.stderr.strip()
    assert "\n" not in message and message.startswith("error: "), message
    for fragment in fragments:
        assert fragment in message, message
    return message


def usage_error(result: Result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    flat = " ".join(result.output.replace("│", " ").split())
    for fragment in fragments:
        assert fragment in flat, result.output


@pytest.fixture(scope="module")
def index_dir(sample_index_dir: Path) -> Path:
    return sample_index_dir


@pytest.fixture(scope="module")
def hybrid_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hybrid")
    dense = DenseOptions(encoder=str(save_sentence_transformers(root / "st")), device="cpu")
    out = root / "idx"
    build_index([SAMPLE_CORPUS], out, BuildOptions(retrievers=("bm25", "dense"), dense=dense))
    return out


@pytest.fixture
def no_work(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records any search or evaluation that starts (none should when arguments are bad)."""
    import odqa.evaluation

    started: list[str] = []
    monkeypatch.setattr(Index, "search", lambda *a, **k: started.append("search") or [])
    monkeypatch.setattr(odqa.evaluation, "run_evaluation", lambda *a, **k: started.append("eval"))
    return started


def fake_closed_book(monkeypatch: pytest.MonkeyPatch, output: Path | None = None) -> list[int]:
    """Closed-book answers without a model; records each call's size (and output lines so far)."""
    import odqa.answering.closed_book as closed_book

    calls: list[int] = []

    def answer(questions, **options):
        if output is not None and calls:
            assert len(output.read_text().splitlines()) == sum(calls)
        calls.append(len(questions))
        return [QuestionAnswers(q.id, q.text, "closed-book", [Answer(1, "Bell", -0.5, 0.6)])
                for q in questions]  # fmt: skip

    monkeypatch.setattr(closed_book, "answer_closed_book", answer)
    return calls


# --- 9. outputs are checked before the work starts ----------------------------------------------


@pytest.mark.parametrize("flag", ["--plot", "--predictions-out"])
def test_eval_output_into_a_folder_fails_before_evaluating(
    index_dir: Path, tmp_path: Path, no_work: list[str], flag: str
) -> None:
    args = ["eval", SAMPLE_QUESTIONS, "--index", index_dir, flag, tmp_path, "-q"]
    one_line_error(invoke(*args), f"{flag} '{tmp_path}' is a folder")
    assert no_work == []


def test_eval_plot_into_an_unwritable_place(index_dir: Path, tmp_path: Path, no_work) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    plot = blocker / "plots" / "topk.png"
    one_line_error(invoke("eval", SAMPLE_QUESTIONS, "-i", index_dir, "--plot", plot),
                   f"cannot write --plot '{plot}'")  # fmt: skip
    assert no_work == []


@pytest.mark.parametrize("command", ["search", "ask"])
def test_output_into_a_folder_fails_before_searching(
    index_dir: Path, tmp_path: Path, no_work: list[str], command: str
) -> None:
    result = invoke(command, QUESTION, "-i", index_dir, "--output", tmp_path)
    one_line_error(result, f"--output '{tmp_path}' is a folder")
    assert no_work == []


def test_search_and_ask_create_missing_output_folders(
    index_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "runs" / "new" / "run.jsonl"
    result = invoke("search", "telephone patent", "-i", index_dir, "--format", "jsonl", "-o", run)
    assert result.exit_code == 0, result.output
    assert json.loads(run.read_text())["hits"]
    fake_closed_book(monkeypatch)
    answers = tmp_path / "answers" / "deep" / "a.jsonl"
    result = invoke("ask", QUESTION, "--mode", "closed-book", "--format", "jsonl", "-o", answers)
    assert result.exit_code == 0, result.output
    assert json.loads(answers.read_text())["answers"][0]["text"] == "Bell"


def test_eval_plot_parent_folders_are_made(index_dir: Path, tmp_path: Path) -> None:
    plot = tmp_path / "figures" / "new" / "topk.png"
    args = ["eval", SAMPLE_QUESTIONS, "-i", index_dir, "--plot", plot, "--latency-sample", "0"]
    result = invoke(*args, "-q", "--format", "json")
    assert result.exit_code == 0, result.output
    assert plot.read_bytes().startswith(b"\x89PNG")


# --- 10. TREC runs cannot carry whitespace ------------------------------------------------------


@pytest.fixture(scope="module")
def spaced_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("spaced")
    corpus = root / "c.jsonl"
    records = [{"id": "doc 1 x", "text": "the telephone patent"}, {"id": "d2", "text": "rivers"}]
    corpus.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    build_index([corpus], root / "idx", BuildOptions())
    return root / "idx"


def test_trec_refuses_a_passage_id_with_spaces(spaced_index: Path, tmp_path: Path) -> None:
    out = tmp_path / "run.trec"
    result = invoke("search", "rivers", "-i", spaced_index, "--format", "trec", "-o", out)
    one_line_error(result, "passage id 'doc 1 x' contains whitespace", "TREC")
    assert not out.exists()
    assert invoke("search", "rivers", "-i", spaced_index, "--format", "jsonl").exit_code == 0


def test_trec_refuses_spaces_in_an_index_without_the_record(spaced_index: Path, tmp_path) -> None:
    import shutil

    copy = tmp_path / "idx"
    shutil.copytree(spaced_index, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    del manifest["corpus"]["whitespace_id"]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    result = invoke("search", "telephone", "-i", copy, "--format", "trec")
    one_line_error(result, "passage id 'doc 1 x' contains whitespace")


def test_trec_refuses_a_query_id_with_spaces(index_dir: Path, no_work: list[str]) -> None:
    stdin = json.dumps({"id": "q 1", "question": "telephone"}) + "\n"
    result = invoke("search", "--queries", "-", "-i", index_dir, "--format", "trec", stdin=stdin)
    one_line_error(result, "query id 'q 1' contains whitespace")
    assert no_work == []


# --- 12. unknown retrievers ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["nonsense", "BM25"])
@pytest.mark.parametrize("command", ["search", "ask", "eval"])
def test_an_unknown_retriever_lists_the_choices(index_dir: Path, command: str, name: str) -> None:
    first = SAMPLE_QUESTIONS if command == "eval" else QUESTION
    result = invoke(command, first, "-i", index_dir, "--retriever", name)
    usage_error(result, f"unknown retriever '{name}': choose one of bm25, dense, phrase, hybrid")
    assert "rebuild" not in result.output


# --- 13. ask names its own option ---------------------------------------------------------------


@pytest.mark.parametrize("question", ["", "   "])
def test_ask_without_a_question_suggests_questions(index_dir: Path, question: str) -> None:
    message = one_line_error(invoke("ask", question, "-i", index_dir), "--questions FILE")
    assert "--queries" not in message


# --- 14. options that do nothing are usage errors -----------------------------------------------


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--retriever", "hybrid", "--alpha", "0.3"], "--alpha"),
        (["--retriever", "hybrid", "--fusion", "rrf", "--alpha", "0.3"], "--alpha"),
        (["--retriever", "hybrid", "--fusion", "linear", "--rrf-k", "10"], "--rrf-k"),
        (["--retriever", "bm25", "--depth", "50"], "--depth"),
        (["--retriever", "bm25", "--ef-search", "50"], "--ef-search"),
        (["--retriever", "dense", "--ef-search", "50"], "--ef-search"),
        (["--retriever", "hybrid", "--nprobe", "4"], "--nprobe"),
    ],
)
def test_search_options_that_do_nothing_exit_2(
    hybrid_index: Path, args: list[str], flag: str
) -> None:
    usage_error(invoke("search", "telephone", "-i", hybrid_index, *args), flag)


def test_tuned_hybrid_search_still_works(hybrid_index: Path) -> None:
    args = ["--retriever", "hybrid", "--fusion", "linear", "--alpha", "0.3", "--format", "jsonl"]
    result = invoke("search", "telephone patent", "-i", hybrid_index, *args)
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["hits"]) == 10


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--num-beams", "4"], "--num-beams"),
        (["--prefix", "q: "], "--prefix"),
        (["--score", "reader", "--retriever-weight", "0.5"], "--retriever-weight"),
        (["--mode", "closed-book", "--passages", "5"], "--passages"),
        (["--reader-kind", "generative", "--max-seq-length", "64"], "--max-seq-length"),
    ],
)
def test_ask_options_that_do_nothing_exit_2(index_dir: Path, args: list[str], flag: str) -> None:
    where = [] if "closed-book" in args else ["-i", index_dir]
    usage_error(invoke("ask", QUESTION, *where, *args), flag)


# --- 17. a folder that is not a model -----------------------------------------------------------


def test_a_reader_folder_that_is_not_a_model(index_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "my-reader"
    folder.mkdir()
    (folder / "notes.txt").write_text("not a model")
    result = invoke("ask", QUESTION, "-i", index_dir, "--reader", folder, "--device", "cpu")
    message = one_line_error(result, f"'{folder}' is a folder but not a reader model",
                             "no config.json", "--reader PATH")  # fmt: skip
    assert "HF_HUB_OFFLINE" not in message and "download" not in message


# --- long runs stream and show progress ---------------------------------------------------------


def test_many_questions_stream_in_batches_with_progress(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "answers.jsonl"
    calls = fake_closed_book(monkeypatch, output=out)
    stdin = "".join(f"question number {i}?\n" for i in range(40))
    args = ["ask", "--questions", "-", "--mode", "closed-book", "--format", "jsonl", "-o", out]
    result = invoke(*args, stdin=stdin)
    assert result.exit_code == 0, result.output
    assert calls == [16, 16, 8]
    ids = [json.loads(line)["question_id"] for line in out.read_text().splitlines()]
    assert ids == [str(i) for i in range(1, 41)]
    assert "questions" in result.stderr and "40/40" in result.stderr


def test_a_single_batch_shows_no_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_closed_book(monkeypatch)
    result = invoke("ask", QUESTION, "--mode", "closed-book", "--format", "jsonl")
    assert result.exit_code == 0 and result.stderr == ""


def test_thousands_of_queries_stream_in_batches_with_progress(
    index_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "run.trec"
    search = Index.search
    written: list[int] = []

    def counting(self, queries, *args, **kwargs):
        written.append(len(out.read_text().splitlines()) if out.exists() else 0)
        return search(self, queries, *args, **kwargs)

    monkeypatch.setattr(Index, "search", counting)
    stdin = "".join(f"telephone patent {i}\n" for i in range(2500))
    args = ["search", "--queries", "-", "-i", index_dir, "--format", "trec", "-k", "2", "-o", out]
    result = invoke(*args, stdin=stdin)
    assert result.exit_code == 0, result.output
    assert written == [0, 2000, 4000]
    lines = out.read_text().splitlines()
    assert len(lines) == 5000 and lines[-1].split()[0] == "2500"
    assert "2500/2500" in result.stderr


# --- queries that match nothing -----------------------------------------------------------------


def test_a_query_of_stopwords_says_no_passage_matched(index_dir: Path) -> None:
    result = invoke("search", "the of and", "-i", index_dir)
    assert result.exit_code == 0, result.output
    assert "no passage shares a term with the query" in result.stderr
    assert "'the of and'" in result.stderr


def test_unmatched_queries_are_counted_after_a_few_notices(index_dir: Path) -> None:
    stdin = "".join(f"{'ж' * (i + 1)}\n" for i in range(8)) + "telephone\n"
    result = invoke("search", "--queries", "-", "-i", index_dir, "--format", "jsonl", stdin=stdin)
    assert result.exit_code == 0, result.output
    assert result.stderr.count("no passage shares a term") == 5
    assert "8 queries found no passage" in result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [bool(r["hits"]) for r in records] == [False] * 8 + [True]
