"""odqa: open-domain question answering from the command line, and its library API.

Everything a script needs is importable from ``odqa`` itself (``from odqa import build_index,
BuildOptions, load_index``); the names load their modules on first use, so ``import odqa``
stays fast. The submodules behind them are internal and may move.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from odqa.index.store import Index

PUBLIC_API: dict[str, str] = {
    # indexes
    "BuildOptions": "odqa.index.build",
    "build_index": "odqa.index.build",
    "CorpusOptions": "odqa.io.corpus",
    "BM25Params": "odqa.retrieval.bm25_formulas",
    "Analyzer": "odqa.text",
    "ENGLISH_STOPWORDS": "odqa.text",
    "WORD_RE": "odqa.text",
    "DenseOptions": "odqa.retrieval.dense_options",
    "PhraseOptions": "odqa.phrase.index",
    "ShardSpec": "odqa.index.build",
    "merge_shards": "odqa.index.merge",
    "make_executor": "odqa.index.executors",
    "InProcess": "odqa.index.executors",
    "DaskExecutor": "odqa.index.executors",
    # retrievers
    "DenseRetriever": "odqa.retrieval.dense",
    "build_dense": "odqa.retrieval.dense",
    "HybridRetriever": "odqa.retrieval.hybrid",
    "TextEncoder": "odqa.encoders",
    "inspect_encoder": "odqa.encoders",
    # answering
    "AskSettings": "odqa.answering.pipeline",
    "ask": "odqa.answering.pipeline",
    "read_hits": "odqa.answering.open_book",
    "ExtractiveReader": "odqa.readers.extractive",
    "ReaderParams": "odqa.readers.extractive",
    "load_qa_model": "odqa.readers.extractive",
    "DEFAULT_READER": "odqa.readers.extractive",
    "GenerationParams": "odqa.readers.generative",
    "Seq2SeqReader": "odqa.readers.generative",
    "Query": "odqa.types",
    "Hit": "odqa.types",
    "Answer": "odqa.types",
    # evaluation
    "AnswerMatcher": "odqa.evaluate",
    "first_hit_rank": "odqa.evaluate",
    "top_k_accuracy": "odqa.evaluate",
    # models and hardware
    "DEFAULT_DENSE_ENCODER": "odqa.runtime.hub",
    "resolve_model": "odqa.runtime.hub",
    "packaged_model_path": "odqa.runtime.hub",
    "has_amx_bf16": "odqa.runtime.hardware",
    "has_native_bf16": "odqa.runtime.hardware",
    "resolve_precision": "odqa.runtime.hardware",
}
"""Public name -> the module that defines it (imported on first use)."""


def load_index(path: str | Path) -> Index:
    """Open the index directory at ``path`` (arrays memory-mapped) and return an :class:`Index`;
    a folder of shards opens as one index searched in place."""
    from odqa.index.store import load_index as load

    return load(path)


def __getattr__(name: str) -> Any:
    module = PUBLIC_API.get(name)
    if module is None:
        raise AttributeError(f"module 'odqa' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *PUBLIC_API])


__all__ = ["__version__", "load_index", *PUBLIC_API]
