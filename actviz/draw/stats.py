"""Per-layer numbers: how active a layer is, how sparse, which channels are blank.

The notebook's claim, "the sparsity of the activations increases with the
depth of the layer", is checkable from these numbers: ``sparsity`` is the
fraction of exact zeros, ``blank`` lists the channels that are constant
(nothing in the image excited that filter).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..core.layers import LayerTable
from ..text import csv_cell
from .rounding import for_people

STATS_COLUMNS = ["layer", "height", "width", "channels", "mean", "max", "sparsity", "blank_channels", "blank_list", "top_channels"]


@dataclass(frozen=True)
class ChannelMoments:
    """Per-channel summary of a feature map, each float64 (C,): computed once, shared by the
    renderer (contrast) and the statistics."""

    mean: np.ndarray
    std: np.ndarray
    low: np.ndarray
    high: np.ndarray

    @property
    def flat(self) -> np.ndarray:
        """bool (C,): channels with one value everywhere (dead filters)."""
        return self.low == self.high

    def take(self, channels: Sequence[int]) -> "ChannelMoments":
        """The summary of ``channels`` only, in that order (shape (len(channels),))."""
        index = np.asarray(channels, dtype=np.int64)
        return ChannelMoments(mean=self.mean[index], std=self.std[index], low=self.low[index], high=self.high[index])

    def pooled(self) -> "ChannelMoments":
        """The same summary for the whole layer as one channel (shape (1,))."""
        mean = self.mean.mean()
        variance = (self.std**2 + self.mean**2).mean() - mean**2
        return ChannelMoments(
            mean=np.array([mean]), std=np.array([np.sqrt(max(variance, 0.0))]),
            low=np.array([self.low.min()]), high=np.array([self.high.max()]),
        )


def channel_moments(activation: np.ndarray) -> ChannelMoments:
    """Mean, standard deviation, minimum and maximum of each channel of float (H, W, C).

    Means are accumulated in float64; the deviation is taken around the mean
    (no cancellation for channels far from zero). About four passes over the data.
    """
    x = np.asarray(activation, dtype=np.float32)
    flat = x.reshape(-1, x.shape[-1])
    count = flat.shape[0]
    mean = np.add.reduce(flat, axis=0, dtype=np.float64) / count
    centred = flat - mean.astype(np.float32)
    variance = np.einsum("ij,ij->j", centred, centred).astype(np.float64) / count
    return ChannelMoments(mean=mean, std=np.sqrt(variance), low=flat.min(axis=0).astype(np.float64), high=flat.max(axis=0).astype(np.float64))


@dataclass(frozen=True)
class LayerStats:
    """Numbers about one feature map (float (H, W, C)).

    ``sparsity``: fraction of values exactly 0; ``blank``: indices of constant
    channels; ``top``: channel indices by mean activation, highest first (the
    first ``top_k``); ``channel_means``: each channel's mean, float (C,).
    """

    name: str
    shape: tuple
    mean: float
    max: float
    sparsity: float
    blank: tuple
    top: tuple
    channel_means: tuple = ()

    def channels_by_activity(self) -> list[int]:
        """Every channel, the most active (highest mean) first."""
        return sorted(range(self.channels), key=lambda c: (-self.channel_means[c], c)) if self.channel_means else list(range(self.channels))

    @property
    def channels(self) -> int:
        return int(self.shape[-1])

    @property
    def blank_fraction(self) -> float:
        return len(self.blank) / self.channels

    def row(self) -> dict:
        """One CSV row (see ``STATS_COLUMNS``)."""
        return {
            "layer": csv_cell(self.name), "height": self.shape[0], "width": self.shape[1], "channels": self.channels,
            "mean": f"{self.mean:.6g}", "max": f"{self.max:.6g}", "sparsity": f"{self.sparsity:.4f}",
            "blank_channels": len(self.blank), "blank_list": " ".join(map(str, self.blank)),
            "top_channels": " ".join(map(str, self.top)),
        }


def layer_stats(name: str, activation: np.ndarray, *, top_k: int = 8, moments: ChannelMoments | None = None) -> LayerStats:
    """Statistics of one feature map: float (H, W, C) -> LayerStats.

    ``moments``: the map's ``channel_moments``, if already computed (for the grid).

    >>> x = np.zeros((2, 2, 3)); x[..., 1] = [[1, 0], [3, 0]]
    >>> s = layer_stats("conv", x)
    >>> s.blank, s.top[:1], round(s.sparsity, 3)        # channels 0 and 2 are blank; 10 of 12 values are 0
    ((0, 2), (1,), 0.833)
    """
    x = np.asarray(activation)
    moments = moments or channel_moments(x)
    order = np.argsort(-moments.mean, kind="stable")[:top_k]
    return LayerStats(
        name=name, shape=tuple(int(d) for d in x.shape), mean=float(moments.mean.mean()),
        max=float(moments.high.max()), sparsity=float(np.count_nonzero(x == 0) / x.size),
        blank=tuple(int(c) for c in np.flatnonzero(moments.flat)), top=tuple(int(c) for c in order),
        channel_means=tuple(float(m) for m in moments.mean),
    )


@dataclass(frozen=True)
class ChannelNumbers:
    """One channel's values in words' reach: lowest, highest, and the share that is exactly zero."""

    low: float
    high: float
    zeros: float


def channel_numbers(channel: np.ndarray) -> ChannelNumbers:
    """Summary of one channel, float (H, W)."""
    values = np.asarray(channel)
    return ChannelNumbers(low=float(values.min()), high=float(values.max()), zeros=float(np.count_nonzero(values == 0) / values.size))


def layer_caption(position: int, count: int, stats: LayerStats) -> str:
    """What to notice in a layer, in plain words: where it sits in the network, and what this
    image actually did to it (the blank channels counted, not assumed)."""
    where = position / max(count - 1, 1)
    blank = len(stats.blank)
    if blank == 0:
        dark = "none of its channels is blank for this image"
    elif blank == stats.channels:
        dark = "every channel is blank for this image: nothing it looks for is there"
    else:
        dark = f"{blank} of its {stats.channels} channels are blank (one flat colour): what those filters look for is not in this image"
    if where < 0.34:
        return ("An early layer. Each small picture is one filter's answer to the image: most act as edge and stroke "
                f"detectors, and the image is still easy to recognise; {dark}.")
    if where < 0.67:
        return f"A middle layer. Filters combine edges into textures and parts, and the pictures look less like the image; {dark}."
    return f"A deep layer. Filters respond to abstract patterns linked to the answer, and the pictures no longer look like the image; {dark}."


def layer_title(stats: LayerStats, *, position: int, count: int, unit: str = "filters") -> str:
    """A layer's title in plain words: its place among the ``count`` layers shown (``position``
    from 1), how many pictures it makes (``unit``: ``LayerInfo.unit_words``) and their size.

    >>> layer_title(layer_stats("block5_conv3", np.zeros((18, 18, 512))), position=13, count=18)
    'Layer 13 of 18 (block5_conv3): 512 filters, each 18 x 18'
    """
    height, width, channels = stats.shape
    return f"Layer {position} of {count} ({stats.name}): {channels:,} {unit if channels != 1 else unit[:-1]}, each {height} x {width}"


def layer_titles(stats: Sequence[LayerStats], *, table: LayerTable | None = None) -> dict[str, str]:
    """Layer name -> its plain title (``layer_title``), for the layers of one forward pass in
    network order; ``table``: the model's layer table, which says which layers are convolutions
    (their channels are called filters; without it, every layer's are called channels).

    >>> from actviz.core.layers import LayerInfo
    >>> table = LayerTable([LayerInfo(0, "conv", "Conv2D", (4, 4, 2), 20, True, 0), LayerInfo(1, "pool", "MaxPooling2D", (2, 2, 2), 0, True, 0)])
    >>> layer_titles([layer_stats("conv", np.ones((4, 4, 2))), layer_stats("pool", np.ones((2, 2, 2)))], table=table)
    {'conv': 'Layer 1 of 2 (conv): 2 filters, each 4 x 4', 'pool': 'Layer 2 of 2 (pool): 2 channels, each 2 x 2'}
    """
    units = {info.name: info.unit_words for info in table or ()}
    return {s.name: layer_title(s, position=n, count=len(stats), unit=units.get(s.name, "channels")) for n, s in enumerate(stats, start=1)}


def technical_line(stats: LayerStats, kind: str) -> str:
    """The layer as a programmer reads it: name, Keras type (``kind``), its output's size for this
    image (height x width x channels), and its blank channels.

    >>> technical_line(layer_stats("block5_conv3", np.zeros((18, 18, 512))), "Conv2D")
    'block5_conv3 · Conv2D · 18 x 18 x 512 · 512 of 512 channels blank'
    """
    return f"{stats.name} · {kind} · {' x '.join(map(str, stats.shape))} · {len(stats.blank)} of {stats.channels} channels blank"


def first_screen_words(stats: LayerStats, shown: int, *, unit: str = "filters") -> str:
    """What a grid of the layer's ``shown`` most active channels shows (``channels_by_activity``),
    in words, with the number they are ranked by: each channel's average response.

    >>> x = np.zeros((2, 2, 4)); x[..., 1], x[..., 3] = 3.0, 0.5
    >>> print(first_screen_words(layer_stats("conv", x), 2))
    The 2 most active of its 4 filters, most active first (left to right, then down), ranked by their average response: from 3 (channel 1) down to 0.5 (channel 3). The page One channel lists them in the same order.
    """
    order = stats.channels_by_activity()[:shown]
    top, last = order[0], order[-1]
    return (
        f"The {shown:,} most active of its {stats.channels:,} {unit}, most active first (left to right, then down), ranked by "
        f"their average response: from {for_people(stats.channel_means[top])} (channel {top}) down to "
        f"{for_people(stats.channel_means[last])} (channel {last}). The page One channel lists them in the same order."
    )


def most_active_rows(stats: LayerStats, count: int) -> list[dict]:
    """The layer's ``count`` most active channels as table rows for people, in the order a grid of
    them shows them: "place" (from 1: left to right, then down), "channel", "average response"
    (rounded, ``for_people``: the number they are ranked by).

    >>> x = np.zeros((2, 2, 3)); x[..., 2] = 0.000849; x[..., 0] = 82.2886
    >>> most_active_rows(layer_stats("conv", x), 2)
    [{'place': 1, 'channel': 0, 'average response': '82'}, {'place': 2, 'channel': 2, 'average response': '0.00085'}]
    """
    return [{"place": place, "channel": channel, "average response": for_people(stats.channel_means[channel])}
            for place, channel in enumerate(stats.channels_by_activity()[:count], start=1)]


def stats_csv(stats: list[LayerStats]) -> str:
    """The statistics as CSV text, one row per layer (columns: ``STATS_COLUMNS``)."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=STATS_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(s.row() for s in stats)
    return buffer.getvalue()


def depth_summary(stats: list[LayerStats]) -> str:
    """One plain-words sentence on how sparsity and blank channels change with depth.

    >>> print(depth_summary(maps.stats()))               # doctest: +SKIP
    From the first shown layer (block1_conv1) to the last (block5_conv3), the share of zero values grows: 48% to 93%, ...
    """
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
