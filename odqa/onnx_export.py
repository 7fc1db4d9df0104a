"""ONNX Runtime on the CPU: export a torch module once into a cache, quantise it, open it.

Exports live under ``ODQA_CACHE`` (or ``~/.cache/odqa``) in ``onnx/``, one folder per model
key; ``model.onnx`` is fp32 and ``model.int8.onnx`` its dynamic int8 quantisation.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from odqa.errors import MissingDependencyError

if TYPE_CHECKING:
    import torch


def onnx_cache_dir() -> Path:
    """Where exported ONNX models are kept (``ODQA_CACHE`` or ``~/.cache/odqa``)."""
    root = os.environ.get("ODQA_CACHE") or Path.home() / ".cache" / "odqa"
    return Path(root) / "onnx"


def _partial(target: Path) -> Path:
    """A temporary sibling of ``target``, renamed over it once complete."""
    return target.with_suffix(f".tmp-{os.getpid()}")


def export_module(
    module: torch.nn.Module,
    target: Path,
    *,
    input_names: Sequence[str],
    output_names: Sequence[str],
    dynamic_axes: dict[str, dict[int, str]],
    tokens: int,
) -> Path:
    """Export ``module`` (token-id tensors in) to ``target``, traced on a (2, ``tokens``) batch.

    Raises :class:`MissingDependencyError` without the ``onnx`` package.
    """
    import warnings

    import torch

    try:
        import onnx  # noqa: F401  (the exporter needs it)
    except ImportError as exc:
        raise MissingDependencyError(
            "--backend onnx/int8 needs the onnx and onnxruntime packages: "
            "pip install onnx onnxruntime"
        ) from exc
    example = tuple(torch.ones((2, tokens), dtype=torch.long) for _ in input_names)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = _partial(target)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            example,
            str(partial),
            input_names=list(input_names),
            output_names=list(output_names),
            dynamic_axes=dynamic_axes,
            opset_version=17,
            dynamo=False,
        )
    partial.replace(target)
    return target


def quantize_int8(source: Path, target: Path) -> Path:
    """Dynamic int8 quantisation (per-channel weights) of the ONNX model ``source``."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    partial = _partial(target)
    logging.disable(logging.WARNING)  # its advice to pre-process the graph is noise here
    try:
        quantize_dynamic(source, partial, weight_type=QuantType.QInt8, per_channel=True)
    finally:
        logging.disable(logging.NOTSET)
    partial.replace(target)
    return target


def cached_session(
    folder: Path, export: Callable[[Path], Any], *, quantize: bool, threads: int | None
) -> Any:
    """An ONNX Runtime CPU session on ``folder/model.onnx`` (``quantize``: its int8 version).

    ``export(target)`` writes the fp32 model when the cache does not hold it yet. Raises
    :class:`MissingDependencyError` without ``onnxruntime``.
    """
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise MissingDependencyError(
            "--backend onnx/int8 needs onnxruntime: pip install onnx onnxruntime"
        ) from exc
    target = folder / "model.onnx"
    if not target.is_file():
        export(target)
    if quantize:
        source, target = target, folder / "model.int8.onnx"
        if not target.is_file():
            quantize_int8(source, target)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(target), options, providers=["CPUExecutionProvider"])
