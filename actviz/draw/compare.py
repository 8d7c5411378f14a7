"""Two images through the same layer: one shared contrast scale, a difference grid, and the
channels ranked by how differently they respond."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ImageError
from .grids import FeatureGrid, feature_grid
from .rounding import for_people
from .stats import channel_moments


@dataclass(frozen=True)
class Comparison:
    """Grids of images A and B on one scale, their difference, and a ranking.

    ``difference``: A minus B per channel, on a diverging scale centred at 0;
    ``scores``: float64 (C,), mean |A - B| in units of the channel's standard
    deviation over both images; ``ranking``: channels by score, highest first;
    ``leaning``: float64 (C,), mean A - B, whose sign says which image the channel
    responds to more.
    """

    grid_a: FeatureGrid
    grid_b: FeatureGrid
    difference: FeatureGrid
    scores: np.ndarray
    ranking: np.ndarray
    leaning: np.ndarray

    def rows(self, top: int = 10) -> list[dict]:
        """The ``top`` channels that respond most differently, for people: "channel", "how far
        apart" (the score, rounded: 0 the same, 1 as far apart as the channel's values spread over
        both images) and "responds more to" ("the first image", "the second image" or "both alike").
        """
        sides = {1: "the first image", -1: "the second image", 0: "both alike"}
        return [{"channel": int(c), "how far apart": for_people(self.scores[c]), "responds more to": sides[int(np.sign(self.leaning[c]))]}
                for c in self.ranking[:top]]


def compare_maps(
    a: np.ndarray, b: np.ndarray, *, per_row: int = 16, cmap: str = "viridis", display_width: int | None = None,
    difference_layout: tuple[int, int | None] | None = None,
) -> Comparison:
    """Compare one layer's feature maps for two images: float (H, W, C) each, same shape.

    ``display_width`` sizes the two grids for a screen (None: full resolution);
    ``difference_layout``: (per_row, display_width) of the difference grid, if it
    is shown apart (default: as the two grids).
    """
    if a.shape != b.shape:
        raise ImageError(
            f"The two images give feature maps of different sizes at this layer ({' x '.join(map(str, a.shape))} and "
            f"{' x '.join(map(str, b.shape))}: the model takes any size); use images of the same size."
        )
    # one contrast per channel, from both images together: equal values get equal colours
    shared = channel_moments(np.concatenate([a, b], axis=0))
    grid_a = feature_grid(a, per_row=per_row, cmap=cmap, moments=shared, display_width=display_width)
    grid_b = feature_grid(b, per_row=per_row, cmap=cmap, moments=shared, display_width=display_width)
    delta = np.asarray(a, np.float32) - np.asarray(b, np.float32)
    spread = np.where(shared.std > 0, shared.std, 1.0)
    scores = np.abs(delta).mean(axis=(0, 1), dtype=np.float64) / spread
    diff_per_row, diff_width = difference_layout or (per_row, display_width)
    difference = feature_grid(delta, per_row=diff_per_row, cmap="coolwarm", display_width=diff_width, moments=_centred(delta))
    leaning = delta.mean(axis=(0, 1), dtype=np.float64)
    return Comparison(grid_a, grid_b, difference, scores, np.argsort(-scores, kind="stable"), leaning)


def _centred(delta: np.ndarray):
    """One scale for the whole layer with 0 in the middle of the colour map (white in coolwarm):
    (x - 0) / (reach / 2) * 64 + 128 maps -reach..reach to 0..256."""
    from .stats import ChannelMoments

    reach = float(np.abs(delta).max()) or 1.0
    channels = delta.shape[-1]
    return ChannelMoments(
        mean=np.zeros(channels), std=np.full(channels, reach / 2),
        low=np.full(channels, -reach), high=np.full(channels, reach),  # never "flat": zero stays white
    )


def shared_range(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """One colour scale for two arrays: (lowest, highest) value over both."""
    return float(min(np.min(a), np.min(b))), float(max(np.max(a), np.max(b)))


def channel_pair(a: np.ndarray, b: np.ndarray, channel: int, *, cmap: str = "viridis", size: int = 320) -> tuple[np.ndarray, np.ndarray]:
    """One channel of two images' maps (float (H, W, C) each) as two pictures on one colour scale:
    uint8 RGB each, titled "First image, channel k" and "Second image, channel k"."""
    from .figures import channel_picture

    first, second = a[:, :, channel], b[:, :, channel]
    scale = shared_range(first, second)
    return (channel_picture(first, cmap=cmap, size=size, title=f"First image, channel {channel}", value_range=scale),
            channel_picture(second, cmap=cmap, size=size, title=f"Second image, channel {channel}", value_range=scale))
