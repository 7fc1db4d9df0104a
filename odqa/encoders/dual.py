"""Query and passage encoders of one dense index: one shared model, or a DPR pair."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from odqa.encoders.spec import EncoderSpec, inspect_encoder
from odqa.encoders.text_encoder import TextEncoder
from odqa.types import Passage


class EncoderOptions(Protocol):
    """The encoder settings :meth:`DualEncoder.from_options` reads (DenseOptions has them); a
    protocol, so encoders depend on no retrieval module."""

    @property
    def encoder(self) -> str: ...

    @property
    def query_encoder(self) -> str | None: ...

    @property
    def passage_prefix(self) -> str: ...

    @property
    def query_prefix(self) -> str: ...

    @property
    def pooling(self) -> str | None: ...

    @property
    def normalize(self) -> bool | None: ...

    @property
    def max_length(self) -> int | None: ...

    @property
    def include_title(self) -> bool: ...

    @property
    def backend(self) -> str: ...

    @property
    def device(self) -> str: ...

    @property
    def batch_size(self) -> int: ...

    @property
    def precision(self) -> str: ...


@dataclass
class DualEncoder:
    """Encodes queries and passages into one vector space.

    Attributes:
        query: encoder of questions.
        passage: encoder of passages.
        include_title: put the passage title in front of its text (DPR: as a first segment).
    """

    query: TextEncoder
    passage: TextEncoder
    include_title: bool = True

    @classmethod
    def from_options(cls, options: EncoderOptions, threads: int | None = None) -> DualEncoder:
        """Inspect the model(s) named in ``options`` (e.g. a DenseOptions); nothing is loaded
        yet."""
        settings: dict[str, Any] = dict(
            pooling=options.pooling, normalize=options.normalize, max_length=options.max_length
        )
        passage_spec = inspect_encoder(options.encoder, prefix=options.passage_prefix, **settings)
        if options.query_encoder:
            query_spec = inspect_encoder(
                options.query_encoder, prefix=options.query_prefix, **settings
            )
        else:
            query_spec = None
        return cls._build(
            query_spec,
            passage_spec,
            options.query_prefix,
            options.include_title,
            backend=options.backend,
            device=options.device,
            batch_size=options.batch_size,
            threads=threads,
            precision=options.precision,
        )

    @classmethod
    def from_manifest(
        cls,
        section: dict[str, Any],
        query_export: tuple[Path, str, str] | None = None,
        **runtime: Any,
    ) -> DualEncoder:
        """Rebuild the encoders recorded by :meth:`describe`.

        Args:
            section: the ``encoder`` dict of a dense manifest.
            query_export: (folder, model file, backend) of the query encoder's ONNX export:
                queries (and, for one shared model, passages) then run on ONNX Runtime and
                ``tokenizers`` without torch.
            runtime: ``backend``, ``device``, ``batch_size``, ``threads`` overrides.
        """
        query_spec = EncoderSpec.from_dict(section["query"])
        runtime = {key: value for key, value in runtime.items() if value is not None}
        runtime.setdefault("backend", section.get("backend", "torch"))
        if runtime["backend"] == "openvino":
            from odqa.runtime import openvino

            if not openvino.available():  # built with OpenVINO, searched without it
                runtime["backend"] = "torch"
        shared = section.get("shared", True)
        passage_spec = EncoderSpec.from_dict(section["passage"])
        include_title = section.get("include_title", True)
        if query_export is None:
            return cls._build(
                None if shared else query_spec,
                passage_spec,
                query_spec.prefix,
                include_title,
                **runtime,
            )
        folder, model_file, backend = query_export
        settings = {k: v for k, v in runtime.items() if k in ("batch_size", "threads")}
        role = {} if shared else {"role": "question encoder", "flag": "--query-encoder"}
        query = TextEncoder.from_export(query_spec, folder, model_file, backend, **settings, **role)
        if shared:
            passage = query.with_prefix(passage_spec.prefix)
        else:
            passage = TextEncoder(passage_spec, **runtime)
        return cls(query=query, passage=passage, include_title=include_title)

    @classmethod
    def _build(
        cls,
        query_spec: EncoderSpec | None,
        passage_spec: EncoderSpec,
        query_prefix: str,
        include_title: bool,
        **runtime: Any,
    ) -> DualEncoder:
        """``query_spec`` None: queries use the passage model with ``query_prefix``."""
        runtime = {key: value for key, value in runtime.items() if value is not None}
        passage = TextEncoder(passage_spec, **runtime)
        if query_spec is None:
            query = passage.with_prefix(query_prefix)
        else:
            role: dict[str, Any] = {"role": "question encoder", "flag": "--query-encoder"}
            query = TextEncoder(query_spec, **role, **runtime)
        return cls(query=query, passage=passage, include_title=include_title)

    def describe(self) -> dict[str, Any]:
        """JSON-ready record of both encoders (goes into the index manifest)."""
        return {
            "query": self.query.spec.to_dict(),
            "passage": self.passage.spec.to_dict(),
            "shared": self.query._runtime is self.passage._runtime,
            "include_title": self.include_title,
            "backend": self.passage.backend,
        }

    def encode_queries(self, queries: list[str]) -> np.ndarray:
        """Query vectors (len(queries), dim) float32."""
        return self.query.encode(list(queries))

    def encode_passages(
        self, passages: list[Passage], on_batch: Callable[[int], None] | None = None
    ) -> np.ndarray:
        """Passage vectors (len(passages), dim) float32, in order."""
        texts = [p.text for p in passages]
        if not self.include_title:
            return self.passage.encode(texts, on_batch=on_batch)
        if self.passage.spec.kind == "dpr":
            return self.passage.encode([p.title for p in passages], texts, on_batch=on_batch)
        joined = [f"{p.title}. {p.text}" if p.title else p.text for p in passages]
        return self.passage.encode(joined, on_batch=on_batch)

    def encode_passage_windows(
        self, passages: list[Passage], on_batch: Callable[[int], None] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Vectors of every window of ``passages`` (:mod:`odqa.encoders.windows`) and, per
        vector, the row of its passage in ``passages`` (int64, non-decreasing).

        A passage that fits the encoder has one vector, equal to :meth:`encode_passages`'s; a
        longer one a vector per window. ``on_batch`` is advanced in passages, not windows.
        """
        pair = self.include_title and self.passage.spec.kind == "dpr"
        titles = [p.title if self.include_title else "" for p in passages]
        heads = titles if pair else [f"{t}. " if t else "" for t in titles]
        bodies = [p.text for p in passages]
        spans = self.passage.passage_windows(heads, bodies, pair)
        owners = np.repeat(np.arange(len(passages), dtype=np.int64), [len(s) for s in spans])
        if len(owners) == len(passages):  # every passage fits: its one vector, as without windows
            return self.encode_passages(passages, on_batch), owners
        windows = [body[a:b] for body, body_spans in zip(bodies, spans, strict=True)
                   for a, b in body_spans]
        window_heads = [heads[int(row)] for row in owners]
        report = _scaled(on_batch, len(passages), len(windows))
        if pair:
            return self.passage.encode(window_heads, windows, on_batch=report), owners
        texts = [head + window for head, window in zip(window_heads, windows, strict=True)]
        return self.passage.encode(texts, on_batch=report), owners


def _scaled(
    on_batch: Callable[[int], None] | None, passages: int, windows: int
) -> Callable[[int], None] | None:
    """``on_batch`` advanced by passages while windows are encoded (whole numbers, summing to
    ``passages`` once all ``windows`` are done)."""
    if on_batch is None or passages == windows:
        return on_batch
    done = [0, 0]  # windows encoded, passages reported

    def report(count: int) -> None:
        done[0] += count
        reached = done[0] * passages // windows
        if reached > done[1]:
            on_batch(reached - done[1])
            done[1] = reached

    return report
