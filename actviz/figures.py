"""Matplotlib figures for what a grid cannot show: one channel with a colour bar, and a chart
across the depth of the network. Each returns PNG bytes (Agg backend, no window)."""

from __future__ import annotations

import io

import numpy as np

from .stats import LayerStats


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def channel_figure(channel: np.ndarray, *, title: str, cmap: str = "viridis") -> bytes:
    """One channel, large, with a colour bar in activation units: float (H, W) -> PNG bytes.

    Like the notebook's ``plt.matshow(activation[0, :, :, 10], cmap='viridis')``.
    """
    from matplotlib.figure import Figure

    height, width = channel.shape
    figure = Figure(figsize=(6.4, 6.4 * height / width + 0.4))
    axes = figure.subplots()
    image = axes.matshow(channel, cmap=cmap)
    axes.set_title(title, fontsize=11)
    axes.set_xticks([])
    axes.set_yticks([])
    bar = figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    bar.set_label("activation value")
    return _png(figure)


def depth_chart(stats: list[LayerStats]) -> bytes:
    """Sparsity (share of zero values) and blank channels (%) per layer, in network order: PNG bytes."""
    from matplotlib.figure import Figure

    names = [s.name for s in stats]
    x = np.arange(len(stats))
    figure = Figure(figsize=(max(6.0, 0.45 * len(stats) + 2), 3.8))
    axes = figure.subplots()
    axes.plot(x, [100 * s.sparsity for s in stats], marker="o", color="#3b528b", label="zero values (sparsity)")
    axes.bar(x, [100 * s.blank_fraction for s in stats], color="#fde725", edgecolor="#5ec962", alpha=0.8, label="blank channels")
    axes.set_ylim(0, 100)
    axes.set_ylabel("% of the layer")
    axes.set_xticks(x, names, rotation=60, ha="right", fontsize=8)
    axes.set_xlabel("layer, from the input (left) to the output (right)")
    axes.grid(axis="y", alpha=0.3)
    axes.legend(loc="upper left", fontsize=9)
    return _png(figure)
