"""Extractive-reader fine-tuning: the :class:`~odqa.training.loop.TrainTask` of
``odqa train reader``.

Training windows come from :func:`odqa.readers.windows.encode_pairs`, the same function that
encodes what the reader reads, so a model trains on exactly its inference inputs. A window's
label is the token span of the answer, or the no-answer position (``[CLS]``) when the answer is
not wholly inside the window (the Hugging Face SQuAD recipe). The loss is the mean of the start
and end cross-entropies over the window's passage tokens and its ``[CLS]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from odqa.errors import OdqaError
from odqa.progress import make_progress
from odqa.readers.windows import Window, encode_pairs, pad_batch
from odqa.training.data import QAExample

ENCODE_CHUNK = 1000
PAD_MULTIPLE = 16


@dataclass(frozen=True)
class ReaderTrainParams:
    """What the reader is trained from and on (persisted in ``odqa_training.json``)."""

    base: str = "sentence-transformers/all-MiniLM-L6-v2"
    max_seq_length: int = 384
    doc_stride: int = 128
    max_question_tokens: int = 64
    freeze_embeddings: bool = True

    def __post_init__(self) -> None:
        if self.max_seq_length < 32:
            raise OdqaError(f"--max-seq-length must be at least 32, got {self.max_seq_length}")


def answer_tokens(window: Window, start_char: int, end_char: int) -> tuple[int, int]:
    """Token (start, end) of a character span in ``window``, or (cls, cls) when the span is not
    wholly inside the window's passage tokens."""
    tokens = np.flatnonzero(window.context)
    if not len(tokens):
        return window.cls, window.cls
    offsets = window.offsets[tokens]
    if offsets[0, 0] > start_char or offsets[-1, 1] < end_char:
        return window.cls, window.cls
    first = int(np.searchsorted(offsets[:, 0], start_char, side="right")) - 1
    last = int(np.searchsorted(offsets[:, 1], end_char, side="left"))
    first, last = max(first, 0), min(last, len(tokens) - 1)
    if last < first:
        return window.cls, window.cls
    return int(tokens[first]), int(tokens[last])


class ReaderTrainTask:
    """Windows of every training example with their answer labels."""

    def __init__(
        self, examples: list[QAExample], params: ReaderTrainParams, tokenizer: Any,
        *, progress: bool = True,
    ) -> None:
        if not examples:
            raise OdqaError("no training examples: check the training files")
        self.params = params
        self.tokenizer = tokenizer
        self.windows: list[Window] = []
        labels: list[tuple[int, int]] = []
        with make_progress(progress) as bar:
            task = bar.add_task("encoding", total=len(examples), unit="examples")
            for begin in range(0, len(examples), ENCODE_CHUNK):
                chunk = examples[begin : begin + ENCODE_CHUNK]
                windows = encode_pairs(
                    tokenizer,
                    [e.question for e in chunk],
                    [e.context for e in chunk],
                    first_pair=begin,
                    max_seq_length=params.max_seq_length,
                    doc_stride=params.doc_stride,
                    max_question_tokens=params.max_question_tokens,
                )
                for w in windows:
                    e = examples[w.pair]
                    labels.append(answer_tokens(w, e.answer_start, e.answer_end))
                self.windows += windows
                bar.advance(task, len(chunk))
        self.labels = np.asarray(labels, dtype=np.int64)
        self.n_examples = len(examples)
        pad = tokenizer.pad_token_id
        self.pad_id = 0 if pad is None else pad

    def answerable_share(self) -> float:
        """Share of windows whose label is a span (not the no-answer position)."""
        cls = np.array([w.cls for w in self.windows])
        return float(np.mean(self.labels[:, 0] != cls))

    def item_lengths(self) -> np.ndarray:
        return np.fromiter((len(w) for w in self.windows), dtype=np.int64)

    def build_model(self) -> Any:
        from transformers import AutoModelForQuestionAnswering

        from odqa.models import load_pretrained, quiet_transformers

        with quiet_transformers():
            model = load_pretrained(
                AutoModelForQuestionAnswering.from_pretrained, self.params.base, "base", "--base"
            )
        if self.params.freeze_embeddings:
            embeddings = model.base_model.get_input_embeddings()
            for module in (getattr(model.base_model, "embeddings", None), embeddings):
                if module is not None:
                    for p in module.parameters():
                        p.requires_grad_(False)
        return model

    def loss(self, model: Any, items: np.ndarray, device: str, autocast: bool) -> Any:
        import torch
        import torch.nn.functional as F

        chunk = [self.windows[i] for i in items]
        batch = pad_batch(chunk, self.pad_id, PAD_MULTIPLE)
        names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in batch]
        inputs = {n: torch.from_numpy(batch[n]).to(device) for n in names}
        allowed = torch.from_numpy(batch["context"]).to(device)
        rows = torch.arange(len(chunk), device=device)
        allowed[rows, torch.tensor([w.cls for w in chunk], device=device)] = True
        labels = torch.from_numpy(self.labels[items]).to(device)
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=autocast):
            out = model(**inputs)
        start = out.start_logits.float().masked_fill(~allowed, -1e4)
        end = out.end_logits.float().masked_fill(~allowed, -1e4)
        return (F.cross_entropy(start, labels[:, 0]) + F.cross_entropy(end, labels[:, 1])) / 2
