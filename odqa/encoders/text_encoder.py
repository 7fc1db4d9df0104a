"""Encoding texts into vectors with one model: tokenise once, length-sorted batches, lazy load."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from odqa.encoders.spec import EncoderSpec

if TYPE_CHECKING:
    from odqa.encoders.backends import Forward


class _Runtime:
    """The loaded tokenizer and forward function, shared by encoders of the same model.

    ``load`` (when set) fills both instead of the default transformers loading.
    """

    def __init__(self, load: Callable[[_Runtime], None] | None = None) -> None:
        self.tokenizer: Any = None
        self.forward: Forward | None = None
        self.load = load


class TextEncoder:
    """Turns texts into float32 vectors as described by an :class:`EncoderSpec`.

    The model loads on first use (or :meth:`warm_up`), so building one is cheap.

    Args:
        spec: model, pooling, normalisation, prefix and max length.
        backend: ``torch``, ``int8``, ``onnx`` or ``openvino`` (see :mod:`odqa.encoders.backends`).
        device: ``auto``, ``cpu`` or ``cuda``; ``int8`` and ``onnx`` run on the CPU.
        batch_size: texts per forward pass.
        threads: CPU threads for ONNX Runtime (None: its default).
        role / flag: how error messages name this model ("dense encoder", "--encoder").
        precision: torch backend: ``auto`` (fp16 on CUDA, bf16 on CPUs with AMX-BF16 or
            AVX512-BF16, else fp32), ``fp32``, ``bf16`` or ``fp16`` (CUDA).
    """

    def __init__(
        self,
        spec: EncoderSpec,
        backend: str = "torch",
        device: str = "auto",
        batch_size: int = 64,
        threads: int | None = None,
        role: str = "dense encoder",
        flag: str = "--encoder",
        precision: str = "auto",
    ) -> None:
        self.spec = spec
        self.backend = backend
        self.device = device
        self.batch_size = max(1, int(batch_size))
        self.threads = threads
        self.role = role
        self.flag = flag
        self.precision = precision
        self._runtime = _Runtime()

    @classmethod
    def from_export(
        cls, spec: EncoderSpec, folder: Path, model_file: str, backend: str, **settings: Any
    ) -> TextEncoder:
        """An encoder running an ONNX export (``folder/model_file`` and its ``tokenizer.json``)
        with ONNX Runtime and the ``tokenizers`` library only: no torch, no transformers.

        ``settings``: ``batch_size``, ``threads``, ``role``, ``flag`` as for the constructor.
        """
        encoder = cls(spec, backend=backend, device="cpu", **settings)

        def load(runtime: _Runtime) -> None:
            from odqa.encoders.backends import session_forward
            from odqa.runtime.fast_tokenizer import FastTokenizer

            runtime.tokenizer = FastTokenizer.load(folder)
            runtime.forward = session_forward(Path(folder) / model_file, encoder.threads)

        encoder._runtime = _Runtime(load)
        return encoder

    def with_prefix(self, prefix: str) -> TextEncoder:
        """The same loaded model with another prefix (queries vs passages of one model)."""
        twin = TextEncoder(
            replace(self.spec, prefix=prefix),
            self.backend,
            self.device,
            self.batch_size,
            self.threads,
            self.role,
            self.flag,
            self.precision,
        )
        twin._runtime = self._runtime
        return twin

    def warm_up(self) -> None:
        """Load the tokenizer and model now."""
        if self._runtime.forward is not None:
            return
        if self._runtime.load is not None:
            self._runtime.load(self._runtime)
            return
        from transformers import AutoTokenizer

        from odqa.encoders.backends import make_forward
        from odqa.runtime.hub import load_pretrained, resolve_device

        self.spec = self.spec.with_location()
        device = "cpu" if self.backend != "torch" and self.device == "auto" else self.device
        device = resolve_device(device)
        self._runtime.tokenizer = load_pretrained(
            AutoTokenizer.from_pretrained, self.spec.path, self.role, self.flag
        )
        self._runtime.forward = make_forward(
            self.spec,
            self.backend,
            device,
            self.role,
            self.flag,
            precision=self.precision,
            threads=self.threads,
        )

    @property
    def torch_free(self) -> bool:
        """True when this encoder runs an ONNX export with ``tokenizers`` (see
        :meth:`from_export`): encoding never imports torch or transformers."""
        return self._runtime.load is not None

    @property
    def runtime_precision(self) -> str:
        """The precision the model runs in (``fp32``, ``bf16``, ``fp16`` or ``int8``); loads it."""
        self.warm_up()
        if self.backend == "int8":
            return "int8"
        return getattr(self._runtime.forward, "precision", "fp32")

    def tokenize(self, texts: list[str], pairs: list[str] | None = None) -> dict[str, list]:
        """Token ids (and type ids) per text, truncated to ``spec.max_length``, unpadded."""
        self.warm_up()
        first = [self._prepare(self.spec.prefix + t) for t in texts]
        second = [self._prepare(p) for p in pairs] if pairs is not None else None
        return self._runtime.tokenizer(
            first,
            second,
            truncation="longest_first",
            max_length=self.spec.max_length,
            padding=False,
            return_attention_mask=False,
            return_token_type_ids=True,
        )

    def passage_windows(
        self, heads: list[str], bodies: list[str], pair: bool
    ) -> list[list[tuple[int, int]]]:
        """Character spans of each body's windows (see :func:`odqa.encoders.windows.window_spans`)
        when encoded after ``heads`` (the title part: one text with the body, or the first
        segment of a ``pair``) within ``spec.max_length`` tokens."""
        from odqa.encoders.windows import window_spans

        self.warm_up()
        tokenizer = self._runtime.tokenizer
        # Truncating at a length no text reaches keeps transformers from warning about
        # sequences longer than the model's limit: these token lists are only measured.
        unlimited = {"add_special_tokens": False, "truncation": True, "max_length": 10**9}
        head_ids = tokenizer([self.spec.prefix + h for h in heads], **unlimited)["input_ids"]
        offsets = tokenizer(bodies, return_offsets_mapping=True, **unlimited)["offset_mapping"]
        room = self.spec.max_length - tokenizer.num_special_tokens_to_add(pair=pair)
        rooms = [room - len(head) for head in head_ids]
        windows = [window_spans(o, b, r) for o, b, r in zip(offsets, bodies, rooms, strict=True)]
        # A window cut out of its text can take a token more than it had there (a byte-level
        # BPE word without its leading space, a word piece at its start): measure the split
        # passages' windows again and split any that overflow with that much less room.
        split = [i for i, spans in enumerate(windows) if len(spans) > 1]
        cut = [bodies[i][a:b] for i in split for a, b in windows[i][1:]]
        if not cut:
            return windows
        lengths = iter(len(ids) for ids in tokenizer(cut, **unlimited)["input_ids"])
        for i in split:
            over = max(next(lengths) for _ in windows[i][1:]) - rooms[i]
            if over > 0:
                windows[i] = window_spans(offsets[i], bodies[i], rooms[i] - over)
        return windows

    def _prepare(self, text: str) -> str:
        text = text.strip()
        return text.lower() if self.spec.lowercase else text

    def encode(
        self,
        texts: list[str],
        pairs: list[str] | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Vectors (len(texts), dim) float32 in input order.

        Args:
            texts: texts to encode (the prefix is added here).
            pairs: optional second segments (DPR passages: texts are titles, pairs are bodies).
            on_batch: called with the number of texts after each batch (progress bars).
        """
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        tokens = self.tokenize(texts, pairs)
        ids = tokens["input_ids"]
        types = tokens.get("token_type_ids") or [[0] * len(row) for row in ids]
        lengths = np.fromiter((len(row) for row in ids), dtype=np.int64, count=len(ids))
        order = np.argsort(-lengths, kind="stable")
        output: np.ndarray | None = None
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            batch = self._pad([ids[i] for i in rows], [types[i] for i in rows])
            vectors = self._runtime.forward(batch)  # type: ignore[misc]
            if output is None:
                output = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
            output[rows] = vectors
            if on_batch is not None:
                on_batch(len(rows))
        assert output is not None  # texts is not empty
        return output

    def _pad(self, ids: list[list[int]], types: list[list[int]]) -> dict[str, np.ndarray]:
        width = max(len(row) for row in ids)
        pad_id = self._runtime.tokenizer.pad_token_id or 0
        batch = {
            "input_ids": np.full((len(ids), width), pad_id, dtype=np.int64),
            "attention_mask": np.zeros((len(ids), width), dtype=np.int64),
            "token_type_ids": np.zeros((len(ids), width), dtype=np.int64),
        }
        for row, (token_ids, type_ids) in enumerate(zip(ids, types, strict=True)):
            batch["input_ids"][row, : len(token_ids)] = token_ids
            batch["attention_mask"][row, : len(token_ids)] = 1
            batch["token_type_ids"][row, : len(type_ids)] = type_ids
        return batch
