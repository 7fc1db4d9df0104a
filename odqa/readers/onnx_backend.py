"""Running the reader with ONNX Runtime: ``onnx`` (fp32, fused kernels) or ``int8`` (dynamic
int8 quantisation of the exported graph). CPU only.

The QA model is exported once (dynamic batch and token axes) into the odqa cache
(``ODQA_CACHE`` or ``~/.cache/odqa``), keyed by the model folder's files and dates.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from odqa.errors import MissingDependencyError

Forward = Callable[[dict[str, np.ndarray]], tuple[np.ndarray, np.ndarray]]


def _cache_dir() -> Path:
    from odqa.encoders.backends import onnx_cache_dir

    return onnx_cache_dir()


def _key(model) -> str:
    source = Path(str(getattr(model, "name_or_path", "")))
    files = sorted(source.glob("*")) if source.is_dir() else []
    stamps = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    commit = getattr(model.config, "_commit_hash", None)
    blob = json.dumps(["qa", str(source), commit, stamps], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _export(model, names: list[str], target: Path) -> None:
    """Export ``model`` (inputs ``names``) to ``target`` with start/end logits as outputs."""
    import warnings

    import torch

    try:
        import onnx  # noqa: F401  (the exporter needs it)
    except ImportError as exc:
        raise MissingDependencyError(
            "--backend onnx/int8 needs the onnx and onnxruntime packages: "
            "pip install onnx onnxruntime"
        ) from exc

    class Logits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            out = self.model(**dict(zip(names, tensors)))
            return out.start_logits, out.end_logits

    example = tuple(torch.ones((2, 16), dtype=torch.long) for _ in names)
    axes = {n: {0: "batch", 1: "tokens"} for n in [*names, "start", "end"]}
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".tmp-{os.getpid()}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Logits().eval(),
            example,
            str(partial),
            input_names=names,
            output_names=["start", "end"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )
    model.eval()
    partial.replace(target)


def _quantize(source: Path, target: Path) -> None:
    """Dynamic int8 quantisation (per-channel weights) of the exported model."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    partial = target.with_suffix(f".tmp-{os.getpid()}")
    logging.disable(logging.WARNING)  # its advice to pre-process the graph is noise here
    try:
        quantize_dynamic(source, partial, weight_type=QuantType.QInt8, per_channel=True)
    finally:
        logging.disable(logging.NOTSET)
    partial.replace(target)


def onnx_forward(model, names: list[str], *, quantize: bool, threads: int | None) -> Forward:
    """A forward function running ``model`` exported to ONNX (``quantize``: int8)."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise MissingDependencyError(
            "--backend onnx/int8 needs onnxruntime: pip install onnx onnxruntime"
        ) from exc
    folder = _cache_dir() / "reader" / _key(model)
    target = folder / "model.onnx"
    if not target.is_file():
        _export(model, names, target)
    if quantize:
        source, target = target, folder / "model.int8.onnx"
        if not target.is_file():
            _quantize(source, target)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(target), options, providers=["CPUExecutionProvider"])
    inputs = [i.name for i in session.get_inputs()]

    def forward(batch: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        start, end = session.run(None, {n: batch[n] for n in inputs})
        return start, end

    return forward
