"""Training data: extractive QA examples from SQuAD JSON or JSON lines, and their fingerprints.

Inputs (gzip read transparently):

- SQuAD JSON: ``data[].paragraphs[].qas[]``; the first answer of each question is its label.
  A question may carry ``offset_source`` (how its ``answer_start`` was found): those listed in
  ``drop_offset_sources`` are skipped.
- JSON lines: ``{"question", "context", "answers"}`` where ``answers`` is a list of
  ``{"text", "answer_start"}`` or Hugging Face's ``{"text": [...], "answer_start": [...]}``;
  optional ``id`` and ``title``.

Every record is checked: an answer that is not at its ``answer_start`` in the context is an
:class:`~odqa.errors.InputError` naming the file and the question.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from odqa.errors import InputError
from odqa.io.lines import json_records
from odqa.io.squad import is_squad_name, load_squad_articles


@dataclass(frozen=True, slots=True)
class QAExample:
    """One training question: its paragraph and the character span of its answer."""

    id: str
    question: str
    context: str
    answer_start: int
    answer_text: str
    title: str = ""
    answers: tuple[str, ...] = ()
    """Every gold answer text (the label first), for scoring."""

    @property
    def answer_end(self) -> int:
        """Character offset just past the answer."""
        return self.answer_start + len(self.answer_text)


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes (as stored, compressed or not)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def data_files(paths: list[Path]) -> list[dict[str, str]]:
    """The training record's ``data``: each file's name and sha256."""
    return [{"file": Path(p).name, "sha256": file_sha256(p)} for p in paths]


def load_qa_examples(
    paths: Iterable[Path], *, drop_offset_sources: Iterable[str] = ()
) -> tuple[list[QAExample], int]:
    """Read every training file; return the examples and how many questions were dropped.

    Raises:
        InputError: for a missing file, malformed JSON, or an answer not found at its offset.
    """
    drop = set(drop_offset_sources)
    examples: list[QAExample] = []
    dropped = 0
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise InputError(path, None, "no such training file")
        records = _squad_records(path) if is_squad_name(path) else _jsonl_records(path)
        for example, source in records:
            if source in drop:
                dropped += 1
                continue
            examples.append(example)
    return examples, dropped


def _check(example: QAExample, path: Path, line: int | None) -> QAExample:
    found = example.context[example.answer_start : example.answer_end]
    if not example.answer_text or found != example.answer_text:
        raise InputError(
            path,
            line,
            f"question '{example.id}': answer {example.answer_text!r} is not at character "
            f"{example.answer_start} of its context (found {found!r})",
        )
    return example


def _squad_records(path: Path) -> Iterator[tuple[QAExample, str | None]]:
    for article in load_squad_articles(path):
        title = str(article.get("title", ""))
        for paragraph in article.get("paragraphs", []):
            context = paragraph.get("context")
            for qa in paragraph.get("qas", []):
                answers = qa.get("answers") or []
                if not isinstance(context, str) or not answers or qa.get("is_impossible"):
                    continue
                first = answers[0]
                example = QAExample(
                    id=str(qa.get("id", "")),
                    question=str(qa.get("question", "")),
                    context=context,
                    answer_start=int(first.get("answer_start", -1)),
                    answer_text=str(first.get("text", "")),
                    title=title,
                    answers=tuple(str(a.get("text", "")) for a in answers),
                )
                yield _check(example, path, None), qa.get("offset_source")


def _jsonl_records(path: Path) -> Iterator[tuple[QAExample, str | None]]:
    for line, record, _ in json_records(path):
        answers = record.get("answers")
        if isinstance(answers, dict):  # Hugging Face datasets layout
            texts, starts = answers.get("text") or [], answers.get("answer_start") or []
            answers = [{"text": t, "answer_start": s} for t, s in zip(texts, starts)]
        if not isinstance(answers, list) or not answers or not isinstance(answers[0], dict):
            raise InputError(path, line, "needs 'answers': [{\"text\", \"answer_start\"}, ...]")
        question, context = record.get("question"), record.get("context")
        if not isinstance(question, str) or not isinstance(context, str):
            raise InputError(path, line, "needs string 'question' and 'context' fields")
        first = answers[0]
        example = QAExample(
            id=str(record.get("id", line)),
            question=question,
            context=context,
            answer_start=int(first.get("answer_start", -1)),
            answer_text=str(first.get("text", "")),
            title=str(record.get("title", "")),
            answers=tuple(str(a.get("text", "")) for a in answers),
        )
        yield _check(example, path, line), record.get("offset_source")
