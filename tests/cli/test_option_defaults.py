"""CLI option defaults are checked against the dataclasses that validate them: a default that
drifts between `odqa index/ask/eval` and the library fails here."""

from __future__ import annotations

import dataclasses
import enum
import inspect
from collections.abc import Callable
from typing import Any

import pytest

from odqa.answering.pipeline import AskSettings
from odqa.cli.commands import ask, index
from odqa.cli.commands import eval as eval_command
from odqa.io.corpus import CorpusOptions
from odqa.phrase.index import PhraseOptions
from odqa.retrieval.bm25_formulas import BM25Params
from odqa.retrieval.dense_options import DenseOptions
from odqa.text import Analyzer

PHRASE_OPTIONS = {"phrase_encoder": "encoder", "phrase_index": "index",
                  "phrase_filter_threshold": "filter_threshold", "batch_size": "batch_size",
                  "device": "device"}  # fmt: skip
"""`odqa index` parameter -> PhraseOptions field (phrase options carry a prefix there)."""


def cli_defaults(command: Callable[..., Any]) -> dict[str, Any]:
    def plain(value: Any) -> Any:
        return value.value if isinstance(value, enum.Enum) else value

    return {name: plain(p.default) for name, p in inspect.signature(command).parameters.items()}


def field_defaults(cls: type) -> dict[str, Any]:
    found = {}
    for field in dataclasses.fields(cls):
        if field.default is not dataclasses.MISSING:
            found[field.name] = field.default
        elif field.default_factory is not dataclasses.MISSING:
            found[field.name] = field.default_factory()
    return found


CASES = [
    (index.index_command, CorpusOptions, None),
    (index.index_command, BM25Params, None),
    (index.index_command, Analyzer, None),
    (index.index_command, DenseOptions, None),
    (index.index_command, PhraseOptions, PHRASE_OPTIONS),
    (ask.ask_command, AskSettings, None),
    (eval_command.eval_command, AskSettings, None),
]


@pytest.mark.parametrize(("command", "cls", "names"), CASES,
                         ids=[f"{c.__name__}-{k.__name__}" for c, k, _ in CASES])
def test_cli_defaults_equal_the_dataclass_defaults(command, cls, names) -> None:
    cli = cli_defaults(command)
    library = field_defaults(cls)
    names = names or {name: name for name in library if name in cli}
    assert len(names) >= 2, "the check must compare something"
    drift = {param: (cli[param], library[field]) for param, field in names.items()
             if cli[param] != library[field]}  # fmt: skip
    assert drift == {}, f"CLI default != {cls.__name__} default: {drift}"
