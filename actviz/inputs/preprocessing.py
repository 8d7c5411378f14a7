"""Scaling pixel values the way the model was trained, and choosing that scaling.

The notebook divided pixels by 255. Other models expect -1..1, ImageNet mean
subtraction, or raw pixels that a first ``Rescaling`` / ``Normalization`` layer
scales itself; ``choose_preprocessing`` reads the model's first layers to pick,
and says why in words (as a fact only where the model states it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ChoiceError

#: Pixel scalings a user can pick, with the words shown for each.
PREPROCESSING = {
    "rescale": "pixels divided by 255, to 0..1, as in the original notebook",
    "none": "raw pixel values 0..255 (the model scales them itself)",
    "tf": "pixels scaled to -1..1 (MobileNet, Inception, Xception)",
    "caffe": "BGR order, ImageNet mean subtracted (VGG16, ResNet50)",
    "torch": "ImageNet mean and standard deviation (DenseNet, EfficientNet in PyTorch style)",
}
#: What a user may ask for: a scaling, or "auto" to let the model say.
CHOICES = ("auto", *PREPROCESSING)

_IMAGENET_MEAN_RGB = np.array([123.68, 116.779, 103.939], dtype=np.float32)
_TORCH_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
_TORCH_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
_INPUT_SCALING_TYPES = {"Rescaling", "Normalization"}
_FIRST_COMPUTING_TYPES = {"Dense", "Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Conv2DTranspose"}


@dataclass(frozen=True)
class Preprocessing:
    """The scaling to use (a key of ``PREPROCESSING``) and a plain-words reason."""

    scaling: str
    note: str


def check_scaling(scaling: str) -> str:
    """``scaling`` if it is a known scaling (or "auto"); ``ChoiceError`` naming the choices otherwise."""
    if scaling not in CHOICES:
        raise ChoiceError(f"Unknown preprocessing '{scaling}'. Choose one of: {', '.join(CHOICES)}.")
    return scaling


def preprocess(pixels: np.ndarray, scaling: str) -> np.ndarray:
    """Scale uint8 pixels into the model's input range: (H, W, C) or (N, H, W, C) -> float32 (N, H, W, C).

    ``scaling`` is one of ``PREPROCESSING``. The input array is not modified.
    """
    if check_scaling(scaling) == "auto":
        raise ChoiceError("preprocess() needs a scaling; use choose_preprocessing() to pick one for a model.")
    x = np.asarray(pixels).astype(np.float32)
    if x.ndim == 3:
        x = x[np.newaxis]
    channels = x.shape[-1]
    if scaling == "rescale":
        x /= 255.0
    elif scaling == "tf":
        x = x / 127.5 - 1.0
    elif scaling == "caffe":
        x = x[..., ::-1] - _IMAGENET_MEAN_RGB[::-1] if channels == 3 else x - _IMAGENET_MEAN_RGB.mean()
    elif scaling == "torch":
        mean, std = (_TORCH_MEAN, _TORCH_STD) if channels == 3 else (_TORCH_MEAN.mean(), _TORCH_STD.mean())
        x = (x / 255.0 - mean) / std
    return np.ascontiguousarray(x, dtype=np.float32)


def value_range(scaling: str, channels: int) -> tuple[float, float]:
    """The lowest and highest model input that ``scaling`` makes of 8-bit pixels (for synthetic images)."""
    extremes = preprocess(np.array([[[0] * channels, [255] * channels]], dtype=np.uint8), scaling)
    return float(extremes.min()), float(extremes.max())


def choose_preprocessing(probe: Any, requested: str = "auto") -> Preprocessing:
    """The preprocessing to use for ``probe``'s model, and why, in words.

    ``requested``: a key of ``PREPROCESSING``, or "auto": none when the model
    starts with its own ``Rescaling`` (it takes raw pixels), a guess from the
    learned mean when it starts with an adapted ``Normalization``, else the
    notebook's pixels / 255.
    """
    if check_scaling(requested) != "auto":
        return Preprocessing(requested, f"Preprocessing: {PREPROCESSING[requested]} (chosen by you).")
    layer = _input_scaling_layer(probe)
    if layer is None:
        return Preprocessing("rescale", f"Preprocessing: {PREPROCESSING['rescale']} (chosen automatically).")
    if type(layer).__name__ == "Rescaling":
        return Preprocessing("none", (
            f"Preprocessing: none. The model starts with its own Rescaling layer ('{layer.name}'), so it takes raw "
            "pixel values 0..255 and scales them itself; they are not scaled twice."
        ))
    mean = _normalization_mean(layer)
    if mean is None:
        return Preprocessing("none", (
            f"Preprocessing: none. The model starts with a Normalization layer ('{layer.name}') that scales its input "
            "itself; raw pixel values 0..255 are passed. If it was adapted on pixels divided by 255, choose "
            "'rescale' instead."
        ))
    if mean > 2.0:
        return Preprocessing("none", (
            f"Preprocessing: none. The model starts with a Normalization layer ('{layer.name}') whose learned mean "
            f"({mean:.3g}) suggests it was adapted on raw pixel values 0..255, so those are passed. If the model "
            "was trained otherwise, choose the preprocessing yourself."
        ))
    return Preprocessing("rescale", (
        f"Preprocessing: pixels divided by 255. The model starts with a Normalization layer ('{layer.name}') whose "
        f"learned mean ({mean:.3g}) suggests it was adapted on pixels scaled to 0..1. If the model was trained "
        "otherwise, choose the preprocessing yourself."
    ))


def _input_scaling_layer(probe: Any) -> Any:
    """The Rescaling or Normalization layer the model applies before its first computing layer, if any."""
    for info in probe.table:
        if info.type in _INPUT_SCALING_TYPES:
            return probe.layer_object(info.name)
        if info.type in _FIRST_COMPUTING_TYPES:
            return None
    return None


def _normalization_mean(layer: Any) -> float | None:
    """The average of a Normalization layer's learned mean (None if it was given no statistics)."""
    mean = getattr(layer, "mean", None)
    if mean is None:
        return None
    try:
        values = np.asarray(mean, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return float(values.mean()) if values.size and np.isfinite(values).all() else None
