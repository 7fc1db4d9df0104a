"""The scores of one system over a dataset."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class SystemResult:
    """Scores of one retriever or reader over the dataset (metrics are fractions)."""

    name: str
    metrics: dict[str, float | None]
    latency: dict[str, float] | None = None
    failures: list[tuple[str, str]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    curve: Any = None  # top-k accuracy for k = 1..depth (retrieval on answer datasets)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "name": self.name,
            "metrics": self.metrics,
            "latency": self.latency,
            "failed": len(self.failures),
            "failures": [{"id": q, "error": e} for q, e in self.failures],
            **self.counts,
        }
