"""The phrase index's question encoder, exported beside it for a fast cold start.

At build time the query side of the phrase model (its transformer's ``[CLS]`` state through
the query start/end heads) goes to ``<index>/phrase/query_onnx/model.onnx`` with the Rust
tokenizer (``tokenizer.json``). `odqa ask --mode phrase` then encodes questions with ONNX
Runtime and ``tokenizers`` alone: no torch, no transformers. The export is recorded only when
it reproduces the torch encoder on probe questions (same token ids, cosine >= MIN_COSINE for
both vectors); otherwise, and for indexes without the record, questions run on torch.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from odqa.runtime import onnx
from odqa.runtime.fast_tokenizer import FastTokenizer

EXPORT_DIR = "query_onnx"
OUTPUT_NAME = "queries"
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
MIN_COSINE = 0.9999
PROBES = (
    "Who received a patent for the telephone?",
    "highest mountain in Africa",
    "Which NFL team represented the AFC at Super Bowl 50, and who was its quarterback?",
    "Gödel's incompleteness theorems — naïve set theory, café, 東京",
    "x",
    " ".join(["a very long question that repeats itself"] * 40),
)
"""Questions the export is checked on: short, long (truncated), accented, non-Latin."""


def _query_module(model: Any, names: list[str]) -> Any:
    """``model``'s query side as a module of positional token tensors -> [B, 2, d]."""
    import torch

    class QueryModule(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            q_start, q_end = self.model.encode_queries(**dict(zip(names, tensors, strict=True)))
            return torch.stack([q_start, q_end], dim=1)

    return QueryModule().eval()


class OnnxQueryEncoder:
    """Questions -> (q_start, q_end) with ONNX Runtime and the Rust tokenizer."""

    def __init__(self, folder: Path, model_file: str, max_length: int) -> None:
        self.tokenizer = FastTokenizer.load(folder)
        self.model = onnx.OnnxModel(Path(folder) / model_file)
        self.max_length = max_length

    def token_ids(self, questions: list[str]) -> list[list[int]]:
        """The token ids of ``questions`` (truncated as the model reads them)."""
        return self.tokenizer(list(questions), truncation=True,
                              max_length=self.max_length)["input_ids"]

    def encode_queries(self, questions: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """``q_start``, ``q_end`` [n, d] float32."""
        enc = self.tokenizer(list(questions), truncation=True, max_length=self.max_length,
                             return_token_type_ids=True, return_attention_mask=True)
        ids = enc["input_ids"]
        width = max(len(row) for row in ids)
        batch = {name: np.zeros((len(ids), width), dtype=np.int64) for name in INPUT_NAMES}
        batch["input_ids"][:] = self.tokenizer.pad_token_id or 0
        for row, (token_ids, types) in enumerate(zip(ids, enc["token_type_ids"], strict=True)):
            batch["input_ids"][row, : len(token_ids)] = token_ids
            batch["attention_mask"][row, : len(token_ids)] = 1
            batch["token_type_ids"][row, : len(types)] = types
        (out,) = self.model(batch)
        return out[:, 0], out[:, 1]


def export_phrase_queries(encoder: Any, folder: Path) -> dict[str, Any]:
    """Export the query side of ``encoder`` (a :class:`~odqa.phrase.index.PhraseEncoder`)
    into ``folder`` and check it; return the manifest record, or ``{"skipped": reason}``."""
    import inspect

    if not onnx.export_available():
        return {"skipped": f"onnx and onnxruntime are not installed ({onnx.INSTALL})"}
    model = encoder.model
    if model.config.layout != "odqa":
        return {"skipped": "only odqa's own phrase models (one shared encoder) are exported"}
    accepted = inspect.signature(model.phrase_encoder.forward).parameters
    names = [n for n in INPUT_NAMES if n in accepted]
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    module = _query_module(model.cpu(), names)
    axes = {n: {0: "batch", 1: "tokens"} for n in names} | {OUTPUT_NAME: {0: "batch"}}
    onnx.export_module(module, folder / onnx.MODEL_FILE, input_names=names,
                       output_names=[OUTPUT_NAME], dynamic_axes=axes, tokens=8)
    model.to(encoder.device)
    FastTokenizer.from_transformers(encoder.tokenizer).save(folder)
    optimized = onnx.write_optimized(folder / onnx.MODEL_FILE)  # probes check it too
    max_length = model.config.max_query_length
    exported = OnnxQueryEncoder(folder, onnx.MODEL_FILE, max_length)
    probes = list(PROBES)
    reference_ids = encoder.tokenizer(probes, truncation=True, max_length=max_length)["input_ids"]
    if exported.token_ids(probes) != reference_ids:
        return onnx.skipped_export(
            folder, "the exported tokenizer splits the probe questions differently")
    cosine = min(onnx.min_cosine(a, b) for a, b in
                 zip(exported.encode_queries(probes), encoder.encode_queries(probes),
                     strict=True))
    if cosine < MIN_COSINE:
        return onnx.skipped_export(
            folder, f"the export's vectors differ from torch's (cosine {cosine:.6f})")
    return {"folder": EXPORT_DIR, "model": onnx.MODEL_FILE, "max_query_length": max_length,
            "optimized": optimized.name if optimized else None,
            "probe_min_cosine": round(cosine, 7)}


def usable_export(phrase_dir: Path, section: dict[str, Any]) -> OnnxQueryEncoder | None:
    """The ONNX question encoder of a phrase index when it is recorded, its files are there and
    onnxruntime is installed; None otherwise (questions then run on torch)."""
    record = section.get("query_onnx") or {}
    if "model" not in record or not onnx.runtime_available():
        return None
    folder = Path(phrase_dir) / record["folder"]
    if not (folder / record["model"]).is_file() or not (folder / "tokenizer.json").is_file():
        return None
    return OnnxQueryEncoder(folder, record["model"], int(record["max_query_length"]))
