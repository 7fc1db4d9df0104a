"""Model runtimes behind one signature: token batch in, pooled float32 vectors out.

``torch`` runs the Hugging Face model (fp16 on CUDA). ``onnx`` exports the model with its pooling
to ONNX once (cached under ``ODQA_CACHE``) and runs it with ONNX Runtime on the CPU; ``int8`` does
the same after dynamic int8 quantisation of the weights (per channel), the fastest CPU option.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from odqa.encoders.pooling import l2_normalize, pool
from odqa.encoders.spec import EncoderSpec
from odqa.errors import OdqaError
from odqa.models import load_pretrained
from odqa.onnx_export import cached_session, export_module, onnx_cache_dir

if TYPE_CHECKING:
    import numpy as np
    import torch

Forward = Callable[[dict[str, "np.ndarray"]], "np.ndarray"]
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


def load_model(spec: EncoderSpec, role: str, flag: str) -> torch.nn.Module:
    """Load the Hugging Face model of ``spec`` in eval mode (right class for DPR checkpoints)."""
    import transformers

    transformers.utils.logging.disable_progress_bar()

    def loader(path: str) -> torch.nn.Module:
        if spec.kind == "dpr":
            config = transformers.AutoConfig.from_pretrained(path)
            name = (config.architectures or ["DPRQuestionEncoder"])[0]
            if name not in ("DPRQuestionEncoder", "DPRContextEncoder"):
                name = "DPRQuestionEncoder"
            return getattr(transformers, name).from_pretrained(path)
        return transformers.AutoModel.from_pretrained(path)

    model = load_pretrained(loader, spec.path, role, flag)
    return model.eval()


def pooled_module(model: torch.nn.Module, spec: EncoderSpec) -> torch.nn.Module:
    """Wrap ``model`` as a module mapping token tensors to pooled (and normalised) vectors."""
    import torch

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model
            self.names = _accepted_inputs(model)

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            inputs = dict(zip(self.names, tensors, strict=False))
            output = self.model(**inputs)
            if spec.kind == "dpr":
                vectors = output.pooler_output
            else:
                vectors = pool(output.last_hidden_state, inputs["attention_mask"], spec.pooling)
            return l2_normalize(vectors) if spec.normalize else vectors

    return Pooled().eval()


def _accepted_inputs(model: torch.nn.Module) -> list[str]:
    import inspect

    accepted = inspect.signature(model.forward).parameters
    return [name for name in INPUT_NAMES if name in accepted]


def torch_forward(spec: EncoderSpec, device: str, role: str, flag: str) -> Forward:
    """A forward function running the model with PyTorch (fp16 on CUDA)."""
    import numpy as np
    import torch

    pooled = pooled_module(load_model(spec, role, flag), spec)
    if device == "cuda":
        pooled = pooled.half()
    pooled = pooled.to(device)
    names = pooled.names

    def forward(batch: dict[str, np.ndarray]) -> np.ndarray:
        with torch.inference_mode():
            tensors = [torch.from_numpy(batch[name]).to(device) for name in names]
            return pooled(*tensors).float().cpu().numpy().astype(np.float32, copy=False)

    return forward


def _onnx_key(spec: EncoderSpec) -> str:
    weights = Path(spec.path)
    files = sorted(weights.glob("*")) if weights.is_dir() else []
    stamps = [(p.name, p.stat().st_mtime_ns) for p in files]
    graph = [spec.path, spec.revision, spec.kind, spec.pooling, spec.normalize]
    blob = json.dumps([graph, stamps], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def export_onnx(spec: EncoderSpec, target: Path, role: str, flag: str) -> Path:
    """Export model + pooling of ``spec`` to ``target`` (dynamic batch and sequence axes)."""
    pooled = pooled_module(load_model(spec, role, flag), spec)
    names = pooled.names
    axes = {name: {0: "batch", 1: "tokens"} for name in names} | {"vectors": {0: "batch"}}
    return export_module(
        pooled, target, input_names=names, output_names=["vectors"], dynamic_axes=axes, tokens=8
    )


def onnx_forward(
    spec: EncoderSpec, threads: int | None, quantize: bool, role: str, flag: str
) -> Forward:
    """A forward function running the exported (``quantize``: int8) model with ONNX Runtime."""
    import numpy as np

    session = cached_session(
        onnx_cache_dir() / _onnx_key(spec),
        lambda target: export_onnx(spec, target, role, flag),
        quantize=quantize,
        threads=threads,
    )
    names = [i.name for i in session.get_inputs()]

    def forward(batch: dict[str, np.ndarray]) -> np.ndarray:
        feed = {name: batch[name].astype(np.int64, copy=False) for name in names}
        return session.run(None, feed)[0].astype(np.float32, copy=False)

    return forward


def make_forward(
    spec: EncoderSpec, backend: str, device: str, role: str, flag: str, **extra: Any
) -> Forward:
    """The forward function of ``backend`` (``torch``, ``onnx`` or ``int8``) on ``device``."""
    if backend in ("onnx", "int8"):
        if device != "cpu":
            raise OdqaError(
                f"--backend {backend} runs on the CPU: use --device cpu or --backend torch"
            )
        return onnx_forward(spec, extra.get("threads"), backend == "int8", role, flag)
    if backend == "torch":
        return torch_forward(spec, device, role, flag)
    raise OdqaError(f"unknown backend '{backend}': choose one of torch, int8, onnx")
