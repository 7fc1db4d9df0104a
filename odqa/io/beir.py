"""The BEIR folder layout: ``corpus.jsonl(.gz)``, ``queries.jsonl`` and ``qrels/*.tsv``.

The one home of BEIR reading: the corpus reader finds its corpus file here, evaluation reads its
queries and relevance judgements here.
"""

from __future__ import annotations

from pathlib import Path

from odqa.errors import InputError
from odqa.io.lines import json_records, tsv_rows

QRELS_PREFERENCE = ("test.tsv", "dev.tsv")
"""Which qrels file a folder with several is evaluated on, first found wins."""


def find_beir_corpus(folder: Path) -> Path | None:
    """The folder's ``corpus.jsonl`` (or ``corpus.jsonl.gz``), None when it has neither."""
    for name in ("corpus.jsonl", "corpus.jsonl.gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def beir_corpus_file(folder: Path) -> Path:
    """The folder's ``corpus.jsonl`` (or ``corpus.jsonl.gz``), or an InputError."""
    found = find_beir_corpus(folder)
    if found is None:
        raise InputError(folder, None, "not a BEIR folder: it has no corpus.jsonl(.gz)")
    return found


def read_beir_queries(folder: Path) -> dict[str, str]:
    """Query id -> text from the folder's ``queries.jsonl`` (``_id`` and ``text``), file order."""
    path = folder / "queries.jsonl"
    if not path.is_file():
        raise InputError(folder, None, "not a BEIR folder: queries.jsonl is missing")
    texts: dict[str, str] = {}
    for number, record, _ in json_records(path):
        qid, text = record.get("_id"), record.get("text")
        if qid is None or not isinstance(text, str):
            raise InputError(path, number, "a BEIR query needs '_id' and 'text'")
        texts[str(qid)] = text
    return texts


def pick_qrels(folder: Path) -> Path:
    """The qrels file to evaluate on: ``test.tsv``, else ``dev.tsv``, else the only one."""
    qrels_dir = folder / "qrels"
    files = sorted(qrels_dir.glob("*.tsv")) if qrels_dir.is_dir() else []
    for name in QRELS_PREFERENCE:
        if (qrels_dir / name).is_file():
            return qrels_dir / name
    if len(files) == 1:
        return files[0]
    if not files:
        raise InputError(folder, None, "not a BEIR folder: no qrels/*.tsv file")
    names = ", ".join(f.name for f in files)
    raise InputError(qrels_dir, None, f"several qrels files ({names}) and no test.tsv: keep one")


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """Query id -> {passage id: relevance} from BEIR (3 columns, optional header) or TREC
    (4 columns) qrels."""
    qrels: dict[str, dict[str, int]] = {}
    for number, row in tsv_rows(path):
        if len(row) == 4:  # TREC qrels: query, iteration, doc, relevance
            row = [row[0], row[2], row[3]]
        if len(row) != 3:
            raise InputError(path, number, "expected query-id, corpus-id and score")
        try:
            score = int(row[2])
        except ValueError:
            if number == 1:  # header line
                continue
            raise InputError(path, number, f"relevance {row[2]!r} is not an integer") from None
        qrels.setdefault(row[0].strip(), {})[row[1].strip()] = score
    if not qrels:
        raise InputError(path, None, "no relevance judgements")
    return qrels
