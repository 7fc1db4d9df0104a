"""One evaluation run: load the dataset, run the systems of a mode, collect the report."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from odqa.errors import OdqaError
from odqa.evaluation.results import SystemResult

MODES = ("retrieval", "reading", "open-book", "phrase", "closed-book", "predictions")


@dataclass
class EvalRun:
    """What :func:`run_evaluation` returns: the report, the per-system results, the records."""

    report: dict[str, Any]
    results: list[SystemResult]
    records: list[dict]
    title: str  # the dataset's name, for plot titles


def run_evaluation(
    dataset: Path,
    mode: str,
    *,
    index: Path | None = None,
    retrievers: list[str] | None = None,
    ks: list[int] | None = None,
    predictions: Path | None = None,
    settings: Any = None,
    reader_kind: str = "extractive",
    regex: bool | None = None,
    limit: int | None = None,
    batch_size: int = 32,
    latency_sample: int = 100,
    curves: bool = False,
    progress: bool = True,
) -> EvalRun:
    """Evaluate ``mode`` (one of :data:`MODES`) on ``dataset``.

    ``index`` is the index directory (None: the only one under the default root); ``curves``
    asks for top-k accuracy curves, which BEIR folders cannot give. ``predictions`` is the file
    scored in ``"predictions"`` mode. ``settings`` (an
    :class:`~odqa.answering.pipeline.AskSettings`) and ``reader_kind`` configure the answering
    modes exactly as `odqa ask` does; ``"reading"`` reads each question's own paragraph (SQuAD
    JSON or JSON lines with contexts) with the extractive reader of ``settings``. Raises
    :class:`OdqaError` for unusable combinations.
    """
    from odqa.answering.pipeline import AskSettings
    from odqa.io.datasets import load_dataset

    settings = settings or AskSettings()

    if mode == "reading":
        return _run_reading(dataset, settings, limit, progress)
    data = load_dataset(dataset, regex=regex, limit=limit)
    if data.qrels is not None and mode != "retrieval":
        raise OdqaError("a BEIR folder has relevance judgements, not answers: use --mode retrieval")
    if data.qrels is not None and curves:
        raise OdqaError("--plot draws top-k answer accuracy, which a BEIR folder does not have")
    report: dict[str, Any] = {
        "dataset": str(dataset),
        "format": data.format,
        "mode": mode,
        "questions": len(data),
        "regex_answers": data.regex_answers,
    }
    if mode == "predictions":
        if predictions is None:
            raise OdqaError("predictions mode needs a predictions file (--predictions FILE)")
        results, records = _score_predictions(data, predictions)
    else:
        results, records = _run_systems(
            data,
            mode,
            index,
            ["phrase"] if mode == "phrase" else retrievers or ["bm25"],
            ks or [1, 5, 20, 100],
            report,
            settings=settings,
            reader_kind=reader_kind,
            batch_size=batch_size,
            latency_sample=latency_sample,
            progress=progress,
        )
    report["systems"] = [r.to_dict() for r in results]
    return EvalRun(report, results, records, data.name)


def _run_reading(dataset: Path, settings: Any, limit: int | None, progress: bool) -> EvalRun:
    """Gold-paragraph reading comprehension: EM / F1 and questions/s of one extractive reader."""
    from dataclasses import asdict

    from odqa.evaluation.reading import evaluate_reading
    from odqa.readers.extractive import DEFAULT_READER, ExtractiveReader
    from odqa.training.data import load_qa_examples

    examples, _ = load_qa_examples([dataset])
    examples = examples[:limit] if limit else examples
    name = settings.reader or DEFAULT_READER
    params = settings.reader_params()
    options = asdict(params)
    found = evaluate_reading(ExtractiveReader(name, params), examples, progress=progress)
    result = SystemResult(
        name, {"em": found.em / 100, "f1": found.f1 / 100},
        latency={"questions_per_s": found.questions_per_second},
    )
    report: dict[str, Any] = {"dataset": str(dataset), "format": "squad", "mode": "reading",
                              "questions": len(examples), "regex_answers": False,
                              "reader_options": options, "systems": [result.to_dict()]}
    records = [{"id": e.id, "system": name, "prediction": found.predictions[e.id]}
               for e in examples]
    return EvalRun(report, [result], records, Path(dataset).name)


def _score_predictions(data: Any, path: Path) -> tuple[list[SystemResult], list[dict]]:
    from odqa.evaluation.qa import score_answers
    from odqa.io.datasets import match_predictions, read_predictions

    answers, unmatched = match_predictions(data.questions, read_predictions(path))
    result, records = score_answers(path.name, data, answers, None, [])
    result.counts["unmatched"] = unmatched
    return [result], records


def open_index(path: Path | None, names: list[str]) -> Any:
    """The index at ``path`` (or the default one), checked to hold every retriever in ``names``."""
    from odqa import load_index
    from odqa.index.store import resolve_index

    index = load_index(resolve_index(path))
    available = index.retrievers()
    unknown = [n for n in names if n not in available]
    if unknown:
        raise OdqaError(
            f"retriever '{unknown[0]}' is not in index '{index.path}': choose from "
            f"{', '.join(available) or 'none'} (--retriever)"
        )
    return index


def _run_systems(
    data: Any,
    mode: str,
    index_path: Path | None,
    names: list[str],
    ks: list[int],
    report: dict[str, Any],
    *,
    settings: Any,
    reader_kind: str,
    batch_size: int,
    latency_sample: int,
    progress: bool,
) -> tuple[list[SystemResult], list[dict]]:
    """Run the systems of ``mode``; fills ``report`` with run details."""
    from odqa.evaluation.qa import evaluate_qa
    from odqa.evaluation.retrieval import evaluate_retrieval
    from odqa.progress import make_progress

    index = None
    if mode != "closed-book":
        index = open_index(index_path, names)
        report["index"] = str(index.path)
    with make_progress(enabled=progress) as bar:
        if mode == "retrieval":
            report["k"] = ks
            return evaluate_retrieval(
                data,
                index,
                names,
                ks,
                batch_size=batch_size,
                latency_sample=latency_sample,
                progress=bar,
            )
        return evaluate_qa(
            data,
            mode,
            index,
            names,
            settings=settings,
            reader_kind=reader_kind,
            batch_size=batch_size,
            latency_sample=latency_sample,
            progress=bar,
            ks=ks,
        )
