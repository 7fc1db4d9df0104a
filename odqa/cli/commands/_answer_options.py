"""The answering options `odqa ask` and `odqa eval` share, declared once (one help text, one
default each) and turned into :class:`~odqa.answering.pipeline.AskSettings` by one function."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from odqa.cli.commands._choices import Device, Precision, ReaderBackend, ReaderKind, ScoreMode

PANEL = "Answering"


def _option(kind: Any, help: str, **limits: Any) -> Any:
    """``Annotated[kind, typer.Option(...)]`` in the Answering panel of the help."""
    return Annotated[kind, typer.Option(help=help, rich_help_panel=PANEL, **limits)]


ReaderOption = _option(str | None, "Model (hub id or folder): extractive reader, or generator "
                       "in closed-book / --reader-kind generative.")
ReaderKindOption = _option(ReaderKind, "Open-book: extract spans, or generate answers with a "
                           "seq2seq reader.")
MaxSeqLengthOption = _option(int, "Tokens per reader window.", min=8)
DocStrideOption = _option(int, "Tokens shared by windows.", min=0)
MaxAnswerLengthOption = _option(int | None, "Longest answer in tokens (default: 30, phrase "
                                "mode 10).", min=1)
ScoreOption = _option(ScoreMode, "Rank by reader + scaled retriever score (combined), or by "
                      "reader score alone.")
RetrieverWeightOption = _option(float, "Weight of the [0, 1]-scaled retriever score (--score "
                                "combined).")
NoAnswerThresholdOption = _option(float | None, "SQuAD 2.0 readers: keep spans beating the "
                                  "no-answer score by more.")
PhraseSparseWeightOption = _option(float | None, "Phrase mode: weight of the question's BM25 "
                                   "score of a span's passage (default 1.5 with a bm25 index; "
                                   "0 = dense only).", min=0)
PhraseSparsePassagesOption = _option(int, "Phrase mode: BM25 top passages whose best spans join "
                                     "the candidates.", min=0)
DeviceOption = _option(Device, "Model device: auto, cpu or cuda.")
BackendOption = _option(ReaderBackend, "Extractive reader runtime: auto (onnx on CPU, else "
                        "torch), torch, onnx, int8, openvino (bf16 on AMX/AVX512-BF16 CPUs).")
PrecisionOption = _option(Precision, "Extractive reader precision (torch, openvino): auto = "
                          "fp16 on CUDA, bf16 on CPUs with AMX or AVX512-BF16, else fp32.")
NumBeamsOption = _option(int, "Generation: beams.", min=1)
MaxNewTokensOption = _option(int, "Generation: answer tokens.", min=1)
PrefixOption = _option(str, "Closed-book: text put before each question.")

SHARED = ("reader", "max_seq_length", "doc_stride", "max_answer_length", "score",
          "retriever_weight", "no_answer_threshold", "phrase_sparse_weight",
          "phrase_sparse_passages", "device", "backend", "precision",
          "num_beams", "max_new_tokens", "prefix")
"""The AskSettings fields both commands take under the same option names."""


def settings_from(values: dict[str, Any], **rest: Any) -> Any:
    """AskSettings from the commands' parameter values (Enums turned into their values)."""
    from enum import Enum

    from odqa.answering.pipeline import AskSettings

    given = {name: values[name] for name in SHARED}
    given = {k: v.value if isinstance(v, Enum) else v for k, v in given.items()}
    return AskSettings(**given, **rest)
