"""The `odqa` command-line interface. Commands live in odqa/cli/commands/, one module each."""

from __future__ import annotations

import typer

from odqa import __version__, progress
from odqa.cli.commands import ask, eval, index, info, merge, search, train


def _rich_progress(enabled: bool) -> progress.ProgressDisplay:
    from odqa.cli.progress import rich_progress  # rich loads only when a bar is made

    return rich_progress(enabled)


progress.use_display(_rich_progress)

app = typer.Typer(
    name="odqa",
    help="Open-domain question answering: index a corpus, search it, ask it questions.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"odqa {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """Open-domain question answering from the command line."""


app.command("index")(index.index_command)
app.command("merge")(merge.merge_command)
app.command("search")(search.search_command)
app.command("info")(info.info_command)
app.command("ask")(ask.ask_command)
app.command("eval")(eval.eval_command)
app.add_typer(train.app, name="train")
