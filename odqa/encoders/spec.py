"""Working out how a model folder or hub id encodes text: kind, pooling, normalisation, length.

Three kinds are understood:

- ``sentence-transformers``: a folder with ``modules.json`` (Transformer, Pooling, optional
  Normalize); pooling and normalisation come from ``1_Pooling/config.json`` and the module list,
  the length from ``sentence_bert_config.json``.
- ``dpr``: a ``DPRQuestionEncoder`` / ``DPRContextEncoder`` (``model_type`` ``dpr``): CLS pooler
  output, inner product, passage = ``title [SEP] text``.
- ``hf``: any other Hugging Face encoder, pooled with ``--pooling cls|mean|max``.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from odqa.errors import ModelNotAvailableError
from odqa.runtime.hub import resolve_model

MAX_LENGTH_CAP = 512
_ST_POOLING = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_max_tokens": "max",
}


@dataclass(frozen=True)
class EncoderSpec:
    """Everything needed to turn text into the same vectors again.

    Attributes:
        model: the model as given (hub id or path).
        path: folder of the Hugging Face weights, or the hub id when not local.
        revision: hub commit hash when the model came from the Hugging Face cache.
        kind: ``sentence-transformers``, ``dpr`` or ``hf``.
        pooling: ``cls``, ``mean`` or ``max`` (``cls`` = DPR's pooler output for ``dpr``).
        normalize: L2-normalise the pooled vectors.
        max_length: tokens per text after the prefix.
        prefix: text put before every input.
        lowercase: lowercase inputs first (``do_lower_case`` of sentence-transformers).
    """

    model: str
    path: str
    revision: str | None
    kind: str
    pooling: str
    normalize: bool
    max_length: int
    prefix: str = ""
    lowercase: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EncoderSpec:
        """Inverse of :meth:`to_dict`."""
        return cls(**data)

    def with_location(self) -> EncoderSpec:
        """Re-resolve ``model`` on this machine (a recorded folder may be elsewhere now)."""
        recorded = Path(self.path)
        if recorded.is_dir():
            return self
        return replace(self, path=_weights_folder(resolve_model(self.model)))


def _model_file(resolved: str, filename: str) -> Path | None:
    """``filename`` inside a local folder, or from the hub cache; None when absent."""
    folder = Path(resolved)
    if folder.is_dir():
        candidate = folder / filename
        return candidate if candidate.is_file() else None
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(resolved, filename))
    except Exception:  # absent file, offline without cache, bad id: all mean "not there"
        return None


def _read_json(path: Path | None) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path is not None else {}


def _revision(path: Path | None) -> str | None:
    """The commit hash in a hub cache path ``.../snapshots/<hash>/file``."""
    if path is None:
        return None
    match = re.search(r"snapshots[/\\]([0-9a-f]{40})", str(path))
    return match.group(1) if match else None


def _weights_folder(resolved: str) -> str:
    """Folder (or id) holding the Transformer module of a sentence-transformers model."""
    modules = _read_json(_model_file(resolved, "modules.json"))
    for module in modules or []:
        if module.get("type", "").endswith("models.Transformer") and module.get("path"):
            return str(Path(resolved) / module["path"]) if Path(resolved).is_dir() else resolved
    return resolved


def _st_pooling(config: dict[str, Any], model: str) -> str:
    if isinstance(config.get("pooling_mode"), str):
        mode = config["pooling_mode"]
        mode = {"mean_tokens": "mean", "cls_token": "cls", "max_tokens": "max"}.get(mode, mode)
    else:
        chosen = [name for key, name in _ST_POOLING.items() if config.get(key)]
        extra = [key for key, value in config.items() if key.startswith("pooling_mode") and value]
        mode = chosen[0] if len(chosen) == 1 and len(extra) == 1 else "unsupported"
    if mode not in ("cls", "mean", "max"):
        raise ModelNotAvailableError(
            f"sentence-transformers model '{model}' uses pooling {config}: only one of "
            f"cls, mean or max pooling is supported"
        )
    return mode


def _sentence_transformers(resolved: str, model: str, modules: list[dict]) -> dict[str, Any]:
    types = [m.get("type", "").rsplit(".", 1)[-1] for m in modules]
    unsupported = sorted(set(types) - {"Transformer", "Pooling", "Normalize"})
    if unsupported or "Transformer" not in types:
        raise ModelNotAvailableError(
            f"sentence-transformers model '{model}' has modules {types}: only Transformer, "
            f"Pooling and Normalize are supported"
        )
    settings: dict[str, Any] = {"kind": "sentence-transformers", "normalize": "Normalize" in types}
    transformer = modules[types.index("Transformer")].get("path", "")
    st_config = _read_json(
        _model_file(resolved, f"{transformer}/sentence_bert_config.json".lstrip("/"))
        or _model_file(resolved, "sentence_bert_config.json")
    )
    settings["max_length"] = st_config.get("max_seq_length")
    settings["lowercase"] = bool(st_config.get("do_lower_case", False))
    if "Pooling" in types:
        pooling_path = modules[types.index("Pooling")].get("path", "1_Pooling")
        pooling = _read_json(_model_file(resolved, f"{pooling_path}/config.json"))
        settings["pooling"] = _st_pooling(pooling, model)
    return settings


def inspect_encoder(
    model: str,
    pooling: str | None = None,
    normalize: bool | None = None,
    max_length: int | None = None,
    prefix: str = "",
) -> EncoderSpec:
    """Resolve ``model`` and fill every setting left as None from what the model says.

    Raises:
        ModelNotAvailableError: when the model cannot be found or has unsupported modules.
    """
    resolved = resolve_model(model)
    config_file = _model_file(resolved, "config.json")
    modules_file = _model_file(resolved, "modules.json")
    if config_file is None and modules_file is None:
        raise ModelNotAvailableError(
            f"cannot find dense encoder model '{model}' (no config.json): give a local folder "
            f"with --encoder PATH, or download it once with network access"
        )
    if modules_file is not None:
        settings = _sentence_transformers(resolved, model, _read_json(modules_file))
        path = _weights_folder(resolved)
    else:
        is_dpr = _read_json(config_file).get("model_type") == "dpr"
        settings = {"kind": "dpr" if is_dpr else "hf", "pooling": "cls" if is_dpr else "mean"}
        path = resolved
    config = _read_json(_model_file(path, "config.json") or config_file)
    if settings["kind"] == "dpr" and pooling not in (None, "cls"):
        raise ModelNotAvailableError(f"DPR encoder '{model}' uses CLS pooling: drop --pooling")
    model_limit = min(config.get("max_position_embeddings", MAX_LENGTH_CAP), MAX_LENGTH_CAP)
    length = max_length or settings.get("max_length") or model_limit
    return EncoderSpec(
        model=model,
        path=path,
        revision=_revision(config_file or modules_file),
        kind=settings["kind"],
        pooling=pooling or settings.get("pooling") or "mean",
        normalize=normalize if normalize is not None else settings.get("normalize", False),
        max_length=int(min(length, model_limit)),
        prefix=prefix,
        lowercase=settings.get("lowercase", False),
    )
