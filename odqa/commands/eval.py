"""`odqa eval`: score retrieval, open-book or closed-book QA on a dataset, or a predictions file."""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from odqa.commands._common import err_console, fail_on_error, output_stream, resolve_index
from odqa.errors import IndexLoadError, MissingDependencyError, ModelNotAvailableError, OdqaError

# Errors that concern the whole run (a model or index that cannot be used), not one question.
FATAL_ERRORS = (IndexLoadError, MissingDependencyError, ModelNotAvailableError)
SHOWN_FAILURES = 5


class EvalMode(str, Enum):
    retrieval = "retrieval"
    open_book = "open-book"
    closed_book = "closed-book"


class ReportFormat(str, Enum):
    table = "table"
    json = "json"


@dataclass
class SystemResult:
    """Scores of one retriever or reader over the dataset (metrics are fractions)."""

    name: str
    metrics: dict[str, float | None]
    latency: dict[str, float] | None = None
    failures: list[tuple[str, str]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    curve: Any = None  # top-k accuracy for k = 1..depth (retrieval on answer datasets)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "name": self.name,
            "metrics": self.metrics,
            "latency": self.latency,
            "failed": len(self.failures),
            "failures": [{"id": q, "error": e} for q, e in self.failures],
            **self.counts,
        }


@dataclass
class Batched:
    """Per-question outputs of :func:`run_batches` (None where the question failed)."""

    outputs: list[Any]
    seconds: list[float]
    wall: float
    failures: list[tuple[str, str]]


def parse_int_list(value: str, flag: str) -> list[int]:
    """``"1,5,20"`` -> ``[1, 5, 20]`` (sorted, distinct, positive)."""
    try:
        numbers = sorted({int(v) for v in value.split(",") if v.strip()})
    except ValueError:
        raise typer.BadParameter(
            f"expected comma-separated integers, got '{value}'", param_hint=flag
        ) from None
    if not numbers or numbers[0] < 1:
        raise typer.BadParameter(f"expected positive integers, got '{value}'", param_hint=flag)
    return numbers


def parse_names(value: str) -> list[str]:
    """``"bm25, dense"`` -> ``["bm25", "dense"]`` (order kept, duplicates dropped)."""
    return list(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))


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
            for i, question in enumerate(batch, start=lo):
                tick = time.perf_counter()
                try:
                    outputs[i] = call([question])[0]
                except FATAL_ERRORS:
                    raise
                except Exception as exc:
                    failures.append((question.id, f"{type(exc).__name__}: {exc}"))
                seconds[i] = time.perf_counter() - tick
        if task is not None:
            progress.advance(task, len(batch))
    return Batched(outputs, seconds, time.perf_counter() - start, failures)


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


def retrieval_depth(index: Any, ks: list[int], beir: bool) -> int:
    """Passages to retrieve: the largest k; for BEIR enough to reach 100 distinct documents."""
    depth = max(ks)
    if beir:
        corpus = index.manifest.get("corpus", {})
        per_doc = corpus.get("passages", 1) / max(corpus.get("documents", 1), 1)
        depth = max(depth, 100) * max(1, math.ceil(per_doc))
    return min(depth, len(index.passages))


class PassageIds:
    """Passage and document ids by passage index, read from the index once each."""

    def __init__(self, passages: Any) -> None:
        self._passages = passages
        self._ids: dict[int, tuple[str, str]] = {}

    def __call__(self, i: int) -> tuple[str, str]:
        if i not in self._ids:
            p = self._passages[i]
            self._ids[i] = (p.id, p.doc_id)
        return self._ids[i]


def evaluate_retrieval(
    data: Any, index: Any, names: list[str], ks: list[int], *, batch_size: int, progress: Any
) -> tuple[list[SystemResult], list[dict]]:
    """Top-k accuracy and MRR (answer datasets) or nDCG@10 / R@100 / MRR@10 (BEIR) per retriever.

    Returns the results and, per retriever and question, a record of the ranking.
    """
    from odqa.evaluate import AnswerMatcher, latency_summary

    depth = retrieval_depth(index, ks, data.qrels is not None)
    ids = PassageIds(index.passages)
    matcher = AnswerMatcher(lambda i: index.passages[i].text, regex_answers=data.regex_answers)
    results, records = [], []
    for name in names:
        retriever = index.retriever(name)

        def call(batch, retriever=retriever):
            return retriever.search_ids([q.question for q in batch], depth)

        warm_up(call, data.questions)
        run = run_batches(
            data.questions, call, batch_size=batch_size, progress=progress, label=name
        )
        result = SystemResult(name, {}, latency_summary(run.seconds, run.wall), run.failures)
        rankings = [None if out is None else [int(i) for i in out[0]] for out in run.outputs]
        if data.qrels is not None:
            records += score_documents(result, data, rankings, ids)
        else:
            records += score_passages(result, data, rankings, ids, matcher, ks, depth)
        results.append(result)
    return results, records


def score_passages(
    result: SystemResult, data: Any, rankings: list, ids: PassageIds, matcher: Any, ks, depth: int
) -> list[dict]:
    """Fill ``result`` with top-k accuracy, MRR and the curve; return per-question records."""
    from odqa.evaluate import first_hit_rank, mean_reciprocal_rank, top_k_accuracy, top_k_curve

    ranks, records = [], []
    for q, ranked in zip(data.questions, rankings):
        ranked = ranked or []
        found = matcher.matches(q.answers, ranked)
        ranks.append(first_hit_rank(found))
        records.append(
            {
                "retriever": result.name,
                "id": q.id,
                "question": q.question,
                "answers": list(q.answers),
                "passages": [ids(i)[0] for i in ranked],
                "has_answer": found.tolist(),
                "first_hit": ranks[-1] or None,
            }
        )
    result.metrics = {f"top-{k}": v for k, v in top_k_accuracy(ranks, ks).items()}
    result.metrics[f"mrr@{depth}"] = mean_reciprocal_rank(ranks)
    result.curve = top_k_curve(ranks, depth)
    return records


def score_documents(result: SystemResult, data: Any, rankings: list, ids: PassageIds) -> list[dict]:
    """Fill ``result`` with BEIR's document-level metrics; return per-query records."""
    from odqa.evaluate import beir_scores, documents_in_rank_order

    runs = {
        q.id: documents_in_rank_order(ids(i)[1] for i in ranked)
        for q, ranked in zip(data.questions, rankings)
        if ranked is not None
    }
    scores = beir_scores(runs, data.qrels)
    result.counts["queries"] = int(scores.pop("queries"))
    result.metrics = scores
    return [{"retriever": result.name, "id": q, "documents": d[:100]} for q, d in runs.items()]


def score_answers(
    name: str, data: Any, predicted: list[str | None], latency: dict | None, failures: list
) -> tuple[SystemResult, list[dict]]:
    """EM / F1 (max over golds) of one system's answers; a missing answer scores 0."""
    from odqa.evaluate import qa_scores

    rows, records = [], []
    for q, answer in zip(data.questions, predicted):
        if answer is None:  # never scored: an empty string can equal an all-punctuation gold
            scores = {"em": 0.0, "f1": None if data.regex_answers else 0.0}
        else:
            scores = qa_scores(answer, q.answers, regex_answers=data.regex_answers)
        rows.append(scores)
        records.append(
            {
                "system": name,
                "id": q.id,
                "question": q.question,
                "prediction": answer,
                "answers": list(q.answers),
                **scores,
            }
        )
    n = max(len(rows), 1)
    metrics: dict[str, float | None] = {"em": sum(r["em"] for r in rows) / n}
    metrics["f1"] = None if data.regex_answers else sum(r["f1"] for r in rows) / n
    missing = sum(a is None for a in predicted)
    return SystemResult(name, metrics, latency, failures, counts={"missing": missing}), records


def evaluate_qa(
    data: Any,
    mode: EvalMode,
    index: Any,
    names: list[str],
    *,
    reader: str | None,
    passages: int,
    batch_size: int,
    progress: Any,
) -> tuple[list[SystemResult], list[dict]]:
    """Answer every question (top answer only) with each system and score EM / F1."""
    from odqa.evaluate import latency_summary
    from odqa.types import Query

    def top_text(answered) -> list[str]:
        return [qa.answers[0].text if qa.answers else "" for qa in answered]

    if mode is EvalMode.closed_book:
        from odqa.answering.closed_book import DEFAULT_CLOSED_BOOK_MODEL, answer_closed_book

        def closed(batch):
            qs = [Query(q.id, q.question) for q in batch]
            return top_text(answer_closed_book(qs, model=reader, top=1))

        systems = [(reader or DEFAULT_CLOSED_BOOK_MODEL, closed)]
    else:
        from odqa.answering.open_book import answer_open_book

        def open_book(batch, name):
            qs = [Query(q.id, q.question) for q in batch]
            found = answer_open_book(
                index, qs, retriever=name, passages=passages, top=1, reader=reader
            )
            return top_text(found)

        systems = [(name, lambda b, n=name: open_book(b, n)) for name in names]
    results, records = [], []
    for name, call in systems:
        warm_up(call, data.questions)
        run = run_batches(
            data.questions, call, batch_size=batch_size, progress=progress, label=name
        )
        latency = latency_summary(run.seconds, run.wall)
        result, rows = score_answers(name, data, run.outputs, latency, run.failures)
        result.counts.pop("missing")  # here an unanswered question is a failed one
        results.append(result)
        records += rows
    return results, records


def render_table(report: dict[str, Any], results: list[SystemResult]) -> None:
    """Print the results side by side as a rich table (metrics in percent)."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    title = f"{report['dataset']} · {report['mode']} · {report['questions']:,} questions" + (
        f" · index {report['index']}" if report.get("index") else ""
    )
    table = Table(box=box.SIMPLE_HEAD)
    table.add_column("system", no_wrap=True)
    metric_names = list(dict.fromkeys(m for r in results for m in r.metrics))
    for metric in metric_names:
        table.add_column(metric, justify="right", no_wrap=True)
    timed = any(r.latency for r in results)
    if timed:
        for column in ("p50 ms", "p95 ms", "q/s"):
            table.add_column(column, justify="right", no_wrap=True)
    table.add_column("failed", justify="right", no_wrap=True)
    counts = list(dict.fromkeys(c for r in results for c in r.counts))
    for column in counts:
        table.add_column(column, justify="right", no_wrap=True)
    for r in results:
        row = [r.name]
        row += [_percent(r.metrics.get(m)) for m in metric_names]
        if timed:
            lat = r.latency or {}
            row += [_number(lat.get(key, 0.0)) for key in ("p50_ms", "p95_ms", "questions_per_s")]
        row.append(str(len(r.failures)))
        row += [str(r.counts.get(c, 0)) for c in counts]
        table.add_row(*row)
    console = Console()
    if not console.is_terminal:  # files and pipes get the whole table, not 80 columns
        console = Console(width=200)
    console.print(title, markup=False, highlight=False)
    console.print(table)


def _number(value: float) -> str:
    """Three significant figures for small values, whole numbers with separators for big ones."""
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if value >= 1 else f"{value:.3f}"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def report_failures(results: list[SystemResult]) -> None:
    """One stderr line per failed question (the first few per system) and a count."""
    for r in results:
        for qid, error in r.failures[:SHOWN_FAILURES]:
            err_console.print(f"warning: {r.name}: question {qid} failed: {error}", markup=False)
        if len(r.failures) > SHOWN_FAILURES:
            err_console.print(f"warning: {r.name}: {len(r.failures)} questions failed in all")


def eval_command(
    dataset: Annotated[
        Path,
        typer.Argument(help="SQuAD JSON, JSON lines, DPR TSV, CuratedTREC file or BEIR folder."),
    ],
    index: Annotated[
        Path | None, typer.Option("--index", "-i", help="Index directory (default: the only one).")
    ] = None,
    mode: Annotated[
        EvalMode | None, typer.Option(help="What to evaluate (default: retrieval).")
    ] = None,
    retriever: Annotated[
        str, typer.Option(help="Retrievers to compare, comma-separated: bm25,dense,hybrid.")
    ] = "bm25",
    k: Annotated[str, typer.Option("--k", "-k", help="Top-k cut-offs, comma-separated.")] = (
        "1,5,20,100"
    ),
    limit: Annotated[
        int | None, typer.Option(min=1, help="Evaluate only the first N questions.")
    ] = None,
    predictions: Annotated[
        Path | None,
        typer.Option(
            help="Score this predictions file (JSON object or JSON lines); no model runs."
        ),
    ] = None,
    predictions_out: Annotated[
        Path | None, typer.Option(help="Write per-question results here (JSON lines).")
    ] = None,
    fmt: Annotated[ReportFormat, typer.Option("--format", help="Report format.")] = (
        ReportFormat.table
    ),
    plot: Annotated[
        Path | None, typer.Option(help="Draw top-k accuracy curves to this PNG (retrieval).")
    ] = None,
    reader: Annotated[
        str | None,
        typer.Option(help="open-book: extractive reader; closed-book: seq2seq model (id or path)."),
    ] = None,
    passages: Annotated[
        int, typer.Option(min=1, help="open-book: passages retrieved and read per question.")
    ] = 20,
    regex: Annotated[
        bool | None,
        typer.Option(
            "--regex/--no-regex",
            help="Answers are regular expressions (default: when the file name has 'curated').",
        ),
    ] = None,
    batch_size: Annotated[
        int, typer.Option(min=1, help="Questions per batch (latency is amortised over it).")
    ] = 32,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Evaluate retrieval or question answering on a dataset, or score a predictions file."""
    from odqa.datasets import load_dataset

    with fail_on_error():
        ks = parse_int_list(k, "--k")
        names = parse_names(retriever)
        if predictions is not None and mode is not None:
            raise typer.BadParameter(
                "--predictions scores a file; leave out --mode", param_hint="--mode"
            )
        mode_name = "predictions" if predictions is not None else (mode or EvalMode.retrieval).value
        if plot is not None and mode_name != "retrieval":
            raise typer.BadParameter("--plot draws retrieval curves: use it with --mode retrieval")
        data = load_dataset(dataset, regex=regex, limit=limit)
        if data.qrels is not None and mode_name != "retrieval":
            raise OdqaError(
                "a BEIR folder has relevance judgements, not answers: use --mode retrieval"
            )
        if data.qrels is not None and plot is not None:
            raise OdqaError("--plot draws top-k answer accuracy, which a BEIR folder does not have")
        report: dict[str, Any] = {
            "dataset": str(dataset),
            "format": data.format,
            "mode": mode_name,
            "questions": len(data),
            "regex_answers": data.regex_answers,
        }
        results, records = _run(
            data,
            mode_name,
            index,
            names,
            ks,
            report,
            reader=reader,
            passages=passages,
            batch_size=batch_size,
            quiet=quiet,
            predictions=predictions,
        )
        report["systems"] = [r.to_dict() for r in results]
        report_failures(results)
        if predictions_out is not None:
            with output_stream(predictions_out) as out:
                out.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        if plot is not None:
            from odqa.plot import save_top_k_plot

            curves = {r.name: r.curve for r in results}
            save_top_k_plot(plot, curves, marks=ks, title=f"{data.name}: top-k retrieval accuracy")
            report["plot"] = str(plot)
        if fmt is ReportFormat.json:
            sys.stdout.write(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        else:
            render_table(report, results)


def _run(
    data,
    mode_name,
    index_path,
    names,
    ks,
    report,
    *,
    reader,
    passages,
    batch_size,
    quiet,
    predictions,
):
    """Dispatch to the evaluation of ``mode_name``; fills ``report`` with run details."""
    from odqa.progress import make_progress

    if mode_name == "predictions":
        from odqa.datasets import match_predictions, read_predictions

        answers, unmatched = match_predictions(data.questions, read_predictions(predictions))
        result, records = score_answers(predictions.name, data, answers, None, [])
        result.counts["unmatched"] = unmatched
        return [result], records
    index = None
    if mode_name != "closed-book":
        from odqa import load_index

        index = load_index(resolve_index(index_path))
        report["index"] = str(index.path)
        available = index.retrievers()
        unknown = [n for n in names if n not in available]
        if unknown:
            raise OdqaError(
                f"retriever '{unknown[0]}' is not in index '{index.path}': choose from "
                f"{', '.join(available) or 'none'} (--retriever)"
            )
    with make_progress(enabled=not quiet) as progress:
        if mode_name == "retrieval":
            report["k"] = ks
            return evaluate_retrieval(
                data, index, names, ks, batch_size=batch_size, progress=progress
            )
        return evaluate_qa(
            data,
            EvalMode(mode_name),
            index,
            names,
            reader=reader,
            passages=passages,
            batch_size=batch_size,
            progress=progress,
        )
