"""Query-side fine-tuning of a dense retriever: the :class:`~odqa.training.loop.TrainTask` of
``odqa train dense --passage-encoder ENC``.

The passage encoder stays fixed. Every distinct training paragraph is encoded once with it, as
``odqa index`` would encode it, and only a question encoder is trained: each question is scored
against *all* training paragraphs (a full softmax rather than in-batch negatives, so every hard
negative of the corpus counts), and the loss is the cross-entropy of its gold paragraph at
``1 / temperature`` scale. Paragraphs among the question's ``MASK_DEPTH`` best-scored ones that
hold one of its answers but are not its gold paragraph are left out of the softmax: they are
right answers for open-domain retrieval, not negatives.

The result is the question half of an asymmetric pair (as in DPR):
``odqa index --encoder ENC --query-encoder OUT``. Passage vectors never change, so an existing
index of ``ENC`` needs no re-encoding, and training costs only short question passes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from odqa.errors import OdqaError
from odqa.training.data import QAExample
from odqa.training.dense import QUERY_MAX_LENGTH, DenseTrainParams, load_base

MASK_DEPTH = 32
"""Answer-holding non-gold paragraphs are looked for among this many best-scored ones."""

VECTORS = "vectors.npy"
KEY = "key.json"


def paragraph_vectors(
    paragraphs: list[tuple[str, str]], passage_encoder: str, scratch: Path,
    max_length: int | None = None, *, device: str = "auto", precision: str = "auto",
    progress: bool = True,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Vectors of the (title, text) ``paragraphs`` under the fixed passage encoder, encoded
    exactly as ``odqa index --encoder passage_encoder`` encodes passages, and how they were
    made (the cache key plus ``precision``, the one they were computed in). Cached in
    ``scratch`` and reused (also by ``--resume``) only for the same paragraphs, encoder files
    and settings."""
    from odqa.encoders.dual import DualEncoder
    from odqa.encoders.spec import inspect_encoder
    from odqa.progress import make_progress
    from odqa.retrieval.dense_options import DenseOptions
    from odqa.runtime.onnx import fingerprint
    from odqa.types import Passage

    digest = hashlib.sha256()
    for title, text in paragraphs:
        digest.update(f"{title}\x1f{text}\x1e".encode())
    spec = inspect_encoder(passage_encoder).with_location()
    key = {"passage_encoder": passage_encoder, "files": fingerprint([spec.path]),
           "max_length": max_length, "device": device, "requested_precision": precision,
           "paragraphs": len(paragraphs), "sha256": digest.hexdigest()}
    cached = scratch / VECTORS
    known = scratch / KEY
    if cached.is_file() and known.is_file():
        stored = json.loads(known.read_text("utf-8"))
        if {k: v for k, v in stored.items() if k != "precision"} == key:
            return np.load(cached, allow_pickle=False), stored
    options = DenseOptions(encoder=passage_encoder, max_length=max_length, device=device,
                           precision=precision)
    encoder = DualEncoder.from_options(options)
    passages = [Passage(id=str(i), doc_id=str(i), title=title, text=text)
                for i, (title, text) in enumerate(paragraphs)]
    with make_progress(progress) as bar:
        task = bar.add_task("encoding paragraphs", total=len(passages), unit="paragraphs")
        vectors = encoder.encode_passages(passages, on_batch=lambda n: bar.advance(task, n))
    scratch.mkdir(parents=True, exist_ok=True)
    known.unlink(missing_ok=True)  # never a stale key beside new vectors
    tmp = scratch / (VECTORS + ".tmp.npy")
    np.save(tmp, vectors, allow_pickle=False)
    tmp.replace(cached)
    info = {**key, "precision": encoder.passage.runtime_precision}
    known.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return vectors, info


def check_width(base: str, passage_encoder: str) -> None:
    """Refuse, before any encoding, a ``--base`` whose hidden width differs from the passage
    encoder's (its vectors could not be compared)."""
    from transformers import AutoConfig

    from odqa.encoders.spec import inspect_encoder

    widths = {}
    for flag, name in (("--base", base), ("--passage-encoder", passage_encoder)):
        config = AutoConfig.from_pretrained(inspect_encoder(name).with_location().path)
        widths[flag] = getattr(config, "hidden_size", None)
    if None not in widths.values() and widths["--base"] != widths["--passage-encoder"]:
        raise OdqaError(
            f"--base {base} gives {widths['--base']}-dimensional vectors but the passage "
            f"encoder gives {widths['--passage-encoder']}: start from a model of the same width "
            "(usually the passage encoder itself)"
        )


class QuerySideTrainTask:
    """Questions scored against every (fixed) training-paragraph vector."""

    def __init__(
        self, examples: list[QAExample], params: DenseTrainParams, spec: Any, tokenizer: Any,
        *, paragraphs: list[tuple[str, str]], positive: np.ndarray, vectors: np.ndarray,
    ) -> None:
        from odqa.evaluate import AnswerMatcher

        if not examples:
            raise OdqaError("no training examples: check the training files")
        if vectors.shape[0] != len(paragraphs):
            raise OdqaError("paragraph vectors do not match the training paragraphs")
        self.params = params
        self.spec = spec
        self.tokenizer = tokenizer
        self.questions = [e.question for e in examples]
        self.answers = [e.answers or (e.answer_text,) for e in examples]
        self.positive = positive
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self._matcher = AnswerMatcher(lambda i: paragraphs[i][1])
        self._device_vectors: dict[str, Any] = {}
        prepared = [q.lower() for q in self.questions] if spec.lowercase else self.questions
        lengths = tokenizer(prepared, add_special_tokens=True, truncation=True,
                            max_length=QUERY_MAX_LENGTH)["input_ids"]
        self._lengths = np.array([len(ids) for ids in lengths], dtype=np.int64)

    def item_lengths(self) -> np.ndarray:
        return self._lengths

    def build_model(self) -> Any:
        return load_base(self.spec)  # its width was checked by check_width before encoding

    def _paragraphs_on(self, device: str) -> Any:
        import torch

        if device not in self._device_vectors:
            self._device_vectors[device] = torch.from_numpy(self.vectors).to(device)
        return self._device_vectors[device]

    def answer_mask(
        self, scores: np.ndarray, items: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(rows, columns) of answer-holding, non-gold paragraphs among each row's
        ``MASK_DEPTH`` best ``scores``."""
        depth = min(MASK_DEPTH, scores.shape[1])
        best = np.argpartition(-scores, depth - 1, axis=1)[:, :depth]
        rows: list[int] = []
        cols: list[int] = []
        for row, item in enumerate(items.tolist()):
            candidates = best[row][best[row] != self.positive[item]]
            hits = candidates[self._matcher.matches(self.answers[item], candidates)]
            rows.extend([row] * len(hits))
            cols.extend(hits.tolist())
        return np.array(rows, dtype=np.int64), np.array(cols, dtype=np.int64)

    def loss(self, model: Any, items: np.ndarray, device: str, autocast: bool) -> Any:
        import torch
        import torch.nn.functional as F

        from odqa.training.dense import encode_texts

        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=autocast):
            q = encode_texts(model, self.tokenizer, self.spec,
                             [self.questions[i] for i in items], QUERY_MAX_LENGTH, device)
        scores = (q.float() @ self._paragraphs_on(device).T) / self.params.temperature
        rows, cols = self.answer_mask(scores.detach().cpu().numpy(), items)
        if rows.size:
            scores = scores.index_put((torch.from_numpy(rows).to(device),
                                       torch.from_numpy(cols).to(device)),
                                      torch.tensor(float("-inf"), device=device))
        target = torch.from_numpy(self.positive[items]).to(device)
        return F.cross_entropy(scores, target)
