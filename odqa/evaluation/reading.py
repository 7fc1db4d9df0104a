"""Reading comprehension: an extractive reader on each question's gold paragraph (SQuAD's own
setting), scored with the official SQuAD v1.1 EM and F1."""

from __future__ import annotations

import time
from dataclasses import dataclass

from odqa.evaluate import qa_scores
from odqa.progress import make_progress
from odqa.training.data import QAExample

CHUNK = 64


@dataclass(frozen=True)
class ReadingResult:
    """EM / F1 in percent, the predictions by question id, and the reading throughput."""

    em: float
    f1: float
    questions: int
    seconds: float
    predictions: dict[str, str]

    @property
    def questions_per_second(self) -> float:
        return self.questions / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict:
        return {"em": round(self.em, 2), "f1": round(self.f1, 2), "questions": self.questions,
                "seconds": round(self.seconds, 1),
                "questions_per_second": round(self.questions_per_second, 2)}


def evaluate_reading(reader, examples: list[QAExample], *, progress: bool = True) -> ReadingResult:
    """Read each example's question against its own context; best span against every gold."""
    reader.warm_up()
    predictions: dict[str, str] = {}
    em = f1 = 0.0
    started = time.perf_counter()
    with make_progress(progress) as bar:
        task = bar.add_task("reading", total=len(examples), unit="questions")
        for begin in range(0, len(examples), CHUNK):
            chunk = examples[begin : begin + CHUNK]
            found = reader.read([e.question for e in chunk], [[e.context] for e in chunk])
            for e, (spans,) in zip(chunk, found):
                text = e.context[spans.starts[0] : spans.ends[0]] if len(spans.starts) else ""
                predictions[e.id] = text
                scores = qa_scores(text, e.answers or (e.answer_text,))
                em += scores["em"]
                f1 += scores["f1"]
            bar.advance(task, len(chunk))
    n = max(1, len(examples))
    return ReadingResult(100 * em / n, 100 * f1 / n, len(examples),
                         time.perf_counter() - started, predictions)
