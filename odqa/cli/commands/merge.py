"""`odqa merge`: join the shards of a sharded build into one index."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from odqa.cli.commands._common import err_console, fail_on_error


def merge_command(
    shards: Annotated[
        list[Path], typer.Argument(help="Shard index folders (built with --shard I/N), all N.")
    ],
    out: Annotated[Path, typer.Option("--out", help="Index directory to write.")],
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing odqa index (nothing else).")
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")
    ] = False,
) -> None:
    """Merge shard indexes into one, equal to the index of a one-process build."""
    from odqa.cli.commands.index import summary_table
    from odqa.index.build import directory_size
    from odqa.index.merge import merge_shards
    from odqa.progress import make_progress

    with fail_on_error():
        with make_progress(enabled=not quiet) as progress:
            manifest = merge_shards(shards, out, force=force, progress=progress)
        if not quiet:
            err_console.print(summary_table(out, manifest, directory_size(out)))
