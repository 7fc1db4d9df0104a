"""Extractive reader: any Hugging Face question-answering model with a fast tokenizer.

Steps, each testable alone: encode pairs into windows (:mod:`odqa.readers.windows`), forward the
windows of all questions in shared length-sorted batches, decode the best spans per window
(:mod:`odqa.readers.spans`), and gather them per passage in character offsets. Ranking the spans
of a question across passages lives in :mod:`odqa.readers.ranking`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import Any

import numpy as np

from odqa.errors import MissingDependencyError, ModelNotAvailableError, OdqaError
from odqa.readers.spans import spans_to_chars, top_spans
from odqa.readers.windows import Window, encode_question, pad_batch
from odqa.runtime import hardware
from odqa.runtime.batching import length_sorted_batches
from odqa.runtime.hub import load_pretrained, quiet_transformers, resolve_device, resolve_model

DEFAULT_READER = "odqa/reader-minilm"
"""odqa's own reader (all-MiniLM-L6-v2 fine-tuned on SQuAD v1.1 train), shipped in the package."""
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
BACKENDS = ("auto", "torch", "onnx", "int8", "openvino")


@dataclass(frozen=True)
class ReaderParams:
    """Settings of the extractive reader (JSON-serialisable, restored with ``ReaderParams(**d)``).

    ``no_answer_threshold`` enables the no-answer decision of SQuAD 2.0 models: a span is kept
    only when its score beats its passage's no-answer (CLS) score by more than the threshold.
    ``None`` (the default) keeps every span, right for SQuAD 1.1 models.

    ``backend``: ``torch`` runs the Hugging Face model; ``onnx`` runs it exported to ONNX Runtime
    (fp32, CPU; exported on first use into the cache, then loaded without torch); ``int8`` runs
    the ONNX export quantised to int8 (CPU); ``openvino`` runs the ONNX export with OpenVINO (CPU,
    ``pip install openvino``; bf16 under ``precision auto`` on CPUs with AMX or AVX512-BF16);
    ``auto`` (default) is ``onnx`` on the CPU in fp32
    when onnxruntime is installed, else ``torch``. ``precision`` (torch backend): ``auto`` is
    fp16 on CUDA, bf16 autocast on CPUs with AMX or AVX512-BF16 and fp32 on other CPUs;
    ``bf16`` runs under bfloat16 autocast. Lower precisions are faster and may move near-tied
    spans.
    """

    max_seq_length: int = 384
    doc_stride: int = 128
    max_answer_length: int = 30
    n_best: int = 20
    max_question_tokens: int = 64
    batch_size: int = 32
    no_answer_threshold: float | None = None
    device: str = "auto"
    precision: str = "auto"
    backend: str = "auto"

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise OdqaError(
                f"unknown backend '{self.backend}': choose one of {', '.join(BACKENDS)}"
            )
        if self.precision not in PRECISIONS:
            raise OdqaError(
                f"unknown precision '{self.precision}': choose one of {', '.join(PRECISIONS)}"
            )
        for name in ("max_seq_length", "max_answer_length", "n_best", "batch_size"):
            if getattr(self, name) < 1:
                raise OdqaError(f"--{name.replace('_', '-')} must be at least 1")
        if self.doc_stride < 0:
            raise OdqaError(f"--doc-stride must be 0 or more, got {self.doc_stride}")

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """Field names, the reader options ``answer_open_book`` accepts."""
        return tuple(f.name for f in fields(cls))


@dataclass(frozen=True, slots=True)
class PassageSpans:
    """Candidate answers read from one passage, best first: character ``starts``/``ends`` into
    the passage text, reader ``scores`` (start + end logit), and its no-answer score."""

    starts: np.ndarray
    ends: np.ndarray
    scores: np.ndarray
    null_score: float


@lru_cache(maxsize=4)
def load_qa_model(name: str, device: str, precision: str = "fp32"):
    """Load (once per process) an extractive QA model and its fast tokenizer onto ``device``,
    in ``precision`` (``fp32``, ``fp16`` or ``bf16``; see :class:`ReaderParams`).

    Raises:
        ModelNotAvailableError: when the model cannot be loaded, is not a question-answering
            model, or has no fast tokenizer (character offsets need one).
    """
    from transformers import AutoConfig, AutoModelForQuestionAnswering, AutoTokenizer

    with quiet_transformers():
        config = load_pretrained(AutoConfig.from_pretrained, name, "reader", "--reader")
        architectures = list(getattr(config, "architectures", None) or [])
        if not any(a.endswith("ForQuestionAnswering") for a in architectures):
            found = ", ".join(architectures) or "none"
            raise ModelNotAvailableError(
                f"reader model '{name}' is not an extractive question-answering model "
                f"(architectures: {found}): give one trained for SQuAD-style QA with --reader"
            )
        from odqa.delta import delta_base, is_delta_folder, load_delta

        resolved = resolve_model(name)
        delta = is_delta_folder(resolved)
        # A delta folder reads text exactly as its base does: the base's tokenizer serves it.
        source = delta_base(resolved) if delta else name
        tokenizer = load_pretrained(AutoTokenizer.from_pretrained, source, "reader", "--reader")
        if not getattr(tokenizer, "is_fast", False):
            raise ModelNotAvailableError(
                f"reader model '{name}' has no fast tokenizer (tokenizer.json): "
                "character offsets need one"
            )
        if delta:
            model = load_delta(AutoModelForQuestionAnswering, resolved)
        else:
            model = load_pretrained(
                AutoModelForQuestionAnswering.from_pretrained, name, "reader", "--reader"
            )
    model.to(device).eval()
    if precision == "fp16":
        model.half()
    return model, tokenizer


def resolve_precision(precision: str, device: str) -> str:
    """``auto`` follows the encoders' rule (:func:`odqa.runtime.hardware.resolve_precision`:
    fp16 on CUDA, bf16 on CPUs with native bf16, else fp32); other values are kept."""
    if precision == "auto":
        return hardware.resolve_precision("auto", device)
    return precision


@dataclass(frozen=True)
class Runtime:
    """A loaded reader: its tokenizer and a forward function (numpy batch -> start/end logits)."""

    tokenizer: Any
    forward: Callable[[dict[str, np.ndarray]], tuple[Any, Any]]


@dataclass(frozen=True)
class ReaderBackend:
    """One reader runtime: the precision it runs for a requested one on a device, and how it
    loads a model ``(name, device, precision) -> Runtime``."""

    precision: Callable[[str, str], str]
    load: Callable[[str, str, str], Runtime]


def _fp32(precision: str, device: str) -> str:
    return "fp32"


def _openvino_precision(precision: str, device: str) -> str:
    from odqa.runtime.openvino import resolve_precision as openvino_precision

    return openvino_precision(precision)


def _onnx_loader(quantize: bool) -> Callable[[str, str, str], Runtime]:
    """The cached ONNX export on onnxruntime and tokenizers only (no torch); int8 weights with
    ``quantize``."""

    def load(name: str, device: str, precision: str) -> Runtime:
        from odqa.readers.onnx_backend import onnx_runtime

        return Runtime(*onnx_runtime(name, quantize=quantize, threads=_torch_threads()))

    return load


def _openvino_runtime(name: str, device: str, precision: str) -> Runtime:
    from odqa.readers.onnx_backend import openvino_runtime

    return Runtime(*openvino_runtime(name, precision=precision, threads=_torch_threads()))


def load_runtime(name: str, device: str, precision: str, backend: str) -> Runtime:
    """Load (once per process and settings) the reader ``name`` for ``backend`` on ``device``
    (see :data:`READER_BACKENDS`; ``onnx``, ``int8`` and ``openvino`` export the model on first
    use, see :mod:`odqa.readers.onnx_backend`)."""
    return READER_BACKENDS[backend].load(name, device, precision)


def _torch_threads() -> int | None:
    """The process's torch thread count when torch is already imported (runtimes follow it)."""
    import sys

    torch = sys.modules.get("torch")
    return torch.get_num_threads() if torch is not None else None


@lru_cache(maxsize=4)
def _torch_runtime(name: str, device: str, precision: str) -> Runtime:
    import torch

    model, tokenizer = load_qa_model(name, device, precision)
    names = [n for n in tokenizer.model_input_names if n != "attention_mask"]
    names.append("attention_mask")
    autocast = precision == "bf16"

    def forward(batch: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        inputs = {n: torch.from_numpy(batch[n]).to(device) for n in names}
        with (
            torch.inference_mode(),
            torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=autocast),
        ):
            out = model(**inputs)
        return tuple(x.float().cpu().numpy() for x in (out.start_logits, out.end_logits))

    return Runtime(tokenizer, forward)


READER_BACKENDS: dict[str, ReaderBackend] = {
    "torch": ReaderBackend(resolve_precision, _torch_runtime),
    "onnx": ReaderBackend(_fp32, _onnx_loader(quantize=False)),
    "int8": ReaderBackend(_fp32, _onnx_loader(quantize=True)),
    "openvino": ReaderBackend(_openvino_precision, _openvino_runtime),
}
"""Reader runtimes by ``--backend`` name (``auto`` is resolved by :func:`choose_backend`)."""


def choose_backend(params: ReaderParams, device: str) -> str:
    """The backend ``auto`` stands for: ``onnx`` on the CPU in fp32 when onnxruntime is
    installed (and the model is exported or can be), ``torch`` otherwise."""
    if params.backend != "auto":
        return params.backend
    from odqa.runtime import onnx

    cpu_fp32 = device == "cpu" and params.precision in ("auto", "fp32")
    return "onnx" if cpu_fp32 and onnx.export_available() else "torch"


class ExtractiveReader:
    """Reads question/passage pairs with an extractive QA model; loads the model lazily."""

    def __init__(self, model: str = DEFAULT_READER, params: ReaderParams | None = None) -> None:
        self.model_name = model
        self.params = params or ReaderParams()
        self._loaded: Any = None

    def warm_up(self) -> None:
        """Load the model now (it is otherwise loaded on first use).

        Raises:
            ModelNotAvailableError: when it cannot be loaded.
        """
        if self._loaded is None:
            p = self.params
            device = resolve_device(p.device)
            backend = choose_backend(p, device)
            if backend != "torch" and device != "cpu":
                raise OdqaError(f"the {backend} reader backend runs on CPU only: use --device cpu")
            precision = READER_BACKENDS[backend].precision(p.precision, device)
            try:
                self._loaded = load_runtime(self.model_name, device, precision, backend)
            except (MissingDependencyError, RuntimeError, OSError):
                if p.backend != "auto":
                    raise  # an export that fails under "auto" falls back to torch
                self._loaded = load_runtime(self.model_name, device, precision, "torch")

    def read(self, questions: list[str], passages: list[list[str]]) -> list[list[PassageSpans]]:
        """Read every passage of every question; windows of all questions share batches.

        Args:
            questions: question texts.
            passages: per question, the passage texts to read.

        Returns:
            Per question, one :class:`PassageSpans` per passage, in the given order.
        """
        if len(questions) != len(passages):
            raise ValueError("questions and passages must have the same length")
        self.warm_up()
        tokenizer = self._loaded.tokenizer
        p = self.params
        windows: list[Window] = []
        first = [0]
        for question, texts in zip(questions, passages):
            windows += encode_question(
                tokenizer,
                question,
                texts,
                first_pair=first[-1],
                max_seq_length=p.max_seq_length,
                doc_stride=p.doc_stride,
                max_question_tokens=p.max_question_tokens,
            )
            first.append(first[-1] + len(texts))
        per_pair = self._read_windows(windows, first[-1])
        return [per_pair[first[q] : first[q + 1]] for q in range(len(questions))]

    def _read_windows(self, windows: list[Window], n_pairs: int) -> list[PassageSpans]:
        """Forward all windows in length-sorted batches and gather spans per pair."""
        tokenizer = self._loaded.tokenizer
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        found: list[list[np.ndarray]] = [[] for _ in range(n_pairs)]
        nulls = np.full(n_pairs, np.inf, dtype=np.float32)
        for rows in length_sorted_batches([len(w) for w in windows], self.params.batch_size):
            chunk = [windows[i] for i in rows]
            batch = pad_batch(chunk, pad_id)
            start, end = self._loaded.forward(batch)
            spans = top_spans(
                start,
                end,
                batch["context"],
                np.array([w.cls for w in chunk], dtype=np.int64),
                max_answer_length=self.params.max_answer_length,
                n_best=self.params.n_best,
            )
            for row, w in enumerate(chunk):
                ok = np.isfinite(spans.scores[row])
                chars = spans_to_chars(w.offsets, spans.starts[row][ok], spans.ends[row][ok])
                found[w.pair].append(np.column_stack([chars, spans.scores[row][ok]]))
                nulls[w.pair] = min(nulls[w.pair], spans.null_scores[row])
        return [_gather(parts, float(null)) for parts, null in zip(found, nulls)]


def _gather(parts: list[np.ndarray], null_score: float) -> PassageSpans:
    """One passage's spans from all its windows: same character span kept once, best first."""
    rows = np.concatenate(parts) if parts else np.zeros((0, 3))
    order = np.lexsort((rows[:, 1], rows[:, 0], -rows[:, 2]))
    rows = rows[order]
    _, first = np.unique(rows[:, :2], axis=0, return_index=True)
    rows = rows[np.sort(first)]
    return PassageSpans(
        starts=rows[:, 0].astype(np.int64),
        ends=rows[:, 1].astype(np.int64),
        scores=rows[:, 2].astype(np.float32),
        null_score=null_score if np.isfinite(null_score) else float("-inf"),
    )
