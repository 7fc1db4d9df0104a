"""Reading queries/questions from a file or stdin: JSON lines, TSV, or plain lines."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from odqa.errors import InputError
from odqa.io.lines import decoded_lines
from odqa.types import Query

QUESTION_FIELDS = ("question", "query", "text")


def _parse_line(line: str, number: int, source: str) -> Query:
    query = _parse_record(line, number, source)
    if not query.text.strip():
        raise InputError(source, number, "empty query text")
    return query


def _parse_record(line: str, number: int, source: str) -> Query:
    stripped = line.strip()
    if stripped.startswith("{"):
        try:
            record = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise InputError(source, number, f"invalid JSON ({exc.msg})") from None
        text = next((record[f] for f in QUESTION_FIELDS if isinstance(record.get(f), str)), None)
        if text is None:
            raise InputError(source, number, f"no {'/'.join(QUESTION_FIELDS)} field")
        qid = next(
            (record[f] for f in ("id", "_id", "query_id") if record.get(f) is not None), number
        )
        if isinstance(qid, bool) or not isinstance(qid, (str, int)):
            raise InputError(
                source, number, f"query id must be a string or an integer, got {type(qid).__name__}"
            )
        return Query(str(qid), text)
    if "\t" in line:
        return Query(str(number), line.split("\t", 1)[0].strip())
    return Query(str(number), stripped)


def read_queries(source: str | Path) -> list[Query]:
    """Queries from ``source`` (a path, or ``-`` for stdin), one per non-empty line.

    JSON lines take ``id`` (optional) and ``question``/``query``/``text``; TSV lines take the
    first column; other lines are the query itself. Ids default to the line number and must be
    unique. A leading byte-order mark is ignored.

    Raises:
        InputError: a missing or undecodable file, a malformed line, or a repeated id (both
            line numbers named).
    """
    name = str(source)
    if name == "-":
        lines = sys.stdin.read().removeprefix("\ufeff").splitlines()
    else:
        path = Path(source)
        if not path.is_file():
            raise InputError(path, None, "no such queries file")
        lines = [text.rstrip("\r\n") for _, text in decoded_lines(path)]
    queries = []
    first_line: dict[str, int] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        query = _parse_line(line, number, name)
        seen = first_line.setdefault(query.id, number)
        if seen != number:
            raise InputError(
                name, number,
                f"duplicate query id '{query.id}' (first at line {seen}): ids must be unique, "
                "or runs become ambiguous",
            )  # fmt: skip
        queries.append(query)
    if not queries:
        raise InputError(name, None, "no queries found")
    return queries
