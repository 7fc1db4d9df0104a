"""`odqa info`: what an index holds and how it was built."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from odqa.cli.commands._common import fail_on_error
from odqa.cli.consoles import output_console


def flatten(data: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Nested manifest entries as dotted keys with printable values."""
    rows: list[tuple[str, str]] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows += flatten(value, name + ".")
        elif isinstance(value, list):
            rows.append((name, ", ".join(str(v) for v in value)))
        else:
            rows.append((name, str(value)))
    return rows


def info_command(
    index: Annotated[Path, typer.Argument(help="Index directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the manifest as JSON.")] = False,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Verify every file against the manifest (sizes, counts, shapes); exit 1 on the "
            "first problem.",
        ),
    ] = False,
) -> None:
    """Show an index's manifest: kinds, parameters, corpus statistics, versions."""
    from odqa.index.manifest import read_manifest

    with fail_on_error():
        if check and as_json:
            raise typer.BadParameter("give --check or --json, not both", param_hint="'--check'")
        if check:
            from odqa.index.check import check_index

            for line in check_index(index):
                typer.echo(f"ok  {line}")
            typer.echo(f"index {index} matches its manifest")
            return
        manifest = read_manifest(index).to_json()
        if as_json:
            typer.echo(json.dumps(manifest, indent=2, ensure_ascii=False))
            return
        table = Table(title=f"odqa index {index}", title_justify="left")
        table.add_column("key", style="bold cyan")
        table.add_column("value")
        for key, value in flatten(manifest):
            table.add_row(key, value)
        output_console().print(table)
