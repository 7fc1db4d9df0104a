"""Model runtimes behind one signature: token batch in, pooled float32 vectors out.

``torch`` runs the Hugging Face model: fp16 on CUDA, and on the CPU fp32 or bf16 (autocast,
chosen by ``precision auto`` on CPUs with AMX-BF16 or AVX512-BF16). ``onnx`` exports the model
with its pooling to ONNX once (cached, see :mod:`odqa.runtime.onnx`) and runs it with ONNX
Runtime on the CPU; ``int8`` does the same after dynamic int8 quantisation of the weights (per
channel); ``openvino`` compiles that export with OpenVINO, in bf16 on CPUs that compute it
natively (``precision auto``), else fp32.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from odqa.encoders.pooling import l2_normalize, pool
from odqa.encoders.spec import EncoderSpec
from odqa.errors import OdqaError
from odqa.runtime import onnx
from odqa.runtime.hardware import resolve_precision
from odqa.runtime.hub import load_pretrained

if TYPE_CHECKING:
    import numpy as np
    import torch

Forward = Callable[[dict[str, "np.ndarray"]], "np.ndarray"]
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
BACKENDS = ("torch", "onnx", "int8", "openvino")
OUTPUT_NAME = "vectors"


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
    """Wrap ``model`` as a module mapping token tensors to pooled (and normalised) vectors.

    Pooling and normalisation run in float32 whatever the model's precision.
    """
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
                vectors = output.pooler_output.float()
            else:
                hidden = output.last_hidden_state.float()
                vectors = pool(hidden, inputs["attention_mask"], spec.pooling)
            return l2_normalize(vectors) if spec.normalize else vectors

    return Pooled().eval()


def _accepted_inputs(model: torch.nn.Module) -> list[str]:
    import inspect

    accepted = inspect.signature(model.forward).parameters
    return [name for name in INPUT_NAMES if name in accepted]


class TorchForward:
    """The pooled model run by PyTorch on ``device`` in ``precision`` (fp32, bf16 autocast, or
    fp16 weights on CUDA); ``module`` is the pooled module (an fp32 CPU one is what exports
    start from)."""

    def __init__(self, module: torch.nn.Module, device: str, precision: str) -> None:
        self.module = module
        self.device = device
        self.precision = precision
        self.names: list[str] = list(module.names)  # type: ignore[arg-type]
        self._run = module.half().to(device) if precision == "fp16" else module.to(device)

    def __call__(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        import numpy as np
        import torch

        autocast = self.precision == "bf16"
        with (
            torch.inference_mode(),
            torch.autocast(torch.device(self.device).type, torch.bfloat16, enabled=autocast),
        ):
            tensors = [torch.from_numpy(batch[name]).to(self.device) for name in self.names]
            vectors = self._run(*tensors)
        return vectors.float().cpu().numpy().astype(np.float32, copy=False)


def torch_forward(
    spec: EncoderSpec, device: str, role: str, flag: str, precision: str = "auto"
) -> TorchForward:
    """A forward function running the model with PyTorch (``precision`` resolved on ``device``)."""
    module = pooled_module(load_model(spec, role, flag), spec)
    return TorchForward(module, device, resolve_precision(precision, device))


def export_pooled(module: torch.nn.Module, target: Path) -> Path:
    """Export a :func:`pooled_module` to ``target`` (dynamic batch and sequence axes)."""
    names: list[str] = list(module.names)  # type: ignore[arg-type]
    axes = {name: {0: "batch", 1: "tokens"} for name in names} | {OUTPUT_NAME: {0: "batch"}}
    return onnx.export_module(
        module, target, input_names=names, output_names=[OUTPUT_NAME], dynamic_axes=axes, tokens=8
    )


def _cache_folder(spec: EncoderSpec) -> Path:
    graph = [spec.model, spec.revision, spec.kind, spec.pooling, spec.normalize]
    return onnx.cache_root() / "encoder" / onnx.fingerprint([spec.path], graph)


def onnx_forward(
    spec: EncoderSpec, threads: int | None, quantize: bool, role: str, flag: str
) -> Forward:
    """A forward function running the exported (``quantize``: int8) model with ONNX Runtime."""

    def export(target: Path) -> None:
        export_pooled(pooled_module(load_model(spec, role, flag), spec), target)

    path = onnx.cached_model(_cache_folder(spec), export, quantize=quantize)
    return session_forward(path, threads)


def session_forward(path: Path, threads: int | None = None) -> Forward:
    """A forward function on an exported encoder file (ONNX Runtime only, no torch)."""
    model = onnx.OnnxModel(path, threads)

    def forward(batch: dict[str, np.ndarray]) -> np.ndarray:
        return model(batch)[0]

    return forward


def _onnx_runtime_forward(quantize: bool) -> Callable[..., Forward]:
    def build(spec: EncoderSpec, device: str, role: str, flag: str, precision: str,
              threads: int | None) -> Forward:
        backend = "int8" if quantize else "onnx"
        if precision not in ("auto", "fp32"):
            runs = "torch or openvino" if precision == "bf16" else "torch"
            raise OdqaError(
                f"--precision {precision} runs with --backend {runs}; --backend {backend} is "
                f"{'int8' if quantize else 'fp32'}"
            )
        return onnx_forward(spec, threads, quantize, role, flag)

    return build


def openvino_forward(spec: EncoderSpec, device: str, role: str, flag: str, precision: str,
                     threads: int | None) -> Forward:
    """A forward function running the cached ONNX export with OpenVINO (bf16 on CPUs that
    compute it natively under ``precision auto``)."""
    from odqa.runtime import openvino

    resolved = openvino.resolve_precision(precision)
    openvino.require()  # before a possibly long export

    def export(target: Path) -> None:
        export_pooled(pooled_module(load_model(spec, role, flag), spec), target)

    path = onnx.cached_model(_cache_folder(spec), export, quantize=False)
    return _FirstOutput(openvino.OpenVinoModel(path, resolved, threads))


class _FirstOutput:
    """A multi-output model as a :data:`Forward` (its first output), keeping its precision."""

    def __init__(self, model: Callable[[dict[str, np.ndarray]], list[np.ndarray]]) -> None:
        self.model = model
        self.precision = getattr(model, "precision", "fp32")

    def __call__(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        return self.model(batch)[0]


def _torch_forward(spec: EncoderSpec, device: str, role: str, flag: str, precision: str,
                   threads: int | None) -> Forward:
    return torch_forward(spec, device, role, flag, precision)


FORWARDS: dict[str, Callable[..., Forward]] = {
    "torch": _torch_forward,
    "onnx": _onnx_runtime_forward(quantize=False),
    "int8": _onnx_runtime_forward(quantize=True),
    "openvino": openvino_forward,
}
"""Backend name -> builder of its forward function; every backend but torch runs on the CPU."""


def make_forward(
    spec: EncoderSpec,
    backend: str,
    device: str,
    role: str,
    flag: str,
    *,
    precision: str = "auto",
    threads: int | None = None,
) -> Forward:
    """The forward function of ``backend`` (see FORWARDS) on ``device``.

    Raises:
        OdqaError: an unknown backend, a CPU backend off the CPU, or a precision the backend
            does not run.
    """
    build = FORWARDS.get(backend)
    if build is None:
        raise OdqaError(f"unknown backend '{backend}': choose one of {', '.join(BACKENDS)}")
    if backend != "torch" and device != "cpu":
        raise OdqaError(f"--backend {backend} runs on the CPU: use --device cpu or --backend torch")
    return build(spec, device, role, flag, precision, threads)
