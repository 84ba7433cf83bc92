"""Plotting helpers shared by the sections, so every figure in the book looks alike."""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

__all__ = ["use_book_style", "attention_heatmap", "loglog_slope", "BOOK_COLORS"]

# One palette for the whole book (colour-blind friendly, from the Okabe-Ito set).
BOOK_COLORS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000"]


def use_book_style() -> None:
    """Apply the book's matplotlib style: readable sizes, light grid, book colours."""
    plt.rcParams.update(
        {
            "figure.figsize": (6.4, 3.6),
            "figure.dpi": 100,
            "savefig.dpi": 150,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.prop_cycle": plt.cycler(color=BOOK_COLORS),
            "font.size": 10,
            "legend.frameon": False,
            "image.cmap": "viridis",
        }
    )


def _to_numpy(weights: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(weights, torch.Tensor):
        weights = weights.detach().cpu().float().numpy()
    array = np.asarray(weights, dtype=float)
    if array.ndim != 2:
        raise ValueError(
            f"attention_heatmap expects one (T_q, T_k) matrix of weights, got shape "
            f"{array.shape}; select a batch element and a head first, e.g. weights[0, 0]."
        )
    return array


def attention_heatmap(
    weights: torch.Tensor | np.ndarray,
    query_labels: Sequence[str] | None = None,
    key_labels: Sequence[str] | None = None,
    ax: Axes | None = None,
    title: str | None = None,
    annotate: bool = False,
) -> Axes:
    """Draw a ``(T_q, T_k)`` matrix of attention weights: queries down, keys across.

    The colour scale is fixed to [0, 1] so heat maps are comparable across figures.
    """
    array = _to_numpy(weights)
    n_queries, n_keys = array.shape
    for labels, size, axis in ((query_labels, n_queries, "query"), (key_labels, n_keys, "key")):
        if labels is not None and len(labels) != size:
            raise ValueError(f"{len(labels)} {axis} labels for {size} {axis} positions.")
    if ax is None:
        _, ax = plt.subplots(figsize=(0.45 * n_keys + 2.0, 0.45 * n_queries + 1.2))
    image = ax.imshow(array, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
    ax.grid(False)
    ax.set_xlabel("key position")
    ax.set_ylabel("query position")
    ax.set_xticks(range(n_keys), key_labels if key_labels is not None else range(n_keys),
                  rotation=90 if key_labels is not None else 0)
    ax.set_yticks(range(n_queries), query_labels if query_labels is not None else range(n_queries))
    if annotate:
        for i in range(n_queries):
            for j in range(n_keys):
                ax.text(j, i, f"{array[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if array[i, j] < 0.6 else "black")
    if title:
        ax.set_title(title)
    figure: Figure = ax.figure
    figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="weight")
    return ax


def loglog_slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Slope of the least-squares line through ``(log x, log y)``: the exponent p in y ~ x^p."""
    log_x, log_y = np.log(np.asarray(x, float)), np.log(np.asarray(y, float))
    if log_x.shape != log_y.shape or log_x.size < 2:
        raise ValueError("loglog_slope needs two sequences of the same length, at least 2.")
    return float(np.polyfit(log_x, log_y, 1)[0])
