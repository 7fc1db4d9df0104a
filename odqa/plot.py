"""Top-k retrieval accuracy curves as a PNG (matplotlib, imported only when plotting)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def top_k_figure(
    curves: Mapping[str, Sequence[float] | np.ndarray],
    *,
    marks: Sequence[int] = (),
    title: str | None = None,
) -> Figure:
    """Draw one top-k accuracy line per retriever, k on a log axis, accuracy in percent.

    Args:
        curves: retriever name -> accuracy at k = 1, 2, ..., len(curve) (fractions).
        marks: cut-offs to mark with a dot on every line (e.g. the reported k values).
        title: figure title.

    Returns:
        The matplotlib figure (one ``Line2D`` per retriever on its single axes).
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 4.4), dpi=120, layout="constrained")
    axes = figure.add_subplot()
    for name, curve in curves.items():
        values = 100.0 * np.asarray(curve, dtype=np.float64)
        ks = np.arange(1, values.size + 1)
        marked = [k - 1 for k in marks if 1 <= k <= values.size]
        axes.plot(ks, values, label=name, linewidth=1.8, marker="o", markevery=marked or None)
    axes.set_xscale("log")
    longest = max((len(c) for c in curves.values()), default=0)
    ticks = sorted({k for k in marks if 1 <= k <= longest})
    if ticks:
        axes.set_xticks(ticks, [str(k) for k in ticks])
        axes.set_xticks([], minor=True)
    axes.set_xlabel("k (number of retrieved passages)")
    axes.set_ylabel("top-k accuracy (%)")
    # Start the axis below the weakest top-1 so that close curves stay apart.
    lowest = min((100.0 * float(c[0]) for c in curves.values() if len(c)), default=0.0)
    axes.set_ylim(max(0.0, 10.0 * math.floor(lowest / 10.0) - 10.0), 100.5)
    axes.grid(True, which="both", alpha=0.3)
    if title:
        axes.set_title(title)
    if curves:
        axes.legend(loc="lower right")
    return figure


def save_top_k_plot(
    path: str | Path,
    curves: Mapping[str, Sequence[float] | np.ndarray],
    *,
    marks: Sequence[int] = (),
    title: str | None = None,
) -> Figure:
    """Render :func:`top_k_figure` to a PNG file at ``path`` and return the figure."""
    figure = top_k_figure(curves, marks=marks, title=title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return figure
