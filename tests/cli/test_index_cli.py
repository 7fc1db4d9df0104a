"""`odqa index` and `odqa info` through the CLI: targets, --force, failed builds, bad input."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from odqa import load_index
from odqa.cli import app
from odqa.index import build as build_module
from odqa.io.corpus import iter_passages

TOPICS = {
    "rivers": "The Nile is a long river flowing north through Egypt into the sea.",
    "mountains": "Everest is the highest mountain above sea level in the Himalaya.",
    "telephone": "Alexander Graham Bell received a patent for the telephone in 1876.",
    "coffee": "Coffee beans are roasted seeds of the coffee plant grown in Ethiopia.",
}


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("ODQA_INDEX_DIR", str(tmp_path / "indexes"))
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def cli(runner: CliRunner, *args: object) -> Result:
    """Invoke odqa; `odqa index` builds BM25 only (ingestion is under test, not encoding)."""
    argv = [str(a) for a in args]
    if argv[:1] == ["index"] and "--retrievers" not in argv:
        argv.append("--retrievers=bm25")
    return runner.invoke(app, argv)


def write_corpus(path: Path, records: list[dict] | None = None, tail: str = "") -> Path:
    if records is None:
        records = [{"id": k, "title": k.title(), "text": v} for k, v in TOPICS.items()]
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + tail, encoding="utf-8")
    return path


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".tmp-" in p.name)


def assert_one_line_error(result: Result, *fragments: str) -> str:
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    message = result.stderr.strip()
    assert "\n" not in message, message
    assert message.startswith("error: ")
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in message
    return message


def manifest(index: Path) -> dict:
    return json.loads((index / "manifest.json").read_text(encoding="utf-8"))


@pytest.fixture
def built(runner: CliRunner, tmp_path: Path) -> Path:
    corpus = write_corpus(tmp_path / "corpus.jsonl")
    out = tmp_path / "idx"
    assert cli(runner, "index", corpus, "--out", out, "-q").exit_code == 0
    return out


# --- successful builds ------------------------------------------------------------------------


def test_index_with_out_builds_a_searchable_index(runner: CliRunner, tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus.jsonl", tail="\n")
    out = tmp_path / "nested" / "idx"
    result = cli(runner, "index", corpus, "--out", out)
    assert result.exit_code == 0, result.output
    assert f"index written to {out}" in result.stderr
    assert re.search(r"passages[\s│|]+4\b", result.stderr)
    assert leftovers(out.parent) == []
    index = load_index(out)
    assert [p.id for p in index.passages] == list(TOPICS)
    hits = index.search(["patent for the telephone"], k=2)[0]
    assert hits[0].id == "telephone"
    info = manifest(out)["corpus"]
    assert (info["documents"], info["passages"], info["empty_skipped"]) == (4, 4, 0)
    assert info["inputs"] == [str(corpus.resolve())]


def test_name_goes_under_the_index_dir(runner: CliRunner, tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus.jsonl")
    assert cli(runner, "index", corpus, "--name", "mine", "-q").exit_code == 0
    assert (tmp_path / "indexes" / "mine" / "manifest.json").is_file()


def test_default_name_is_the_first_input_stem(runner: CliRunner, tmp_path: Path) -> None:
    plain = write_corpus(tmp_path / "plain.jsonl")
    packed = tmp_path / "wiki.jsonl.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    assert cli(runner, "index", packed, "-q").exit_code == 0
    assert manifest(tmp_path / "indexes" / "wiki")["corpus"]["documents"] == len(TOPICS)


def test_field_names_format_and_splitting_options(runner: CliRunner, tmp_path: Path) -> None:
    corpus = write_corpus(
        tmp_path / "docs.data",
        [
            {"doc": "long", "heading": "H", "body": " ".join(f"w{i}" for i in range(10))},
            {"doc": "short", "heading": "S", "body": "three short words"},
        ],
    )
    out = tmp_path / "idx"
    result = cli(
        runner, "index", corpus, "--out", out, "--format", "jsonl", "--id-field", "doc",
        "--title-field", "heading", "--text-field", "body", "--passage-words", "4",
        "--passage-stride", "3", "-q",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    passages = list(load_index(out).passages)
    assert [(p.id, p.doc_id, p.title) for p in passages] == [
        ("long#0", "long", "H"),
        ("long#1", "long", "H"),
        ("long#2", "long", "H"),
        ("short", "short", "S"),
    ]
    assert passages[-2].text.split()[-1] == "w9"
    recorded = manifest(out)["corpus"]["options"]
    assert (recorded["passage_words"], recorded["passage_stride"]) == (4, 3)
    assert (recorded["id_field"], recorded["text_field"], recorded["format"]) == (
        "doc",
        "body",
        "jsonl",
    )


def test_several_inputs_of_different_formats(runner: CliRunner, tmp_path: Path) -> None:
    jsonl = write_corpus(tmp_path / "a.jsonl")
    tsv = tmp_path / "b.tsv"
    tsv.write_text('id\ttext\ttitle\nt1\t"quoted ""text"""\tT\n', encoding="utf-8")
    folder = tmp_path / "notes"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "n.txt").write_text("a note about tea", encoding="utf-8")
    out = tmp_path / "idx"
    assert cli(runner, "index", jsonl, tsv, folder, "--out", out, "-q").exit_code == 0
    passages = list(load_index(out).passages)
    assert [p.id for p in passages] == [*TOPICS, "t1", "sub/n.txt"]
    assert passages[len(TOPICS)].text == 'quoted "text"'
    assert manifest(out)["corpus"]["documents"] == len(TOPICS) + 2


def test_empty_documents_in_summary_and_manifest(runner: CliRunner, tmp_path: Path) -> None:
    records = [
        {"id": "a", "text": "something to index"},
        {"id": "b", "text": ""},
        {"id": "c", "text": "   "},
    ]
    corpus = write_corpus(tmp_path / "c.jsonl", records)
    out = tmp_path / "idx"
    result = cli(runner, "index", corpus, "--out", out)
    assert result.exit_code == 0, result.output
    assert re.search(r"empty documents skipped[\s│|]+2\b", result.stderr)
    info = manifest(out)["corpus"]
    assert (info["documents"], info["passages"], info["empty_skipped"]) == (3, 1, 2)


def test_real_squad_dev_file(runner: CliRunner, tmp_path: Path, squad_dev: Path) -> None:
    out = tmp_path / "squad"
    result = cli(runner, "index", squad_dev, "--out", out, "--passage-words", "0", "-q")
    assert result.exit_code == 0, result.output
    info = manifest(out)["corpus"]
    assert (info["documents"], info["passages"], info["empty_skipped"]) == (2067, 2067, 0)
    assert load_index(out).passages[0].id.endswith("#0")


# --- replacing and failing builds -------------------------------------------------------------


def test_existing_index_is_not_overwritten_without_force(
    runner: CliRunner, built: Path, tmp_path: Path
) -> None:
    before = snapshot(built)
    other = write_corpus(tmp_path / "other.jsonl", [{"id": "x", "text": "other"}])
    result = cli(runner, "index", other, "--out", built, "-q")
    assert_one_line_error(result, str(built), "already exists", "--force")
    assert snapshot(built) == before


def test_force_replaces_the_index(runner: CliRunner, built: Path, tmp_path: Path) -> None:
    other = write_corpus(tmp_path / "other.jsonl", [{"id": "x", "text": "replacement text"}])
    result = cli(runner, "index", other, "--out", built, "--force", "-q")
    assert result.exit_code == 0, result.output
    assert [p.id for p in load_index(built).passages] == ["x"]
    assert leftovers(built.parent) == []


def late_bad_corpus(path: Path, bad_line: str) -> tuple[Path, int]:
    records = [
        {"id": f"d{i}", "text": f"passage number {i} about topic {i % 7}"} for i in range(300)
    ]
    write_corpus(path, records, tail=bad_line + "\n")
    return path, len(records) + 1


@pytest.mark.parametrize(
    ("bad_line", "reason"),
    [('{"id": "late", "text": ', "invalid JSON"), ('{"id": "d5", "text": "again"}', "duplicate")],
)
def test_failed_force_build_leaves_the_old_index(
    runner: CliRunner, built: Path, tmp_path: Path, bad_line: str, reason: str
) -> None:
    before = snapshot(built)
    corpus, line = late_bad_corpus(tmp_path / "big.jsonl", bad_line)
    result = cli(runner, "index", corpus, "--out", built, "--force", "-q")
    assert_one_line_error(result, f"{corpus}:{line}: {reason}")
    assert snapshot(built) == before
    assert leftovers(built.parent) == []
    assert load_index(built).search(["telephone patent"], k=1)[0][0].id == "telephone"


def test_failed_first_build_leaves_nothing(runner: CliRunner, tmp_path: Path) -> None:
    corpus, line = late_bad_corpus(tmp_path / "big.jsonl", '{"id": "x"}')
    out = tmp_path / "idx"
    result = cli(runner, "index", corpus, "--out", out, "-q")
    assert_one_line_error(result, f"{corpus}:{line}: missing text field 'text'")
    assert not out.exists()
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("has_old", [True, False])
def test_interrupted_build_leaves_the_old_index(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, has_old: bool
) -> None:
    out = tmp_path / "idx"
    if has_old:
        corpus = write_corpus(tmp_path / "c.jsonl")
        assert cli(runner, "index", corpus, "--out", out, "-q").exit_code == 0
        before = snapshot(out)
    seen = []

    def interrupted(*args, **kwargs):
        for passage in iter_passages(*args, **kwargs):
            seen.append(passage.id)
            if len(seen) == 50:
                raise KeyboardInterrupt
            yield passage

    monkeypatch.setattr(build_module, "iter_passages", interrupted)
    corpus, _ = late_bad_corpus(tmp_path / "big.jsonl", "")
    result = cli(runner, "index", corpus, "--out", out, "--force", "-q")
    assert result.exit_code == 130
    assert "interrupted" in result.stderr
    assert "Traceback" not in result.output
    assert len(seen) == 50
    assert leftovers(tmp_path) == []
    if has_old:
        assert snapshot(out) == before
    else:
        assert not out.exists()


def test_stale_temporary_build_is_cleared(runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "idx"
    stale = tmp_path / "idx.tmp-build"
    stale.mkdir()
    (stale / "passages.jsonl").write_text("half-written garbage", encoding="utf-8")
    corpus = write_corpus(tmp_path / "c.jsonl")
    assert cli(runner, "index", corpus, "--out", out, "-q").exit_code == 0
    assert leftovers(tmp_path) == []
    assert len(load_index(out).passages) == len(TOPICS)


# --- bad input --------------------------------------------------------------------------------

GOOD = '{"id": "a", "text": "good"}\n'


@pytest.mark.parametrize(
    ("name", "content", "where", "reason"),
    [
        ("c.jsonl", GOOD + '{"id": "b", "text": }\n', ":2", "invalid JSON"),
        ("c.jsonl", GOOD + '{"id": "b", "body": "x"}\n', ":2", "missing text field 'text'"),
        ("c.jsonl", GOOD + '{"id": "b", "text": {"x": 1}}\n', ":2", "must be a string, got dict"),
        ("c.jsonl", GOOD + "\n" + GOOD, ":3", "duplicate id 'a' (first seen at "),
        ("c.jsonl", GOOD + '{"id": "[/b]", "text": "x"}\n{"id": "[/b]", "text": "y"}\n', ":3",
         "duplicate id '[/b]'"),
        ("c[v2].jsonl", GOOD + GOOD, ":2", "duplicate id 'a'"),
        ("c.jsonl", (GOOD * 2).replace('"a"', '"b"', 1) + '{"id": "c", "text": "\xff"}\n', ":3",
         "invalid UTF-8"),
        ("c.tsv", "id\ttext\ttitle\na\tb\n", ":2", "expected 3 tab-separated fields"),
        ("c.csv", "id,text\n", "", "cannot tell the corpus format"),
    ],
    ids=["json", "no-text", "dict-text", "duplicate", "markup-id", "markup-path", "utf8",
         "tsv-fields", "unknown-format"],
)  # fmt: skip
def test_bad_input_is_one_line_exit_1(
    runner: CliRunner, tmp_path: Path, name: str, content: str, where: str, reason: str
) -> None:
    corpus = tmp_path / name
    data = content.encode("utf-8")
    corpus.write_bytes(data.replace("\xff".encode(), b"\xff"))
    out = tmp_path / "idx"
    message = assert_one_line_error(cli(runner, "index", corpus, "--out", out, "-q"), reason)
    assert message.startswith(f"error: {corpus}{where}: ")
    assert not out.exists()
    assert leftovers(tmp_path) == []


def test_duplicate_across_inputs_names_both_files(runner: CliRunner, tmp_path: Path) -> None:
    first = write_corpus(tmp_path / "a.jsonl")
    second = tmp_path / "b.tsv"
    second.write_text("id\ttext\nfresh\tok\ncoffee\tclash\n", encoding="utf-8")
    result = cli(runner, "index", first, second, "--out", tmp_path / "idx", "-q")
    assert_one_line_error(result, f"{second}:3: duplicate id 'coffee'", f"first seen at {first}:4")


def test_missing_input_and_empty_corpus(runner: CliRunner, tmp_path: Path) -> None:
    missing = tmp_path / "absent.jsonl"
    result = cli(runner, "index", missing, "--out", tmp_path / "idx", "-q")
    assert_one_line_error(result, f"{missing}: no such file or folder")
    empty = write_corpus(tmp_path / "empty.jsonl", [{"id": "e", "text": " "}])
    result = cli(runner, "index", empty, "--out", tmp_path / "idx", "-q")
    assert_one_line_error(result, "no passages", "1 empty")
    assert leftovers(tmp_path) == []


def test_stride_larger_than_window_is_refused(runner: CliRunner, tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "c.jsonl")
    args = ["--passage-words", "5", "--passage-stride", "8", "-q"]
    result = cli(runner, "index", corpus, "--out", tmp_path / "idx", *args)
    assert_one_line_error(result, "--passage-stride 8 is larger than --passage-words 5")


@pytest.mark.parametrize(
    "extra",
    [
        ["--format", "xml"],
        ["--passage-words", "-1"],
        ["--passage-stride", "0"],
        ["--bm25", "bm99"],
        ["--stemmer", "porter2000"],
        ["--name", "x", "--out", "elsewhere"],
        ["--no-such-option"],
    ],
)
def test_usage_errors_exit_2(runner: CliRunner, tmp_path: Path, extra: list[str]) -> None:
    corpus = write_corpus(tmp_path / "c.jsonl")
    result = cli(runner, "index", corpus, *extra, "-q")
    assert result.exit_code == 2, result.output
    assert "Usage" in result.output or "Error" in result.output
    assert not (tmp_path / "indexes").exists()
    assert not (tmp_path / "elsewhere").exists()


def test_index_without_corpus_is_a_usage_error(runner: CliRunner) -> None:
    assert cli(runner, "index").exit_code == 2


# --- info -------------------------------------------------------------------------------------


def test_info_table(runner: CliRunner, built: Path) -> None:
    result = cli(runner, "info", built)
    assert result.exit_code == 0, result.output
    recorded = manifest(built)
    for key, value in [
        ("format_version", recorded["format_version"]),
        ("corpus.documents", recorded["corpus"]["documents"]),
        ("corpus.empty_skipped", recorded["corpus"]["empty_skipped"]),
        ("families.bm25.vocabulary_size", recorded["families"]["bm25"]["vocabulary_size"]),
        ("build.odqa_version", recorded["build"]["odqa_version"]),
    ]:
        assert re.search(rf"{re.escape(key)}[\s│|]+{value}\b", result.stdout), key
    assert "kinds" in result.stdout and "bm25" in result.stdout


def test_info_json_is_the_manifest(runner: CliRunner, built: Path) -> None:
    result = cli(runner, "info", built, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == manifest(built)


def test_info_on_a_missing_or_broken_index(runner: CliRunner, tmp_path: Path, built: Path) -> None:
    missing = tmp_path / "nowhere"
    assert_one_line_error(cli(runner, "info", missing), f"no index at '{missing}'")
    (built / "manifest.json").write_text("{not json", encoding="utf-8")
    assert_one_line_error(cli(runner, "info", built, "--json"), "unreadable manifest")
