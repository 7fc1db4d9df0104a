"""The phrase encoder: query-independent start/end vectors for every passage token, and the
query vectors that score them (Seo et al. 2019; Lee et al. 2021, "DensePhrases").

A phrase ``(i, j)`` of a passage scores ``q_start · start(i) + q_end · end(j)``. The model has:

- ``phrase_encoder``: a transformer over ``[CLS] title [SEP] text [SEP]``; its token states,
  through optional linear heads, are the start and end vectors;
- ``query_start_encoder`` / ``query_end_encoder``: transformers whose ``[CLS]`` states (through
  optional heads) are ``q_start`` / ``q_end``; odqa's own models share the phrase encoder for
  both and tell start from end with the heads;
- ``filter_linear``: two logits per token, how likely it starts / ends any answer; the index
  keeps only tokens above a threshold.

Two folder layouts load (no ``trust_remote_code``):

- odqa's: ``odqa_phrase.json`` + ``config.json`` + tokenizer + ``model.safetensors`` (or
  ``delta.safetensors`` over a base named in ``odqa_phrase.json``);
- DensePhrases' (princeton-nlp/densephrases-multi and its query variants): one
  ``pytorch_model.bin`` or ``model.safetensors`` holding ``phrase_encoder.*``,
  ``query_start_encoder.*``, ``query_end_encoder.*`` and ``filter_linear.*``; it is split by
  prefix into the parts (same vector for start and end, ``[CLS]`` query vectors). A ``.bin`` is
  read with ``torch.load(weights_only=True)``, which refuses anything but tensors.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from odqa.errors import ModelNotAvailableError

META = "odqa_phrase.json"
PARTS = ("phrase_encoder", "query_start_encoder", "query_end_encoder")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt")
"""Any of these in a folder means it carries its own tokenizer."""
HEADS = ("start_head", "end_head", "query_start_head", "query_end_head")


@dataclass(frozen=True)
class PhraseModelConfig:
    """How a phrase model is put together (``odqa_phrase.json``)."""

    layout: str = "odqa"
    shared_encoder: bool = True
    heads: bool = True
    base: str | None = None
    delta: bool = False
    max_query_length: int = 64


def _state_file(folder: Path) -> Path | None:
    for name in ("delta.safetensors", "model.safetensors", "pytorch_model.bin"):
        if (folder / name).is_file():
            return folder / name
    return None


def _read_state(path: Path) -> dict[str, Any]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    import torch

    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelNotAvailableError(f"{path}: not a plain tensor checkpoint ({exc})") from None


def build_phrase_model(encoder: Any, config: PhraseModelConfig) -> Any:
    """A :class:`PhraseModel` around a loaded transformer ``encoder`` (heads start as scaled
    identities)."""
    return _model_class()(encoder, config)


def _model_class():
    import torch
    from torch import nn

    class PhraseModel(nn.Module):
        """See the module docstring."""

        def __init__(self, encoder: Any, config: PhraseModelConfig) -> None:
            super().__init__()
            self.config = config
            self.phrase_encoder = encoder
            hidden = encoder.config.hidden_size
            if not config.shared_encoder:
                import copy

                self.query_start_encoder = copy.deepcopy(encoder)
                self.query_end_encoder = copy.deepcopy(encoder)
            self.filter_linear = nn.Linear(hidden, 2)
            if config.heads:
                # Scaled identities: a start/query product starts as h . h' / sqrt(d), as in
                # attention, so the first in-batch softmax over thousands of tokens is not
                # saturated.
                scale = hidden**-0.25
                for name in HEADS:
                    head = nn.Linear(hidden, hidden)
                    with torch.no_grad():
                        head.weight.copy_(torch.eye(hidden) * scale)
                        head.bias.zero_()
                    setattr(self, name, head)

        @property
        def dim(self) -> int:
            return self.phrase_encoder.config.hidden_size

        def _head(self, name: str, x):
            return getattr(self, name)(x) if self.config.heads else x

        def encode_phrases(self, **inputs):
            """Start vectors, end vectors [B, L, d] and filter start/end logits [B, L]."""
            hidden = self.phrase_encoder(**inputs).last_hidden_state
            filters = self.filter_linear(hidden)
            start = self._head("start_head", hidden)
            end = self._head("end_head", hidden)
            return start, end, filters[..., 0], filters[..., 1]

        def encode_queries(self, **inputs):
            """Query start and end vectors [B, d] (``[CLS]`` states)."""
            if self.config.shared_encoder:
                cls = self.phrase_encoder(**inputs).last_hidden_state[:, 0]
                start_cls = end_cls = cls
            else:
                start_cls = self.query_start_encoder(**inputs).last_hidden_state[:, 0]
                end_cls = self.query_end_encoder(**inputs).last_hidden_state[:, 0]
            return (self._head("query_start_head", start_cls),
                    self._head("query_end_head", end_cls))

    return PhraseModel


def is_phrase_folder(path: str | Path) -> bool:
    """True for a folder in either phrase layout."""
    folder = Path(path)
    if (folder / META).is_file():
        return True
    state = _state_file(folder)
    if state is None or state.suffix != ".safetensors":
        return False
    from safetensors import safe_open

    with safe_open(str(state), "pt") as handle:
        return any(k.startswith("query_start_encoder.") for k in handle.keys())  # noqa: SIM118


def load_phrase_model(name: str) -> tuple[Any, Any]:
    """Load a phrase model and its tokenizer from a hub id or folder (either layout).

    Raises:
        ModelNotAvailableError: when it cannot be found or its weights do not fit.
    """
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    from odqa.runtime.hub import load_pretrained, quiet_transformers, resolve_model

    folder = Path(resolve_model(name))
    if not folder.is_dir():
        raise ModelNotAvailableError(
            f"phrase encoder '{name}' is not a local folder: give one with --phrase-encoder PATH"
        )
    state_path = _state_file(folder)
    if state_path is None:
        raise ModelNotAvailableError(
            f"phrase encoder folder '{folder}' has no model.safetensors, delta.safetensors or "
            "pytorch_model.bin"
        )
    state = _read_state(state_path)
    if (folder / META).is_file():
        config = PhraseModelConfig(**json.loads((folder / META).read_text(encoding="utf-8")))
    elif any(k.startswith("query_start_encoder.") for k in state):
        config = PhraseModelConfig(layout="densephrases", shared_encoder=False, heads=False)
    else:
        raise ModelNotAvailableError(
            f"'{folder}' is not a phrase model: no {META} and no query_start_encoder.* weights"
        )
    with quiet_transformers():
        own_tokenizer = any((folder / n).is_file() for n in TOKENIZER_FILES)
        tokenizer = load_pretrained(
            AutoTokenizer.from_pretrained,
            str(folder) if own_tokenizer or not config.delta else config.base or "",
            "phrase" if own_tokenizer else "base", "--phrase-encoder",
        )
        hf_config = AutoConfig.from_pretrained(str(folder))
        if config.delta:
            encoder = load_pretrained(
                lambda p: AutoModel.from_pretrained(p, config=hf_config, add_pooling_layer=False),
                config.base or "", "base", "--phrase-encoder",
            )
        else:
            encoder = AutoModel.from_config(hf_config, add_pooling_layer=False)
    model = build_phrase_model(encoder, config)
    own = model.state_dict()
    fitted = {}
    for key, tensor in state.items():
        if key not in own:
            ours = key.split(".", 1)[0] in (*PARTS, "filter_linear", *HEADS)
            if ours and "pooler" not in key and not key.endswith("position_ids"):
                raise ModelNotAvailableError(f"{state_path}: unexpected tensor '{key}'")
            continue
        if own[key].shape != tensor.shape:
            raise ModelNotAvailableError(
                f"{state_path}: tensor '{key}' has shape {tuple(tensor.shape)}, the model "
                f"expects {tuple(own[key].shape)}"
            )
        fitted[key] = tensor.to(own[key].dtype)
    missing = [k for k in own if k not in fitted and not config.delta]
    if missing:
        raise ModelNotAvailableError(f"{state_path}: missing tensors, e.g. '{missing[0]}'")
    model.load_state_dict(fitted, strict=False)
    model.eval()
    return model, tokenizer


def save_phrase_model(model: Any, tokenizer: Any, folder: Path, *, delta_over: str | None) -> int:
    """Write odqa's layout; with ``delta_over`` (the base id), only tensors that differ from the
    base are stored, in float16, and the base's tokenizer is used (none is written). Returns
    the number of stored parameters."""
    import torch
    from safetensors.torch import save_file

    from odqa.runtime.hub import quiet_transformers, resolve_model

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    config = model.config
    if delta_over is not None:
        from transformers import AutoModel

        with quiet_transformers():
            base = AutoModel.from_pretrained(resolve_model(delta_over), add_pooling_layer=False)
        reference = {f"phrase_encoder.{k}": v for k, v in base.state_dict().items()}
        state = {k: v.to(torch.float16) if v.is_floating_point() else v
                 for k, v in state.items()
                 if not (k in reference and torch.equal(reference[k], v))}
        config = PhraseModelConfig(**{**asdict(config), "base": delta_over, "delta": True})
    folder.mkdir(parents=True, exist_ok=True)
    save_file(state, str(folder / ("delta.safetensors" if delta_over else "model.safetensors")))
    model.phrase_encoder.config.save_pretrained(folder)
    if delta_over is None:
        tokenizer.save_pretrained(folder)  # a delta uses its base's tokenizer
    (folder / META).write_text(json.dumps(asdict(config), indent=2) + "\n", encoding="utf-8")
    return int(sum(v.numel() for v in state.values()))
