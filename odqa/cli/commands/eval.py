"""`odqa eval`: score retrieval, open-book or closed-book QA on a dataset, or a predictions file."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from odqa.cli.commands import _answer_options as opts
from odqa.cli.commands._choices import (
    Device,
    EvalMode,
    Precision,
    ReaderBackend,
    ReaderKind,
    ReportFormat,
    ScoreMode,
)
from odqa.cli.commands._common import (
    RETRIEVER_HELP,
    check_retrievers,
    err_console,
    fail_on_error,
    output_stream,
    parse_names,
    prepare_output,
)

SHOWN_FAILURES = 5


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


def report_failures(results: list) -> None:
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
        str, typer.Option(help=f"Retrievers to compare, comma-separated: {RETRIEVER_HELP}")
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
    reader: opts.ReaderOption = None,
    reader_kind: opts.ReaderKindOption = ReaderKind.extractive,
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
        int, typer.Option(min=1, help="Questions per batch (throughput is measured on it).")
    ] = 32,
    latency_sample: Annotated[
        int,
        typer.Option(
            min=0,
            help="Questions also timed one at a time for p50/p95 latency "
            "(0: batch time / batch size).",
        ),
    ] = 100,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    max_seq_length: opts.MaxSeqLengthOption = 384,
    doc_stride: opts.DocStrideOption = 128,
    max_answer_length: opts.MaxAnswerLengthOption = None,
    score: opts.ScoreOption = ScoreMode.combined,
    retriever_weight: opts.RetrieverWeightOption = 1.0,
    no_answer_threshold: opts.NoAnswerThresholdOption = None,
    phrase_sparse_weight: opts.PhraseSparseWeightOption = None,
    phrase_sparse_passages: opts.PhraseSparsePassagesOption = 5,
    device: opts.DeviceOption = Device.auto,
    backend: opts.BackendOption = ReaderBackend.auto,
    precision: opts.PrecisionOption = Precision.auto,
    num_beams: opts.NumBeamsOption = 8,
    max_new_tokens: opts.MaxNewTokensOption = 32,
    prefix: opts.PrefixOption = "",
) -> None:
    """Evaluate retrieval or question answering on a dataset, or score a predictions file."""
    from odqa.evaluation import run_evaluation

    with fail_on_error():
        ks = parse_int_list(k, "--k")
        names = list(parse_names(retriever))
        if predictions is not None and mode is not None:
            raise typer.BadParameter(
                "--predictions scores a file; leave out --mode", param_hint="--mode"
            )
        mode_name = "predictions" if predictions is not None else (mode or EvalMode.retrieval).value
        if plot is not None and mode_name != "retrieval":
            raise typer.BadParameter("--plot draws retrieval curves: use it with --mode retrieval")
        check_retrievers(names)
        settings = opts.settings_from(locals(), passages=passages)
        prepare_output(plot, "--plot")
        prepare_output(predictions_out, "--predictions-out")
        run = run_evaluation(
            dataset,
            mode_name,
            index=index,
            retrievers=names,
            ks=ks,
            predictions=predictions,
            settings=settings,
            reader_kind=reader_kind.value,
            regex=regex,
            limit=limit,
            batch_size=batch_size,
            latency_sample=latency_sample,
            curves=plot is not None,
            progress=not quiet,
        )
        report_failures(run.results)
        if predictions_out is not None:
            with output_stream(predictions_out) as out:
                out.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in run.records)
        if plot is not None:
            from odqa.plot import save_top_k_plot

            curves = {r.name: r.curve for r in run.results}
            save_top_k_plot(plot, curves, marks=ks, title=f"{run.title}: top-k retrieval accuracy")
            run.report["plot"] = str(plot)
        if fmt is ReportFormat.json:
            sys.stdout.write(json.dumps(run.report, indent=2, ensure_ascii=False) + "\n")
        else:
            from odqa.cli.report import render_table

            render_table(run.report, run.results)
