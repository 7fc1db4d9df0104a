"""Phrase-encoder training: the :class:`~odqa.training.loop.TrainTask` of ``odqa train phrase``.

Each item is a question with the ``[CLS] title [SEP] text [SEP]`` window of its paragraph that
holds the answer, encoded exactly as the phrase index encodes passages. For a batch:

- the question's ``q_start`` scores the start vector of every text token of every window of
  the batch (its own window's tokens and, as in-batch negatives, the others'); the loss is the
  cross-entropy of the gold start token, the same for ends with ``q_end`` (another question's
  copy of the same paragraph is not a negative);
- the filter head learns, by binary cross-entropy over the text tokens, which tokens start or
  end an answer (``lambda_filter``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from odqa.errors import OdqaError
from odqa.training.data import QAExample

PAD_MULTIPLE = 16


@dataclass(frozen=True)
class PhraseTrainParams:
    """What the phrase model is trained from (persisted in ``odqa_training.json``)."""

    base: str = "sentence-transformers/all-MiniLM-L6-v2"
    max_length: int = 384
    doc_stride: int = 128
    max_query_length: int = 64
    lambda_filter: float = 1.0
    freeze_embeddings: bool = True

    def __post_init__(self) -> None:
        if self.lambda_filter < 0:
            raise OdqaError(f"--lambda-filter must be 0 or more, got {self.lambda_filter}")


@dataclass(frozen=True, slots=True)
class PhraseWindow:
    """A training passage window: token ids, text-token mask and the answer's tokens."""

    input_ids: np.ndarray
    token_type_ids: np.ndarray | None
    text: np.ndarray
    start: int
    end: int


def encode_examples(tokenizer: Any, examples: list[QAExample], params: PhraseTrainParams):
    """Per example, the first window holding its whole answer (None when none does)."""
    from odqa.phrase.index import passage_windows

    enc = passage_windows(tokenizer, [e.title for e in examples], [e.context for e in examples],
                          params.max_length, params.doc_stride)
    chosen: list[PhraseWindow | None] = [None] * len(examples)
    types = enc.get("token_type_ids")
    for w, sample in enumerate(enc["overflow_to_sample_mapping"]):
        if chosen[sample] is not None:
            continue
        e = examples[sample]
        text = np.array([s == 1 for s in enc.sequence_ids(w)], dtype=bool)
        offsets = np.asarray(enc["offset_mapping"][w], dtype=np.int64).reshape(-1, 2)
        tokens = np.flatnonzero(text)
        starts = tokens[(offsets[tokens, 0] <= e.answer_start) & (offsets[tokens, 1] >
                                                                   e.answer_start)]
        ends = tokens[(offsets[tokens, 0] < e.answer_end) & (offsets[tokens, 1] >= e.answer_end)]
        if len(starts) and len(ends) and ends[0] >= starts[0]:
            chosen[sample] = PhraseWindow(
                np.asarray(enc["input_ids"][w], dtype=np.int64),
                None if types is None else np.asarray(types[w], dtype=np.int64),
                text, int(starts[0]), int(ends[0]),
            )
    return chosen


class PhraseTrainTask:
    """Questions with their answer windows."""

    def __init__(self, examples: list[QAExample], params: PhraseTrainParams, tokenizer: Any,
                 *, progress: bool = True) -> None:
        from odqa.progress import make_progress

        self.params = params
        self.tokenizer = tokenizer
        self.windows: list[PhraseWindow] = []
        self.questions: list[str] = []
        paragraph: list[int] = []
        ids: dict[str, int] = {}
        step = 1000
        with make_progress(progress) as bar:
            task = bar.add_task("encoding", total=len(examples), unit="examples")
            for begin in range(0, len(examples), step):
                chunk = examples[begin : begin + step]
                for e, window in zip(chunk, encode_examples(tokenizer, chunk, params)):
                    if window is not None:
                        self.windows.append(window)
                        self.questions.append(e.question)
                        paragraph.append(ids.setdefault(e.context, len(ids)))
                bar.advance(task, len(chunk))
        if not self.windows:
            raise OdqaError("no training example has its answer inside a window")
        self.paragraph = np.asarray(paragraph, dtype=np.int64)
        self.dropped = len(examples) - len(self.windows)
        self.pad_id = tokenizer.pad_token_id or 0

    def item_lengths(self) -> np.ndarray:
        return np.fromiter((len(w.input_ids) for w in self.windows), dtype=np.int64)

    def build_model(self) -> Any:
        from transformers import AutoModel

        from odqa.phrase.model import PhraseModelConfig, build_phrase_model
        from odqa.runtime.hub import load_pretrained, quiet_transformers

        with quiet_transformers():
            encoder = load_pretrained(
                lambda p: AutoModel.from_pretrained(p, add_pooling_layer=False),
                self.params.base, "base", "--base",
            )
        if self.params.freeze_embeddings:
            for p in encoder.embeddings.parameters():
                p.requires_grad_(False)
        config = PhraseModelConfig(max_query_length=self.params.max_query_length)
        return build_phrase_model(encoder, config)

    def _passage_batch(self, items: np.ndarray, device: str) -> tuple[dict, Any]:
        import torch

        from odqa.runtime.batching import pad_ids

        chunk = [self.windows[i] for i in items]
        ids, mask = pad_ids([w.input_ids for w in chunk], self.pad_id, PAD_MULTIPLE)
        text = np.zeros(ids.shape, dtype=bool)
        for r, w in enumerate(chunk):
            text[r, : len(w.input_ids)] = w.text
        batch = {"input_ids": ids, "attention_mask": mask}
        if chunk[0].token_type_ids is not None:
            batch["token_type_ids"] = pad_ids([w.token_type_ids for w in chunk], 0,
                                              PAD_MULTIPLE)[0]
        return ({k: torch.from_numpy(v).to(device) for k, v in batch.items()},
                torch.from_numpy(text).to(device))

    def loss(self, model: Any, items: np.ndarray, device: str, autocast: bool) -> Any:
        import torch
        import torch.nn.functional as F

        passages, text = self._passage_batch(items, device)
        queries = self.tokenizer([self.questions[i] for i in items], padding=True,
                                 truncation=True, max_length=self.params.max_query_length,
                                 return_tensors="pt")
        queries = {k: v.to(device) for k, v in queries.items()}
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=autocast):
            start, end, filter_start, filter_end = model.encode_phrases(**passages)
            q_start, q_end = model.encode_queries(**queries)
        n, width = text.shape
        same = torch.from_numpy(self.paragraph[items]).to(device)
        other_copy = (same[:, None] == same[None, :]) & ~torch.eye(n, dtype=torch.bool,
                                                                    device=device)
        allowed = text[None, :, :] & ~other_copy[:, :, None]          # [query, passage, token]
        rows = torch.arange(n, device=device)
        gold_start = torch.tensor([self.windows[i].start for i in items], device=device)
        gold_end = torch.tensor([self.windows[i].end for i in items], device=device)
        target_start = rows * width + gold_start
        target_end = rows * width + gold_end
        loss = torch.zeros((), device=device)
        for q, vectors, target in ((q_start, start, target_start), (q_end, end, target_end)):
            logits = torch.einsum("qd,pld->qpl", q.float(), vectors.float())
            logits = logits.masked_fill(~allowed, -1e4).reshape(n, n * width)
            loss = loss + F.cross_entropy(logits, target) / 2
        if self.params.lambda_filter > 0:
            labels_start = torch.zeros_like(filter_start, dtype=torch.float32)
            labels_end = torch.zeros_like(filter_end, dtype=torch.float32)
            labels_start[rows, gold_start] = 1.0
            labels_end[rows, gold_end] = 1.0
            bce = (F.binary_cross_entropy_with_logits(filter_start.float()[text],
                                                      labels_start[text])
                   + F.binary_cross_entropy_with_logits(filter_end.float()[text],
                                                        labels_end[text])) / 2
            loss = loss + self.params.lambda_filter * bce
        return loss
