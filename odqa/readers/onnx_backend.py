"""Running the reader with ONNX Runtime: ``onnx`` (fp32, fused kernels) or ``int8`` (dynamic
int8 quantisation of the exported graph). CPU only.

The QA model is exported once (dynamic batch and token axes) into the odqa cache
(``ODQA_CACHE`` or ``~/.cache/odqa``), keyed by the model folder's files and dates.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from odqa.onnx_export import cached_session, export_module, onnx_cache_dir

Forward = Callable[[dict[str, np.ndarray]], tuple[np.ndarray, np.ndarray]]


def _key(model) -> str:
    source = Path(str(getattr(model, "name_or_path", "")))
    files = sorted(source.glob("*")) if source.is_dir() else []
    stamps = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    commit = getattr(model.config, "_commit_hash", None)
    blob = json.dumps(["qa", str(source), commit, stamps], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _export(model, names: list[str], target: Path) -> None:
    """Export ``model`` (inputs ``names``) to ``target`` with start/end logits as outputs."""
    import torch

    class Logits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            out = self.model(**dict(zip(names, tensors)))
            return out.start_logits, out.end_logits

    axes = {n: {0: "batch", 1: "tokens"} for n in [*names, "start", "end"]}
    export_module(
        Logits().eval(),
        target,
        input_names=names,
        output_names=["start", "end"],
        dynamic_axes=axes,
        tokens=16,
    )
    model.eval()


def onnx_forward(model, names: list[str], *, quantize: bool, threads: int | None) -> Forward:
    """A forward function running ``model`` exported to ONNX (``quantize``: int8)."""
    session = cached_session(
        onnx_cache_dir() / "reader" / _key(model),
        lambda target: _export(model, names, target),
        quantize=quantize,
        threads=threads,
    )
    inputs = [i.name for i in session.get_inputs()]

    def forward(batch: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        start, end = session.run(None, {n: batch[n] for n in inputs})
        return start, end

    return forward
