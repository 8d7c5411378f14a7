"""Per-layer numbers: how active a layer is, how sparse, which channels are blank.

The notebook's claim, "the sparsity of the activations increases with the
depth of the layer", is checkable from these numbers: ``sparsity`` is the
fraction of exact zeros, ``blank`` lists the channels that are constant
(nothing in the image excited that filter).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

STATS_COLUMNS = ["layer", "height", "width", "channels", "mean", "max", "sparsity", "blank_channels", "blank_list", "top_channels"]


@dataclass(frozen=True)
class LayerStats:
    """Numbers about one feature map (float (H, W, C)).

    ``sparsity``: fraction of values exactly 0; ``blank``: indices of constant
    channels; ``top``: channel indices by mean activation, highest first.
    """

    name: str
    shape: tuple
    mean: float
    max: float
    sparsity: float
    blank: tuple
    top: tuple

    @property
    def channels(self) -> int:
        return int(self.shape[-1])

    @property
    def blank_fraction(self) -> float:
        return len(self.blank) / self.channels

    def row(self) -> dict:
        """One CSV row (see ``STATS_COLUMNS``)."""
        return {
            "layer": self.name, "height": self.shape[0], "width": self.shape[1], "channels": self.channels,
            "mean": f"{self.mean:.6g}", "max": f"{self.max:.6g}", "sparsity": f"{self.sparsity:.4f}",
            "blank_channels": len(self.blank), "blank_list": " ".join(map(str, self.blank)),
            "top_channels": " ".join(map(str, self.top)),
        }


def layer_stats(name: str, activation: np.ndarray, *, top_k: int = 8) -> LayerStats:
    """Statistics of one feature map: float (H, W, C) -> LayerStats."""
    x = np.asarray(activation)
    channel_means = x.mean(axis=(0, 1), dtype=np.float64)
    blank = np.flatnonzero(np.ptp(x, axis=(0, 1)) == 0)
    order = np.argsort(-channel_means, kind="stable")[:top_k]
    return LayerStats(
        name=name, shape=tuple(int(d) for d in x.shape), mean=float(channel_means.mean()),
        max=float(x.max()), sparsity=float(np.count_nonzero(x == 0) / x.size),
        blank=tuple(int(c) for c in blank), top=tuple(int(c) for c in order),
    )


def depth_summary(stats: list[LayerStats]) -> str:
    """One plain-words sentence on how sparsity and blank channels change with depth."""
    if len(stats) < 2:
        return ""
    first, last = stats[0], stats[-1]
    trend = "grows" if last.sparsity > first.sparsity + 0.02 else ("falls" if last.sparsity < first.sparsity - 0.02 else "stays about the same")
    return (
        f"From the first shown layer ({first.name}) to the last ({last.name}), the share of zero values "
        f"{trend}: {first.sparsity:.0%} to {last.sparsity:.0%}, and blank channels go from "
        f"{len(first.blank)} of {first.channels} to {len(last.blank)} of {last.channels}. "
        + ("Deeper layers respond to fewer, more specific patterns, so more of them stay dark for this image."
           if trend == "grows" else "In this model the deeper layers are not sparser for this image.")
    )
