"""What every explanation method returns: one result type, batch axis first, with the raw map
(signed, at its own resolution) and a display version in 0..1, and the resampling they share.

Class activation maps live at a layer's height and width; pixel attributions
and occlusion at the model input's. Raw maps keep their units (a weighted sum
of feature maps, a score per pixel); the display version is what a person sees
over the image, by one of three rules (``DISPLAY_RULES``).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..draw.resample import enlarge, upsample
from ..draw.rounding import percent

#: How a raw map becomes the 0..1 picture, in words a caption can use.
DISPLAY_RULES = {
    "positive": "bright where the map is positive (evidence for the class), scaled to its highest value",
    "magnitude": "bright where the attribution is large, of either sign, scaled to its 99th percentile",
    "gradient": "bright where the largest colour channel's gradient is large, of either sign, scaled to its 99th percentile",
}
#: Share of the largest values clipped away when scaling a pixel attribution (a few extreme pixels
#: would otherwise leave the rest of the picture dark).
CLIP_PERCENTILE = 99.0


@dataclass(frozen=True)
class Explanation:
    """Why the model gave each image's class, by one method; batch axis first.

    ``raw``: float32 (N, h, w), signed, not rescaled: for class activation maps
    the weighted sum of the layer's channels before the method's ReLU, at the
    layer's size; for pixel attributions the attribution summed over colour
    channels, and for occlusion the drop of the class score, at the input size.
    ``heatmap``: float32 (N, h, w) in 0..1, the display version (``display``
    names the rule). ``class_index``: int64 (N,); ``probability``: float32 (N,),
    the model's probability for that class; ``score``: float32 (N,), the class
    score (logit) explained; ``predictions``: the model's first output (N, ...).
    ``title``: the method's name for people; ``settings_words``: the settings it
    ran with, in words for a caption (see ``MethodInfo.words``).
    ``weights``: float32 (N, C), class activation maps only: each channel's
    weight (for HiResCAM and LayerCAM, which weigh each position, the spatial
    mean of what multiplies the channel; for Eigen-CAM, the principal
    direction); ``shares``: float32 (N, C), class activation maps only, each
    channel's part of the map (its term summed over the map's positions);
    ``ranking``: int64 (N, C), class activation maps only, channels by their
    share of the map, largest first; ``attributions``: float32
    (N, H, W, C), pixel attributions only, one value per colour channel. ``settings``: the options used;
    ``details``: method-specific numbers (e.g. Integrated Gradients' scores at
    the baseline, for the completeness check). ``layer_reason``: when the layer
    was chosen by default, which one and why, in words ("" otherwise).
    """

    method: str
    family: str
    layer: str | None
    input_size: tuple
    class_index: np.ndarray
    probability: np.ndarray
    score: np.ndarray
    raw: np.ndarray
    heatmap: np.ndarray
    predictions: np.ndarray
    display: str
    title: str
    settings_words: str = ""
    weights: np.ndarray | None = None
    shares: np.ndarray | None = None
    ranking: np.ndarray | None = None
    attributions: np.ndarray | None = None
    settings: dict = field(default_factory=dict)
    details: dict = field(default_factory=dict)
    layer_reason: str = ""

    def __len__(self) -> int:
        return int(self.raw.shape[0])

    def map_shares(self, index: int = 0) -> np.ndarray:
        """float64 (C,): each channel's part of image ``index``'s map as a fraction of all the
        evidence for the class in it (the channels' positive parts added up); 0 for every channel
        of a map with no evidence. Class activation maps only (``ChoiceError`` otherwise)."""
        if self.shares is None:
            from ..errors import ChoiceError

            raise ChoiceError(f"{self.title} does not weigh channels, so it has no share per channel (class activation maps have).")
        shares = np.asarray(self.shares[index], dtype=np.float64)
        total = float(np.clip(shares, 0.0, None).sum())
        return shares / total if total > 0 else np.zeros_like(shares)

    def at_input_size(self, index: int = 0) -> np.ndarray:
        """float32 (H, W) in 0..1: image ``index``'s display map, resized (bilinear) to the model input."""
        return upsample(self.heatmap[index][None, :, :, None], self.input_size)[0, :, :, 0].astype(np.float32).clip(0, 1)

    def overlay(self, pixels: np.ndarray, index: int = 0, *, opacity: float = 0.45) -> np.ndarray:
        """The display map over the image the model saw: uint8 (H, W, 1|3) -> uint8 (H, W, 3)."""
        from ..draw.figures import overlay

        return overlay(pixels, self.heatmap[index], opacity=opacity)

    def caption(self, index: int = 0, class_names: Sequence[str] | None = None) -> str:
        """One plain sentence: the method, the layer, the class and how sure the model is of it."""
        from ..core.predictions import class_labels

        chosen = int(self.class_index[index])
        label = class_labels(chosen + 1, class_names)[chosen]
        where = f" at layer {self.layer}" if self.layer else ""
        used = f" ({self.settings_words})" if self.settings_words else ""
        return f"{self.title}{where}{used}, for {label} (probability {percent(float(self.probability[index]))}): {DISPLAY_RULES[self.display]}."

    def _repr_png_(self) -> bytes:  # a notebook shows the first image's map by itself
        from ..draw.figures import picture_png
        from ..draw.grids import palette

        levels = (self.heatmap[0] * 255 + 0.5).astype(np.uint8)
        zoom = max(1, 224 // max(levels.shape))
        return picture_png(palette("jet")[enlarge(levels, zoom)])


def check_batch(batch: np.ndarray) -> np.ndarray:
    """The batch as float32 (N, H, W, C); ``ActvizError`` in words for anything else."""
    from ..errors import ActvizError

    array = np.asarray(batch, dtype=np.float32)
    if array.ndim != 4:
        raise ActvizError(f"Explanations take a batch of images, float32 (N, H, W, C); got an array of shape {array.shape}.")
    return array


def display_map(raw: np.ndarray, rule: str, attributions: np.ndarray | None = None) -> np.ndarray:
    """The 0..1 picture of raw maps: float (N, h, w) -> float32 (N, h, w), each image on its own scale.

    ``positive``: ReLU, divided by the image's maximum; ``magnitude``: absolute
    value divided by its 99th percentile, clipped; ``gradient``: the largest
    absolute value over colour channels of ``attributions`` (N, H, W, C), the
    same way.
    """
    if rule == "positive":
        values = np.maximum(np.asarray(raw, dtype=np.float64), 0.0)
        top = values.max(axis=(1, 2), keepdims=True)
    else:
        values = np.abs(np.asarray(raw if rule == "magnitude" else attributions, dtype=np.float64))
        if rule == "gradient":
            values = values.max(axis=-1)
        top = np.percentile(values.reshape(len(values), -1), CLIP_PERCENTILE, axis=1).reshape(-1, 1, 1)
        top = np.where(top > 0, top, values.max(axis=(1, 2), keepdims=True))  # mostly-zero maps
    scaled = np.divide(values, top, out=np.zeros_like(values), where=top > 0)
    return scaled.clip(0.0, 1.0).astype(np.float32)


def npy_bytes(array: np.ndarray) -> bytes:
    """An array as the bytes of a ``.npy`` file."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array))
    return buffer.getvalue()
