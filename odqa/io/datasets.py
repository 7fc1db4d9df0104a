"""Readers for evaluation datasets and prediction files.

A dataset is a list of questions with gold answers (or, for BEIR, relevance judgements).
Formats, detected from the path and the first line (see ``docs/evaluation.md``):

- ``squad``: the official SQuAD JSON (``data[].paragraphs[].qas[]``).
- ``jsonl``: JSON lines with ``question`` and ``answer`` or ``answers`` (NQ-open, SQuAD-open,
  CuratedTREC in DPR's release), optional ``id``.
- ``dpr-tsv``: ``question<TAB>['answer', ...]`` with a Python-literal list, CSV quoting, LF or
  CRLF line ends (DPR / Pyserini topic files).
- ``trec-tsv``: ``id<TAB>type<TAB>question<TAB>answer regex`` (the upstream CuratedTREC files).
- ``beir``: a folder with ``queries.jsonl`` and ``qrels/*.tsv`` (``corpus.jsonl`` is indexed
  separately with ``odqa index``).

Answers are regular expressions for ``trec-tsv`` and, by default, for files whose name contains
``curated``; ``regex=True/False`` overrides the guess. Every malformed record raises
:class:`~odqa.errors.InputError` with its file and line.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from odqa.errors import InputError
from odqa.io.beir import pick_qrels, read_beir_queries, read_qrels
from odqa.io.lines import decoded_lines, json_records, tsv_rows
from odqa.io.squad import is_squad_name, load_squad_articles, squad_items

FORMATS = ("squad", "jsonl", "dpr-tsv", "trec-tsv", "beir")
_ID_KEYS = ("id", "qid", "question_id", "_id")
_QUESTION_KEYS = ("question", "query", "text")


@dataclass(frozen=True, slots=True)
class EvalQuestion:
    """One evaluation question: its id, text and gold answers (strings or regexes)."""

    id: str
    question: str
    answers: tuple[str, ...] = ()


@dataclass(frozen=True)
class EvalDataset:
    """Questions of an evaluation set; ``qrels`` (query -> {doc id: relevance}) only for BEIR."""

    path: Path
    format: str
    questions: list[EvalQuestion]
    regex_answers: bool = False
    qrels: dict[str, dict[str, int]] | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        """Short display name: the file or folder name."""
        return self.path.name

    def __len__(self) -> int:
        return len(self.questions)


def detect_dataset_format(path: Path) -> str:
    """Guess the dataset format of ``path`` (one of :data:`FORMATS`).

    Raises:
        InputError: for a missing path or an empty file.
    """
    if path.is_dir():
        return "beir"
    if not path.is_file():
        raise InputError(path, None, "no such file or folder")
    if is_squad_name(path):
        return "squad"
    first = next((text for _, text in decoded_lines(path) if text.strip()), None)
    if first is None:
        raise InputError(path, None, "the dataset file is empty")
    if first.lstrip().startswith("{"):
        return "jsonl"
    return "trec-tsv" if first.rstrip("\r\n").count("\t") >= 3 else "dpr-tsv"


def looks_like_regex_dataset(path: Path) -> bool:
    """True when the file is named like CuratedTREC's (its name contains ``curated``)."""
    return "curated" in path.name.lower()


def load_dataset(
    path: str | Path, *, regex: bool | None = None, limit: int | None = None
) -> EvalDataset:
    """Read an evaluation dataset in any supported format.

    Args:
        path: dataset file or BEIR folder.
        regex: answers are regular expressions; ``None`` guesses (see module docstring).
        limit: keep only the first ``limit`` questions.

    Raises:
        InputError: for a missing file, an unknown layout, or any malformed record.
    """
    path = Path(path)
    fmt = detect_dataset_format(path)
    qrels = None
    if fmt == "squad":
        questions = _read_squad(path)
    elif fmt == "jsonl":
        questions = _read_jsonl(path)
    elif fmt == "dpr-tsv":
        questions = _read_dpr_tsv(path)
    elif fmt == "trec-tsv":
        questions = _read_trec_tsv(path)
    else:
        texts = read_beir_queries(path)
        qrels = read_qrels(pick_qrels(path))
        questions = _beir_questions(path, texts, qrels)
    if regex is None:
        regex = fmt == "trec-tsv" or (fmt != "beir" and looks_like_regex_dataset(path))
    if regex:
        _check_regexes(path, questions)
    if limit is not None:
        questions = questions[:limit]
    return EvalDataset(path, fmt, questions, regex_answers=regex, qrels=qrels)


def _answer_list(value: Any, path: Path, line: int | None) -> tuple[str, ...]:
    """Gold answers from a string, a list of strings, or SQuAD-style ``{"text": ...}`` dicts."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise InputError(path, line, "answers must be a string or a non-empty list of strings")
    answers = []
    for item in items:
        text = item.get("text") if isinstance(item, dict) else item
        if not isinstance(text, str):
            raise InputError(path, line, f"answer {item!r} is not a string")
        answers.append(text)
    return tuple(dict.fromkeys(answers))


def _first_key(record: dict, keys: tuple[str, ...]) -> Any:
    return next((record[k] for k in keys if k in record), None)


def _read_jsonl(path: Path) -> list[EvalQuestion]:
    questions = []
    for number, record, _ in json_records(path):
        question = _first_key(record, _QUESTION_KEYS)
        if not isinstance(question, str) or not question.strip():
            raise InputError(path, number, "missing 'question' (a non-empty string)")
        if "answers" not in record and "answer" not in record:
            raise InputError(path, number, "missing 'answer' or 'answers'")
        answers = _answer_list(record.get("answers", record.get("answer")), path, number)
        qid = _first_key(record, _ID_KEYS)
        questions.append(
            EvalQuestion(str(qid) if qid is not None else str(number), question, answers)
        )
    return questions


def _read_squad(path: Path) -> list[EvalQuestion]:
    questions = []
    for a, article in enumerate(load_squad_articles(path)):
        for p, paragraph in enumerate(squad_items(article, "paragraphs", path, f"data[{a}]")):
            where = f"data[{a}].paragraphs[{p}]"
            for q, qa in enumerate(squad_items(paragraph, "qas", path, where)):
                here = f"{where}.qas[{q}]"
                if not isinstance(qa, dict) or not isinstance(qa.get("question"), str):
                    raise InputError(path, None, f"{here}: missing 'question'")
                if qa.get("is_impossible"):
                    continue
                try:
                    answers = _answer_list(qa.get("answers"), path, None)
                except InputError as exc:
                    raise InputError(path, None, f"{here}: {exc.reason}") from None
                qid = str(qa.get("id", f"{a}-{p}-{q}"))
                questions.append(EvalQuestion(qid, qa["question"], answers))
    return questions


def _read_dpr_tsv(path: Path) -> list[EvalQuestion]:
    questions: list[EvalQuestion] = []
    for number, row in tsv_rows(path):
        if len(row) != 2:
            raise InputError(path, number, f"expected 2 tab-separated fields, found {len(row)}")
        question, literal = row
        try:
            value = ast.literal_eval(literal.strip())
        except (ValueError, SyntaxError):
            raise InputError(
                path, number, f"answers are not a Python list literal: {literal[:80]!r}"
            ) from None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InputError(path, number, "answers must be a list of strings")
        # Unquoted fields in some topic files keep CSV's doubled quotes ('""x""'): undo them.
        answers = _answer_list([v.replace('""', '"') for v in value], path, number)
        questions.append(EvalQuestion(str(len(questions) + 1), question.strip(), answers))
    return questions


def _read_trec_tsv(path: Path) -> list[EvalQuestion]:
    questions = []
    for number, text in decoded_lines(path):
        line = text.rstrip("\r\n")
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 4 or not fields[2].strip():
            raise InputError(path, number, "expected id, type, question and answer regex")
        # A tab inside the regex itself splits it further; the regex is the rest of the line.
        pattern = "\t".join(fields[3:])
        questions.append(EvalQuestion(fields[0], fields[2].strip(), (pattern,)))
    return questions


def _beir_questions(
    folder: Path, texts: dict[str, str], qrels: dict[str, dict[str, int]]
) -> list[EvalQuestion]:
    """The judged queries, in file order; qrels naming an unknown query are an error."""
    missing = [q for q in qrels if q not in texts]
    if missing:
        raise InputError(
            folder, None, f"qrels name {len(missing)} unknown query ids, e.g. '{missing[0]}'"
        )
    return [EvalQuestion(q, t) for q, t in texts.items() if q in qrels]


def _check_regexes(path: Path, questions: list[EvalQuestion]) -> None:
    for number, question in enumerate(questions, start=1):
        for pattern in question.answers:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise InputError(
                    path,
                    None,
                    f"question {question.id} (record {number}): answer {pattern[:60]!r} is not a "
                    f"valid regular expression ({exc}); pass --no-regex to match it as text",
                ) from None


@dataclass(frozen=True, slots=True)
class Prediction:
    """One predicted answer, keyed by question id and/or question text."""

    answer: str
    id: str | None = None
    question: str | None = None


_ANSWER_KEYS = ("prediction", "answer", "answers")
_RECORD_KEYS = (*_ANSWER_KEYS, "id", "question_id", "qid", "question")


def read_predictions(path: str | Path) -> list[Prediction]:
    """Read a predictions file.

    Two layouts are accepted:

    - a JSON object mapping a question id or question text to an answer string (the official
      SQuAD predictions format); a file holding one object with record keys (``id``,
      ``question``, ``prediction``, ...) is read as a single JSON line instead;
    - JSON lines, each with ``id``/``question_id`` and/or ``question``, and the answer as
      ``prediction`` or ``answer`` (a string, or a list whose first item is used) or
      ``answers`` (a ranked list of strings or ``{"text": ...}`` objects, as written by
      ``odqa ask --format json``; the first is used). ``"prediction": null`` marks a question
      left unanswered (as ``odqa eval --predictions-out`` writes it) and is skipped.

    Raises:
        InputError: for malformed records.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, None, "no such predictions file")
    text = path.read_text(encoding="utf-8-sig")
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        whole = None
    if isinstance(whole, dict) and not any(k in whole for k in _RECORD_KEYS):
        return [_mapping_prediction(path, key, value) for key, value in whole.items()]
    found = (_record_prediction(path, n, record) for n, record, _ in json_records(path))
    return [p for p in found if p is not None]


def _top_answer(value: Any) -> str | None:
    if isinstance(value, list):
        value = value[0] if value else ""
    if isinstance(value, dict):
        value = value.get("text")
    return value if isinstance(value, str) else None


def _mapping_prediction(path: Path, key: str, value: Any) -> Prediction:
    answer = _top_answer(value)
    if answer is None:
        raise InputError(path, None, f"prediction for '{key}' is not a string")
    return Prediction(answer, id=key, question=key)


def _record_prediction(path: Path, number: int, record: dict) -> Prediction | None:
    key = next((k for k in _ANSWER_KEYS if k in record), None)
    if key == "prediction" and record[key] is None:  # written for a question left unanswered
        return None
    answer = _top_answer(record[key]) if key else None
    if answer is None:
        raise InputError(path, number, "needs 'prediction', 'answer' or 'answers' with a string")
    qid = _first_key(record, ("id", "question_id", "qid"))
    question = record.get("question")
    if qid is None and not isinstance(question, str):
        raise InputError(path, number, "needs 'id' or 'question' to match a dataset question")
    return Prediction(
        answer,
        id=None if qid is None else str(qid),
        question=question if isinstance(question, str) else None,
    )


def match_predictions(
    questions: list[EvalQuestion], predictions: list[Prediction]
) -> tuple[list[str | None], int]:
    """Pair each question with its prediction: by id first, then by exact question text.

    Returns:
        per question the predicted answer (None when missing), and the number of predictions
        that matched no question.
    """
    by_id = {p.id: p for p in predictions if p.id is not None}
    by_text = {p.question.strip(): p for p in predictions if p.question is not None}
    used: set[int] = set()
    answers: list[str | None] = []
    for q in questions:
        p = by_id.get(q.id) or by_text.get(q.question.strip())
        answers.append(None if p is None else p.answer)
        if p is not None:
            used.add(id(p))
    unmatched = sum(1 for p in predictions if id(p) not in used)
    return answers, unmatched
