"""The query encoder of a dense index, exported beside it for a fast cold start.

At build time the query model and its pooling go to ``<index>/dense/query_onnx/model.onnx``
(int8-quantised for an ``int8`` index) with the Rust tokenizer (``tokenizer.json``) and the
graph already optimised by ONNX Runtime (``model.opt.onnx``, which opens several times faster).
Queries are then encoded by ONNX Runtime and ``tokenizers`` alone: a search process never
imports torch or transformers. The export is checked on probe queries before it is recorded:
identical token ids, and (fp32) cosine >= :data:`MIN_COSINE` with the torch encoder's vectors.
Indexes without the record (older ones, or built without onnx installed) encode queries with
torch as before.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from odqa.encoders.text_encoder import TextEncoder
from odqa.runtime import onnx
from odqa.runtime.fast_tokenizer import FastTokenizer

EXPORT_DIR = "query_onnx"
MIN_COSINE = 0.9999
PROBES = (
    "who patented the telephone?",
    "highest mountain in Africa",
    "When did the Norman conquest of England begin, and which king was crowned after it?",
    "what is the capital city of France",
    "Gödel's incompleteness theorems — naïve set theory, café, 東京",
    "x",
    " ".join(["a very long query that repeats itself"] * 80),
)
"""Queries the export is checked on: short, long (truncated), accented, non-Latin."""


def export_query_encoder(encoder: TextEncoder, folder: Path, quantize: bool) -> dict[str, Any]:
    """Export the model of ``encoder`` into ``folder`` and check it (see the module docstring).

    Returns:
        The manifest record: ``folder``, ``model`` (file name), ``backend`` (``onnx`` or
        ``int8``), ``probe_min_cosine``; or ``{"skipped": reason}`` when onnx is not installed
        or the export does not reproduce the torch encoder.
    """
    from odqa.encoders.backends import export_pooled

    if not onnx.export_available():
        return {"skipped": f"onnx and onnxruntime are not installed ({onnx.INSTALL})"}
    reference = TextEncoder(
        encoder.spec, backend="torch", device="cpu", precision="fp32",
        role=encoder.role, flag=encoder.flag,
    )  # fmt: skip
    reference.warm_up()
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    module = reference._runtime.forward.module  # type: ignore[union-attr]
    model_file = export_pooled(module, folder / onnx.MODEL_FILE).name
    if quantize:
        onnx.quantize_int8(folder / model_file, folder / onnx.INT8_FILE)
        (folder / model_file).unlink()
        model_file = onnx.INT8_FILE
    FastTokenizer.from_transformers(reference._runtime.tokenizer).save(folder)
    optimized = onnx.write_optimized(folder / model_file)  # probes check it too
    backend = "int8" if quantize else "onnx"
    exported = TextEncoder.from_export(reference.spec, folder, model_file, backend)
    probes = list(PROBES)
    if exported.tokenize(probes)["input_ids"] != reference.tokenize(probes)["input_ids"]:
        return onnx.skipped_export(
            folder, "the exported tokenizer splits the probe queries differently")
    cosine = onnx.min_cosine(exported.encode(probes), reference.encode(probes))
    if not quantize and cosine < MIN_COSINE:
        return onnx.skipped_export(
            folder, f"the export's vectors differ from torch's (cosine {cosine:.6f})")
    return {
        "folder": EXPORT_DIR,
        "model": model_file,
        "backend": backend,
        "optimized": optimized.name if optimized else None,
        "probe_min_cosine": round(cosine, 7),
    }


def usable_export(dense_dir: Path, section: dict[str, Any]) -> tuple[Path, str, str] | None:
    """(folder, model file, backend) of the index's query export when it is recorded, its files
    are present and onnxruntime is installed; None otherwise (queries then run on torch)."""
    record = section.get("query_onnx") or {}
    if "model" not in record or not onnx.runtime_available():
        return None
    folder = Path(dense_dir) / record["folder"]
    if not (folder / record["model"]).is_file() or not (folder / "tokenizer.json").is_file():
        return None
    return folder, record["model"], record["backend"]
