"""Corpus readers, format detection, gzip inputs, passage splitting and bad-input errors."""

from __future__ import annotations

import gzip
import itertools
import json
import math
import random
from pathlib import Path

import pytest

from odqa.errors import InputError, OdqaError
from odqa.io.corpus import (
    CorpusFormat,
    CorpusOptions,
    CorpusStats,
    Document,
    detect_corpus_format,
    iter_passages,
    read_documents,
    split_document,
)
from odqa.types import Passage

RECORDS = [
    {"id": "d1", "title": "Alpha", "text": "The first document talks about rivers."},
    {"id": "d2", "title": "Beta", "text": "Mountains rise above the\nvalley floor."},
    {"id": "d3", "text": "A document without a title."},
]


def write_jsonl(path: Path, records: list[dict], *, blank_lines: bool = False) -> Path:
    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    if blank_lines:
        lines = [x for line in lines for x in (line, "")]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def gzip_copy(path: Path, target: Path | None = None) -> Path:
    target = target or path.with_name(path.name + ".gz")
    target.write_bytes(gzip.compress(path.read_bytes()))
    return target


def documents(path: Path, **options: object) -> list[Document]:
    return list(read_documents(path, CorpusOptions(**options)))


def passages(inputs: list[Path], **options: object) -> tuple[list[Passage], CorpusStats]:
    stats = CorpusStats()
    return list(iter_passages(inputs, CorpusOptions(**options), stats)), stats


def triples(docs: list[Document]) -> list[tuple[str, str, str]]:
    return [(d.id, d.title, d.text) for d in docs]


def squad_payload(articles: dict[str, list[str]]) -> dict:
    return {
        "version": "1.1",
        "data": [
            {"title": title, "paragraphs": [{"context": c, "qas": []} for c in contexts]}
            for title, contexts in articles.items()
        ],
    }


def dpr_tsv(path: Path) -> Path:
    path.write_text(
        "id\ttext\ttitle\n"
        '1\t"He said ""hello""\tthen left."\tGreeting\n'
        "2\tplain text here\tPlain\n"
        '3\t"a field with a\nnewline inside"\t"Quoted Title"\n',
        encoding="utf-8",
    )
    return path


# --- JSON lines -------------------------------------------------------------------------------


def test_jsonl_reads_ids_titles_texts_and_line_numbers(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "c.jsonl", RECORDS, blank_lines=True)
    docs = documents(path)
    assert triples(docs) == [(r["id"], r.get("title", ""), r["text"]) for r in RECORDS]
    assert [d.line for d in docs] == [1, 3, 5]
    assert {d.source for d in docs} == {str(path)}


def test_jsonl_custom_field_names(tmp_path: Path) -> None:
    records = [
        {"docid": f"x{i}", "name": f"T{i}", "body": f"body {i}", "text": 3} for i in range(4)
    ]
    path = write_jsonl(tmp_path / "c.jsonl", records)
    docs = documents(path, id_field="docid", title_field="name", text_field="body")
    assert triples(docs) == [(r["docid"], r["name"], r["body"]) for r in records]


def test_jsonl_accepts_beir_underscore_id_and_numeric_ids(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "c.jsonl",
        [{"_id": "beir-1", "title": "", "text": "one"}, {"id": 7, "text": "seven"}],
    )
    assert [d.id for d in documents(path)] == ["beir-1", "7"]


def test_jsonl_keeps_unicode_text(tmp_path: Path) -> None:
    text = "Wilhelm Röntgen — 東京 naïve café"
    path = write_jsonl(tmp_path / "c.jsonl", [{"id": "u", "text": text}])
    assert documents(path)[0].text == text


# --- DPR TSV ----------------------------------------------------------------------------------


def test_tsv_with_header_and_quoted_fields(tmp_path: Path) -> None:
    docs = documents(dpr_tsv(tmp_path / "psgs.tsv"))
    assert triples(docs) == [
        ("1", "Greeting", 'He said "hello"\tthen left.'),
        ("2", "Plain", "plain text here"),
        ("3", "Quoted Title", "a field with a\nnewline inside"),
    ]
    assert [d.line for d in docs] == [2, 3, 5]


def test_tsv_columns_in_any_order_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "c.tsv"
    path.write_bytes(b"title\tid\ttext\r\nT1\ta\tfirst text\r\nT2\tb\tsecond text\r\n")
    assert triples(documents(path)) == [("a", "T1", "first text"), ("b", "T2", "second text")]


def test_tsv_without_title_column(tmp_path: Path) -> None:
    path = tmp_path / "c.tsv"
    path.write_text("id\ttext\nq\tonly text\n", encoding="utf-8")
    assert triples(documents(path)) == [("q", "", "only text")]


# --- SQuAD ------------------------------------------------------------------------------------


def test_squad_one_document_per_paragraph(tmp_path: Path) -> None:
    articles = {"Super_Bowl_50": ["first para", "second para"], "Warsaw": ["city text"]}
    path = tmp_path / "dev.json"
    path.write_text(json.dumps(squad_payload(articles)), encoding="utf-8")
    docs = documents(path)
    assert triples(docs) == [
        ("Super_Bowl_50#0", "Super Bowl 50", "first para"),
        ("Super_Bowl_50#1", "Super Bowl 50", "second para"),
        ("Warsaw#0", "Warsaw", "city text"),
    ]


def test_real_squad_dev_file(squad_dev: Path) -> None:
    data = json.loads(squad_dev.read_text(encoding="utf-8"))["data"]
    expected = [
        (f"{a['title']}#{n}", p["context"]) for a in data for n, p in enumerate(a["paragraphs"])
    ]
    assert detect_corpus_format(squad_dev) is CorpusFormat.squad
    docs = documents(squad_dev)
    assert len(docs) == 2067
    assert [(d.id, d.text) for d in docs] == expected
    assert len({d.id for d in docs}) == len(docs)


# --- BEIR and text folders --------------------------------------------------------------------


def test_beir_folder_reads_corpus_only(tmp_path: Path) -> None:
    folder = tmp_path / "scifact"
    folder.mkdir()
    write_jsonl(folder / "corpus.jsonl", [{"_id": "b1", "title": "B", "text": "beir text"}])
    write_jsonl(folder / "queries.jsonl", [{"_id": "q1", "text": "a query"}])
    assert detect_corpus_format(folder) is CorpusFormat.beir
    assert triples(documents(folder)) == [("b1", "B", "beir text")]


def test_txt_folder_ids_are_relative_paths(tmp_path: Path) -> None:
    folder = tmp_path / "notes"
    (folder / "sub" / "deep").mkdir(parents=True)
    files = {
        "b.txt": "second file\nwith two lines\n",
        "a.txt": "first file",
        "sub/c.txt": "nested",
        "sub/deep/d.txt": "deeper still",
    }
    for rel, text in files.items():
        (folder / rel).write_text(text, encoding="utf-8")
    (folder / "ignored.md").write_text("not a text file", encoding="utf-8")
    assert detect_corpus_format(folder) is CorpusFormat.txt
    docs = documents(folder)
    assert triples(docs) == [(rel, Path(rel).stem, files[rel]) for rel in sorted(files)]


def test_single_txt_file_is_one_document(tmp_path: Path) -> None:
    path = tmp_path / "essay.txt"
    path.write_text("One line.\nTwo lines.\n", encoding="utf-8")
    assert triples(documents(path)) == [("essay.txt", "essay", "One line.\nTwo lines.\n")]


# --- gzip -------------------------------------------------------------------------------------


def make_plain(kind: str, tmp_path: Path) -> Path:
    if kind == "jsonl":
        return write_jsonl(tmp_path / "c.jsonl", RECORDS)
    if kind == "tsv":
        return dpr_tsv(tmp_path / "c.tsv")
    if kind == "squad":
        path = tmp_path / "c.json"
        path.write_text(json.dumps(squad_payload({"A_B": ["p0", "p1"]})), encoding="utf-8")
        return path
    path = tmp_path / "c.txt"
    path.write_text("some plain text\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("kind", ["jsonl", "tsv", "squad", "txt"])
def test_gzip_inputs_read_like_plain_ones(tmp_path: Path, kind: str) -> None:
    plain = make_plain(kind, tmp_path)
    packed = gzip_copy(plain)
    assert detect_corpus_format(packed) is detect_corpus_format(plain)
    assert triples(documents(packed)) == triples(documents(plain))


def test_gzip_detected_by_magic_bytes_without_gz_suffix(tmp_path: Path) -> None:
    plain = write_jsonl(tmp_path / "plain.jsonl", RECORDS)
    disguised = gzip_copy(plain, tmp_path / "disguised.jsonl")
    assert triples(documents(disguised)) == triples(documents(plain))


def test_gzip_in_beir_and_txt_folders(tmp_path: Path) -> None:
    beir = tmp_path / "beir"
    beir.mkdir()
    plain = write_jsonl(tmp_path / "corpus.jsonl", [{"_id": "z", "text": "zipped"}])
    gzip_copy(plain, beir / "corpus.jsonl.gz")
    assert detect_corpus_format(beir) is CorpusFormat.beir
    assert triples(documents(beir)) == [("z", "", "zipped")]

    folder = tmp_path / "txts"
    folder.mkdir()
    (folder / "raw.txt").write_text("raw text", encoding="utf-8")
    (folder / "packed.txt").write_text("packed text", encoding="utf-8")
    gzip_copy(folder / "packed.txt")
    (folder / "packed.txt").unlink()
    assert triples(documents(folder)) == [
        ("packed.txt.gz", "packed", "packed text"),
        ("raw.txt", "raw", "raw text"),
    ]


# --- format detection ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("c.jsonl", CorpusFormat.jsonl),
        ("C.JSONL.GZ", CorpusFormat.jsonl),
        ("c.ndjson", CorpusFormat.jsonl),
        ("psgs_w100.tsv", CorpusFormat.tsv),
        ("c.tab.gz", CorpusFormat.tsv),
        ("c.txt", CorpusFormat.txt),
    ],
)
def test_detect_format_from_name(tmp_path: Path, name: str, expected: CorpusFormat) -> None:
    path = tmp_path / name
    path.write_bytes(b"")
    assert detect_corpus_format(path) is expected


def test_detect_json_by_content(tmp_path: Path) -> None:
    squad = tmp_path / "squad.json"
    squad.write_text(json.dumps(squad_payload({"T": ["x"]})), encoding="utf-8")
    lines = write_jsonl(tmp_path / "lines.json", RECORDS)
    assert detect_corpus_format(squad) is CorpusFormat.squad
    assert detect_corpus_format(gzip_copy(squad)) is CorpusFormat.squad
    assert detect_corpus_format(lines) is CorpusFormat.jsonl
    assert [d.id for d in documents(lines)] == [r["id"] for r in RECORDS]


def test_undetectable_format_lists_every_choice(tmp_path: Path) -> None:
    path = tmp_path / "corpus.csv"
    path.write_text("id,text\n", encoding="utf-8")
    with pytest.raises(InputError) as info:
        detect_corpus_format(path)
    for fmt in CorpusFormat:
        if fmt is not CorpusFormat.auto:
            assert fmt.value in str(info.value)


def test_explicit_format_overrides_the_name(tmp_path: Path) -> None:
    path = tmp_path / "corpus.data"
    path.write_text("id\ttext\nk\tforced tsv\n", encoding="utf-8")
    assert triples(documents(path, format="tsv")) == [("k", "", "forced tsv")]
    with pytest.raises(InputError, match="corpus format"):
        documents(path)


# --- several inputs ---------------------------------------------------------------------------


def test_several_inputs_in_one_stream(tmp_path: Path) -> None:
    jsonl = write_jsonl(tmp_path / "a.jsonl", RECORDS)
    tsv = gzip_copy(dpr_tsv(tmp_path / "b.tsv"))
    txt = make_plain("txt", tmp_path)
    out, stats = passages([jsonl, tsv, txt], passage_words=0)
    assert [p.id for p in out] == ["d1", "d2", "d3", "1", "2", "3", "c.txt"]
    assert stats.documents == stats.passages == 7
    assert stats.empty_skipped == 0


def test_reading_is_lazy_and_streams(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps(RECORDS[0]) + "\n{broken\n", encoding="utf-8")
    stream = iter_passages([path], CorpusOptions(), CorpusStats())
    assert next(stream).id == "d1"
    with pytest.raises(InputError):
        next(stream)


# --- passage splitting ------------------------------------------------------------------------


def numbered_doc(n_words: int, doc_id: str = "doc", title: str = "Title") -> Document:
    return Document(doc_id, title, " ".join(f"w{i}" for i in range(n_words)), "mem", None)


def window_starts(passages_: list[Passage]) -> list[tuple[int, int]]:
    spans = []
    for p in passages_:
        idx = [int(w[1:]) for w in p.text.split()]
        assert idx == list(range(idx[0], idx[-1] + 1)), "a window must be contiguous"
        spans.append((idx[0], idx[-1] + 1))
    return spans


@pytest.mark.parametrize(
    ("n_words", "words", "stride"),
    [(10, 4, 4), (10, 4, 3), (10, 4, 1), (11, 5, 2), (250, 100, 50), (101, 100, 100), (7, 3, 3)],
)
def test_split_windows_cover_the_document(n_words: int, words: int, stride: int) -> None:
    doc = numbered_doc(n_words)
    out = list(split_document(doc, words, stride))
    spans = window_starts(out)
    assert [p.id for p in out] == [f"doc#{k}" for k in range(len(out))]
    assert all(p.doc_id == "doc" and p.title == "Title" for p in out)
    assert [s for s, _ in spans] == [k * stride for k in range(len(out))]
    assert all(e - s == words for s, e in spans[:-1])
    assert spans[-1][1] == n_words, "the last window reaches the end"
    assert len(spans) == 1 or spans[-2][1] < n_words, "no window after the end is covered"
    assert len(out) == math.ceil((n_words - words) / stride) + 1
    covered = {i for s, e in spans for i in range(s, e)}
    assert covered == set(range(n_words))
    for (_, e0), (s1, _) in itertools.pairwise(spans):
        assert e0 - s1 == words - stride


@pytest.mark.parametrize(("n_words", "words"), [(5, 0), (5, 5), (5, 6), (500, 0)])
def test_short_or_unsplit_documents_keep_id_and_exact_text(n_words: int, words: int) -> None:
    doc = Document("d", "T", "  first\n" + " ".join(["x"] * (n_words - 1)) + "\n", "mem", None)
    assert list(split_document(doc, words, words or 1)) == [Passage("d", "d", "T", doc.text)]


def test_ids_get_a_suffix_only_when_split(tmp_path: Path) -> None:
    records = [
        {"id": "long", "title": "L", "text": " ".join(f"w{i}" for i in range(9))},
        {"id": "short", "title": "S", "text": "just three words"},
    ]
    path = write_jsonl(tmp_path / "c.jsonl", records)
    out, stats = passages([path], passage_words=4, passage_stride=2)
    assert [p.id for p in out] == ["long#0", "long#1", "long#2", "long#3", "short"]
    assert [p.doc_id for p in out] == ["long"] * 4 + ["short"]
    assert [p.title for p in out] == ["L"] * 4 + ["S"]
    assert (stats.documents, stats.passages) == (2, 5)
    whole, _ = passages([path], passage_words=0)
    assert [(p.id, p.text) for p in whole] == [(r["id"], r["text"]) for r in records]


def test_default_split_is_100_words_without_overlap(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "c.jsonl", [{"id": "a", "text": numbered_doc(230).text}])
    out, _ = passages([path])
    assert window_starts(out) == [(0, 100), (100, 200), (200, 230)]


@pytest.mark.parametrize(
    ("words", "stride", "fragment"),
    [(-1, None, "--passage-words"), (10, 0, "--passage-stride"), (10, 11, "larger")],
)
def test_invalid_split_options(words: int, stride: int | None, fragment: str) -> None:
    with pytest.raises(OdqaError, match=fragment):
        CorpusOptions(passage_words=words, passage_stride=stride)


def test_stride_defaults_to_window() -> None:
    assert CorpusOptions(passage_words=64).stride == 64
    assert CorpusOptions(passage_words=64, passage_stride=32).stride == 32


# --- empty documents --------------------------------------------------------------------------


def test_empty_documents_are_counted_not_indexed(tmp_path: Path) -> None:
    records = [*RECORDS, {"id": "e1", "text": ""}, {"id": "e2", "title": "T", "text": " \n\t "}]
    path = write_jsonl(tmp_path / "c.jsonl", records)
    out, stats = passages([path])
    assert [p.id for p in out] == [r["id"] for r in RECORDS]
    assert stats.to_dict() == {"documents": 5, "passages": 3, "empty_skipped": 2}


# --- bad input --------------------------------------------------------------------------------


def check_location(exc: InputError, path: Path, line: int | None) -> None:
    assert exc.path in (path, str(path))
    assert exc.line == line
    where = f"{path}:{line}" if line is not None else str(path)
    assert str(exc).startswith(f"{where}: ")


@pytest.mark.parametrize(
    ("bad_line", "reason"),
    [
        ('{"id": "x", "text": "unterminated', "invalid JSON"),
        ("not json at all", "invalid JSON"),
        ('{"id": "x", "title": "no text"}', "missing text field 'text'"),
        ('{"id": "x", "text": null}', "missing text field"),
        ('{"id": "x", "text": 42}', "must be a string, got int"),
        ('{"id": "x", "text": ["a", "b"]}', "must be a string, got list"),
        ('{"title": "t", "text": "no id"}', "missing id field"),
        ('["a", "list"]', "JSON object"),
    ],
)
def test_bad_jsonl_line_stops_with_file_and_line(
    tmp_path: Path, bad_line: str, reason: str
) -> None:
    path = tmp_path / "c.jsonl"
    good = "\n".join(json.dumps(r) for r in RECORDS)
    path.write_text(f"{good}\n\n{bad_line}\n{json.dumps({'id': 'z', 'text': 'z'})}\n")
    with pytest.raises(InputError) as info:
        passages([path])
    check_location(info.value, path, 5)
    assert reason in info.value.reason


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("kind", ["jsonl", "tsv", "txt"])
def test_invalid_utf8_names_the_line(tmp_path: Path, kind: str, gz: bool) -> None:
    bad = "Caf\xe9".encode("latin-1")
    content = {
        "jsonl": b'{"id": "a", "text": "ok"}\n{"id": "b", "text": "ok"}\n{"id": "c", "text": "'
        + bad
        + b'"}\n',
        "tsv": b"id\ttext\na\tok\nb\t" + bad + b"\n",
        "txt": b"line one\nline two\n" + bad + b"\n",
    }[kind]
    path = tmp_path / f"c.{kind}"
    path.write_bytes(content)
    if gz:
        path = gzip_copy(path)
    with pytest.raises(InputError) as info:
        passages([path])
    check_location(info.value, path, 3)
    assert "invalid UTF-8" in info.value.reason


def test_duplicate_id_in_one_file_names_both_lines(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "c.jsonl", [*RECORDS, {"id": "d2", "text": "again"}])
    with pytest.raises(InputError) as info:
        passages([path])
    check_location(info.value, path, 4)
    assert f"duplicate id 'd2' (first seen at {path}:2)" in str(info.value)


def test_duplicate_id_across_inputs_names_both_files(tmp_path: Path) -> None:
    first = write_jsonl(tmp_path / "a.jsonl", [{"id": "e", "text": ""}, *RECORDS])
    second = tmp_path / "b.tsv"
    second.write_text("id\ttext\nnew\tfine\nd3\tclash\n", encoding="utf-8")
    with pytest.raises(InputError) as info:
        passages([first, second])
    check_location(info.value, second, 3)
    assert f"first seen at {first}:4" in str(info.value)


def test_duplicate_id_of_an_empty_document_is_still_caught(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "c.jsonl", [{"id": "e", "text": ""}, {"id": "e", "text": "x"}])
    with pytest.raises(InputError, match="duplicate id 'e'"):
        passages([path])


def test_duplicate_txt_file_names_across_inputs(tmp_path: Path) -> None:
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    first, second = tmp_path / "one" / "x.txt", tmp_path / "two" / "x.txt"
    first.write_text("first", encoding="utf-8")
    second.write_text("second", encoding="utf-8")
    with pytest.raises(InputError) as info:
        passages([first, second])
    assert str(info.value).startswith(f"{second}: duplicate id 'x.txt'")
    assert f"first seen at {first}" in str(info.value)


@pytest.mark.parametrize(
    ("content", "line", "reason"),
    [
        ("id\ttext\ttitle\na\tok\tT\nb\tmissing title\n", 3, "expected 3 tab-separated fields"),
        ("id\ttext\na\tok\n\tno id\n", 3, "empty id"),
        ("id\tbody\na\tok\n", 1, "needs 'id' and 'text' columns"),
    ],
)
def test_bad_tsv(tmp_path: Path, content: str, line: int, reason: str) -> None:
    path = tmp_path / "c.tsv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError) as info:
        passages([path])
    check_location(info.value, path, line)
    assert reason in info.value.reason


def test_bad_squad_files(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"data": [\n{"title": "T",\n "paragraphs": [}\n]}', encoding="utf-8")
    with pytest.raises(InputError) as info:
        passages([broken], format="squad")
    check_location(info.value, broken, 3)
    assert "invalid JSON" in info.value.reason

    no_context = tmp_path / "nocontext.json"
    no_context.write_text(json.dumps({"data": [{"title": "T", "paragraphs": [{"qas": []}]}]}))
    with pytest.raises(InputError, match="article 'T' paragraph 0 has no 'context'"):
        passages([no_context])

    not_squad = tmp_path / "other.json"
    not_squad.write_text(json.dumps({"rows": []}))
    with pytest.raises(InputError, match="not a SQuAD file: expected an object with a 'data' list"):
        passages([not_squad], format="squad")


def test_corrupt_gzip_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl.gz"
    lines = "".join(json.dumps({"id": str(i), "text": f"text {i}"}) + "\n" for i in range(500))
    packed = gzip.compress(lines.encode())
    path.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(InputError, match="cannot read file"):
        passages([path])


def test_missing_path_and_wrong_kind_of_input(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file or folder"):
        passages([tmp_path / "absent.jsonl"])
    folder = tmp_path / "folder"
    folder.mkdir()
    with pytest.raises(InputError, match=r"holds no \.txt files"):
        passages([folder])
    with pytest.raises(InputError, match="is a folder"):
        passages([folder], format="jsonl")


def _positions_seen(paths: list[Path], options: CorpusOptions) -> tuple[list[int], CorpusStats]:
    stats = CorpusStats()
    seen = [stats.bytes_read for _ in iter_passages(paths, options, stats)]
    return seen, stats


@pytest.mark.parametrize("compress", [False, True])
def test_bytes_read_grow_to_the_input_size(tmp_path: Path, compress: bool):
    rng = random.Random(0)  # incompressible text: gzip must read its file in many buffers
    words = ("".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=8)) for _ in range(120_000))
    records = ({"id": f"d{i}", "text": " ".join(itertools.islice(words, 400))} for i in range(300))
    lines = "".join(json.dumps(r) + "\n" for r in records)
    path = tmp_path / ("c.jsonl.gz" if compress else "c.jsonl")
    if compress:
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(lines)
    else:
        path.write_text(lines, encoding="utf-8")
    seen, stats = _positions_seen([path], CorpusOptions(passage_words=0))
    assert stats.bytes_total == path.stat().st_size
    assert seen == sorted(seen) and 0 < seen[0] <= stats.bytes_total
    assert len(set(seen)) > (1 if compress else 100)  # the bar moves while reading
    assert stats.bytes_read == stats.bytes_total


def test_bytes_read_over_several_inputs_and_formats(tmp_path: Path):
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text("".join(json.dumps({"id": f"a{i}", "text": "x y"}) + "\n" for i in range(5)))
    tsv = tmp_path / "b.tsv"
    tsv.write_text("id\ttext\ttitle\n" + "".join(f"b{i}\tsome text\tT\n" for i in range(5)))
    folder = tmp_path / "txt"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.txt").write_text("plain text " * (i + 1))
    seen, stats = _positions_seen([jsonl, tsv, folder], CorpusOptions())
    sizes = [jsonl.stat().st_size, tsv.stat().st_size]
    sizes.append(sum(p.stat().st_size for p in folder.iterdir()))
    assert stats.bytes_total == sum(sizes)
    assert seen == sorted(seen) and len(seen) == 13
    assert seen[4] == sizes[0] and seen[9] == sizes[0] + sizes[1]
    assert stats.bytes_read == stats.bytes_total
