"""Plotting helpers shared by the sections, so every figure in the book looks alike."""

from __future__ import annotations

from functools import partial
from typing import Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

__all__ = [
    "use_book_style",
    "attention_heatmap",
    "loglog_slope",
    "describe_figure",
    "BOOK_COLORS",
]

# One palette for the whole book (colour-blind friendly, from the Okabe-Ito set).
BOOK_COLORS = [
    "#0072B2",
    "#D55E00",
    "#009E73",
    "#CC79A7",
    "#E69F00",
    "#56B4E9",
    "#000000",
]


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
    _describe_figures_in_png()


def describe_figure(figure: Figure) -> str:
    """A one-sentence text alternative for ``figure``, written from its own titles and
    labels.

    The super-title (if any) comes first, then each panel (colour bars left out) as
    "title (heat map): y label against x label". Returns "" for a figure with no text at
    all: such a figure needs a title before a reader who cannot see it learns anything.
    """
    panels = []
    for ax in figure.get_axes():
        if not ax.get_visible() or ax.get_label() == "<colorbar>":
            continue
        title = " ".join(
            part
            for part in (ax.get_title("left"), ax.get_title(), ax.get_title("right"))
            if part
        )
        kind = " (heat map)" if ax.images else ""
        axes = " against ".join(
            label for label in (ax.get_ylabel(), ax.get_xlabel()) if label
        )
        text = f"{title}{kind}" + (f": {axes}" if axes and title else axes)
        if text.strip():
            panels.append(" ".join(text.split()))
    if hasattr(figure, "get_suptitle"):  # matplotlib >= 3.8
        suptitle = figure.get_suptitle()
    else:
        suptitle = figure._suptitle.get_text() if figure._suptitle is not None else ""
    parts = [" ".join(suptitle.split())] if suptitle.strip() else []
    if panels:
        parts.append(("Panels: " if len(panels) > 1 else "") + "; ".join(panels))
    return (". ".join(parts) + ".") if parts else ""


def _png_with_description(figure: Figure, **print_kwargs) -> str:
    from IPython.core.pylabtools import print_figure

    description = describe_figure(figure)
    metadata = {"Description": description} if description else None
    return print_figure(
        figure, fmt="png", base64=True, metadata=metadata, **print_kwargs
    )


def _describe_figures_in_png() -> None:
    """In IPython, write each figure's ``describe_figure`` text into its inline PNG.

    The book's build (``_ext/figure_alt.py``) reads that "Description" text chunk back
    and makes it the image's alt text, so every figure gets one without a hand-written
    line. Outside IPython, or with a backend that shows no PNG, nothing changes.
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None or not hasattr(shell, "display_formatter"):
        return
    # The inline backend is imported lazily, at the first figure, and then registers its
    # own PNG printer: load it now, so that ours (registered below) is the one that
    # stays.
    plt.switch_backend(matplotlib.get_backend())
    png = shell.display_formatter.formatters["image/png"]
    current = png.type_printers.get(Figure)
    if current is None or getattr(current, "func", None) is _png_with_description:
        return
    keywords = dict(getattr(current, "keywords", {}))
    if getattr(current, "func", None) is None or keywords.pop("fmt", None) != "png":
        return  # retina or another custom printer: leave it alone
    keywords.pop("base64", None)
    png.for_type(Figure, partial(_png_with_description, **keywords))


def _to_numpy(weights: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(weights, torch.Tensor):
        weights = weights.detach().cpu().float().numpy()
    array = np.asarray(weights, dtype=float)
    if array.ndim != 2:
        raise ValueError(
            f"attention_heatmap expects one (T_q, T_k) matrix of weights, got shape "
            f"{array.shape}; select a batch element and a head first, "
            "e.g. weights[0, 0]."
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
    for labels, size, axis in (
        (query_labels, n_queries, "query"),
        (key_labels, n_keys, "key"),
    ):
        if labels is not None and len(labels) != size:
            raise ValueError(
                f"{len(labels)} {axis} labels for {size} {axis} positions."
            )
    if ax is None:
        _, ax = plt.subplots(figsize=(0.45 * n_keys + 2.0, 0.45 * n_queries + 1.2))
    image = ax.imshow(array, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
    ax.grid(False)
    ax.set_xlabel("key position")
    ax.set_ylabel("query position")
    ax.set_xticks(
        range(n_keys),
        key_labels if key_labels is not None else range(n_keys),
        rotation=90 if key_labels is not None else 0,
    )
    ax.set_yticks(
        range(n_queries), query_labels if query_labels is not None else range(n_queries)
    )
    if annotate:
        for i in range(n_queries):
            for j in range(n_keys):
                ax.text(
                    j,
                    i,
                    f"{array[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if array[i, j] < 0.6 else "black",
                )
    if title:
        ax.set_title(title)
    figure: Figure = ax.figure
    figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="weight")
    return ax


def loglog_slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Slope of the least-squares line through ``(log x, log y)``: the exponent p in
    y ~ x^p."""
    log_x, log_y = np.log(np.asarray(x, float)), np.log(np.asarray(y, float))
    if log_x.shape != log_y.shape or log_x.size < 2:
        raise ValueError(
            "loglog_slope needs two sequences of the same length, at least 2."
        )
    return float(np.polyfit(log_x, log_y, 1)[0])
