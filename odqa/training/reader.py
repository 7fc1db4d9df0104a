"""Extractive-reader fine-tuning: the :class:`~odqa.training.loop.TrainTask` of
``odqa train reader``.

Training windows come from :func:`odqa.readers.windows.encode_pairs`, the same function that
encodes what the reader reads, so a model trains on exactly its inference inputs. A window's
label is the token span of the answer, or the no-answer position (``[CLS]``) when the answer is
not wholly inside the window (the Hugging Face SQuAD recipe). The loss is the mean of the start
and end cross-entropies over the window's passage tokens and its ``[CLS]``.

With negative passages (``negatives > 0``), a training item is a *group*: every window of the
question's gold paragraph and of its negative paragraphs, and the loss is the shared-normalisation
objective (Clark & Gardner, 2018): the start (and end) softmax runs over the passage tokens of all
the group's windows at once, with the answer's tokens as the target. A model trained so scores
spans on one scale across passages, which is what ranking the answers of 20 retrieved passages
needs; a model trained per window only learns which span of a window is best.
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
    negatives: int = 0
    """BM25 negative paragraphs read beside each gold one (0: gold paragraphs only)."""
    bm25_depth: int = 20
    init: str | None = None
    """Reader whose weights training starts from (hub id, folder or bundled name); its
    architecture and tokenizer must be ``base``'s, which stays the reference of ``--save delta``."""

    def __post_init__(self) -> None:
        if self.max_seq_length < 32:
            raise OdqaError(f"--max-seq-length must be at least 32, got {self.max_seq_length}")
        if self.negatives < 0:
            raise OdqaError(f"--negatives must be 0 or more, got {self.negatives}")
        if self.negatives and self.bm25_depth < self.negatives:
            raise OdqaError(f"--bm25-depth ({self.bm25_depth}) must be at least --negatives "
                            f"({self.negatives})")


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
    """Windows of every training example with their answer labels; with ``negatives`` (per
    example, the texts of its negative paragraphs), groups of windows for shared normalisation."""

    def __init__(
        self, examples: list[QAExample], params: ReaderTrainParams, tokenizer: Any,
        *, negatives: list[list[str]] | None = None, progress: bool = True,
    ) -> None:
        if not examples:
            raise OdqaError("no training examples: check the training files")
        self.params = params
        self.tokenizer = tokenizer
        questions, passages, owners, gold = [], [], [], []
        for i, e in enumerate(examples):
            for k, text in enumerate([e.context, *(negatives[i] if negatives else [])]):
                questions.append(e.question)
                passages.append(text)
                owners.append(i)
                gold.append(k == 0)
        self.windows: list[Window] = []
        labels: list[tuple[int, int]] = []
        with make_progress(progress) as bar:
            task = bar.add_task("encoding", total=len(passages), unit="passages")
            for begin in range(0, len(passages), ENCODE_CHUNK):
                windows = encode_pairs(
                    tokenizer,
                    questions[begin : begin + ENCODE_CHUNK],
                    passages[begin : begin + ENCODE_CHUNK],
                    first_pair=begin,
                    max_seq_length=params.max_seq_length,
                    doc_stride=params.doc_stride,
                    max_question_tokens=params.max_question_tokens,
                )
                for w in windows:
                    e = examples[owners[w.pair]]
                    labels.append(answer_tokens(w, e.answer_start, e.answer_end)
                                  if gold[w.pair] else (w.cls, w.cls))
                self.windows += windows
                bar.advance(task, len(passages[begin : begin + ENCODE_CHUNK]))
        self.labels = np.asarray(labels, dtype=np.int64)
        self.n_examples = len(examples)
        pad = tokenizer.pad_token_id
        self.pad_id = 0 if pad is None else pad
        self.groups: list[np.ndarray] | None = None
        if negatives is not None:
            self._group([owners[w.pair] for w in self.windows])

    def _group(self, window_owner: list[int]) -> None:
        """Items become questions: all their windows, the first answer-holding one the target.
        A question none of whose windows holds its whole answer is left out."""
        cls = np.array([w.cls for w in self.windows])
        answerable = self.labels[:, 0] != cls
        members: dict[int, list[int]] = {}
        for row, owner in enumerate(window_owner):
            members.setdefault(owner, []).append(row)
        self.groups, targets = [], []
        for rows in members.values():
            hits = [r for r in rows if answerable[r]]
            if hits:
                self.groups.append(np.asarray(rows, dtype=np.int64))
                targets.append(hits[0])
        self.group_targets = np.asarray(targets, dtype=np.int64)
        self.dropped_groups = len(members) - len(self.groups)

    def answerable_share(self) -> float:
        """Share of windows whose label is a span (not the no-answer position)."""
        cls = np.array([w.cls for w in self.windows])
        return float(np.mean(self.labels[:, 0] != cls))

    def item_lengths(self) -> np.ndarray:
        """Tokens per window, or for groups the longest window times the group's size."""
        lengths = np.fromiter((len(w) for w in self.windows), dtype=np.int64)
        if self.groups is None:
            return lengths
        return np.array([lengths[g].max() * len(g) for g in self.groups], dtype=np.int64)

    def build_model(self) -> Any:
        from transformers import AutoModelForQuestionAnswering

        from odqa.delta import is_delta_folder, load_delta
        from odqa.runtime.hub import load_pretrained, quiet_transformers, resolve_model

        source, flag = (self.params.init, "--init") if self.params.init else (
            self.params.base, "--base")
        with quiet_transformers():
            if is_delta_folder(resolve_model(source)):
                model = load_delta(AutoModelForQuestionAnswering, resolve_model(source))
            else:
                model = load_pretrained(
                    AutoModelForQuestionAnswering.from_pretrained, source, "base", flag
                )
        if self.params.freeze_embeddings:
            embeddings = model.base_model.get_input_embeddings()
            for module in (getattr(model.base_model, "embeddings", None), embeddings):
                if module is not None:
                    for p in module.parameters():
                        p.requires_grad_(False)
        return model

    def loss(self, model: Any, items: np.ndarray, device: str, autocast: bool) -> Any:
        if self.groups is not None:
            return self._shared_norm_loss(model, items, device, autocast)
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

    def _shared_norm_loss(self, model: Any, items: np.ndarray, device: str,
                          autocast: bool) -> Any:
        """Start/end cross-entropy over the passage tokens of every window of each group."""
        import torch

        assert self.groups is not None
        rows = np.concatenate([self.groups[i] for i in items])
        owner = np.repeat(np.arange(len(items)), [len(self.groups[i]) for i in items])
        chunk = [self.windows[r] for r in rows]
        batch = pad_batch(chunk, self.pad_id, PAD_MULTIPLE)
        names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in batch]
        inputs = {n: torch.from_numpy(batch[n]).to(device) for n in names}
        allowed = torch.from_numpy(batch["context"]).to(device)
        position = {int(r): k for k, r in enumerate(rows)}
        target_rows = np.array([position[int(self.group_targets[i])] for i in items])
        target = torch.from_numpy(self.labels[self.group_targets[items]]).to(device)
        target_index = torch.from_numpy(target_rows).to(device)
        same_group = torch.from_numpy(owner[None, :] == np.arange(len(items))[:, None]).to(device)
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=autocast):
            out = model(**inputs)
        total = 0
        for side, logits in enumerate((out.start_logits, out.end_logits)):
            logits = logits.float().masked_fill(~allowed, -1e4)
            window_lse = torch.logsumexp(logits, dim=1)
            group_lse = torch.logsumexp(
                window_lse[None, :].masked_fill(~same_group, float("-inf")), dim=1
            )
            total = total + (group_lse - logits[target_index, target[:, side]]).mean()
        return total / 2
