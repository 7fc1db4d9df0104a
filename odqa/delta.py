"""Model folders stored as a delta over an installed base model.

A delta folder is a Hugging Face model folder (``config.json``) whose weights file,
``delta.safetensors``, holds only the tensors that differ from its base model, optionally in
half precision; ``odqa_delta.json`` names the base, whose tokenizer the delta uses. Loading
builds the model from the base's weights and overwrites them with the delta. odqa ships its
trained reader this way: the frozen embeddings and the tokenizer come from the installed
all-MiniLM-L6-v2 package, so the folder stays small.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from odqa.errors import ModelNotAvailableError

DELTA_META = "odqa_delta.json"
DELTA_WEIGHTS = "delta.safetensors"
DTYPES = ("float32", "float16", "bfloat16")


def is_delta_folder(path: str | Path) -> bool:
    """True for a folder written by :func:`save_delta`."""
    return (Path(path) / DELTA_META).is_file()


def save_delta(model: Any, base: str, folder: Path, dtype: str = "float16") -> int:
    """Write the tensors of ``model`` that differ from ``base``'s into ``folder``.

    Returns:
        The number of parameters stored.
    """
    import torch
    from safetensors.torch import save_file

    from odqa.runtime.hub import quiet_transformers, resolve_model

    with quiet_transformers():
        reference = type(model).from_pretrained(resolve_model(base), config=model.config)
    base_state = reference.state_dict()
    target = getattr(torch, dtype)
    delta = {}
    for name, tensor in model.state_dict().items():
        same = name in base_state and torch.equal(base_state[name], tensor)
        if not same:
            value = tensor.detach().cpu()
            delta[name] = (value.to(target) if value.is_floating_point() else value).contiguous()
    folder.mkdir(parents=True, exist_ok=True)
    save_file(delta, str(folder / DELTA_WEIGHTS))
    model.config.architectures = [type(model).__name__]
    model.config.save_pretrained(folder)
    parameters = int(sum(t.numel() for t in delta.values()))
    meta = {"base": base, "dtype": dtype, "tensors": len(delta), "parameters": parameters}
    (folder / DELTA_META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return parameters


def delta_base(folder: str | Path) -> str:
    """The base model a delta folder was written over (hub id or path).

    Raises:
        ModelNotAvailableError: when ``odqa_delta.json`` is unreadable or names no base.
    """
    path = Path(folder) / DELTA_META
    try:
        return str(json.loads(path.read_text(encoding="utf-8"))["base"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelNotAvailableError(f"{path} is not a valid delta record: {exc}") from None


def load_delta(model_class: Any, folder: str | Path) -> Any:
    """Build ``model_class`` from a delta folder: the base's weights, then the delta's.

    Raises:
        ModelNotAvailableError: when the base cannot be loaded or the delta does not fit it.
    """
    from safetensors.torch import load_file
    from transformers import AutoConfig

    from odqa.runtime.hub import load_pretrained

    folder = Path(folder)
    base = delta_base(folder)
    config = AutoConfig.from_pretrained(str(folder))
    model = load_pretrained(
        lambda path: model_class.from_pretrained(path, config=config), base, "base", "--reader"
    )
    delta = load_file(str(folder / DELTA_WEIGHTS))
    reference = model.state_dict()
    for name, tensor in delta.items():
        if name not in reference or reference[name].shape != tensor.shape:
            raise ModelNotAvailableError(
                f"{folder / DELTA_WEIGHTS}: tensor '{name}' does not fit base model '{base}'"
            )
        delta[name] = tensor.to(reference[name].dtype)
    model.load_state_dict(delta, strict=False)
    return model
