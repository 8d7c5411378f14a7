"""Why the model answered as it did: class activation maps (Grad-CAM and Grad-CAM++).

Arrays in, arrays out. The gradients flow through the same traced graph the
feature maps come from (``Probe.score_model``), so this works for Sequential
models and for layers inside a nested base, where the usual recipe
``keras.Model(model.inputs, [conv.output, model.output])`` gives no gradient or
fails to build.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import LayerNotFoundError
from .graph import CONV_TYPES, LayerInfo, Probe

METHODS = {
    "gradcam": "Grad-CAM: each channel weighted by its average gradient",
    "gradcam++": "Grad-CAM++: weights that favour every region supporting the class, not only the strongest",
}


@dataclass(frozen=True)
class ClassActivationMap:
    """Where in the image a layer found evidence for one class.

    ``heatmap``: float32 (h, w) in 0..1, the layer's height and width;
    ``weights``: float32 (C,), each channel's importance; ``ranking``: channel
    indices by weight, highest first; ``probability``: the model's probability
    for the class; ``predictions``: the model's first output for the image.
    """

    layer: str
    class_index: int
    probability: float
    heatmap: np.ndarray
    weights: np.ndarray
    ranking: np.ndarray
    method: str
    predictions: np.ndarray


def last_conv_layer(probe: Probe) -> LayerInfo:
    """The last convolution layer in network order (inside nested models too)."""
    convs = [info for info in probe.spatial_layers if info.type in CONV_TYPES]
    if not convs:
        raise LayerNotFoundError("This model has no convolution layer, so there is no class activation map to show.")
    return convs[-1]


def class_count(probe: Probe, predictions: np.ndarray) -> int:
    """How many classes the first output distinguishes (a single sigmoid output is two)."""
    size = int(np.asarray(predictions).size)
    return 2 if size == 1 else size


def grad_cam(
    probe: Probe, batch: np.ndarray, *, layer: str | None = None, class_index: int | None = None,
    method: str = "gradcam",
) -> ClassActivationMap:
    """Grad-CAM (or Grad-CAM++) of ``class_index`` (default: the predicted class) at ``layer``
    (default: the last convolution layer).

    ``batch``: float32 (1, H, W, C), preprocessed. The class score is the logit
    (before softmax/sigmoid); for a single sigmoid output, class 1 is the logit
    and class 0 its negative (the logit of ``1 - p``).
    """
    import tensorflow as tf

    if method not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}")
    info = probe.layer(layer) if layer is not None else last_conv_layer(probe)
    model = probe.score_model(info.name)
    inputs = tf.convert_to_tensor(batch, dtype=tf.float32)
    with tf.GradientTape() as tape:
        feature, scores, probabilities = model(inputs, training=False)
        chosen, score, probability = _class_score(scores, probabilities, class_index)
    gradients = tape.gradient(score, feature)
    if gradients is None:  # the chosen layer does not lead to the output (a side branch)
        raise LayerNotFoundError(f"The layer '{info.name}' does not lead to the model's prediction, so it has no class activation map.")
    activation = np.asarray(feature)[0].astype(np.float64)
    grads = np.asarray(gradients)[0].astype(np.float64)
    weights = _weights(activation, grads, method)
    # the weighted sum of the channels, keeping only what speaks for the class (ReLU)
    cam = np.maximum(np.tensordot(activation, weights, axes=([2], [0])), 0.0)
    top = cam.max()
    heatmap = (cam / top if top > 0 else np.zeros_like(cam)).astype(np.float32)
    return ClassActivationMap(
        layer=info.name, class_index=chosen, probability=probability, heatmap=heatmap,
        weights=weights.astype(np.float32), ranking=np.argsort(-weights, kind="stable"), method=method,
        predictions=np.asarray(probabilities)[0],
    )


def _class_score(scores, probabilities, class_index: int | None):
    """(class index, the scalar score tensor to differentiate, the class's probability)."""
    import tensorflow as tf

    from .pipeline import predicted_class

    values = np.asarray(probabilities)[0].ravel()
    chosen = predicted_class(values) if class_index is None else int(class_index)
    _check_class(chosen, 2 if values.size == 1 else values.size)
    if values.size == 1:  # one sigmoid output: two classes, p and 1 - p, logits z and -z
        p = float(values[0])
        logit = tf.reshape(scores, [-1])[0]
        return chosen, (logit if chosen == 1 else -logit), (p if chosen == 1 else 1.0 - p)
    return chosen, tf.reshape(scores, [-1])[chosen], float(values[chosen])


def _check_class(index: int, count: int) -> None:
    if not 0 <= index < count:
        raise LayerNotFoundError(f"Class {index} does not exist: the model has {count} classes, numbered 0 to {count - 1}.")


def _weights(activation: np.ndarray, grads: np.ndarray, method: str) -> np.ndarray:
    """Channel weights, float64 (C,), from the feature map A and the gradients dS/dA, both (h, w, C)."""
    if method == "gradcam":
        # a vector where each entry is the mean intensity of the gradient over one channel
        return grads.mean(axis=(0, 1))
    # Grad-CAM++ (Chattopadhyay et al. 2018), closed form with exp(score) as the class score:
    # alpha = g^2 / (2 g^2 + sum(A) g^3); weight = sum(alpha * relu(g))
    g2, g3 = grads**2, grads**3
    denominator = 2.0 * g2 + activation.sum(axis=(0, 1)) * g3
    alpha = np.divide(g2, denominator, out=np.zeros_like(g2), where=denominator != 0)
    return (alpha * np.maximum(grads, 0.0)).sum(axis=(0, 1))


def upsample(heatmap: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a 0..1 heatmap: float (h, w) -> float32 (H, W) for ``size`` (H, W)."""
    from PIL import Image

    image = Image.fromarray(np.asarray(heatmap, dtype=np.float32), mode="F")
    return np.asarray(image.resize((size[1], size[0]), Image.Resampling.BILINEAR), dtype=np.float32).clip(0, 1)


def overlay(pixels: np.ndarray, heatmap: np.ndarray, *, opacity: float = 0.45, cmap: str = "jet") -> np.ndarray:
    """The heatmap over the image: uint8 (H, W, 1|3) + float (h, w) in 0..1 -> uint8 (H, W, 3)."""
    from .render import palette

    base = np.asarray(pixels, dtype=np.float32)
    if base.shape[-1] == 1:
        base = np.repeat(base, 3, axis=-1)
    levels = (upsample(heatmap, base.shape[:2]) * 255 + 0.5).astype(np.uint8)
    colours = palette(cmap, separator=tuple(int(v) for v in _top_colour(cmap)))[levels].astype(np.float32)
    return (base * (1 - opacity) + colours * opacity + 0.5).clip(0, 255).astype(np.uint8)


def _top_colour(cmap: str) -> np.ndarray:
    import matplotlib

    return (np.asarray(matplotlib.colormaps[cmap](1.0)[:3]) * 255 + 0.5).astype(np.uint8)
