"""Encoding question/passage pairs into overlapping token windows with character offsets.

A passage longer than one model input is cut into windows of at most ``max_seq_length`` tokens
that overlap by ``doc_stride`` tokens; only the passage is truncated, every window repeats the
question. Each window keeps its token-to-character offsets so a span of tokens maps back exactly
to a span of characters of the original passage.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from odqa.errors import OdqaError
from odqa.runtime.batching import pad_ids


@dataclass(frozen=True, slots=True)
class Window:
    """One model input: ``[CLS] question [SEP] passage-slice [SEP]`` and its bookkeeping.

    ``pair`` is the index of the question/passage pair the window belongs to; ``offsets[t]`` is the
    (start, end) character range of token ``t`` in the passage (meaningful where ``context`` is
    true); ``cls`` is the position whose start/end logits score "no answer".
    """

    pair: int
    input_ids: np.ndarray
    token_type_ids: np.ndarray | None
    context: np.ndarray
    offsets: np.ndarray
    cls: int

    def __len__(self) -> int:
        return len(self.input_ids)


def _truncate_questions(tokenizer, questions: list[str], max_question_tokens: int) -> list[str]:
    """Cut each question after its first ``max_question_tokens`` tokens (long queries only)."""
    enc = tokenizer(questions, add_special_tokens=False, return_offsets_mapping=True)
    cut = []
    for question, offsets in zip(questions, enc["offset_mapping"]):
        too_long = len(offsets) > max_question_tokens
        cut.append(question[: offsets[max_question_tokens - 1][1]] if too_long else question)
    return cut


def encode_question(
    tokenizer,
    question: str,
    passages: list[str],
    *,
    first_pair: int,
    max_seq_length: int,
    doc_stride: int,
    max_question_tokens: int = 64,
) -> list[Window]:
    """Encode one question against each of ``passages`` into windows.

    Args:
        tokenizer: a fast Hugging Face tokenizer (offset mappings are required).
        question: the question text; cut to ``max_question_tokens`` tokens if longer.
        passages: passage texts, read in this order.
        first_pair: pair index of ``passages[0]`` (pairs are numbered across questions).
        max_seq_length: tokens per window, special tokens included.
        doc_stride: tokens shared by consecutive windows of a passage; lowered when the question
            leaves too little room for it.
        max_question_tokens: longest question kept.

    Returns:
        The windows of every passage, passage by passage, in reading order.

    Raises:
        OdqaError: when ``max_seq_length`` leaves no room for the passage.
    """
    return encode_pairs(
        tokenizer,
        [question] * len(passages),
        passages,
        first_pair=first_pair,
        max_seq_length=max_seq_length,
        doc_stride=doc_stride,
        max_question_tokens=max_question_tokens,
    )


def encode_pairs(
    tokenizer,
    questions: list[str],
    passages: list[str],
    *,
    first_pair: int = 0,
    max_seq_length: int,
    doc_stride: int,
    max_question_tokens: int = 64,
) -> list[Window]:
    """Encode question/passage pairs (``questions[i]`` with ``passages[i]``) into windows.

    The one encoder of reader inputs, used both to read and to train (so a model trains on
    exactly what it reads). Arguments as in :func:`encode_question`; the stride is lowered to fit
    the longest question of the call.
    """
    if not passages:
        return []
    distinct = list(dict.fromkeys(questions))
    cut = dict(zip(distinct, _truncate_questions(tokenizer, distinct, max_question_tokens)))
    questions = [cut[q] for q in questions]
    lengths = tokenizer([cut[q] for q in distinct], add_special_tokens=False)["input_ids"]
    n_question = max(len(ids) for ids in lengths)
    room = max_seq_length - n_question - tokenizer.num_special_tokens_to_add(pair=True)
    if room < 2:
        raise OdqaError(
            f"--max-seq-length {max_seq_length} leaves no room for the passage after a "
            f"{n_question}-token question: use a larger value (384 is the usual one)"
        )
    enc = tokenizer(
        questions,
        passages,
        truncation="only_second",
        max_length=max_seq_length,
        stride=max(0, min(doc_stride, room - 1)),
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
    )
    cls_id = tokenizer.cls_token_id
    types = enc.get("token_type_ids")
    windows = []
    for i, sample in enumerate(enc["overflow_to_sample_mapping"]):
        ids = np.asarray(enc["input_ids"][i], dtype=np.int64)
        seq = enc.sequence_ids(i)
        context = np.fromiter((s == 1 for s in seq), dtype=bool, count=len(seq))
        cls_hits = np.flatnonzero(ids == cls_id) if cls_id is not None else np.zeros(0, np.int64)
        windows.append(
            Window(
                pair=first_pair + sample,
                input_ids=ids,
                token_type_ids=None if types is None else np.asarray(types[i], dtype=np.int64),
                context=context,
                offsets=np.asarray(enc["offset_mapping"][i], dtype=np.int64).reshape(-1, 2),
                cls=int(cls_hits[0]) if len(cls_hits) else 0,
            )
        )
    return windows


def pad_batch(windows: list[Window], pad_id: int, multiple: int = 1) -> dict[str, np.ndarray]:
    """Right-pad a batch of windows into ``input_ids``, ``attention_mask`` (and token types),
    to a width rounded up to ``multiple`` (few distinct shapes keep compiled kernels reused)."""
    ids, mask = pad_ids([w.input_ids for w in windows], pad_id, multiple)
    width = ids.shape[1]
    context = np.zeros((len(windows), width), dtype=bool)
    for row, w in enumerate(windows):
        context[row, : len(w)] = w.context
    batch = {"input_ids": ids, "attention_mask": mask, "context": context}
    if windows[0].token_type_ids is not None:
        types = np.zeros((len(windows), width), dtype=np.int64)
        for row, w in enumerate(windows):
            if w.token_type_ids is not None:
                types[row, : len(w)] = w.token_type_ids
        batch["token_type_ids"] = types
    return batch
