"""Settings of a dense index build: encoder, batching, backend and FAISS index kind.

No heavy imports here: the CLI builds a :class:`DenseOptions` before anything is loaded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from odqa.errors import OdqaError
from odqa.runtime.hardware import PRECISIONS
from odqa.runtime.hub import DEFAULT_DENSE_ENCODER

POOLINGS = ("cls", "mean", "max")
BACKENDS = ("torch", "onnx", "int8", "openvino")
FAISS_KINDS = ("flat", "hnsw", "ivfpq")
LONG_PASSAGES = ("windows", "truncate")
"""Passages past the encoder's limit: overlapping windows (:mod:`odqa.encoders.windows`) or cut."""


@dataclass(frozen=True)
class DenseOptions:
    """How passages are encoded and indexed. ``None`` means "as the model says" / "automatic".

    Attributes:
        encoder: passage encoder (hub id or folder); also the query encoder unless
            ``query_encoder`` is set (DPR pairs).
        query_encoder: separate question encoder (DPR pairs), e.g.
            ``facebook/dpr-question_encoder-single-nq-base``.
        pooling: ``cls``, ``mean`` or ``max``; default from the sentence-transformers config,
            ``cls`` for DPR, ``mean`` otherwise.
        normalize: L2-normalise vectors; default from the model (Normalize module), else False.
        query_prefix / passage_prefix: text put before every query / passage (e5: ``"query: "``).
        max_length: tokens per text; default from the model config, capped at 512.
        batch_size: texts per forward pass.
        device: ``auto``, ``cpu`` or ``cuda`` (fp16 on CUDA).
        backend: ``torch`` (default), ``onnx`` (ONNX Runtime, CPU) or ``int8`` (ONNX Runtime
            with int8 dynamic quantisation, CPU); both need ``pip install onnx onnxruntime``;
            ``openvino`` (OpenVINO on the same ONNX export, CPU, bf16 under ``precision auto``
            on CPUs with AMX-BF16 or AVX512-BF16; ``pip install openvino``).
        precision: torch and openvino backends: ``auto`` (fp16 on CUDA, bf16 on CPUs with
            AMX-BF16 or AVX512-BF16, else fp32), ``fp32``, ``bf16`` or ``fp16`` (CUDA only).
        include_title: encode ``title`` with the text (DPR: ``title [SEP] text``).
        long_passages: passages longer than ``max_length`` tokens: ``windows`` (default:
            encoded as overlapping windows, each with the title; a passage scores its best
            window, see :mod:`odqa.encoders.windows`) or ``truncate`` (only the beginning).
        faiss: ``flat`` (exact), ``hnsw`` or ``ivfpq``.
        hnsw_m / ef_construction / ef_search: HNSW graph degree, build and query beam widths.
        nlist / pq_m / pq_nbits / nprobe: IVF-PQ lists (``None``: about 4 sqrt(n)), sub-quantisers
            (``None``: dimension / 4), bits per code, and lists visited per query.
        refine: IVF-PQ re-ranks ``refine * k`` candidates with exact inner products read from
            the memory-mapped full vectors (kept on disk beside the index); 0 turns it off.
        chunk_size: passages per on-disk chunk (unit of ``--resume``).
    """

    encoder: str = DEFAULT_DENSE_ENCODER
    query_encoder: str | None = None
    pooling: str | None = None
    normalize: bool | None = None
    query_prefix: str = ""
    passage_prefix: str = ""
    max_length: int | None = None
    batch_size: int = 64
    device: str = "auto"
    backend: str = "torch"
    precision: str = "auto"
    include_title: bool = True
    long_passages: str = "windows"
    faiss: str = "flat"
    hnsw_m: int = 32
    ef_construction: int = 200
    ef_search: int = 128
    nlist: int | None = None
    pq_m: int | None = None
    pq_nbits: int = 8
    nprobe: int = 16
    refine: int = 4
    chunk_size: int = 8192

    def __post_init__(self) -> None:
        choices = {
            "pooling": POOLINGS, "backend": BACKENDS, "faiss": FAISS_KINDS, "precision": PRECISIONS,
            "long_passages": LONG_PASSAGES,
        }  # fmt: skip
        for name, allowed in choices.items():
            value = getattr(self, name)
            if value is not None and value not in allowed:
                raise OdqaError(f"unknown {name} '{value}': choose one of {', '.join(allowed)}")
        positive = ("batch_size", "hnsw_m", "ef_construction", "ef_search", "nprobe", "chunk_size")
        for name in positive:
            if getattr(self, name) < 1:
                raise OdqaError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.refine < 0:
            raise OdqaError(f"refine must be 0 (off) or a positive factor, got {self.refine}")
        if self.max_length is not None and self.max_length < 2:
            raise OdqaError(f"max_length must be at least 2, got {self.max_length}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DenseOptions:
        """Inverse of :meth:`to_dict`; unknown keys are ignored (written by a newer version)."""
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})

    def encoding_dict(self) -> dict[str, Any]:
        """The fields that change passage vectors (a resumed build must match these)."""
        keys = ("encoder", "query_encoder", "pooling", "normalize", "passage_prefix", "max_length")
        more = ("backend", "precision", "include_title", "long_passages")
        return {key: getattr(self, key) for key in (*keys, *more)}
