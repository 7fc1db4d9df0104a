"""BM25 variants as vectorised formulas: one idf and one term-frequency weight per variant.

Notation: ``N`` passages, ``df`` passages containing the term, ``tf`` occurrences of the term in
the passage, ``dl`` passage length in terms, ``avgdl`` the mean length. A passage's score is the
sum over query terms (repeated query terms count again) of ``idf(term) * weight(tf, dl)``.

=========  ======================================  =================================================
variant    idf                                     weight(tf, dl), with L = 1 - b + b * dl / avgdl
=========  ======================================  =================================================
lucene     log(1 + (N - df + 0.5) / (df + 0.5))    tf / (tf + k1 * L)
okapi      log((N - df + 0.5) / (df + 0.5)),       tf * (k1 + 1) / (tf + k1 * L)
           negative idf replaced by
           epsilon * mean idf (rank-bm25)
bm25l      log((N + 1) / (df + 0.5))               tf * (k1 + 1) * (c + delta) / (k1 + c + delta),
                                                   c = tf / L (rank-bm25 0.2.2 multiplies by tf)
bm25plus   log((N + 1) / df)                       delta + tf * (k1 + 1) / (k1 * L + tf)
robertson  log((N - df + 0.5) / (df + 0.5))        tf * (k1 + 1) / (tf + k1 * L)
=========  ======================================  =================================================

okapi, bm25l and bm25plus reproduce rank-bm25's BM25Okapi, BM25L and BM25Plus exactly.
bm25plus gives passages *without* the term a non-zero weight (``delta``); that part is stored
per term and added back so full scores equal the reference.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from odqa.errors import OdqaError

VARIANTS = ("lucene", "okapi", "bm25l", "bm25plus", "robertson")
DEFAULT_DELTA = {"bm25l": 0.5, "bm25plus": 1.0}


@dataclass(frozen=True)
class BM25Params:
    """BM25 variant and parameters; recorded in the manifest, restored with ``BM25Params(**d)``."""

    variant: str = "lucene"
    k1: float = 0.9
    b: float = 0.4
    delta: float | None = None
    epsilon: float = 0.25

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise OdqaError(f"unknown BM25 variant '{self.variant}': choose {', '.join(VARIANTS)}")
        if self.k1 < 0 or not 0 <= self.b <= 1:
            raise OdqaError(f"BM25 needs k1 >= 0 and 0 <= b <= 1, got k1={self.k1}, b={self.b}")
        if self.delta is None and self.variant in DEFAULT_DELTA:
            object.__setattr__(self, "delta", DEFAULT_DELTA[self.variant])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready parameters."""
        return asdict(self)


def idf(params: BM25Params, df: np.ndarray, n_docs: int) -> np.ndarray:
    """Inverse document frequency per term for ``params.variant`` (float64)."""
    df = df.astype(np.float64)
    n = float(n_docs)
    if params.variant == "lucene":
        return np.log1p((n - df + 0.5) / (df + 0.5))
    if params.variant == "bm25l":
        return np.log(n + 1) - np.log(df + 0.5)
    if params.variant == "bm25plus":
        return np.log((n + 1) / df)
    raw = np.log(n - df + 0.5) - np.log(df + 0.5)
    if params.variant == "okapi" and raw.size:
        floor = params.epsilon * raw.mean()
        raw = np.where(raw < 0, floor, raw)
    return raw


def length_norm(params: BM25Params, dl: np.ndarray, avgdl: float) -> np.ndarray:
    """``1 - b + b * dl / avgdl`` (1 where the corpus is empty)."""
    if avgdl <= 0:
        return np.ones_like(dl, dtype=np.float64)
    return 1.0 - params.b + params.b * dl.astype(np.float64) / avgdl


def weight(params: BM25Params, tf: np.ndarray, norm: np.ndarray) -> np.ndarray:
    """Term-frequency weight per (term, passage) for ``params.variant``."""
    tf = tf.astype(np.float64)
    k1 = params.k1
    if params.variant == "lucene":
        return tf / (tf + k1 * norm)
    if params.variant == "bm25l":
        c = tf / norm
        return tf * (k1 + 1) * (c + params.delta) / (k1 + c + params.delta)
    if params.variant == "bm25plus":
        return params.delta + tf * (k1 + 1) / (k1 * norm + tf)
    return tf * (k1 + 1) / (tf + k1 * norm)


def absent_weight(params: BM25Params) -> float:
    """Weight of a term in a passage that lacks it (non-zero only for bm25plus)."""
    if params.variant == "bm25plus" and params.delta is not None:
        return float(params.delta)
    return 0.0
