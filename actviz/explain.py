"""Why the model answered as it did: class activation maps (Grad-CAM and Grad-CAM++).

Arrays in, arrays out. The gradients flow through the same traced graph the
feature maps come from (``Probe.score_model``), so this works for Sequential
models and for layers inside a nested base, where the usual recipe
``keras.Model(model.inputs, [conv.output, model.output])`` gives no gradient or
fails to build.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .errors import ChoiceError, LayerNotFoundError
from .predictions import check_class, class_count, predicted_class
from .probe import Probe

METHODS = {
    "gradcam": "Grad-CAM: each channel weighted by its average gradient",
    "gradcam++": "Grad-CAM++: weights that favour every region supporting the class, not only the strongest",
}


@dataclass(frozen=True)
class ClassActivationMap:
    """Where in each image a layer found evidence for a class; batch axis first.

    ``heatmap``: float32 (N, h, w) in 0..1, the layer's height and width (each
    image's map divided by its own maximum); ``raw``: float32 (N, h, w), the
    map before that scaling; ``weights``: float32 (N, C), each channel's
    importance; ``ranking``: int (N, C), channels by weight, highest first;
    ``class_index``: int (N,); ``probability``: float32 (N,), the model's
    probability for that class; ``predictions``: the model's first output (N, ...).
    """

    layer: str
    method: str
    class_index: np.ndarray
    probability: np.ndarray
    heatmap: np.ndarray
    raw: np.ndarray
    weights: np.ndarray
    ranking: np.ndarray
    predictions: np.ndarray

    def __len__(self) -> int:
        return int(self.heatmap.shape[0])


def grad_cam(
    probe: Probe, batch: np.ndarray, *, layer: str | int | None = None,
    class_index: int | Sequence[int] | None = None, method: str = "gradcam",
) -> ClassActivationMap:
    """Grad-CAM (or Grad-CAM++) of a class at a layer, for each image of a batch, in one pass.

    ``batch``: float32 (N, H, W, C), preprocessed; ``layer``: a convolution layer
    (default: the last one); ``class_index``: one class for all images, one per
    image, or None for each image's predicted class. The class score is the
    logit (before softmax/sigmoid); for a single sigmoid output, class 1 is the
    logit and class 0 its negative (the logit of ``1 - p``).
    """
    import tensorflow as tf

    if method not in METHODS:
        raise ChoiceError(f"Unknown method '{method}'. Choose one of: {', '.join(METHODS)}.")
    info = probe.table.last_convolution() if layer is None else probe.table.resolve(layer, among=probe.table.convolutions)
    model = probe.score_model(info.name)
    inputs = tf.convert_to_tensor(np.asarray(batch, dtype=np.float32))
    with tf.GradientTape() as tape:
        feature, scores, probabilities = model(inputs, training=False)
        chosen, score, probability = class_scores(scores, probabilities, class_index)
    gradients = tape.gradient(score, feature)
    if gradients is None:  # the chosen layer does not lead to the output (a side branch)
        raise LayerNotFoundError(f"The layer '{info.name}' does not lead to the model's prediction, so it has no class activation map.")
    activation = np.asarray(feature, dtype=np.float64)
    weights = _weights(activation, np.asarray(gradients, dtype=np.float64), method)
    # the weighted sum of the channels, keeping only what speaks for the class (ReLU)
    cam = np.maximum(np.einsum("nhwc,nc->nhw", activation, weights), 0.0)
    top = cam.max(axis=(1, 2), keepdims=True)
    heatmap = np.divide(cam, top, out=np.zeros_like(cam), where=top > 0)
    return ClassActivationMap(
        layer=info.name, method=method, class_index=chosen, probability=probability,
        heatmap=heatmap.astype(np.float32), raw=cam.astype(np.float32), weights=weights.astype(np.float32),
        ranking=np.argsort(-weights, axis=1, kind="stable"), predictions=np.asarray(probabilities),
    )


def class_scores(scores, probabilities, class_index: int | Sequence[int] | None):
    """For each image: (class indices int (N,), the summed score tensor to differentiate, float32 (N,) probabilities).

    Each image's score depends on that image only, so the gradient of the sum
    gives every image its own gradient in one backward pass.
    """
    import tensorflow as tf

    values = np.asarray(probabilities).reshape(len(probabilities), -1)
    count = class_count(values[0])
    if class_index is None:
        chosen = np.array([predicted_class(row) for row in values], dtype=np.int64)
    else:
        wanted = [class_index] * len(values) if np.ndim(class_index) == 0 else list(class_index)
        if len(wanted) != len(values):
            raise ChoiceError(f"{len(wanted)} classes were given for {len(values)} images; give one class, or one per image.")
        chosen = np.array([check_class(index, count) for index in wanted], dtype=np.int64)
    logits = tf.reshape(scores, [len(values), -1])
    if values.shape[1] == 1:  # one sigmoid output: two classes, p and 1 - p, logits z and -z
        sign = tf.constant(np.where(chosen == 1, 1.0, -1.0), dtype=logits.dtype)
        score = tf.reduce_sum(logits[:, 0] * sign)
        probability = np.where(chosen == 1, values[:, 0], 1.0 - values[:, 0])
    else:
        score = tf.reduce_sum(tf.gather(logits, chosen, axis=1, batch_dims=1))
        probability = values[np.arange(len(values)), chosen]
    return chosen, score, probability.astype(np.float32)


def _weights(activation: np.ndarray, grads: np.ndarray, method: str) -> np.ndarray:
    """Channel weights, float64 (N, C), from the feature maps A and the gradients dS/dA, both (N, h, w, C)."""
    if method == "gradcam":
        # a vector where each entry is the mean intensity of the gradient over one channel
        return grads.mean(axis=(1, 2))
    # Grad-CAM++ (Chattopadhyay et al. 2018), closed form with exp(score) as the class score:
    # alpha = g^2 / (2 g^2 + sum(A) g^3); weight = sum(alpha * relu(g))
    g2, g3 = grads**2, grads**3
    denominator = 2.0 * g2 + activation.sum(axis=(1, 2), keepdims=True) * g3
    alpha = np.divide(g2, denominator, out=np.zeros_like(g2), where=denominator != 0)
    return (alpha * np.maximum(grads, 0.0)).sum(axis=(1, 2))
