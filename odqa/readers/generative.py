"""Seq2seq answer generation: length-sorted batched beam search, distinct ranked answers.

Any ``AutoModelForSeq2SeqLM`` checkpoint (T5, BART, ...) given by hub id or local folder.
Every beam is returned (``num_return_sequences = num_beams``) with its sequence log-probability,
then beams whose answers normalise to the same string (:func:`odqa.text.normalize_answer`) are
merged, keeping the most probable surface form.

Scores and confidence:
    ``score`` is the sequence log-probability ``log p(answer | input)``: the sum of the
    log-probabilities of the generated tokens including end-of-sequence (beam search runs with
    ``length_penalty=0`` so no length normalisation distorts it); answers are ranked by it.
    ``confidence`` is the probability mass of the beams merged into the answer: the sum of
    ``exp(score)`` over every returned beam that normalises to it ("Eiffel Tower" and "the
    Eiffel Tower" both count). The beams are distinct token sequences, so the confidences of a
    question's answers sum to at most 1; they are comparable across questions, and a merged
    answer can show more confidence than one ranked above it (as with the extractive reader).
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from odqa.errors import ModelNotAvailableError, OdqaError
from odqa.readers.merge import merge_by_key
from odqa.runtime.batching import length_sorted_batches, pad_ids
from odqa.runtime.hub import load_pretrained, quiet_transformers, resolve_device
from odqa.text import normalize_answer
from odqa.types import Answer

if TYPE_CHECKING:
    import torch

MAX_INPUT_TOKENS = 512


@dataclass(frozen=True)
class GenerationParams:
    """Decoding settings of a :class:`Seq2SeqReader`, restored with ``GenerationParams(**d)``."""

    num_beams: int = 8
    max_new_tokens: int = 32
    top: int = 5
    batch_size: int = 16
    max_input_tokens: int = MAX_INPUT_TOKENS

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not isinstance(value, int) or value < 1:
                raise OdqaError(f"{name} must be a positive integer, got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Generated:
    """One beam: the decoded text and its sequence log-probability."""

    text: str
    score: float


@lru_cache(maxsize=2)
def load_seq2seq_model(name: str, device: str, role: str = "reader", flag: str = "--reader"):
    """Load (once per process) a seq2seq model and its tokenizer onto ``device``.

    Raises:
        ModelNotAvailableError: when the model cannot be loaded or is not an encoder-decoder.
    """
    from transformers import AutoConfig, AutoModelForSeq2SeqLM, AutoTokenizer

    with quiet_transformers():
        config = load_pretrained(AutoConfig.from_pretrained, name, role, flag)
        if not getattr(config, "is_encoder_decoder", False):
            found = ", ".join(getattr(config, "architectures", None) or []) or "none"
            raise ModelNotAvailableError(
                f"{role} model '{name}' is not a seq2seq (encoder-decoder) model "
                f"(architectures: {found}): give a T5- or BART-style checkpoint with {flag}"
            )
        tokenizer = load_pretrained(AutoTokenizer.from_pretrained, name, role, flag)
        model = load_pretrained(AutoModelForSeq2SeqLM.from_pretrained, name, role, flag)
    return model.to(device).eval(), tokenizer


def distinct_answers(beams: list[Generated], top: int) -> list[Answer]:
    """The ``top`` best distinct non-empty normalised answers among ``beams``, ranked by score.

    Each answer keeps its most probable surface form and score; its confidence is the
    probability mass of every beam merged into it (the sum of their ``exp(score)``). Ties are
    broken by text so the order is deterministic.
    """
    ranked = sorted(beams, key=lambda b: (-b.score, b.text))
    candidates = ((b, normalize_answer(b.text), math.exp(b.score)) for b in ranked)
    return [
        Answer(rank, beam.text, beam.score, confidence)
        for rank, (beam, confidence) in enumerate(merge_by_key(candidates, top), start=1)
    ]


class Seq2SeqReader:
    """Generates ranked answers with a seq2seq model; the model loads on first use.

    Args:
        model: hub id or local folder of an ``AutoModelForSeq2SeqLM`` checkpoint.
        params: decoding settings.
        device: ``auto``, ``cpu`` or ``cuda``.
        role, flag: how error messages name the model and the option that supplies it.
    """

    def __init__(
        self,
        model: str,
        params: GenerationParams | None = None,
        *,
        device: str = "auto",
        role: str = "reader",
        flag: str = "--reader",
    ) -> None:
        self.model_name = model
        self.params = params or GenerationParams()
        self.device = device
        self.role = role
        self.flag = flag
        self._model: Any = None
        self._tokenizer: Any = None

    def warm_up(self) -> None:
        """Load the tokenizer and model (once); raises ModelNotAvailableError if unavailable."""
        if self._model is None:
            device = resolve_device(self.device)
            self._model, self._tokenizer = load_seq2seq_model(
                self.model_name, device, self.role, self.flag
            )

    def generation_config(self) -> Any:
        """The model's own generation config (special tokens, forced tokens, ...) with the beam
        settings, every beam returned, and ``length_penalty=0``."""
        self.warm_up()
        config = copy.deepcopy(self._model.generation_config)
        p = self.params
        config.update(
            num_beams=p.num_beams,
            num_return_sequences=p.num_beams,
            max_new_tokens=p.max_new_tokens,
            max_length=None,
            # Beam scores are then plain sums of token log-probabilities; greedy search has no
            # length penalty and warns about one that differs from the default.
            length_penalty=0.0 if p.num_beams > 1 else 1.0,
            early_stopping=False,
            do_sample=False,
            output_scores=True,
            return_dict_in_generate=True,
        )
        return config

    def encode(self, inputs: list[str]) -> list[list[int]]:
        """Token ids of each input (with end-of-sequence), truncated to ``max_input_tokens``."""
        self.warm_up()
        encoded = self._tokenizer(
            inputs, truncation=True, max_length=self.params.max_input_tokens, verbose=False
        )
        return encoded["input_ids"]

    def generate(self, inputs: list[str]) -> list[list[Generated]]:
        """All ``num_beams`` beams of each input, best first, in batches sorted by length."""
        ids = self.encode(inputs)
        config = self.generation_config()
        results: list[list[Generated]] = [[] for _ in inputs]
        for batch in length_sorted_batches([len(x) for x in ids], self.params.batch_size):
            beams = self._generate_batch([ids[i] for i in batch], config)
            for i, per_input in zip(batch.tolist(), beams, strict=True):
                results[i] = per_input
        return results

    def answer(self, inputs: list[str]) -> list[list[Answer]]:
        """The ``top`` distinct answers per input, ranked by sequence log-probability."""
        return [distinct_answers(beams, self.params.top) for beams in self.generate(inputs)]

    def _generate_batch(self, ids: list[list[int]], config: Any) -> list[list[Generated]]:
        import torch

        input_ids, attention_mask = pad_ids(ids, self._tokenizer.pad_token_id or 0)
        device = self._model.device
        with torch.inference_mode():
            out = self._model.generate(
                input_ids=torch.from_numpy(input_ids).to(device),
                attention_mask=torch.from_numpy(attention_mask).to(device),
                generation_config=config,
            )
        scores = sequence_log_probs(self._model, out, config).tolist()
        texts = self._tokenizer.batch_decode(out.sequences, skip_special_tokens=True)
        n = config.num_return_sequences
        beams = [Generated(t.strip(), float(s)) for t, s in zip(texts, scores, strict=True)]
        return [beams[i : i + n] for i in range(0, len(beams), n)]


def sequence_log_probs(model: Any, out: Any, config: Any) -> torch.Tensor:
    """Sum of generated-token log-probabilities per returned sequence, end-of-sequence included.

    Beam search reports it directly as ``sequences_scores`` (``length_penalty=0``); greedy
    search (one beam) does not, so it is summed from the per-step scores up to the first
    end-of-sequence token.
    """
    import torch

    if config.num_beams > 1:
        return out.sequences_scores.float().cpu()
    steps = model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True)
    generated = out.sequences[:, -steps.shape[1] :]
    eos = config.eos_token_id
    eos_ids = [e for e in (eos if isinstance(eos, list) else [eos]) if e is not None]
    is_eos = torch.isin(generated, torch.tensor(eos_ids, device=generated.device)).long()
    after_eos = (is_eos.cumsum(dim=1) - is_eos) > 0
    return steps.float().masked_fill(after_eos, 0.0).sum(dim=1).cpu()
