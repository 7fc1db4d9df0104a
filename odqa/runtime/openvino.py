"""OpenVINO runtime for ONNX exports: bf16 inference on CPUs that compute it natively.

OpenVINO compiles the same ONNX file ONNX Runtime runs (odqa's cached export) for the CPU;
with the ``bf16`` inference precision hint it runs matrix products in bf16 on AVX512-BF16 and
AMX CPUs, which ONNX Runtime's CPU provider does not. ``pip install openvino`` (the ``openvino``
extra) to use it; nothing here is imported unless ``--backend openvino`` is asked for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from odqa.errors import OdqaError

PRECISION_HINTS = {"bf16": "bf16", "fp32": "f32"}
"""odqa precision -> OpenVINO ``INFERENCE_PRECISION_HINT``."""


def available() -> bool:
    """True when the ``openvino`` package can be imported."""
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


def require() -> None:
    """Raise a one-line error when OpenVINO is not installed."""
    if not available():
        raise OdqaError("--backend openvino needs OpenVINO: pip install openvino")


def resolve_precision(precision: str) -> str:
    """``auto`` as for every CPU runtime (:func:`odqa.runtime.hardware.resolve_precision`: bf16
    on CPUs that compute bf16 natively, else fp32); fp32 and bf16 are kept, fp16 refused."""
    from odqa.runtime.hardware import resolve_precision as cpu_precision

    if precision != "auto" and precision not in PRECISION_HINTS:
        raise OdqaError(
            f"--backend openvino runs fp32 or bf16, not {precision}: use --precision auto, "
            "fp32 or bf16"
        )
    return cpu_precision(precision, "cpu")


class OpenVinoModel:
    """An ONNX file compiled by OpenVINO for the CPU: a dict of input arrays in, the list of
    outputs out (float32), as :class:`odqa.runtime.onnx.OnnxModel`. ``precision`` is ``fp32`` or
    ``bf16``."""

    def __init__(self, path: Path, precision: str, threads: int | None = None) -> None:
        require()
        import openvino

        from odqa.runtime import onnx

        config: dict[str, Any] = {
            "INFERENCE_PRECISION_HINT": PRECISION_HINTS[precision],
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": 1,
        }
        threads = threads or onnx.DEFAULT_THREADS  # build workers pin one thread each
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        try:
            compiled = openvino.Core().compile_model(str(path), "CPU", config)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise OdqaError(f"OpenVINO could not compile {path}: {first}") from None
        # The plugin drops a bf16 hint on CPUs without bf16: record what it runs.
        ran = compiled.get_property("INFERENCE_PRECISION_HINT")
        self.precision = "bf16" if "bf" in str(ran).lower() else "fp32"
        self._names = [port.get_any_name() for port in compiled.inputs]
        self._request = compiled.create_infer_request()

    def __call__(self, batch: dict[str, np.ndarray]) -> list[np.ndarray]:
        results = self._request.infer({name: batch[name] for name in self._names})
        return [np.asarray(out, dtype=np.float32) for out in results.to_tuple()]
