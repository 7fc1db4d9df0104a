"""`odqa index` never loses data: what --force may replace, corpus inside --out, build locking,
SIGTERM, stale partial builds, passage id clashes, --name, unused options, resume chunks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from odqa import load_index
from odqa.cli import app
from odqa.index.build import BuildLock, lock_path

from conftest import REPO

TOPICS = {
    "rivers": "The Nile is a long river flowing north through Egypt into the sea.",
    "telephone": "Alexander Graham Bell received a patent for the telephone in 1876.",
}


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("ODQA_INDEX_DIR", str(tmp_path / "indexes"))
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def cli(runner: CliRunner, *args: object) -> Result:
    argv = [str(a) for a in args]
    if argv[:1] == ["index"] and not any(a.startswith("--retrievers") for a in argv):
        argv.append("--retrievers=bm25")
    return runner.invoke(app, argv)


def write_corpus(path: Path, records: list[dict] | None = None) -> Path:
    if records is None:
        records = [{"id": k, "title": k.title(), "text": v} for k, v in TOPICS.items()]
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def one_line_error(result: Result, *fragments: str) -> str:
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    message = result.stderr.strip()
    assert "\n" not in message and message.startswith("error: "), message
    for fragment in fragments:
        assert fragment in message, message
    return message


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*")
            if p.is_file()}  # fmt: skip


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".tmp-" in p.name or p.suffix == ".lock")


# --- 1. --force replaces only an odqa index --------------------------------------------------


def test_force_refuses_a_folder_that_is_not_an_index(runner: CliRunner, tmp_path: Path) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "notes.txt").write_text("my notes", encoding="utf-8")
    corpus = write_corpus(tmp_path / "c.jsonl")
    result = cli(runner, "index", corpus, "--out", folder, "--force", "-q")
    one_line_error(result, f"'{folder}'", "not an odqa index", "notes.txt")
    assert snapshot(folder) == {"notes.txt": b"my notes"}
    assert leftovers(tmp_path) == []


def test_force_replaces_an_index_and_a_damaged_one(runner: CliRunner, tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "c.jsonl")
    out = tmp_path / "idx"
    assert cli(runner, "index", corpus, "--out", out, "-q").exit_code == 0
    (out / "manifest.json").write_text("[]", encoding="utf-8")
    result = cli(runner, "index", corpus, "--out", out, "--force", "-q")
    assert result.exit_code == 0, result.output
    assert [p.id for p in load_index(out).passages] == list(TOPICS)


def test_an_empty_folder_is_built_into(runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "empty"
    out.mkdir()
    result = cli(runner, "index", write_corpus(tmp_path / "c.jsonl"), "--out", out, "-q")
    assert result.exit_code == 0, result.output
    assert len(load_index(out).passages) == len(TOPICS)


# --- 2. the corpus inside --out --------------------------------------------------------------


@pytest.mark.parametrize("already_an_index", [False, True])
def test_corpus_inside_out_is_refused(
    runner: CliRunner, tmp_path: Path, already_an_index: bool
) -> None:
    project = tmp_path / "proj"
    if already_an_index:
        built = cli(runner, "index", write_corpus(tmp_path / "c.jsonl"), "--out", project, "-q")
        assert built.exit_code == 0
    else:
        project.mkdir()
        (project / "draft.md").write_text("keep me", encoding="utf-8")
    corpus = write_corpus(project / "corpus.jsonl")
    before = snapshot(project)
    result = cli(runner, "index", corpus, "--out", project, "--force", "-q")
    one_line_error(result, "lies inside --out")
    assert snapshot(project) == before
    assert leftovers(tmp_path) == []


# --- 3. one build of a target at a time -------------------------------------------------------

SLOW_BUILD = """
import sys, time
from pathlib import Path
from odqa.retrieval import sparse

started = Path(sys.argv[1])
add = sparse.SparseBuilder.add

def slow_add(self, text):
    if not started.exists():
        started.write_text("building")
        time.sleep(60)
    add(self, text)

sparse.SparseBuilder.add = slow_add
from odqa.cli import app
app(sys.argv[2:], prog_name="odqa")
"""


@pytest.fixture
def slow_build(tmp_path: Path):
    """Start a build of ``tmp_path/idx`` in another process that stalls once it is under way."""
    corpus = write_corpus(tmp_path / "c.jsonl")
    script = tmp_path / "slow_build.py"
    script.write_text(SLOW_BUILD, encoding="utf-8")
    started = tmp_path / "started"
    out = tmp_path / "idx"
    argv = [sys.executable, str(script), str(started), "index", str(corpus), "--out", str(out),
            "--retrievers", "bm25", "-q"]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, cwd=tmp_path)  # fmt: skip
    deadline = time.monotonic() + 60
    while not started.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the build did not start"
        time.sleep(0.05)
    yield process, corpus, out
    if process.poll() is None:
        process.kill()
        process.wait()


def test_a_second_build_fails_at_once_naming_the_first(
    runner: CliRunner, tmp_path: Path, slow_build
) -> None:
    process, corpus, out = slow_build
    started = time.monotonic()
    result = cli(runner, "index", corpus, "--out", out, "--force", "-q")
    one_line_error(result, f"another build of {out} is running (pid {process.pid})")
    assert time.monotonic() - started < 10
    assert process.poll() is None


def test_sigterm_cleans_up_and_exits_143(tmp_path: Path, slow_build) -> None:
    process, _, out = slow_build
    assert (tmp_path / "idx.tmp-build").is_dir()
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert "terminated" in stderr and "Traceback" not in stderr
    assert not out.exists()
    assert leftovers(tmp_path) == []


def test_a_lock_held_in_this_process_blocks_a_build(runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "idx"
    with BuildLock(out):
        result = cli(runner, "index", write_corpus(tmp_path / "c.jsonl"), "--out", out, "-q")
    one_line_error(result, f"(pid {os.getpid()})")
    assert not out.exists()


def test_a_stale_lock_is_taken_over(runner: CliRunner, tmp_path: Path) -> None:
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)  # fmt: skip
    dead = int(finished.stdout)
    out = tmp_path / "idx"
    lock_path(out).write_text(f"{dead}\n", encoding="ascii")
    result = cli(runner, "index", write_corpus(tmp_path / "c.jsonl"), "--out", out, "-q")
    assert result.exit_code == 0, result.output
    assert f"took over the lock of build pid {dead}" in result.stderr
    assert len(load_index(out).passages) == len(TOPICS)
    assert leftovers(tmp_path) == []


# --- 4. --out a file, --out . -----------------------------------------------------------------


def test_out_an_existing_file_is_an_error(runner: CliRunner, tmp_path: Path) -> None:
    target = tmp_path / "results.txt"
    target.write_text("precious", encoding="utf-8")
    result = cli(runner, "index", write_corpus(tmp_path / "c.jsonl"), "--out", target, "-q")
    one_line_error(result, f"'{target}' is a file")
    assert target.read_text(encoding="utf-8") == "precious"
    assert leftovers(tmp_path) == []


def test_out_dot_builds_in_the_working_folder(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = write_corpus(tmp_path / "c.jsonl")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    result = cli(runner, "index", corpus, "--out", ".", "-q")
    assert result.exit_code == 0, result.output
    assert Path.cwd() == work and (work / "manifest.json").is_file()
    assert [p.id for p in load_index(work).passages] == list(TOPICS)
    again = cli(runner, "index", corpus, "--out", ".", "--force", "-q")
    assert again.exit_code == 0, again.output
    assert Path(os.getcwd()).samefile(work) and len(load_index(work).passages) == len(TOPICS)
    assert leftovers(tmp_path) == []


def test_out_dot_in_a_folder_of_other_files_is_refused(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = write_corpus(tmp_path / "c.jsonl")
    work = tmp_path / "work"
    work.mkdir()
    (work / "thesis.tex").write_text("chapter one", encoding="utf-8")
    monkeypatch.chdir(work)
    one_line_error(cli(runner, "index", corpus, "--out", ".", "--force", "-q"), "not an odqa index")
    assert snapshot(work) == {"thesis.tex": b"chapter one"}


# --- 5. passage ids are unique ----------------------------------------------------------------

LONG = " ".join(f"word{i}" for i in range(150))


@pytest.mark.parametrize(
    ("records", "line", "fragments"),
    [
        ([{"id": "a", "text": LONG}, {"id": "a#0", "text": "short"}], 2,
         ["document id 'a#0' is also the id of passage 0 of document 'a'", "c.jsonl:1"]),
        ([{"id": "a#1", "text": "short"}, {"id": "a", "text": LONG}], 2,
         ["passage id 'a#1' of split document 'a' is also the id of the document at", "c.jsonl:1"]),
    ],
    ids=["document-after", "document-before"],
)  # fmt: skip
def test_a_document_id_clashing_with_a_passage_id_is_refused(
    runner: CliRunner, tmp_path: Path, records: list[dict], line: int, fragments: list[str]
) -> None:
    corpus = write_corpus(tmp_path / "c.jsonl", records)
    result = cli(runner, "index", corpus, "--out", tmp_path / "idx", "-q")
    one_line_error(result, f"{corpus}:{line}: ", *fragments)
    assert not (tmp_path / "idx").exists() and leftovers(tmp_path) == []


def test_ids_that_only_look_like_passage_ids_are_fine(runner: CliRunner, tmp_path: Path) -> None:
    records = [
        {"id": "a", "text": LONG},
        {"id": "a#2", "text": "no third window"},
        {"id": "a#00", "text": "not a window number"},
        {"id": "b#0", "text": "no b"},
    ]
    corpus = write_corpus(tmp_path / "c.jsonl", records)
    result = cli(runner, "index", corpus, "--out", tmp_path / "idx", "-q")
    assert result.exit_code == 0, result.output
    ids = [p.id for p in load_index(tmp_path / "idx").passages]
    assert ids == ["a#0", "a#1", "a#2", "a#00", "b#0"] and len(set(ids)) == len(ids)


# --- 16. --name is a name ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../../x", "a/b", "..", "."])
def test_name_must_not_be_a_path(runner: CliRunner, tmp_path: Path, name: str) -> None:
    result = cli(runner, "index", write_corpus(tmp_path / "c.jsonl"), "--name", name, "-q")
    assert result.exit_code == 2, result.output
    assert "not a plain name" in result.output
    assert not (tmp_path.parent / "x").exists() and not (tmp_path / "indexes").exists()


# --- 14. options that do nothing are usage errors ---------------------------------------------


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--passage-words", "0", "--passage-stride", "5"], "--passage-stride"),
        (["--retrievers", "dense", "--k1", "1.2"], "--k1"),
        (["--retrievers", "bm25", "--encoder", "x/y"], "--encoder"),
        (["--retrievers", "bm25,dense", "--hnsw-m", "8"], "--hnsw-m"),
        (["--retrievers", "bm25,dense", "--faiss", "hnsw", "--nlist", "8"], "--nlist"),
        (["--delta", "0.3"], "--delta"),
        (["--bm25", "bm25l", "--epsilon", "0.1"], "--epsilon"),
    ],
)
def test_build_options_that_do_nothing_exit_2(
    runner: CliRunner, tmp_path: Path, args: list[str], flag: str
) -> None:
    corpus = write_corpus(tmp_path / "c.jsonl")
    result = cli(runner, "index", corpus, "--out", tmp_path / "i", *args)
    assert result.exit_code == 2, result.output
    assert flag in result.output
    assert not (tmp_path / "i").exists()


# --- stale partial builds -----------------------------------------------------------------------


def test_a_stale_partial_build_is_reported_and_removed(runner: CliRunner, tmp_path: Path) -> None:
    stale = tmp_path / "idx.tmp-build"
    (stale / "bm25-chunks").mkdir(parents=True)
    (stale / "passages.jsonl").write_text("half", encoding="utf-8")
    corpus = write_corpus(tmp_path / "c.jsonl")
    result = cli(runner, "index", corpus, "--out", tmp_path / "idx", "-q")
    assert result.exit_code == 0, result.output
    assert f"removing the partial build left in {stale}" in result.stderr
    assert leftovers(tmp_path) == []


def test_a_foreign_folder_named_like_a_partial_build_is_kept(
    runner: CliRunner, tmp_path: Path
) -> None:
    foreign = tmp_path / "idx.tmp-build"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine", encoding="utf-8")
    corpus = write_corpus(tmp_path / "c.jsonl")
    result = cli(runner, "index", corpus, "--out", tmp_path / "idx", "-q")
    one_line_error(result, f"'{foreign}' is in the way and was not made by odqa")
    assert snapshot(foreign) == {"keep.txt": b"mine"}


# --- --resume keeps work in small chunks --------------------------------------------------------


def test_a_killed_1500_passage_build_resumes_with_work_kept(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from odqa.encoders import DualEncoder

    from tiny_models import save_sentence_transformers

    encoder = save_sentence_transformers(tmp_path / "tiny-st")
    words = "paris river music piano tower bridge king queen water light".split()
    records = [{"id": f"p{i}", "text": f"{words[i % 10]} {words[i * 7 % 10]} number {i}"}
               for i in range(1500)]  # fmt: skip
    corpus = write_corpus(tmp_path / "c.jsonl", records)
    args = ["index", corpus, "--out", tmp_path / "idx", "--retrievers", "dense", "--encoder",
            encoder, "--device", "cpu", "--batch-size", "256", "-q"]  # fmt: skip
    original = DualEncoder.encode_passages
    encoded: list[int] = []

    def killed_on_the_second_chunk(self, passages, *rest, **options):
        if len(encoded) == 1:
            raise KeyboardInterrupt
        encoded.append(len(passages))
        return original(self, passages, *rest, **options)

    monkeypatch.setattr(DualEncoder, "encode_passages", killed_on_the_second_chunk)
    assert cli(runner, *args).exit_code == 130
    assert encoded == [1024]
    chunks = sorted((tmp_path / "idx.tmp-build" / "dense" / "chunks").iterdir())
    assert [c.name for c in chunks] == ["00000.npy", "00000.owners.npy"]

    def counted(self, passages, *rest, **options):
        encoded.append(len(passages))
        return original(self, passages, *rest, **options)

    monkeypatch.setattr(DualEncoder, "encode_passages", counted)
    resumed = cli(runner, *args, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert "resuming the interrupted build" in resumed.stderr
    assert encoded == [1024, 476]
    assert len(load_index(tmp_path / "idx").passages) == 1500
