"""Corpus readers (JSON lines, DPR TSV, SQuAD JSON, BEIR, folders of .txt) and passage splitting.

Readers stream documents one at a time; every problem stops the read with ``file:line`` and the
reason. Gzip-compressed files (``.gz`` or gzip magic bytes) are read transparently.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from odqa.errors import InputError, OdqaError
from odqa.io.beir import beir_corpus_file, find_beir_corpus
from odqa.io.lines import decoded_lines, json_records, positioned_lines
from odqa.io.squad import load_squad_articles, sniff_squad
from odqa.types import Passage


class CorpusFormat(str, Enum):
    """Corpus file formats; ``auto`` detects from the path and contents."""

    auto = "auto"
    jsonl = "jsonl"
    tsv = "tsv"
    squad = "squad"
    beir = "beir"
    txt = "txt"


@dataclass(frozen=True, slots=True)
class Document:
    """A document as read from a corpus file, with where it came from (for error messages)."""

    id: str
    title: str
    text: str
    source: str
    line: int | None
    position: int | None = None
    """Bytes of its input read once this document was read (None: known only at the end)."""


@dataclass(frozen=True)
class CorpusOptions:
    """How to read and split a corpus. JSON-serialisable; recorded in the manifest."""

    format: str = "auto"
    id_field: str = "id"
    title_field: str = "title"
    text_field: str = "text"
    passage_words: int = 100
    passage_stride: int | None = None

    def __post_init__(self) -> None:
        if self.passage_words < 0:
            raise OdqaError(f"--passage-words must be >= 0, got {self.passage_words}")
        if self.passage_stride is not None and self.passage_stride <= 0:
            raise OdqaError(f"--passage-stride must be > 0, got {self.passage_stride}")
        if self.passage_words and (self.passage_stride or 0) > self.passage_words:
            raise OdqaError(
                f"--passage-stride {self.passage_stride} is larger than --passage-words "
                f"{self.passage_words}: the words between windows would never be indexed"
            )

    @property
    def stride(self) -> int:
        """Words between window starts; defaults to ``passage_words`` (no overlap)."""
        return self.passage_stride or self.passage_words


def input_size(path: Path) -> int:
    """Bytes a corpus input will read (what progress is measured against); 0 if unknown."""
    if path.is_file():
        return path.stat().st_size
    if not path.is_dir():
        return 0
    corpus = find_beir_corpus(path)
    if corpus is not None:
        return corpus.stat().st_size
    return sum(p.stat().st_size for p in _txt_files(path))


def _strip_gz(name: str) -> str:
    return name[:-3] if name.endswith(".gz") else name


def detect_corpus_format(path: Path) -> CorpusFormat:
    """Guess the format of ``path`` from its name, or its first bytes for ``.json``."""
    if path.is_dir():
        return CorpusFormat.txt if find_beir_corpus(path) is None else CorpusFormat.beir
    name = _strip_gz(path.name.lower())
    if name.endswith((".jsonl", ".ndjson")):
        return CorpusFormat.jsonl
    if name.endswith((".tsv", ".tab")):
        return CorpusFormat.tsv
    if name.endswith(".json"):
        if sniff_squad(path):
            return CorpusFormat.squad
        return CorpusFormat.jsonl
    if name.endswith(".txt"):
        return CorpusFormat.txt
    raise InputError(
        path,
        None,
        "cannot tell the corpus format from the name: pass --format "
        + "|".join(f.value for f in CorpusFormat if f is not CorpusFormat.auto),
    )


def _label_field(value: object, field: str, path: Path, line: int | None) -> str:
    """An id or title as text: strings as they are, integers written out; nothing else."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise InputError(
        path, line, f"field '{field}' must be a string or an integer, got {type(value).__name__}"
    )


def _text_field(record: dict, field: str, path: Path, line: int) -> str:
    value = record.get(field)
    if value is None:
        raise InputError(path, line, f"missing text field '{field}' (set it with --text-field)")
    if not isinstance(value, str):
        raise InputError(
            path, line, f"field '{field}' must be a string, got {type(value).__name__}"
        )
    return value


def read_jsonl(path: Path, options: CorpusOptions) -> Iterator[Document]:
    """JSON lines with id/title/text (field names from ``options``; BEIR's ``_id`` accepted)."""
    for line, record, position in json_records(path):
        id_field = options.id_field if options.id_field in record else "_id"
        doc_id = record.get(id_field)
        if doc_id is None or doc_id == "":
            raise InputError(path, line, f"missing id field '{options.id_field}' (set --id-field)")
        title = record.get(options.title_field)
        yield Document(
            _label_field(doc_id, id_field, path, line),
            "" if title is None else _label_field(title, options.title_field, path, line),
            _text_field(record, options.text_field, path, line),
            str(path),
            line,
            position,
        )


def read_tsv(path: Path, options: CorpusOptions) -> Iterator[Document]:
    """DPR-style TSV: a header naming ``id``, ``text`` and (optionally) ``title`` columns."""
    lines = positioned_lines(path)
    numbers: list[int] = [0, 0]  # line number and bytes read, of the last line read

    def texts() -> Iterator[str]:
        for number, content, position in lines:
            numbers[:] = number, position
            yield content

    reader = csv.reader(texts(), delimiter="\t")
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        return
    columns = {name: i for i, name in enumerate(header)}
    id_col = columns.get(options.id_field, columns.get("id"))
    text_col = columns.get(options.text_field, columns.get("text"))
    title_col = columns.get(options.title_field, columns.get("title"))
    if id_col is None or text_col is None:
        raise InputError(
            path, 1, f"header {header} needs 'id' and 'text' columns (DPR: id<TAB>text<TAB>title)"
        )
    for row in reader:
        if not row:
            continue
        if len(row) != len(header):
            raise InputError(
                path, numbers[0], f"expected {len(header)} tab-separated fields, found {len(row)}"
            )
        if not row[id_col]:
            raise InputError(path, numbers[0], "empty id")
        title = row[title_col] if title_col is not None else ""
        yield Document(row[id_col], title, row[text_col], str(path), numbers[0], numbers[1])


def read_squad(path: Path, options: CorpusOptions) -> Iterator[Document]:
    """SQuAD JSON: one document per paragraph, id ``title#n``."""
    for article in load_squad_articles(path):
        title = _label_field(article.get("title", ""), "title", path, None)
        for n, paragraph in enumerate(article.get("paragraphs", [])):
            context = paragraph.get("context")
            if not isinstance(context, str):
                raise InputError(path, None, f"article '{title}' paragraph {n} has no 'context'")
            yield Document(f"{title}#{n}", title.replace("_", " "), context, str(path), None)


def read_txt_folder(path: Path, options: CorpusOptions) -> Iterator[Document]:
    """Every ``*.txt`` (or ``*.txt.gz``) below ``path``; id = relative path, title = file stem."""
    files = _txt_files(path)
    if not files:
        raise InputError(path, None, "folder holds no .txt files")
    position = 0
    for file in files:
        text = "".join(content for _, content in decoded_lines(file))
        rel = file.relative_to(path).as_posix()
        position += file.stat().st_size
        yield Document(rel, Path(_strip_gz(file.name)).stem, text, str(file), None, position)


def _txt_files(folder: Path) -> list[Path]:
    """The ``*.txt`` and ``*.txt.gz`` files below ``folder``, sorted."""
    found = (p for p in folder.rglob("*") if _strip_gz(p.name).endswith(".txt"))
    return sorted(p for p in found if p.is_file())


def read_txt_file(path: Path, options: CorpusOptions) -> Iterator[Document]:
    """A single .txt file as one document."""
    text = "".join(content for _, content in decoded_lines(path))
    yield Document(
        Path(_strip_gz(path.name)).name, Path(_strip_gz(path.name)).stem, text, str(path), None
    )


def read_beir(path: Path, options: CorpusOptions) -> Iterator[Document]:
    """A BEIR folder's ``corpus.jsonl`` (``_id``, ``title``, ``text``)."""
    if not path.is_dir():
        raise InputError(path, None, "--format beir expects a BEIR folder, not a file")
    corpus = beir_corpus_file(path)
    beir_options = CorpusOptions(format="jsonl", id_field="_id")
    yield from read_jsonl(corpus, beir_options)


def read_documents(path: Path, options: CorpusOptions) -> Iterator[Document]:
    """Stream the documents of one corpus input in the chosen (or detected) format."""
    if not path.exists():
        raise InputError(path, None, "no such file or folder")
    fmt = CorpusFormat(options.format)
    if fmt is CorpusFormat.auto:
        fmt = detect_corpus_format(path)
    if fmt is CorpusFormat.txt:
        reader = read_txt_folder if path.is_dir() else read_txt_file
    elif path.is_dir() and fmt is not CorpusFormat.beir:
        raise InputError(path, None, f"is a folder, but --format {fmt.value} expects a file")
    else:
        reader = {
            CorpusFormat.jsonl: read_jsonl,
            CorpusFormat.tsv: read_tsv,
            CorpusFormat.squad: read_squad,
            CorpusFormat.beir: read_beir,
        }[fmt]
    yield from reader(path, options)


def split_document(doc: Document, words: int, stride: int) -> Iterator[Passage]:
    """Cut ``doc`` into windows of ``words`` words every ``stride`` words (0 keeps it whole).

    A document that fits in one window keeps its id and exact text; windows get ``docid#k``.
    """
    tokens = doc.text.split()
    if words == 0 or len(tokens) <= words:
        yield Passage(doc.id, doc.id, doc.title, doc.text)
        return
    for k, start in enumerate(range(0, len(tokens), stride)):
        yield Passage(f"{doc.id}#{k}", doc.id, doc.title, " ".join(tokens[start : start + words]))
        if start + words >= len(tokens):
            break


@dataclass
class CorpusStats:
    """Counts gathered while reading a corpus."""

    documents: int = 0
    passages: int = 0
    empty_skipped: int = 0
    bytes_read: int = 0
    bytes_total: int = 0
    whitespace_id: str | None = None
    """The first passage id holding whitespace (such ids cannot go into a TREC run)."""

    def to_dict(self) -> dict[str, int | str]:
        """JSON-ready counts (and ``whitespace_id`` when there is one)."""
        counts: dict[str, int | str] = {
            "documents": self.documents,
            "passages": self.passages,
            "empty_skipped": self.empty_skipped,
        }
        if self.whitespace_id is not None:
            counts["whitespace_id"] = self.whitespace_id
        return counts


_WHITESPACE = re.compile(r"\s")


def _window_number(suffix: str) -> int | None:
    """``k`` when ``suffix`` is exactly how :func:`split_document` writes window ``k``."""
    if suffix.isascii() and suffix.isdigit() and str(int(suffix)) == suffix:
        return int(suffix)
    return None


class DuplicateIdGuard:
    """Detects a repeated document id, or a passage id used twice (a document ``a#0`` beside
    window 0 of a split document ``a``), while streaming, keeping only integer hashes of the
    document ids in memory.

    On a hash hit the inputs are read again up to the current document to confirm the clash
    and name where the other id was seen (a rare path: it ends the build).
    """

    def __init__(self, inputs: list[Path], options: CorpusOptions) -> None:
        self._inputs = inputs
        self._options = options
        self._hashes: set[int] = set()
        self._ordinal = 0

    def check(self, doc: Document) -> None:
        """Raise InputError if ``doc.id`` was seen before."""
        key = hash(doc.id)
        if key in self._hashes:
            first = self._first_occurrence(doc.id)
            if first is not None:
                where = f"{first.source}:{first.line}" if first.line else first.source
                raise InputError(
                    doc.source, doc.line, f"duplicate id '{doc.id}' (first seen at {where})"
                )
        self._hashes.add(key)
        self._ordinal += 1

    def check_passages(self, doc: Document, passage_ids: list[str]) -> None:
        """Raise InputError if a passage id of ``doc`` is a passage id of an earlier document."""
        if passage_ids == [doc.id]:
            prefix, sep, suffix = doc.id.rpartition("#")
            window = _window_number(suffix) if sep else None
            if window is None or hash(prefix) not in self._hashes:
                return
            earlier = self._first_occurrence(prefix)
            ids = self._passage_ids(earlier) if earlier is not None else []
            if len(ids) > 1 and window < len(ids):
                raise InputError(
                    doc.source, doc.line,
                    f"document id '{doc.id}' is also the id of passage {window} of document "
                    f"'{prefix}' (at {self._where(earlier) if earlier else '?'}): rename one of "
                    "them; split "
                    f"documents' passages are named docid#0..#{len(ids) - 1}",
                )  # fmt: skip
            return
        for pid in passage_ids:
            if hash(pid) not in self._hashes:
                continue
            earlier = self._first_occurrence(pid)
            if earlier is not None and self._passage_ids(earlier) == [pid]:
                raise InputError(
                    doc.source, doc.line,
                    f"passage id '{pid}' of split document '{doc.id}' is also the id of the "
                    f"document at {self._where(earlier)}: rename one of them",
                )  # fmt: skip

    def _passage_ids(self, doc: Document) -> list[str]:
        if not doc.text.strip():
            return []
        options = self._options
        return [p.id for p in split_document(doc, options.passage_words, options.stride)]

    @staticmethod
    def _where(doc: Document) -> str:
        return f"{doc.source}:{doc.line}" if doc.line else doc.source

    def _first_occurrence(self, doc_id: str) -> Document | None:
        seen = 0
        for path in self._inputs:
            for earlier in read_documents(path, self._options):
                if seen >= self._ordinal:
                    return None
                if earlier.id == doc_id:
                    return earlier
                seen += 1
        return None


def iter_passages(
    inputs: Iterable[Path], options: CorpusOptions, stats: CorpusStats
) -> Iterator[Passage]:
    """Read every input once, validate ids, skip (and count) empty documents, split passages."""
    paths = [Path(p) for p in inputs]
    guard = DuplicateIdGuard(paths, options)
    sizes = [input_size(p) for p in paths]
    stats.bytes_total = sum(sizes)
    done = 0
    for path, size in zip(paths, sizes):
        for doc in read_documents(path, options):
            guard.check(doc)
            stats.documents += 1
            if doc.position is not None:
                stats.bytes_read = done + min(doc.position, size)
            if not doc.text.strip():
                stats.empty_skipped += 1
                continue
            passages = list(split_document(doc, options.passage_words, options.stride))
            guard.check_passages(doc, [p.id for p in passages])
            if stats.whitespace_id is None and _WHITESPACE.search(doc.id):
                stats.whitespace_id = passages[0].id
            for passage in passages:
                stats.passages += 1
                yield passage
        done += size
        stats.bytes_read = done


__all__ = [
    "CorpusFormat",
    "CorpusOptions",
    "CorpusStats",
    "Document",
    "detect_corpus_format",
    "iter_passages",
    "read_documents",
    "split_document",
]
