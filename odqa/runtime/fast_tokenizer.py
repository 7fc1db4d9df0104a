"""A Hugging Face fast tokenizer without transformers: the Rust ``tokenizers`` library alone.

:class:`FastTokenizer` answers the calls odqa makes on a transformers fast tokenizer (batches of
texts or text pairs, truncation with stride and overflowing windows, offsets, sequence ids) with
the same results, because it runs the very backend the transformers tokenizer wraps: it is
copied from it at export time (``tokenizer.json``) with the few settings transformers keeps on
the Python side (special token ids, model input names, truncation side).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from odqa.runtime.onnx import partial_path, write_json

TOKENIZER_FILE = "tokenizer.json"
SETTINGS_FILE = "tokenizer_settings.json"
STRATEGIES = {True: "longest_first", "longest_first": "longest_first", "only_first": "only_first",
              "only_second": "only_second"}  # fmt: skip


@dataclass(frozen=True)
class TokenizerSettings:
    """What transformers keeps outside the Rust tokenizer (JSON-ready)."""

    pad_token_id: int | None
    cls_token_id: int | None
    model_input_names: tuple[str, ...]
    truncation_side: str = "right"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TokenizerSettings:
        """Inverse of :func:`dataclasses.asdict`."""
        return cls(**{**data, "model_input_names": tuple(data["model_input_names"])})


class Encoded(dict):
    """Token lists by key (``input_ids``, ``offset_mapping``, ...) and the encodings behind them."""

    def __init__(self, data: dict[str, list], encodings: list[Any]) -> None:
        super().__init__(data)
        self.encodings = encodings

    def sequence_ids(self, index: int) -> list[int | None]:
        """Per token of row ``index``: 0 (first text), 1 (second text) or None (special)."""
        return self.encodings[index].sequence_ids


class FastTokenizer:
    """The subset of a transformers fast tokenizer odqa uses, run by ``tokenizers`` alone.

    Args:
        backend: a ``tokenizers.Tokenizer`` (no truncation or padding set).
        settings: special token ids and input names.
    """

    is_fast = True

    def __init__(self, backend: Any, settings: TokenizerSettings) -> None:
        self.backend = backend
        self.settings = settings
        self.backend.no_truncation()
        self.backend.no_padding()
        self.backend.encode_special_tokens = False

    @classmethod
    def from_transformers(cls, tokenizer: Any) -> FastTokenizer:
        """A copy of the Rust tokenizer inside a transformers fast ``tokenizer``."""
        from tokenizers import Tokenizer

        settings = TokenizerSettings(
            pad_token_id=tokenizer.pad_token_id,
            cls_token_id=tokenizer.cls_token_id,
            model_input_names=tuple(tokenizer.model_input_names),
            truncation_side=getattr(tokenizer, "truncation_side", "right"),
        )
        return cls(Tokenizer.from_str(tokenizer.backend_tokenizer.to_str()), settings)

    @classmethod
    def load(cls, folder: Path) -> FastTokenizer:
        """Read ``tokenizer.json`` and its settings from ``folder`` (see :meth:`save`)."""
        from tokenizers import Tokenizer

        folder = Path(folder)
        settings = json.loads((folder / SETTINGS_FILE).read_text(encoding="utf-8"))
        backend = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
        return cls(backend, TokenizerSettings.from_dict(settings))

    def save(self, folder: Path) -> None:
        """Write ``tokenizer.json`` and ``tokenizer_settings.json`` into ``folder``."""
        folder.mkdir(parents=True, exist_ok=True)
        partial = partial_path(folder / TOKENIZER_FILE)
        self.backend.save(str(partial))
        partial.replace(folder / TOKENIZER_FILE)
        write_json(folder / SETTINGS_FILE, asdict(self.settings))

    @property
    def pad_token_id(self) -> int | None:
        """Id of the padding token."""
        return self.settings.pad_token_id

    @property
    def cls_token_id(self) -> int | None:
        """Id of the classifier token (the no-answer position of extractive readers)."""
        return self.settings.cls_token_id

    @property
    def model_input_names(self) -> list[str]:
        """Inputs the model takes, as transformers names them."""
        return list(self.settings.model_input_names)

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        """Special tokens added around one text (``pair``: around two)."""
        return self.backend.num_special_tokens_to_add(pair)

    def __call__(
        self,
        text: list[str],
        text_pair: list[str] | None = None,
        *,
        add_special_tokens: bool = True,
        truncation: bool | str = False,
        max_length: int | None = None,
        stride: int = 0,
        padding: bool = False,
        return_overflowing_tokens: bool = False,
        return_offsets_mapping: bool = False,
        return_token_type_ids: bool | None = None,
        return_attention_mask: bool | None = None,
    ) -> Encoded:
        """Encode a batch of texts (or pairs) as transformers' ``tokenizer(...)`` does.

        Raises:
            ValueError: for padding, an unknown truncation strategy, or truncation without
                ``max_length``.
        """
        if padding:
            raise ValueError("FastTokenizer does not pad: pad the token lists afterwards")
        self._set_truncation(truncation, max_length, stride)
        inputs = list(zip(text, text_pair, strict=True)) if text_pair is not None else list(text)
        encodings = self.backend.encode_batch(inputs, add_special_tokens=add_special_tokens)
        if return_token_type_ids is None:
            return_token_type_ids = "token_type_ids" in self.settings.model_input_names
        if return_attention_mask is None:
            return_attention_mask = "attention_mask" in self.settings.model_input_names
        rows, samples = [], []
        for sample, encoding in enumerate(encodings):
            parts = [encoding, *encoding.overflowing] if return_overflowing_tokens else [encoding]
            rows += parts
            samples += [sample] * len(parts)
        data: dict[str, list] = {"input_ids": [e.ids for e in rows]}
        if return_token_type_ids:
            data["token_type_ids"] = [e.type_ids for e in rows]
        if return_attention_mask:
            data["attention_mask"] = [e.attention_mask for e in rows]
        if return_offsets_mapping:
            data["offset_mapping"] = [e.offsets for e in rows]
        if return_overflowing_tokens:
            data["overflow_to_sample_mapping"] = samples
        return Encoded(data, rows)

    def _set_truncation(self, truncation: bool | str, max_length: int | None, stride: int) -> None:
        if truncation is False or truncation == "do_not_truncate":
            self.backend.no_truncation()
            return
        if truncation not in STRATEGIES:
            raise ValueError(f"unknown truncation strategy {truncation!r}")
        if max_length is None:
            raise ValueError("truncation needs max_length")
        self.backend.enable_truncation(
            max_length,
            stride=stride,
            strategy=STRATEGIES[truncation],
            direction=self.settings.truncation_side,
        )
