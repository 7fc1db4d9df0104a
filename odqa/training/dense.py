"""Dense-encoder fine-tuning (DPR-style contrastive learning): the
:class:`~odqa.training.loop.TrainTask` of ``odqa train dense``.

Each training item is a question with its gold paragraph. A batch scores every question against
every paragraph in it (the gold ones and one BM25 hard negative per question: the best-ranked
training paragraph that does not contain the answer), and the loss is the cross-entropy of the
gold paragraph among them, at ``1 / temperature`` scale. A paragraph that is gold for two
questions of one batch is not counted as a negative for either.

Texts are encoded exactly as odqa encodes them at index and query time: the encoder's own
pooling, normalisation and maximum length (from :func:`odqa.encoders.spec.inspect_encoder`) and
the passage as ``title. text``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from odqa.errors import OdqaError
from odqa.training.data import QAExample

QUERY_MAX_LENGTH = 64


@dataclass(frozen=True)
class DenseTrainParams:
    """What the encoder is trained from and how (persisted in ``odqa_training.json``)."""

    base: str = "sentence-transformers/all-MiniLM-L6-v2"
    temperature: float = 0.05
    hard_negatives: bool = True
    bm25_depth: int = 20
    max_passage_length: int | None = None
    passage_encoder: str | None = None
    """Query-side training: this passage encoder stays fixed and only a question encoder is
    trained (see :mod:`odqa.training.dense_query`)."""

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise OdqaError(f"--temperature must be positive, got {self.temperature}")


def passage_input(title: str, text: str) -> str:
    """A passage as the dense encoders read it: ``title. text`` (just the text without title)."""
    return f"{title}. {text}" if title else text


def load_base(spec: Any) -> Any:
    """The Hugging Face model a dense task trains, loaded from ``spec`` (the ``--base``)."""
    from transformers import AutoModel

    from odqa.runtime.hub import load_pretrained, quiet_transformers

    with quiet_transformers():
        return load_pretrained(AutoModel.from_pretrained, spec.path, "base", "--base")


def encode_texts(model: Any, tokenizer: Any, spec: Any, texts: list[str], max_length: int,
                 device: str) -> Any:
    """Pooled (and, as ``spec`` says, normalised) vectors of ``texts``, with gradients: the
    encoding odqa's dense encoders apply at index and query time."""
    import torch

    prepared = [t.lower() for t in texts] if spec.lowercase else texts
    batch = tokenizer(prepared, padding=True, truncation=True, max_length=max_length,
                      return_tensors="pt", pad_to_multiple_of=16)
    batch = {k: v.to(device) for k, v in batch.items()}
    hidden = model(**batch).last_hidden_state.float()
    mask = batch["attention_mask"].unsqueeze(-1).float()
    if spec.pooling == "cls":
        pooled = hidden[:, 0]
    elif spec.pooling == "max":
        pooled = hidden.masked_fill(mask == 0, -1e4).max(dim=1).values
    else:
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, dim=-1) if spec.normalize else pooled


class DenseTrainTask:
    """Question / gold paragraph pairs (with hard negatives) for contrastive training."""

    def __init__(
        self, examples: list[QAExample], params: DenseTrainParams, spec: Any, tokenizer: Any,
        *, negatives: np.ndarray | None, paragraphs: list[tuple[str, str]], positive: np.ndarray,
    ) -> None:
        if not examples:
            raise OdqaError("no training examples: check the training files")
        self.params = params
        self.spec = spec
        self.tokenizer = tokenizer
        self.questions = [e.question for e in examples]
        self.passages = [passage_input(t, x) for t, x in paragraphs]
        self.positive = positive
        self.negatives = negatives
        self.max_length = params.max_passage_length or spec.max_length
        lengths = tokenizer(self.passages, add_special_tokens=True, truncation=True,
                            max_length=self.max_length)["input_ids"]
        self._passage_lengths = np.array([len(ids) for ids in lengths], dtype=np.int64)

    def item_lengths(self) -> np.ndarray:
        return self._passage_lengths[self.positive]

    def build_model(self) -> Any:
        return load_base(self.spec)

    def loss(self, model: Any, items: np.ndarray, device: str, autocast: bool) -> Any:
        import torch
        import torch.nn.functional as F

        ids = self.positive[items].tolist()
        if self.negatives is not None:
            ids += [int(n) for n in self.negatives[items] if n >= 0]
        columns = list(dict.fromkeys(ids))
        where = {p: c for c, p in enumerate(columns)}
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=autocast):
            q = encode_texts(model, self.tokenizer, self.spec,
                             [self.questions[i] for i in items], QUERY_MAX_LENGTH, device)
            p = encode_texts(model, self.tokenizer, self.spec,
                             [self.passages[i] for i in columns], self.max_length, device)
        scores = (q @ p.T) / self.params.temperature
        target = torch.tensor([where[i] for i in self.positive[items].tolist()], device=device)
        return F.cross_entropy(scores.float(), target)


def save_sentence_transformers(model: Any, tokenizer: Any, spec: Any, out: Path) -> None:
    """Write a sentence-transformers folder (Transformer at the root, Pooling, Normalize) that
    encodes exactly as ``spec`` says; odqa and sentence-transformers both load it."""
    import json

    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    modules = [{"idx": 0, "name": "0", "path": "",
                "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling",
                "type": "sentence_transformers.models.Pooling"}]
    if spec.normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize",
                        "type": "sentence_transformers.models.Normalize"})
        (out / "2_Normalize").mkdir()
    pooling = {"word_embedding_dimension": model.config.hidden_size,
               "pooling_mode_cls_token": spec.pooling == "cls",
               "pooling_mode_mean_tokens": spec.pooling == "mean",
               "pooling_mode_max_tokens": spec.pooling == "max",
               "pooling_mode_mean_sqrt_len_tokens": False}
    (out / "1_Pooling").mkdir()
    files = {"modules.json": modules, "1_Pooling/config.json": pooling,
             "sentence_bert_config.json": {"max_seq_length": spec.max_length,
                                           "do_lower_case": spec.lowercase}}
    for name, content in files.items():
        (out / name).write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
