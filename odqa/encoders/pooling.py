"""Pooling token vectors into one vector per text (sentence-transformers' definitions)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def pool(hidden: torch.Tensor, mask: torch.Tensor, mode: str) -> torch.Tensor:
    """Pool ``hidden`` (batch, tokens, dim) over the tokens where ``mask`` is 1.

    Args:
        hidden: last hidden states.
        mask: attention mask (batch, tokens).
        mode: ``cls`` (first token), ``mean`` (masked mean) or ``max`` (masked max).
    """
    if mode == "cls":
        return hidden[:, 0]
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    if mode == "mean":
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
    if mode == "max":
        return hidden.masked_fill(weights == 0, -1e9).max(1).values
    raise ValueError(f"unknown pooling '{mode}'")


def l2_normalize(vectors: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit length (zero rows stay zero)."""
    return vectors / vectors.norm(dim=-1, keepdim=True).clamp(min=1e-12)
