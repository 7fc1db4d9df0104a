"""ONNX Runtime on the CPU: export a torch module once, quantise it, open it, run it.

One module for every model odqa runs through ONNX (dense encoders and the extractive reader).
Exports made on demand live under :func:`cache_root` (``$ODQA_CACHE/onnx``, default
``~/.cache/odqa/onnx``), one folder per :func:`fingerprint` of the model's files; an index keeps
its query encoder's export in its own folder. ``model.onnx`` is fp32, ``model.int8.onnx`` its
dynamic int8 quantisation, ``*.opt.onnx`` (weights in a ``.data`` side file) a graph already
optimised, which opens several times faster. Files are written under a temporary name and
renamed into place, so a reader never sees half a model.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from odqa.errors import MissingDependencyError

if TYPE_CHECKING:
    import torch

INSTALL = "pip install onnx onnxruntime"
MODEL_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
DEFAULT_THREADS: int | None = None
"""Intra-op threads of sessions opened without a count (None: ONNX Runtime's default, all
cores); a build's worker processes set 1."""
STALE_LOCK_SECONDS = 600
"""A lock on an optimised graph older than this was left by a process that died."""


def cache_root() -> Path:
    """Where on-demand ONNX exports are kept: ``$ODQA_CACHE/onnx`` or ``~/.cache/odqa/onnx``."""
    root = os.environ.get("ODQA_CACHE") or Path.home() / ".cache" / "odqa"
    return Path(root) / "onnx"


def runtime_available() -> bool:
    """True when ``onnxruntime`` is installed (checked without importing it)."""
    return find_spec("onnxruntime") is not None


def export_available() -> bool:
    """True when a model can be exported here (``onnx`` and ``onnxruntime`` installed)."""
    return runtime_available() and find_spec("onnx") is not None


def fingerprint(folders: Iterable[str | Path], extra: Any = None) -> str:
    """A short hash of the files below ``folders`` (names, sizes, modification times) and
    ``extra`` (JSON-ready settings): it changes whenever the model files change."""
    stamps: list[tuple[str, str | None, int | None, int | None]] = []
    for folder in folders:
        root = Path(folder)
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []
        for path in files:
            stat = path.stat()
            stamps.append((str(root), str(path.relative_to(root)), stat.st_size, stat.st_mtime_ns))
        if not files:
            stamps.append((str(folder), None, None, None))
    blob = json.dumps([stamps, extra], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def partial_path(target: Path) -> Path:
    """A temporary sibling of ``target``, renamed over it once complete."""
    return target.with_name(f"{target.name}.tmp-{os.getpid()}")


def write_json(target: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``target`` atomically."""
    partial = partial_path(target)
    partial.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    partial.replace(target)


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

    Raises:
        MissingDependencyError: without the ``onnx`` package.
    """
    import warnings

    import torch

    if not export_available():
        raise MissingDependencyError(f"exporting to ONNX needs onnx and onnxruntime: {INSTALL}")
    example = tuple(torch.ones((2, tokens), dtype=torch.long) for _ in input_names)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(target)
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
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

    partial = partial_path(target)
    logging.disable(logging.WARNING)  # its advice to pre-process the graph is noise here
    try:
        quantize_dynamic(source, partial, weight_type=QuantType.QInt8, per_channel=True)
    finally:
        logging.disable(logging.NOTSET)
    partial.replace(target)
    return target


def cached_model(folder: Path, export: Callable[[Path], Any], *, quantize: bool) -> Path:
    """``folder/model.onnx`` (``quantize``: ``model.int8.onnx``), exported by
    ``export(target)``, quantised and optimised for loading (:func:`write_optimized`) the first
    time only."""
    target = folder / MODEL_FILE
    if not target.is_file():
        export(target)
    if quantize:
        quantized = folder / INT8_FILE
        if not quantized.is_file():
            quantize_int8(target, quantized)
        target = quantized
    if not optimized_path(target).is_file():
        write_optimized(target)
    return target


def optimized_path(path: Path) -> Path:
    """Where :func:`write_optimized` keeps the optimised graph of ``path`` (``model.opt.onnx``)."""
    return path.with_name(f"{path.name.removesuffix('.onnx')}.opt.onnx")


def write_optimized(path: Path) -> Path | None:
    """Save ``path``'s graph after ONNX Runtime's extended optimisations (operator fusions,
    hardware-independent), with its weights in a side file, so that later sessions open it
    without optimising: about 0.05 s instead of 0.3-0.4 s for a MiniLM, same outputs.

    One process writes at a time (a lock file; a process that finds it locked just skips the
    speed-up this once), and a failure is remembered (``*.opt.failed``) so it is not retried on
    every start. Returns the optimised model's path, or None when it was not written (sessions
    then optimise ``path`` as before).
    """
    target = optimized_path(path)
    stem = target.name.removesuffix(".onnx")
    failed, lock = target.with_name(f"{stem}.failed"), target.with_name(f"{stem}.lock")
    data = target.with_name(f"{stem}.data")
    if failed.exists():
        return None
    try:
        import onnxruntime as ort

        handle = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except ImportError:
        return None
    except OSError:  # another process is writing it, or the folder is read-only
        with contextlib.suppress(OSError):
            if time.time() - lock.stat().st_mtime > STALE_LOCK_SECONDS:
                lock.unlink()  # left by a process that died: the next start retries
        return None
    os.close(handle)
    partial = partial_path(target)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(partial)
    options.add_session_config_entry(
        "session.optimized_model_external_initializers_file_name", data.name
    )
    options.add_session_config_entry(
        "session.optimized_model_external_initializers_min_size_in_bytes", "1024"
    )
    try:
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        partial.replace(target)
        return target
    except Exception as exc:  # an optional speed-up: it never fails the caller
        for leftover in (partial, data):
            leftover.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            failed.write_text(f"{type(exc).__name__}: {exc}\n", encoding="utf-8")
        return None
    finally:
        lock.unlink(missing_ok=True)


def open_session(path: Path, threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session on ``path`` (``threads`` intra-op): from its optimised graph
    (:func:`write_optimized`) when there is one that opens, else optimising ``path`` now.

    Raises:
        MissingDependencyError: without ``onnxruntime``.
    """
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise MissingDependencyError(f"running ONNX models needs onnxruntime: {INSTALL}") from exc
    levels = ort.GraphOptimizationLevel
    optimized = optimized_path(Path(path))
    if optimized.is_file():
        # a damaged or foreign optimised graph is passed over: the model is optimised instead
        try:
            return _session(ort, optimized, levels.ORT_DISABLE_ALL, threads)
        except Exception as exc:
            logging.getLogger(__name__).debug("optimised graph %s not used: %s", optimized, exc)
    return _session(ort, Path(path), levels.ORT_ENABLE_ALL, threads)


def _session(ort: Any, path: Path, level: Any, threads: int | None) -> Any:
    options = ort.SessionOptions()
    options.graph_optimization_level = level
    threads = threads or DEFAULT_THREADS
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxModel:
    """An ONNX model as a function: a batch of named numpy arrays in, float32 outputs out.

    Only the inputs the graph declares are fed (as int64); extra batch keys are ignored.
    """

    def __init__(self, path: Path, threads: int | None = None) -> None:
        self.path = Path(path)
        self.session = open_session(self.path, threads)
        self.input_names = [i.name for i in self.session.get_inputs()]

    def __call__(self, batch: dict[str, np.ndarray]) -> list[np.ndarray]:
        feed = {name: np.asarray(batch[name], dtype=np.int64) for name in self.input_names}
        return [np.asarray(out, dtype=np.float32) for out in self.session.run(None, feed)]


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """The smallest row-wise cosine between two [n, d] arrays (export checks)."""
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return float(((a * b).sum(1) / np.maximum(norms, 1e-12)).min())


def skipped_export(folder: Path, reason: str) -> dict[str, Any]:
    """Remove a rejected export's folder; the manifest record saying why."""
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
    return {"skipped": reason}
