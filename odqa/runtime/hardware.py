"""What this machine offers, found without importing torch: CPU features and whether CUDA can
exist at all. Both decide runtimes before any heavy library loads."""

from __future__ import annotations

import os
import re
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path

from odqa.errors import OdqaError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
"""Encoder precisions: ``auto`` is fp16 on CUDA, bf16 on CPUs that compute bfloat16 natively
(AMX-BF16 or AVX512-BF16), fp32 elsewhere."""


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags of ``/proc/cpuinfo`` (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
    except OSError:
        return frozenset()
    match = re.search(r"^flags\s*:(.*)$", text, flags=re.MULTILINE)
    return frozenset(match.group(1).split()) if match else frozenset()


def has_amx_bf16() -> bool:
    """True on CPUs with AMX bfloat16 tiles (Sapphire Rapids and later), where bf16 matrix
    products run several times faster than fp32."""
    return "amx_bf16" in cpu_flags()


def has_native_bf16() -> bool:
    """True on CPUs that compute bfloat16 products in hardware: AMX-BF16 tiles (Intel Sapphire
    Rapids and later) or AVX512-BF16 dot products (Intel Cooper Lake, AMD Zen 4 and later).
    Elsewhere bf16 is emulated and slower than fp32."""
    return bool({"amx_bf16", "avx512_bf16"} & cpu_flags())


@lru_cache(maxsize=1)
def cuda_possible() -> bool:
    """False when CUDA surely is not available: a CPU-only torch build, or no NVIDIA driver.

    Reads ``torch/version.py`` as text rather than importing torch (two seconds).
    """
    spec = find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return False
    version = Path(next(iter(spec.submodule_search_locations))) / "version.py"
    try:
        text = version.read_text(encoding="utf-8")
    except OSError:
        return True
    if re.search(r"^cuda\s*(:[^=]*)?=\s*None\s*$", text, flags=re.MULTILINE):
        return False
    return any(os.path.exists(p) for p in ("/dev/nvidiactl", "/proc/driver/nvidia/version"))


def resolve_precision(precision: str, device: str) -> str:
    """The precision an encoder runs in on ``device`` (``cpu`` or ``cuda``).

    ``auto``: fp16 on CUDA, bf16 on a CPU with native bf16 (:func:`has_native_bf16`), else fp32.
    Explicit values are kept.

    Raises:
        OdqaError: an unknown precision, or fp16 on the CPU.
    """
    if precision not in PRECISIONS:
        raise OdqaError(f"unknown precision '{precision}': choose one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        if device.startswith("cuda"):
            return "fp16"
        return "bf16" if has_native_bf16() else "fp32"
    if precision == "fp16" and not device.startswith("cuda"):
        raise OdqaError("--precision fp16 needs CUDA: use bf16 or fp32 on the CPU")
    return precision
