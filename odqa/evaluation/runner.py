"""Batched, timed calls over the questions of a dataset, with per-question failure handling."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from odqa.errors import IndexLoadError, MissingDependencyError, ModelNotAvailableError, OdqaError

# Errors that concern the whole run (a model or index that cannot be used), not one question.
FATAL_ERRORS = (IndexLoadError, MissingDependencyError, ModelNotAvailableError)


@dataclass
class Batched:
    """Per-question outputs of :func:`run_batches` (None where the question failed)."""

    outputs: list[Any]
    seconds: list[float]
    wall: float
    failures: list[tuple[str, str]]


def run_batches(
    questions: Sequence[Any],
    call: Callable[[list[Any]], list[Any]],
    *,
    batch_size: int,
    progress: Any = None,
    label: str = "",
) -> Batched:
    """Apply ``call`` to ``questions`` in batches, timing each batch.

    A question's latency is its batch's time divided by the batch size. When a batch raises,
    its questions are retried one at a time so that only the failing ones are recorded (with
    the error message) and get ``None``; run-level errors (:data:`FATAL_ERRORS`) propagate.
    """
    outputs: list[Any] = [None] * len(questions)
    seconds = [0.0] * len(questions)
    failures: list[tuple[str, str]] = []
    task = progress.add_task(label, total=len(questions), unit="questions") if progress else None
    start = time.perf_counter()
    for lo in range(0, len(questions), batch_size):
        batch = list(questions[lo : lo + batch_size])
        try:
            tick = time.perf_counter()
            got = call(batch)
            elapsed = time.perf_counter() - tick
            if len(got) != len(batch):
                raise RuntimeError(f"{len(got)} results for {len(batch)} questions")
            outputs[lo : lo + len(batch)] = got
            seconds[lo : lo + len(batch)] = [elapsed / len(batch)] * len(batch)
        except FATAL_ERRORS:
            raise
        except Exception:
            _one_by_one(batch, lo, call, outputs, seconds, failures)
        if task is not None:
            progress.advance(task, len(batch))
    return Batched(outputs, seconds, time.perf_counter() - start, failures)


def _one_by_one(
    batch: list[Any],
    lo: int,
    call: Callable[[list[Any]], list[Any]],
    outputs: list[Any],
    seconds: list[float],
    failures: list[tuple[str, str]],
) -> None:
    """Retry a failed batch question by question, recording each failure's message."""
    for i, question in enumerate(batch, start=lo):
        tick = time.perf_counter()
        try:
            outputs[i] = call([question])[0]
        except FATAL_ERRORS:
            raise
        except Exception as exc:
            failures.append((question.id, f"{type(exc).__name__}: {exc}"))
        seconds[i] = time.perf_counter() - tick


def warm_up(call: Callable[[list[Any]], list[Any]], questions: Sequence[Any]) -> None:
    """Run one question untimed so model and index loading stay out of the latencies.

    Configuration errors (:class:`OdqaError`) stop the run; any other error is left for the
    timed pass, which records it against its question.
    """
    if not questions:
        return
    try:
        call([questions[0]])
    except OdqaError:
        raise
    except Exception:
        return


def single_question_seconds(
    questions: Sequence[Any], call: Callable[[list[Any]], list[Any]], sample: int
) -> list[float]:
    """Seconds of ``call`` on one question at a time, for ``sample`` questions spread evenly
    over ``questions`` (questions that raise are left out: the batched run counts them)."""
    picks = sorted({round(i * (len(questions) - 1) / max(sample - 1, 1)) for i in range(sample)})
    seconds = []
    for i in picks[: len(questions)]:
        tick = time.perf_counter()
        try:
            call([questions[i]])
        except FATAL_ERRORS:
            raise
        except Exception:
            continue
        seconds.append(time.perf_counter() - tick)
    return seconds


def timed_run(
    questions: Sequence[Any],
    call: Callable[[list[Any]], list[Any]],
    *,
    batch_size: int,
    progress: Any,
    label: str,
    latency_sample: int = 0,
) -> tuple[Batched, dict[str, float]]:
    """Warm up, run in batches, and summarise the timings.

    Throughput comes from the batched run. Latency p50/p95 come from ``latency_sample``
    questions timed one at a time; with no sample (or batches of one) a question's latency is
    its batch's time divided by the batch size.
    """
    from odqa.evaluate import latency_summary

    warm_up(call, questions)
    run = run_batches(questions, call, batch_size=batch_size, progress=progress, label=label)
    summary = latency_summary(run.seconds, run.wall)
    if latency_sample > 0 and batch_size > 1 and questions:
        single = single_question_seconds(questions, call, min(latency_sample, len(questions)))
        summary |= {k: v for k, v in latency_summary(single).items() if k.endswith("_ms")}
        summary["latency_questions"] = len(single)
    return run, summary
