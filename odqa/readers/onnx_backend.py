"""The extractive reader on ONNX Runtime and the ``tokenizers`` library: no torch at all once
the model has been exported.

The first use of a model exports it (any model :func:`odqa.readers.extractive.load_qa_model`
loads: a hub id, a folder, a delta folder over a base model) into
``$ODQA_CACHE/onnx/reader/<fingerprint>/`` (default ``~/.cache/odqa``): ``model.onnx`` (start
and end logits, dynamic batch and token axes), ``model.int8.onnx`` for the int8 backend,
``tokenizer.json`` with its settings, and ``reader.json``, written last, which marks the folder
complete. The fingerprint covers the files of the model folder and of a delta's base, so a
retrained model gets a new export. Later runs load the folder with onnxruntime and tokenizers
only.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from odqa.runtime import onnx
from odqa.runtime.fast_tokenizer import FastTokenizer

Forward = Callable[[dict[str, np.ndarray]], tuple[np.ndarray, np.ndarray]]
RECORD = "reader.json"
OUTPUTS = ("start", "end")


def model_folders(name: str) -> list[str] | None:
    """Local folders holding the files of reader ``name`` (a delta folder and its base), or
    None when they cannot be found without loading the model (a hub id not in the cache)."""
    from odqa.delta import DELTA_META, is_delta_folder
    from odqa.errors import ModelNotAvailableError
    from odqa.runtime.hub import resolve_model

    try:
        resolved = resolve_model(name)
    except ModelNotAvailableError:
        return None
    folder = resolved if Path(resolved).is_dir() else _hub_snapshot(resolved)
    if folder is None:
        return None
    if not is_delta_folder(folder):
        return [folder]
    try:
        base = json.loads((Path(folder) / DELTA_META).read_text(encoding="utf-8"))["base"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    below = model_folders(base)
    return None if below is None else [folder, *below]


def _hub_snapshot(repo: str) -> str | None:
    """The Hugging Face cache folder of hub model ``repo``, if it was downloaded."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    config = try_to_load_from_cache(repo, "config.json")
    return str(Path(config).parent) if isinstance(config, str) else None


def cache_folder(name: str) -> Path | None:
    """The export folder of reader ``name`` (None when its files cannot be found)."""
    folders = model_folders(name)
    if folders is None:
        return None
    return onnx.cache_root() / "reader" / onnx.fingerprint(folders, ["qa", name])


def is_exported(name: str) -> bool:
    """True when reader ``name`` has a complete export in the cache."""
    folder = cache_folder(name)
    return folder is not None and (folder / RECORD).is_file()


def export_reader(model: Any, tokenizer: Any, folder: Path) -> Path:
    """Export a transformers QA ``model`` (fp32, CPU) and its fast ``tokenizer`` into ``folder``."""
    import torch

    names = [n for n in tokenizer.model_input_names if n != "attention_mask"]
    names.append("attention_mask")

    class Logits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            out = self.model(**dict(zip(names, tensors)))
            return out.start_logits.float(), out.end_logits.float()

    axes = {n: {0: "batch", 1: "tokens"} for n in [*names, *OUTPUTS]}
    onnx.export_module(
        Logits().eval(),
        folder / onnx.MODEL_FILE,
        input_names=names,
        output_names=list(OUTPUTS),
        dynamic_axes=axes,
        tokens=16,
    )
    model.eval()
    FastTokenizer.from_transformers(tokenizer).save(folder)
    onnx.write_json(folder / RECORD, {"inputs": names, "outputs": list(OUTPUTS)})
    return folder


@lru_cache(maxsize=4)
def load_exported(folder: Path, *, quantize: bool, threads: int | None) -> tuple[Any, Forward]:
    """The tokenizer and forward function of an export folder (onnxruntime + tokenizers only;
    once per process and settings)."""
    path = onnx.cached_model(folder, _missing, quantize=quantize)
    model = onnx.OnnxModel(path, threads)

    def forward(batch: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        start, end = model(batch)
        return start, end

    return FastTokenizer.load(folder), forward


def _missing(target: Path) -> None:
    raise FileNotFoundError(f"{target} is missing: the reader export is incomplete")


def export_folder(name: str) -> Path:
    """The cache folder holding reader ``name``'s ONNX export, exported there first (with
    torch) when missing.

    Raises:
        ModelNotAvailableError: when the model has to be exported and cannot be loaded.
        MissingDependencyError: without onnx.
    """
    folder = cache_folder(name)
    if folder is not None and (folder / RECORD).is_file():
        return folder
    from odqa.readers.extractive import load_qa_model

    model, tokenizer = load_qa_model(name, "cpu", "fp32")
    folder = cache_folder(name) or onnx.cache_root() / "reader" / onnx.fingerprint(
        [], ["qa", name, getattr(model.config, "_commit_hash", None)]
    )
    if not (folder / RECORD).is_file():
        export_reader(model, tokenizer, folder)
    return folder


def onnx_runtime(name: str, *, quantize: bool, threads: int | None) -> tuple[Any, Forward]:
    """Reader ``name`` on ONNX Runtime: from the cache, or exported there first (with torch).

    Raises:
        ModelNotAvailableError: when the model has to be exported and cannot be loaded.
        MissingDependencyError: without onnx / onnxruntime.
    """
    return load_exported(export_folder(name), quantize=quantize, threads=threads)


def openvino_runtime(name: str, *, precision: str, threads: int | None) -> tuple[Any, Forward]:
    """Reader ``name``'s ONNX export compiled by OpenVINO (``precision`` ``fp32`` or ``bf16``);
    tokenizers + OpenVINO only once exported."""
    return _openvino_compiled(export_folder(name), precision, threads)


@lru_cache(maxsize=4)
def _openvino_compiled(folder: Path, precision: str, threads: int | None) -> tuple[Any, Forward]:
    """Once per process and export folder (its name is the model files' fingerprint)."""
    from odqa.runtime.openvino import OpenVinoModel

    model = OpenVinoModel(folder / onnx.MODEL_FILE, precision, threads)

    def forward(batch: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        start, end = model(batch)
        return start, end

    return FastTokenizer.load(folder), forward
