"""Evaluation results side by side as a rich table."""

from __future__ import annotations

from typing import Any

from odqa.evaluation.results import SystemResult

LATENCY_COLUMNS = {"p50 ms": "p50_ms", "p95 ms": "p95_ms", "q/s": "questions_per_s"}


def render_table(report: dict[str, Any], results: list[SystemResult]) -> None:
    """Print the results side by side as a rich table (metrics in percent)."""
    from rich import box
    from rich.table import Table

    from odqa.cli.consoles import output_console

    title = f"{report['dataset']} · {report['mode']} · {report['questions']:,} questions" + (
        f" · index {report['index']}" if report.get("index") else ""
    )
    table = Table(box=box.SIMPLE_HEAD)
    table.add_column("system", no_wrap=True)
    metric_names = list(dict.fromkeys(m for r in results for m in r.metrics))
    timed = any(r.latency for r in results)
    counts = list(dict.fromkeys(c for r in results for c in r.counts))
    columns = [*metric_names, *(LATENCY_COLUMNS if timed else ()), "failed", *counts]
    for column in columns:
        table.add_column(column, justify="right", no_wrap=True)
    for r in results:
        row = [r.name]
        row += [_percent(r.metrics.get(m)) for m in metric_names]
        if timed:
            lat = r.latency or {}
            row += [_number(lat.get(key, 0.0)) for key in LATENCY_COLUMNS.values()]
        row.append(str(len(r.failures)))
        row += [str(r.counts.get(c, 0)) for c in counts]
        table.add_row(*row)
    console = output_console(wide_when_piped=True)
    console.print(title, markup=False, highlight=False)
    console.print(table)


def _number(value: float) -> str:
    """Three significant figures for small values, whole numbers with separators for big ones."""
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if value >= 1 else f"{value:.3f}"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"
