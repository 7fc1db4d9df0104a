"""Rendering answers: a rich table per question for people, JSON lines for scripts."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any, TextIO

from rich.table import Table
from rich.text import Text

from odqa.cli.consoles import output_console
from odqa.readers.sentence import sentence_around
from odqa.types import Answer, QuestionAnswers

EVIDENCE_CONTEXT = 100
"""Characters of evidence kept on each side of the answer when its sentence is longer."""

_SPACE = re.compile(r"\s+")


def _flat(text: str) -> str:
    return _SPACE.sub(" ", text)


def evidence(answer: Answer, width: int = EVIDENCE_CONTEXT) -> Text:
    """The sentence holding ``answer`` with the answer highlighted (``-`` without a context)."""
    if answer.context is None or answer.start is None or answer.end is None:
        return Text("-", style="dim")
    start, end = answer.start, answer.end
    first, last = sentence_around(answer.context, start, end)
    left, right = max(first, start - width), min(last, end + width)
    text = Text("…" if left > first else "")
    text.append(_flat(answer.context[left:start]).lstrip())
    text.append(_flat(answer.context[start:end]), style="bold yellow")
    text.append(_flat(answer.context[end:right]).rstrip())
    if right < last:
        text.append("…")
    return text


def source(answer: Answer) -> Text:
    """``title`` and ``(passage id)`` for display."""
    if answer.passage_id is None:
        return Text("-", style="dim")
    text = Text(answer.title or "", style="green")
    text.append(f" ({answer.passage_id})" if answer.title else answer.passage_id, style="cyan")
    return text


def answers_table(result: QuestionAnswers) -> Table:
    """A table of one question's answers: rank, answer, confidence, source and evidence (the
    sentence around the answer; left out in sentence mode, where the answer is a sentence)."""
    title = f"[bold]{result.question}[/] [dim]({result.mode})[/]"
    table = Table(title=title, title_justify="left", expand=False)
    with_evidence = result.mode != "sentence"
    table.add_column("rank", justify="right")
    table.add_column("answer", style="bold")
    table.add_column("confidence", justify="right")
    table.add_column("source")
    if with_evidence:
        table.add_column("evidence")
    for a in result.answers:
        cells: list[Any] = [str(a.rank), _flat(a.text), f"{a.confidence:.3f}", source(a)]
        table.add_row(*cells, *([evidence(a)] if with_evidence else []))
    if not result.answers:
        cells = ["-", Text("no answer", style="dim"), "-", "-"]
        table.add_row(*cells, *(["-"] if with_evidence else []))
    return table


def jsonl_lines(results: list[QuestionAnswers]) -> Iterable[str]:
    """One JSON object per question: question_id, question, mode, answers."""
    for result in results:
        yield json.dumps(result.to_dict(), ensure_ascii=False)


def write_answers(results: list[QuestionAnswers], fmt: str, out: TextIO) -> None:
    """Write ``results`` to ``out`` as ``table`` or ``jsonl``."""
    if fmt == "table":
        console = output_console(out)
        for result in results:
            console.print(answers_table(result))
        return
    for line in jsonl_lines(results):
        out.write(line + "\n")
